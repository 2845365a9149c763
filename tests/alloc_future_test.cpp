// Allocation futures driven by hand with poll(): no threads, fully
// deterministic. Pending when full, woken with a block handed over, FIFO,
// no starvation of large requests, cancellation, close, stop tokens.
#include <gtest/gtest.h>

#include <cstdint>
#include <stop_token>
#include <vector>

#include "test_support.hpp"

using namespace mnemos;
using test::Detached;
using test::fill;
using test::Region;

namespace {

struct Msg {
  int a;
  int b;
};

// A waker that counts its calls.
struct Flag {
  int calls = 0;
  Waker waker() { return Waker{[](void* self) { ++static_cast<Flag*>(self)->calls; }, this}; }
};

constexpr Layout kSlot{56, 8};  // a 64-byte block with its header

}  // namespace

class AllocFutures : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(AllocFutures);

TEST_P(AllocFutures, ReadyOnFirstPollWhenThereIsRoom) {
  Region region(4096);
  Heap& heap = make_heap(region);
  Flag flag;
  auto fut = heap.alloc<Msg>(1, 2);
  std::optional<Result<Box<Msg>>> r = fut.poll(flag.waker());
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->get()->b, 2);
  EXPECT_EQ(flag.calls, 0);
  EXPECT_EQ(heap.stats().wait_count, 0u);
  r.reset();
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, PendingWhenFullThenHandedABlockByAFree) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  Flag flag;
  auto fut = heap.alloc<Msg>(3, 4);
  EXPECT_FALSE(fut.poll(flag.waker()).has_value());
  EXPECT_FALSE(fut.poll(flag.waker()).has_value());  // polling again stays pending
  Stats s = heap.stats();
  EXPECT_EQ(s.waiters, 1u);
  EXPECT_EQ(s.wait_count, 1u);
  EXPECT_EQ(flag.calls, 0);

  Heap::free_raw(blocks.back(), kSlot);
  blocks.pop_back();
  EXPECT_EQ(flag.calls, 1);              // woken by the free, no poll() needed
  EXPECT_EQ(heap.stats().waiters, 0u);   // the block was handed over before the wake
  std::optional<Result<Box<Msg>>> r = fut.poll(flag.waker());
  ASSERT_TRUE(r && r->has_value());
  EXPECT_EQ((*r)->get()->a, 3);
  EXPECT_EQ(heap.stats().spurious_wake_count, 0u);
  r.reset();
  for (void* p : blocks) Heap::free_raw(p, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, EqualSizeWaitersCompleteInFifoOrder) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  Flag f1, f2, f3;
  auto w1 = heap.alloc_raw(kSlot);
  auto w2 = heap.alloc_raw(kSlot);
  auto w3 = heap.alloc_raw(kSlot);
  EXPECT_FALSE(w1.poll(f1.waker()));
  EXPECT_FALSE(w2.poll(f2.waker()));
  EXPECT_FALSE(w3.poll(f3.waker()));
  EXPECT_EQ(heap.stats().waiters, 3u);

  Heap::free_raw(blocks[5], kSlot);
  EXPECT_EQ(f1.calls, 1);
  EXPECT_EQ(f2.calls, 0);
  EXPECT_EQ(f3.calls, 0);
  Heap::free_raw(blocks[9], kSlot);
  EXPECT_EQ(f2.calls, 1);
  EXPECT_EQ(f3.calls, 0);
  Heap::free_raw(blocks[2], kSlot);
  EXPECT_EQ(f3.calls, 1);

  void* p1 = **w1.poll(f1.waker());
  void* p2 = **w2.poll(f2.waker());
  void* p3 = **w3.poll(f3.waker());
  EXPECT_EQ(p1, blocks[5]);  // each got the block its free made room with
  EXPECT_EQ(p2, blocks[9]);
  EXPECT_EQ(p3, blocks[2]);
  for (void* p : blocks) Heap::free_raw(p, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

// A large waiter at the head is not starved by small requests that would fit:
// they wait behind it (the original's inhibit), sync allocations included.
TEST_P(AllocFutures, LargeWaiterIsNotStarvedBySmallOnes) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  const Layout big{2 * 64 - 8, 8};  // needs two adjacent slots
  Flag fbig, fsmall;
  auto large = heap.alloc_raw(big);
  auto small = heap.alloc_raw(kSlot);
  EXPECT_FALSE(large.poll(fbig.waker()));
  EXPECT_FALSE(small.poll(fsmall.waker()));

  Heap::free_raw(blocks[0], kSlot);  // room for the small one only
  EXPECT_EQ(fbig.calls, 0);
  EXPECT_EQ(fsmall.calls, 0);  // it waits behind the large one
  EXPECT_EQ(heap.try_alloc_raw(kSlot).error(), Error::NoMemory);  // so do new requests
  auto newcomer = heap.alloc<Msg>(0, 0);
  Flag fnew;
  EXPECT_FALSE(newcomer.poll(fnew.waker()));

  Heap::free_raw(blocks[1], kSlot);  // now the large one fits
  EXPECT_EQ(fbig.calls, 1);
  EXPECT_EQ(fsmall.calls, 0);
  Heap::free_raw(blocks[7], kSlot);
  EXPECT_EQ(fsmall.calls, 1);
  EXPECT_EQ(fnew.calls, 0);
  Heap::free_raw(blocks[8], kSlot);
  EXPECT_EQ(fnew.calls, 1);

  void* pbig = **large.poll(fbig.waker());
  EXPECT_EQ(pbig, blocks[0]);
  Heap::free_raw(pbig, big);
  Heap::free_raw(**small.poll(fsmall.waker()), kSlot);
  EXPECT_TRUE(newcomer.poll(fnew.waker())->has_value());
  for (std::size_t i = 2; i < blocks.size(); ++i) {
    if (i != 7 && i != 8) Heap::free_raw(blocks[i], kSlot);
  }
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, DestroyingAPendingFutureUnlinksItAndItsWakerIsNeverCalled) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  Flag gone, stays;
  auto keep = heap.alloc_raw(kSlot);
  {
    auto dropped = heap.alloc_raw(kSlot);
    EXPECT_FALSE(dropped.poll(gone.waker()));
    EXPECT_FALSE(keep.poll(stays.waker()));
    EXPECT_EQ(heap.stats().waiters, 2u);
  }
  EXPECT_EQ(heap.stats().waiters, 1u);
  Heap::free_raw(blocks[0], kSlot);
  EXPECT_EQ(gone.calls, 0);
  EXPECT_EQ(stays.calls, 1);
  Heap::free_raw(**keep.poll(stays.waker()), kSlot);
  for (std::size_t i = 1; i < blocks.size(); ++i) Heap::free_raw(blocks[i], kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, ABlockHandedToADestroyedFuturePassesOnToTheNextWaiter) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  Flag first, second;
  auto next = heap.alloc_raw(kSlot);
  {
    auto handed = heap.alloc_raw(kSlot);
    EXPECT_FALSE(handed.poll(first.waker()));
    EXPECT_FALSE(next.poll(second.waker()));
    Heap::free_raw(blocks[3], kSlot);
    EXPECT_EQ(first.calls, 1);  // woken with the block...
    EXPECT_EQ(second.calls, 0);
  }  // ...but destroyed without taking it
  EXPECT_EQ(second.calls, 1);
  EXPECT_EQ(**next.poll(second.waker()), blocks[3]);
  for (void* p : blocks) Heap::free_raw(p, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, CloseReleasesEveryWaiterNowAndLater) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  Flag f1, f2;
  auto w1 = heap.alloc<Msg>(1, 1);
  auto w2 = heap.alloc_array<int>(4);
  EXPECT_FALSE(w1.poll(f1.waker()));
  EXPECT_FALSE(w2.poll(f2.waker()));
  heap.close();
  EXPECT_EQ(f1.calls, 1);
  EXPECT_EQ(f2.calls, 1);
  EXPECT_EQ(w1.poll(f1.waker())->error(), Error::Closed);
  EXPECT_EQ(w2.poll(f2.waker())->error(), Error::Closed);
  EXPECT_EQ(heap.stats().waiters, 0u);

  Flag later;
  auto w3 = heap.alloc<Msg>(2, 2);
  EXPECT_EQ(w3.poll(later.waker())->error(), Error::Closed);
  for (void* p : blocks) Heap::free_raw(p, kSlot);  // frees keep working
  EXPECT_EQ(heap.try_alloc_raw(kSlot).error(), Error::Closed);
  EXPECT_EQ(later.calls, 0);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, StopTokenCancelsAPendingFutureAndWakesIt) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  std::stop_source source;
  Flag flag, other;
  auto fut = heap.alloc<Msg>(7, 8).with(source.get_token());
  auto behind = heap.alloc_raw(kSlot);
  EXPECT_FALSE(fut.poll(flag.waker()));
  EXPECT_FALSE(behind.poll(other.waker()));
  source.request_stop();
  EXPECT_EQ(flag.calls, 1);
  EXPECT_EQ(fut.poll(flag.waker())->error(), Error::Cancelled);
  EXPECT_EQ(heap.stats().waiters, 1u);
  Heap::free_raw(blocks[0], kSlot);  // the cancelled one is gone: the next is served
  EXPECT_EQ(other.calls, 1);
  Heap::free_raw(**behind.poll(other.waker()), kSlot);
  for (std::size_t i = 1; i < blocks.size(); ++i) Heap::free_raw(blocks[i], kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, AlreadyStoppedTokenIsCancelledAtFirstPoll) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::stop_source source;
  source.request_stop();
  Flag flag;
  auto fut = heap.alloc<Msg>(7, 8).with(source.get_token());
  EXPECT_EQ(fut.poll(flag.waker())->error(), Error::Cancelled);
  EXPECT_EQ(flag.calls, 0);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, ASecondWithReplacesTheTokenAndAMovedFutureKeepsIt) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  const std::vector<void*> plugs = test::plug(heap);
  std::stop_source first, second;
  Flag flag;
  auto made = heap.alloc<Msg>(7, 8).with(first.get_token()).with(second.get_token());
  auto fut = std::move(made);  // before the first poll: the token moves with it
  EXPECT_FALSE(fut.poll(flag.waker()));
  first.request_stop();  // replaced: no effect
  EXPECT_EQ(flag.calls, 0);
  second.request_stop();
  EXPECT_EQ(flag.calls, 1);
  EXPECT_EQ(fut.poll(flag.waker())->error(), Error::Cancelled);
  for (void* b : blocks) Heap::free_raw(b, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, AStopAfterThePendingFutureIsGoneCallsNothing) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  const std::vector<void*> plugs = test::plug(heap);
  std::stop_source source;
  Flag flag;
  {
    auto fut = heap.alloc<Msg>(7, 8).with(source.get_token());
    EXPECT_FALSE(fut.poll(flag.waker()));
    EXPECT_EQ(heap.stats().waiters, 1u);
  }  // destroyed pending: the stop callback is unregistered with it
  EXPECT_EQ(heap.stats().waiters, 0u);
  source.request_stop();
  EXPECT_EQ(flag.calls, 0);
  for (void* b : blocks) Heap::free_raw(b, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, ParksWhenTheLockIsBusyAndTheReleaseServesIt) {
  Region region(4096);
  Heap& heap = make_heap(region);
  Flag flag;
  auto fut = heap.alloc<Msg>(5, 6);
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    EXPECT_FALSE(fut.poll(flag.waker()));  // not NoMemory: the lock is held
    EXPECT_EQ(flag.calls, 0);
  }
  EXPECT_EQ(flag.calls, 1);
  std::optional<Result<Box<Msg>>> r = fut.poll(flag.waker());
  ASSERT_TRUE(r && r->has_value());
  EXPECT_EQ((*r)->get()->b, 6);
  r.reset();
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, ADeferredFreeWakesAWaiterWhenTheHolderReleasesWithoutPoll) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout whole{heap.capacity() - 8, 8};
  void* all = *heap.try_alloc_raw(whole);
  Flag flag;
  auto fut = heap.alloc<Msg>(1, 2);
  EXPECT_FALSE(fut.poll(flag.waker()));
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    Heap::free_raw(all, whole);  // deferred: the lock is held
    EXPECT_EQ(heap.stats().deferred_pending, 1u);
    EXPECT_EQ(flag.calls, 0);
  }  // release: drain, serve the waiter, wake it
  EXPECT_EQ(flag.calls, 1);
  EXPECT_TRUE(fut.poll(flag.waker())->has_value());
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, ImpossibleRequestsFailAtFirstPoll) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);  // full: yet these must not wait
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  Flag flag;
  auto too_large = heap.alloc_array<std::uint8_t>(1 << 20);
  EXPECT_EQ(too_large.poll(flag.waker())->error(), Error::TooLarge);
  auto invalid = heap.alloc_raw(Layout{0, 8});
  EXPECT_EQ(invalid.poll(flag.waker())->error(), Error::InvalidLayout);
  auto overflow = heap.alloc_array<std::uint64_t>(SIZE_MAX / 4);
  EXPECT_EQ(overflow.poll(flag.waker())->error(), Error::InvalidLayout);
  EXPECT_EQ(heap.stats().wait_count, 0u);
  EXPECT_EQ(flag.calls, 0);
  for (void* p : blocks) Heap::free_raw(p, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, EveryOwnerKind) {
  Region region(4096);
  Heap& heap = make_heap(region);
  Flag flag;
  {
    auto arc = heap.alloc_arc<Msg>(1, 2);
    auto arr = heap.alloc_array<int>(3);
    int next = 10;
    auto with = heap.alloc_array_with<int>(3, [&] { return next++; });
    auto vec = heap.alloc_fixed_vec<int>(2);
    auto raw = heap.alloc_raw(Layout{24, 16});
    Result<Arc<Msg>> a = *arc.poll(flag.waker());
    Result<Array<int>> b = *arr.poll(flag.waker());
    Result<Array<int>> c = *with.poll(flag.waker());
    Result<FixedVec<int>> d = *vec.poll(flag.waker());
    Result<void*> e = *raw.poll(flag.waker());
    EXPECT_EQ(a->use_count(), 1u);
    EXPECT_EQ((*b)[2], 0);
    EXPECT_EQ((*c)[2], 12);
    EXPECT_EQ(d->capacity(), 2u);
    EXPECT_EQ(detail::addr(*e) % 16, 0u);
    Heap::free_raw(*e, Layout{24, 16});
  }
  test::expect_pristine(heap);
}

TEST_P(AllocFutures, MovableBeforeItsFirstPollOnly) {
  Region region(4096);
  Heap& heap = make_heap(region);
  Flag flag;
  auto fut = heap.alloc<Msg>(1, 2);
  auto moved = std::move(fut);
  EXPECT_TRUE(moved.poll(flag.waker())->has_value());
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  EXPECT_DEATH(
      {
        auto pinned = heap.alloc<Msg>(1, 2);
        (void)pinned.poll(flag.waker());
        auto bad = std::move(pinned);
      },
      "");
  for (void* p : blocks) Heap::free_raw(p, kSlot);
  test::free_all(plugs, test::kPlug);
}
