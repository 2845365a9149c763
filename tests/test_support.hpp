// Shared fixtures for the unit tests: an aligned region and white-box access.
#pragma once

#include <gtest/gtest.h>

#include <coroutine>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "mnemos/alloc.hpp"

namespace mnemos {

// The heap's internals, for white-box assertions only (never public API).
struct heap_test_access {
  static const detail::FirstFit& backend(const Heap& heap) { return heap.backend_; }
  static const detail::HeapLock& lock(const Heap& heap) { return heap.lock_; }
};

namespace test {

// A region on the hosted heap (tests only), aligned for any request we make.
class Region {
 public:
  explicit Region(std::size_t size)
      : bytes_(static_cast<std::byte*>(::operator new(size, std::align_val_t{4096}))), size_(size) {}
  ~Region() { ::operator delete(bytes_, std::align_val_t{4096}); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  std::span<std::byte> span() const { return {bytes_, size_}; }

 private:
  std::byte* bytes_;
  std::size_t size_;
};

// Bootstraps a heap over `region`, failing the test if that fails.
inline Heap& make_heap(const Region& region, Heap::Options options = {}) {
  Result<Heap*> made = Heap::bootstrap(region.span(), options);
  EXPECT_TRUE(made.has_value());
  return *made.value();
}

// Every owner gone and the queue drained: the backend is one free span again.
inline void expect_pristine(Heap& heap) {
  heap.poll();
  const Stats s = heap.stats();
  EXPECT_EQ(s.allocated_bytes, 0u);
  EXPECT_EQ(s.free_bytes, s.capacity_bytes);
  EXPECT_EQ(s.deferred_pending, 0u);
  EXPECT_EQ(heap_test_access::backend(heap).hole_count(), 1u);
  EXPECT_TRUE(heap.check().ok());
}

// Fills the heap with blocks of `layout` until it refuses; returns them in
// allocation (address) order.
inline std::vector<void*> fill(Heap& heap, Layout layout) {
  std::vector<void*> blocks;
  for (Result<void*> r = heap.try_alloc_raw(layout); r; r = heap.try_alloc_raw(layout)) blocks.push_back(*r);
  return blocks;
}

// A minimal coroutine type that is not ours: eager, detached, no executor, so
// an allocation future awaited in it is resumed inline by the waking free.
struct Detached {
  struct promise_type {
    Detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::abort(); }
  };
};

}  // namespace test
}  // namespace mnemos
