// The wait protocol's rare interleavings, made deterministic: the paths that
// in production are taken only when two contexts meet at one instant (a close
// between a future's first check and its subscription, a heap holder finding
// the wait-queue lock busy, wakes left to whoever holds that lock). Each is
// reached on one thread, either by reentrancy (the competing operation runs
// inside a waker call, which the heap makes with no lock held) or by holding
// the wait-queue lock through heap_test_access as another context would.
#include <gtest/gtest.h>

#include <optional>
#include <stop_token>
#include <utility>
#include <vector>

#include "test_support.hpp"

using namespace mnemos;
using test::fill;
using test::kPlug;
using test::Region;

namespace {

constexpr Layout kSlot{56, 8};  // a 64-byte block with its header: room for several plugs

// A waker that counts its calls.
struct Flag {
  int calls = 0;
  Waker waker() { return Waker{[](void* self) { ++static_cast<Flag*>(self)->calls; }, this}; }
};

using RawFuture = decltype(std::declval<Heap&>().alloc_raw(Layout{}));

// A full heap: every byte is in `blocks` (kSlot) or `plugs` (kPlug).
struct Full {
  explicit Full(Heap& h) : heap(h), blocks(fill(h, kSlot)), plugs(test::plug(h)) {}
  ~Full() {
    for (void* p : blocks) Heap::free_raw(p, kSlot);
    test::free_all(plugs, kPlug);
  }
  Heap& heap;
  std::vector<void*> blocks;
  std::vector<void*> plugs;
};

}  // namespace

class WaitProtocol : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(WaitProtocol);

// close() lands after a future's first poll passed reject() but before it
// subscribes: the future must not park in a closed heap (it would never be
// woken); it completes with Closed at once and never enters the queue. The
// close runs inside a waker that the future's own failed fast-path attempt
// calls when it unlocks the heap.
TEST_P(WaitProtocol, CloseBetweenTheFirstCheckAndTheSubscriptionCompletesWithClosed) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::optional<Full> full(std::in_place, heap);

  struct Ctx {
    Heap* heap = nullptr;
    std::optional<RawFuture> late;  // polled for the first time inside c's waker
    bool in_c_waker = false;
    bool closed_inside_late_poll = false;
    std::optional<Result<void*>> late_result;
  } ctx;
  ctx.heap = &heap;
  // Too large for what is left once c and d are served, yet valid: its fast
  // path fails with NoMemory and unlocks the heap, which runs d's waker.
  ctx.late.emplace(heap.alloc_raw(Layout{200, 8}));

  const Waker c_waker{[](void* p) {
                        auto* x = static_cast<Ctx*>(p);
                        x->in_c_waker = true;
                        x->late_result = x->late->poll(Waker{});
                        x->in_c_waker = false;
                      },
                      &ctx};
  const Waker d_waker{[](void* p) {
                        auto* x = static_cast<Ctx*>(p);
                        x->closed_inside_late_poll = x->in_c_waker;
                        x->heap->close();
                      },
                      &ctx};
  RawFuture c = heap.alloc_raw(kPlug);
  RawFuture d = heap.alloc_raw(kPlug);
  ASSERT_FALSE(c.poll(c_waker).has_value());
  ASSERT_FALSE(d.poll(d_waker).has_value());
  EXPECT_EQ(heap.stats().wait_count, 2u);

  // Room for both: both are completed, then c's waker runs, then (nested, from
  // the late future's unlock) d's waker closes the heap.
  Heap::free_raw(full->blocks.back(), kSlot);
  full->blocks.pop_back();

  EXPECT_TRUE(ctx.closed_inside_late_poll);
  ASSERT_TRUE(ctx.late_result.has_value());
  ASSERT_FALSE(ctx.late_result->has_value());
  EXPECT_EQ(ctx.late_result->error(), Error::Closed);
  const Stats s = heap.stats();
  EXPECT_EQ(s.wait_count, 2u);  // the late future never subscribed
  EXPECT_EQ(s.waiters, 0u);
  // c and d were handed their blocks before the close.
  std::optional<Result<void*>> rc = c.poll(Waker{});
  std::optional<Result<void*>> rd = d.poll(Waker{});
  ASSERT_TRUE(rc && rc->has_value());
  ASSERT_TRUE(rd && rd->has_value());
  EXPECT_EQ(heap.try_alloc_raw(kPlug).error(), Error::Closed);
  Heap::free_raw(**rc, kPlug);
  Heap::free_raw(**rd, kPlug);
  full.reset();
  test::expect_pristine(heap);
}

// A free makes room while another context holds the wait-queue lock: the heap
// holder never spins on that lock, so it leaves a service request and
// releases. The queue holder finds the request when it releases and serves
// the waiter itself.
TEST_P(WaitProtocol, AFreeThatFindsTheQueueLockBusyLeavesTheServiceToItsHolder) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::optional<Full> full(std::in_place, heap);
  Flag flag;
  RawFuture w = heap.alloc_raw(kPlug);
  ASSERT_FALSE(w.poll(flag.waker()).has_value());

  heap_test_access::waiters(heap).lock();  // another context's critical section
  Heap::free_raw(full->plugs.back(), kPlug);
  full->plugs.pop_back();
  EXPECT_EQ(flag.calls, 0);  // not served: the queue was busy
  EXPECT_EQ(heap.stats().waiters, 1u);
  EXPECT_FALSE(heap_test_access::lock(heap).is_locked());  // the free did not keep the heap

  heap_test_access::release_wait_queue(heap);  // the holder honours the request
  EXPECT_EQ(flag.calls, 1);
  EXPECT_EQ(heap.stats().waiters, 0u);
  std::optional<Result<void*>> r = w.poll(Waker{});
  ASSERT_TRUE(r && r->has_value());
  Heap::free_raw(**r, kPlug);
  full.reset();
  test::expect_pristine(heap);
}

