/// @file
/// @brief Heap statistics: a snapshot of counters read without taking the heap lock.
#pragma once

#include <cstddef>

namespace mnemos {

/// A snapshot of a heap's counters, returned by Heap::stats().
///
/// Each field is read on its own with a relaxed load, so a snapshot taken while
/// other threads allocate is not atomic as a whole; when the heap is quiescent
/// the fields agree exactly (capacity_bytes == allocated_bytes + free_bytes).
struct Stats {
  std::size_t capacity_bytes = 0;        ///< arena bytes the backend manages
  std::size_t allocated_bytes = 0;       ///< bytes of blocks out of the backend (live + deferred), headers and padding included
  std::size_t free_bytes = 0;            ///< bytes in the backend's free list
  std::size_t peak_allocated_bytes = 0;  ///< high-water mark of allocated_bytes
  std::size_t alloc_count = 0;           ///< successful allocations
  std::size_t alloc_no_memory_count = 0; ///< allocations refused with NoMemory
  std::size_t free_count = 0;            ///< blocks returned to the backend (directly or drained)
  std::size_t deferred_free_count = 0;   ///< frees that went through the deferred queue and were drained
  std::size_t deferred_pending = 0;      ///< frees pushed on the deferred queue and not yet drained
  std::size_t waiters = 0;               ///< pending allocation futures (async layer)
  std::size_t wait_count = 0;            ///< allocations that had to wait (async layer)
  std::size_t spurious_wake_count = 0;   ///< wakes that found no room (async layer)
};

}  // namespace mnemos
