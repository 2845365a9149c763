// Shared fixtures for the unit tests: an aligned region and white-box access.
#pragma once

#include <gtest/gtest.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <ostream>
#include <span>
#include <vector>

#include "mnemos/alloc.hpp"

namespace mnemos {

// The heap's internals, for white-box assertions only (never public API).
struct heap_test_access {
  // The active backend (first fit or TLSF): capacity, holes, arena bounds, check.
  static const detail::AnyBackend& backend(const Heap& heap) { return heap.backend_; }
  static const detail::HeapLock& lock(const Heap& heap) { return heap.lock_; }
  // Attaches (or, with nullptr, detaches) a fault-injection schedule
  // (detail/fault_injection.hpp). Only while no other thread uses the heap.
  static void inject(Heap& heap, detail::AllocFailSchedule* schedule) { heap.backend_.attach_fail_schedule(schedule); }
  // The wait queue, to hold its lock as another context would (lock() here,
  // then release_wait_queue(): the holder's release, service requests honoured).
  static detail::WaitQueue& waiters(Heap& heap) { return heap.waiters_; }
  static void release_wait_queue(Heap& heap) { heap.release_wait_queue(); }
  // Skews the allocated-bytes counter (a lost update), for check()'s StatsMismatch.
  static void skew_allocated_bytes(Heap& heap, std::ptrdiff_t by) {
    if (by >= 0) {
      heap.allocated_bytes_.add(static_cast<std::size_t>(by));
    } else {
      heap.allocated_bytes_.sub(static_cast<std::size_t>(-by));
    }
  }
};

// How gtest prints a Backend parameter (found by ADL).
inline void PrintTo(Backend backend, std::ostream* os) { *os << to_string(backend); }

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

// Value-parameterised over the heap's backends: a suite `class S : public
// test::BackendTest {};` with TEST_P(S, ...) and MNEMOS_TEST_ALL_BACKENDS(S)
// runs each test once per backend: "Backends/S.Name/0" (first fit) and "/1"
// (TLSF) for gtest; ctest names them ".../FirstFit" and ".../Tlsf" (PrintTo).
class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  Backend backend() const { return GetParam(); }
  Heap::Options options() const { return Heap::Options{.backend = GetParam()}; }
  Heap& make_heap(const Region& region) const { return test::make_heap(region, options()); }
};

#define MNEMOS_TEST_ALL_BACKENDS(Suite) \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite, ::testing::Values(::mnemos::Backend::FirstFit, ::mnemos::Backend::Tlsf))

// The smallest block a heap hands out (16 bytes with its header).
inline constexpr Layout kPlug{8, 8};

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

// After fill(): takes whatever room is left in blocks of kPlug, so that no
// request fits until something is freed, whatever the backend's metadata or
// sizeof(Heap) leave at the end. Free them with kPlug (free_all).
inline std::vector<void*> plug(Heap& heap) { return fill(heap, kPlug); }

inline void free_all(const std::vector<void*>& blocks, Layout layout) {
  for (void* p : blocks) Heap::free_raw(p, layout);
}

// Whether [p, p + n) lies inside `region` past the heap's state, that is,
// inside the arena of the heap bootstrapped there.
inline bool in_arena(const Region& region, const void* p, std::size_t n = 1) {
  const auto begin = reinterpret_cast<std::uintptr_t>(region.span().data());
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  return a >= begin + sizeof(Heap) && a + n <= begin + region.span().size();
}

// The faults reported while a FaultRecording fixture runs (its handler only
// records, so the bad call is ignored and the test goes on).
inline std::vector<Fault>& recorded_faults() {
  static std::vector<Fault> faults;
  return faults;
}
inline void record_fault(const Fault& f) { recorded_faults().push_back(f); }

// Per backend, with a recording fault handler installed for each test and the
// previous one restored after it.
class FaultRecording : public BackendTest {
 protected:
  void SetUp() override {
    recorded_faults().clear();
    previous_ = set_fault_handler(&record_fault);
  }
  void TearDown() override { set_fault_handler(previous_); }

 private:
  FaultHandler previous_ = nullptr;
};

// After a drain found the queued node of `payload` (a Layout{24, 8} block,
// 32 bytes, the heap's only one) broken: exactly one CorruptArena naming the
// node and the heap; the block stays counted as allocated and is never
// reused; check() balances and the heap still serves allocations.
inline void expect_broken_queued_block_lost(Heap& heap, std::byte* payload) {
  ASSERT_EQ(recorded_faults().size(), 1u);
  EXPECT_EQ(recorded_faults().front().kind, FaultKind::CorruptArena);
  EXPECT_EQ(recorded_faults().front().address, payload - 8);
  EXPECT_EQ(recorded_faults().front().heap, &heap);
  EXPECT_EQ(heap.stats().allocated_bytes, 32u);
  EXPECT_TRUE(heap.check().ok());
  Result<void*> q = heap.try_alloc_raw(Layout{24, 8});
  ASSERT_TRUE(q.has_value());
  EXPECT_NE(*q, payload);
  Heap::free_raw(*q, Layout{24, 8});
  EXPECT_EQ(recorded_faults().size(), 1u);
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
