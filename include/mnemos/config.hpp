// Build-time configuration: a few positive macros in one place (0 or 1).
// Define them on the compiler command line or before the first include.
#pragma once

// Compile the atomics shim against Relacy (rl::atomic) instead of std::atomic,
// for exhaustive interleaving tests in verify/. Never set in production builds.
#ifndef MNEMOS_USE_RELACY
#define MNEMOS_USE_RELACY 0
#endif

// Storage for the per-thread record of the waker call in progress (see
// detail/wait_queue.hpp: how a future destroyed from inside its own waker call
// is told apart from one destroyed concurrently). On a single-core target
// without TLS support, define it empty: one global record is then exact.
#ifndef MNEMOS_THREAD_LOCAL
#define MNEMOS_THREAD_LOCAL thread_local
#endif
