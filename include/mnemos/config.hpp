// Build-time configuration: a few positive macros in one place (0 or 1).
// Define them on the compiler command line or before the first include.
#pragma once

// Compile the atomics shim against Relacy (rl::atomic) instead of std::atomic,
// for exhaustive interleaving tests in verify/. Never set in production builds.
#ifndef MNEMOS_USE_RELACY
#define MNEMOS_USE_RELACY 0
#endif
