// The heap behind global operator new / delete, for programs that link the
// opt-in target mnemos::global (src/global/global_new.cpp; limits and set-up
// in docs/std-integration.md).
//
// Hybrid use: the same heap serves `new` (synchronously, through the
// replaced operators) and the async API, e.g.
//   Result<Box<Msg>> m = co_await mnemos::global_heap().alloc<Msg>(1, 2);
// Note the FIFO rule: while such a waiter is queued, operator new fails
// (NoMemory) and goes through the new_handler loop.
#pragma once

#include <cstddef>

#include "mnemos/heap.hpp"

namespace mnemos {

/// Bytes of the static arena behind the global heap (MNEMOS_GLOBAL_ARENA_SIZE
/// as the library was built, default 1 MiB), including the heap's own state.
extern const std::size_t global_arena_size;

/// The global heap, bootstrapped on first use (by this call or by the first
/// operator new, which may come before main). Thread-safe first use; later
/// calls cost one acquire load. Aborts with a message if the arena cannot hold
/// a heap (a build configuration error). Any thread.
Heap& global_heap() noexcept;

/// Whether `p` points into the global arena (a block of the global heap, or
/// its state). O(1), no lock, never bootstraps. Any thread.
bool global_heap_owns(const void* p) noexcept;

/// Bytes each `new` costs beyond its request: the block header (one word)
/// plus the prefix that records the request for unsized delete, which is
/// max(16, alignment). Then rounded by the heap (multiples of 8, at least 16).
inline constexpr std::size_t global_new_prefix(std::size_t alignment) noexcept {
  return alignment > 16 ? alignment : 16;
}

}  // namespace mnemos
