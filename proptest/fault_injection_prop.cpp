// Property: with backend allocations failing on a random schedule (the
// fault-injection wrapper around the heap's backend, detail/fault_injection.hpp
// and detail/any_backend.hpp), the heap, its waiters and its owners stay
// consistent. The schedule makes allocations find "no room" while the arena
// has room, at any point: a sync allocation, a guard's, or the hand-over of a
// block to a waiting future (serve_head), which then stays queued.
//
// Commands (random): sync allocations and frees, frees under a Guard (direct
// and deferred), allocation futures created, polled by hand, dropped pending
// or after completion, heap.poll(). After every step:
//   - check() is ok (the backend's invariants; counters balance);
//   - allocated_bytes is exactly the blocks held (sync blocks plus blocks
//     handed to futures), so no byte is lost or counted twice;
//   - a future's waker is called at most once, and only for a future that
//     returned pending; a completed future's block is aligned and in the arena.
// At the end the schedule is detached and heap.poll() runs: every future still
// pending then completes (no stuck waiter) as blocks are freed, and once every
// block is freed the arena is one free span again.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <vector>

#include "mnemos/alloc.hpp"
#include "mnemos/detail/fault_injection.hpp"
#include "support.hpp"

using namespace mnemos;

namespace {

struct Op {
  std::uint8_t kind = 0;   // see run()
  std::uint16_t size = 1;  // 1..512
  std::uint8_t align_log2 = 3;
  std::uint16_t index = 0;
};

rc::Gen<Op> gen_op() {
  return rc::gen::build<Op>(rc::gen::set(&Op::kind, rc::gen::inRange<std::uint8_t>(0, 9)),
                            rc::gen::set(&Op::size, rc::gen::inRange<std::uint16_t>(1, 513)),
                            rc::gen::set(&Op::align_log2, rc::gen::inRange<std::uint8_t>(0, 7)),
                            rc::gen::set(&Op::index, rc::gen::arbitrary<std::uint16_t>()));
}

struct WakeCount {
  int calls = 0;
  static void wake(void* self) { ++static_cast<WakeCount*>(self)->calls; }
};

using RawFuture = decltype(std::declval<Heap&>().alloc_raw(Layout{}));

struct Pending {
  Layout layout;
  std::unique_ptr<RawFuture> future;  // never moved after the first poll
  std::unique_ptr<WakeCount> wakes = std::make_unique<WakeCount>();
  bool returned_pending = false;
};

struct Block {
  void* p;
  Layout layout;
};

std::size_t bytes_of(const Layout& l) {
  // The block as both backends round it on LP64 (detail/block_header.hpp).
  return detail::FirstFit::rounded_size(detail::block_request(l)->size);
}

class Run {
 public:
  Run(Backend backend, std::uint64_t pattern, unsigned period)
      : region_(static_cast<std::byte*>(::operator new(kRegion, std::align_val_t{4096}))),
        schedule_(pattern, period) {
    Result<Heap*> made = Heap::bootstrap({region_, kRegion}, Heap::Options{.backend = backend});
    RC_ASSERT(made.has_value());
    heap_ = *made;
    heap_test_access::inject(*heap_, &schedule_);
  }
  ~Run() {
    pending_.clear();
    ::operator delete(region_, std::align_val_t{4096});
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  void step(const Op& op) {
    const Layout l{op.size, std::size_t{1} << op.align_log2};
    switch (op.kind) {
      case 0:
      case 1: {  // sync allocation
        Result<void*> r = heap_->try_alloc_raw(l);
        if (r) hold(*r, l);
        break;
      }
      case 2:
        free_one(op.index, false);
        break;
      case 3:
        free_one(op.index, true);  // under a Guard: guard.free_raw or a deferred free
        break;
      case 4:
        if (pending_.size() < 12) {
          Pending f;
          f.layout = l;
          f.future = std::make_unique<RawFuture>(heap_->alloc_raw(l));
          pending_.push_back(std::move(f));
        }
        [[fallthrough]];
      case 5:
      case 6:
        if (!pending_.empty()) poll(op.index % pending_.size());
        break;
      case 7:
        if (!pending_.empty()) pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(op.index % pending_.size()));
        break;
      case 8:
        heap_->poll();
        break;
    }
    verify();
  }

