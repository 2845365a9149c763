/// @file
/// @brief Build-time configuration: a few positive macros in one place (0 or 1).
///
/// Define them on the compiler command line or before the first include.
#pragma once

#include <cstdint>

/// Compile the atomics shim against Relacy (rl::atomic) instead of std::atomic,
/// for exhaustive interleaving tests in verify/. Never set in production builds.
#ifndef MNEMOS_USE_RELACY
#define MNEMOS_USE_RELACY 0
#endif

/// Storage for the per-thread record of the waker call in progress (see
/// detail/wait_queue.hpp: how a future destroyed from inside its own waker call
/// is told apart from one destroyed concurrently). On a single-core target
/// without TLS support, define it empty: one global record is then exact.
#ifndef MNEMOS_THREAD_LOCAL
#define MNEMOS_THREAD_LOCAL thread_local
#endif

/// Misuse detection (detail/hardening.hpp, mnemos/fault.hpp): the header word is
/// encoded with a secret and check bits, every free is validated before it
/// touches the arena, and a freed block's header is scrubbed, so a double free,
/// a foreign or misaligned pointer, a smashed header or an impossible layout is
/// reported through the fault handler instead of corrupting the arena. Needs
/// the 16 unused high bits of a 64-bit pointer: on a target whose pointers are
/// narrower it defaults to 0 (and 1 is refused). With 0 the header is the plain
/// heap pointer and a free trusts its caller, as before.
#ifndef MNEMOS_HARDENING
#if UINTPTR_MAX > 0xFFFFFFFFu
#define MNEMOS_HARDENING 1
#else
#define MNEMOS_HARDENING 0
#endif
#endif

/// Mixed into the header secret (with the load address of a static object, so
/// an ASLR process gets a different secret per run). A firmware image without
/// ASLR may define it per build or per device to keep headers unforgeable.
#ifndef MNEMOS_HARDENING_SECRET
#define MNEMOS_HARDENING_SECRET 0x6d6e656d6f73ull
#endif
