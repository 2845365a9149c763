// mnemos-alloc: the one header users include.
#pragma once

#include "mnemos/arc.hpp"
#include "mnemos/array.hpp"
#include "mnemos/box.hpp"
#include "mnemos/check.hpp"
#include "mnemos/error.hpp"
#include "mnemos/fault.hpp"
#include "mnemos/fixed_vec.hpp"
#include "mnemos/heap.hpp"
#include "mnemos/layout.hpp"
#include "mnemos/result.hpp"
#include "mnemos/stats.hpp"