  // Detach the schedule, then drive every future to completion, freeing as
  // blocks arrive; finally the arena must be one free span.
  void finish() {
    heap_test_access::inject(*heap_, nullptr);
    heap_->poll();
    for (int round = 0; !pending_.empty(); ++round) {
      RC_ASSERT(round < 1000);  // a stuck waiter never completes
      // Free every held block so the head can fit, then poll everything.
      while (!held_.empty()) free_one(0, false);
      for (std::size_t i = 0; i < pending_.size();) {
        if (poll(i)) continue;  // removed
        ++i;
      }
      verify();
    }
    while (!held_.empty()) free_one(0, false);
    verify();
    RC_ASSERT(heap_->stats().allocated_bytes == 0u);
    RC_ASSERT(heap_test_access::any_backend(*heap_).hole_count() == 1u);
    RC_ASSERT(heap_->check().ok());
  }

 private:
  static constexpr std::size_t kRegion = 8192;

  void hold(void* p, Layout l) {
    RC_ASSERT(reinterpret_cast<std::uintptr_t>(p) % l.align == 0);
    const auto& b = heap_test_access::any_backend(*heap_);
    RC_ASSERT(static_cast<std::byte*>(p) >= b.arena_begin());
    RC_ASSERT(static_cast<std::byte*>(p) + l.size <= b.arena_end());
    held_.push_back({p, l});
  }

  void free_one(std::size_t index, bool under_guard) {
    if (held_.empty()) return;
    const std::size_t i = index % held_.size();
    const Block b = held_[i];
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
    if (!under_guard) {
      Heap::free_raw(b.p, b.layout);
      return;
    }
    auto guard = heap_->try_lock();
    RC_ASSERT(guard.has_value());
    if (index % 2 == 0) {
      guard->free_raw(b.p, b.layout);
    } else {
      Heap::free_raw(b.p, b.layout);  // deferred: drained when the guard goes
    }
  }

  // Polls future i; true if it completed (and was removed).
  bool poll(std::size_t i) {
    Pending& f = pending_[i];
    const int wakes_before = f.wakes->calls;
    std::optional<Result<void*>> r = f.future->poll(Waker{&WakeCount::wake, f.wakes.get()});
    RC_ASSERT(f.wakes->calls == wakes_before);  // never woken from inside its own poll
    if (!r) {
      f.returned_pending = true;
      return false;
    }
    RC_ASSERT(f.wakes->calls <= 1);
    RC_ASSERT(f.returned_pending || f.wakes->calls == 0);
    if (r->has_value()) hold(r->value(), f.layout);
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
    return true;
  }

  void verify() {
    const CheckReport report = heap_->check();
    RC_ASSERT(report.ok());
    std::size_t held_bytes = 0;
    for (const Block& b : held_) held_bytes += bytes_of(b.layout);
    // Blocks handed to a future not yet polled are counted by the heap too.
    std::size_t in_futures = 0;
    (void)in_futures;
    const Stats s = heap_->stats();
    RC_ASSERT(s.allocated_bytes >= held_bytes);
    RC_ASSERT(s.allocated_bytes + s.free_bytes == s.capacity_bytes);
    for (const Pending& f : pending_) {
      RC_ASSERT(f.wakes->calls <= 1);
      RC_ASSERT(f.returned_pending || f.wakes->calls == 0);
    }
    if (pending_.empty()) RC_ASSERT(s.allocated_bytes == held_bytes);
  }

  std::byte* region_;
  detail::AllocFailSchedule schedule_;
  Heap* heap_ = nullptr;
  std::vector<Block> held_;
  std::vector<Pending> pending_;
};

}  // namespace

