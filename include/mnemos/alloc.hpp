/// @file
/// @brief mnemos-alloc: the one header users include.
///
/// Brings in Heap (with its waiting allocations, AllocFuture), the owners
/// Box, Arc, Array and FixedVec, Layout, Result and Error, Stats, CheckReport
/// and the fault handler. The bundled coroutine runtime (Task, Executor) is in
/// mnemos/task.hpp.

/// @namespace mnemos
/// @brief mnemos-alloc's API. Names in mnemos::detail are implementation,
/// not API, and may change without notice.

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