// Completed waiters whose wakers have not run yet, while another context
// holds the wait-queue lock: whoever unlocks the heap meanwhile leaves the
// wakes to that holder, which runs them when it releases.
TEST_P(WaitProtocol, WakesPendingWhileTheQueueLockIsHeldRunWhenItIsReleased) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::optional<Full> full(std::in_place, heap);

  struct Ctx {
    Heap* heap = nullptr;
    Flag d;
    int d_calls_while_held = -1;
    int d_calls_after_release = -1;
  } ctx;
  ctx.heap = &heap;
  const Waker c_waker{[](void* p) {
                        auto* x = static_cast<Ctx*>(p);
                        // d is completed too and waits in to_wake.
                        heap_test_access::waiters(*x->heap).lock();
                        x->heap->poll();  // an unlock with wakes pending and the queue lock busy
                        x->d_calls_while_held = x->d.calls;
                        heap_test_access::release_wait_queue(*x->heap);
                        x->d_calls_after_release = x->d.calls;
                      },
                      &ctx};
  RawFuture c = heap.alloc_raw(kPlug);
  RawFuture d = heap.alloc_raw(kPlug);
  ASSERT_FALSE(c.poll(c_waker).has_value());
  ASSERT_FALSE(d.poll(ctx.d.waker()).has_value());

  Heap::free_raw(full->blocks.back(), kSlot);  // room for both
  full->blocks.pop_back();

  EXPECT_EQ(ctx.d_calls_while_held, 0);
  EXPECT_EQ(ctx.d_calls_after_release, 1);
  EXPECT_EQ(ctx.d.calls, 1);  // once: the outer wake loop found nothing left
  std::optional<Result<void*>> rc = c.poll(Waker{});
  std::optional<Result<void*>> rd = d.poll(Waker{});
  ASSERT_TRUE(rc && rc->has_value());
  ASSERT_TRUE(rd && rd->has_value());
  Heap::free_raw(**rc, kPlug);
  Heap::free_raw(**rd, kPlug);
  EXPECT_EQ(heap.stats().spurious_wake_count, 0u);
  full.reset();
  test::expect_pristine(heap);
}

// The request a future carries survives the move allowed before its first poll.
TEST_P(WaitProtocol, AMovedFutureKeepsItsLayout) {
  Region region(4096);
  Heap& heap = make_heap(region);
  detail::AllocWait first(&heap, Layout{24, 8});
  EXPECT_EQ(first.layout(), (Layout{24, 8}));
  detail::AllocWait moved(std::move(first));
  EXPECT_EQ(moved.layout(), (Layout{24, 8}));
  std::optional<Result<void*>> r = moved.poll_raw(Waker{});
  ASSERT_TRUE(r && r->has_value());
  Heap::free_raw(**r, Layout{24, 8});
  test::expect_pristine(heap);
}

// A stop requested after the heap handed the block over (the waker already
// ran) does not cancel: the future still yields its block, and is not woken
// again.
TEST_P(WaitProtocol, AStopAfterTheHandOverDoesNotCancel) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::optional<Full> full(std::in_place, heap);
  std::stop_source source;
  Flag flag;
  RawFuture w = heap.alloc_raw(kPlug).with(source.get_token());
  ASSERT_FALSE(w.poll(flag.waker()).has_value());
  Heap::free_raw(full->plugs.back(), kPlug);
  full->plugs.pop_back();
  EXPECT_EQ(flag.calls, 1);
  source.request_stop();  // the stop callback runs now, on a node no longer waiting
  EXPECT_EQ(flag.calls, 1);
  std::optional<Result<void*>> r = w.poll(Waker{});
  ASSERT_TRUE(r && r->has_value());
  Heap::free_raw(**r, kPlug);
  full.reset();
  test::expect_pristine(heap);
}

// A token that can never be stopped (default-constructed) arms nothing: the
// future waits and is served as one without a token.
TEST_P(WaitProtocol, ATokenThatCannotStopIsNeverArmed) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::optional<Full> full(std::in_place, heap);
  Flag flag;
  RawFuture w = heap.alloc_raw(kPlug).with(std::stop_token{});
  ASSERT_FALSE(w.poll(flag.waker()).has_value());
  EXPECT_EQ(heap.stats().waiters, 1u);
  Heap::free_raw(full->plugs.back(), kPlug);
  full->plugs.pop_back();
  EXPECT_EQ(flag.calls, 1);
  std::optional<Result<void*>> r = w.poll(Waker{});
  ASSERT_TRUE(r && r->has_value());
  Heap::free_raw(**r, kPlug);
  full.reset();
  test::expect_pristine(heap);
}