RC_GTEST_PROP(FaultInjection, HeapWaitersAndOwnersStayConsistent, ()) {
  const Backend backend = *rc::gen::element(Backend::FirstFit, Backend::Tlsf);
  const auto pattern = *rc::gen::arbitrary<std::uint64_t>();
  const auto period = *rc::gen::inRange<unsigned>(1, 65);
  const auto ops = *rc::gen::container<std::vector<Op>>(gen_op());
  Run run(backend, pattern, period);
  for (const Op& op : ops) run.step(op);
  run.finish();
}

// The schedule itself: bit k of the pattern fails allocation k.
TEST(FaultInjection, ScheduleFollowsThePattern) {
  detail::AllocFailSchedule s(0b101, 3);
  EXPECT_TRUE(s.fail_next());
  EXPECT_FALSE(s.fail_next());
  EXPECT_TRUE(s.fail_next());
  EXPECT_TRUE(s.fail_next());  // period 3: wraps
  EXPECT_EQ(s.calls(), 4u);
  EXPECT_EQ(s.failed(), 3u);
}

// The schedule wraps the backend (detail/any_backend.hpp): attached, a "fail"
// answer returns nullptr without asking the backend (its free bytes do not
// change); frees and queries pass through; detached, allocate() is the
// backend's own.
TEST(FaultInjection, ScheduleWrapsTheBackendsAllocate) {
  for (const Backend kind : {Backend::FirstFit, Backend::Tlsf}) {
    alignas(64) static std::byte region[4096];
    detail::AnyBackend backend(kind);
    ASSERT_TRUE(backend.init(region, sizeof region));
    const std::size_t empty = backend.free_bytes();
    detail::AllocFailSchedule fail_first(0b01, 2);  // fail, pass, fail, pass, ...
    backend.attach_fail_schedule(&fail_first);
    EXPECT_EQ(backend.allocate(32, 8), nullptr);
    EXPECT_EQ(backend.free_bytes(), empty);  // the backend was not asked
    void* p = backend.allocate(32, 8);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(backend.fits_when_empty(32, 8));  // queries are not scheduled
    backend.deallocate(p, 32);                    // nor are frees
    EXPECT_EQ(backend.free_bytes(), empty);
    EXPECT_EQ(fail_first.calls(), 2u);
    EXPECT_EQ(fail_first.failed(), 1u);
    backend.attach_fail_schedule(nullptr);
    p = backend.allocate(32, 8);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(fail_first.calls(), 2u);  // detached: never consulted
    backend.deallocate(p, 32);
    EXPECT_TRUE(backend.check().ok());
  }
}

// A failed hand-over leaves the waiter queued; it is served by the next event.
TEST(FaultInjection, FailedHandOverLeavesTheWaiterQueued) {
  alignas(64) static std::byte region[4096];
  Heap& heap = **Heap::bootstrap(region);
  void* big = *heap.try_alloc_raw(Layout{2048, 8});
  auto fut = heap.alloc_raw(Layout{3000, 8});
  WakeCount wakes;
  ASSERT_FALSE(fut.poll(Waker{&WakeCount::wake, &wakes}).has_value());
  detail::AllocFailSchedule fail_all(~std::uint64_t{0});
  heap_test_access::inject(heap, &fail_all);
  Heap::free_raw(big, Layout{2048, 8});  // room now, but the hand-over fails
  EXPECT_EQ(wakes.calls, 0);
  EXPECT_EQ(heap.stats().waiters, 1u);
  heap_test_access::inject(heap, nullptr);
  heap.poll();  // the next lock release serves the head
  EXPECT_EQ(wakes.calls, 1);
  std::optional<Result<void*>> r = fut.poll(Waker{&WakeCount::wake, &wakes});
  ASSERT_TRUE(r.has_value() && r->has_value());
  Heap::free_raw(r->value(), Layout{3000, 8});
  EXPECT_TRUE(heap.check().ok());
  EXPECT_EQ(heap.stats().allocated_bytes, 0u);
}
