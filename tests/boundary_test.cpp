// Boundaries and error paths of the small public types: overflow guards,
// full and empty containers, self-move, empty owners and wakers, names of
// unknown codes, the wait queue's list edges, and the futures' paths that the
// main suites do not take (a task with no executor, a destructor that must wait
// for a waker still running on another thread).
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "mnemos/alloc.hpp"
#include "mnemos/detail/block_header.hpp"
#include "mnemos/detail/wait_queue.hpp"
#include "mnemos/executor.hpp"
#include "mnemos/task.hpp"
#include "test_support.hpp"

namespace mnemos {
namespace {

using test::Region;

// --- names of codes ----------------------------------------------------------

TEST(Names, EveryErrorHasItsNameAndAnUnknownValueIsQuestionMark) {
  EXPECT_STREQ(to_string(Error::InvalidLayout), "InvalidLayout");
  EXPECT_STREQ(to_string(Error::TooLarge), "TooLarge");
  EXPECT_STREQ(to_string(Error::NoMemory), "NoMemory");
  EXPECT_STREQ(to_string(Error::Locked), "Locked");
  EXPECT_STREQ(to_string(Error::RegionTooSmall), "RegionTooSmall");
  EXPECT_STREQ(to_string(Error::RegionMisaligned), "RegionMisaligned");
  EXPECT_STREQ(to_string(Error::Closed), "Closed");
  EXPECT_STREQ(to_string(Error::Cancelled), "Cancelled");
  // Every value of the underlying type is a valid Error value (fixed
  // underlying type); one from a newer peer or a corrupted log must still print.
  volatile std::uint8_t raw = 200;
  EXPECT_STREQ(to_string(static_cast<Error>(raw)), "?");
}

TEST(Names, EveryFaultKindHasItsNameAndAnUnknownValueIsQuestionMark) {
  EXPECT_STREQ(to_string(FaultKind::DoubleFree), "DoubleFree");
  EXPECT_STREQ(to_string(FaultKind::ForeignPointer), "ForeignPointer");
  EXPECT_STREQ(to_string(FaultKind::CorruptHeader), "CorruptHeader");
  EXPECT_STREQ(to_string(FaultKind::Misaligned), "Misaligned");
  EXPECT_STREQ(to_string(FaultKind::BadLayout), "BadLayout");
  EXPECT_STREQ(to_string(FaultKind::CorruptArena), "CorruptArena");
  EXPECT_STREQ(to_string(FaultKind::AllocationFailed), "AllocationFailed");
  // A fault handler may log a kind from a newer peer: it must still print.
  volatile std::uint8_t raw = 200;
  EXPECT_STREQ(to_string(static_cast<FaultKind>(raw)), "?");
}

TEST(Names, EveryCheckFailureHasItsNameAndAnUnknownValueIsQuestionMark) {
  EXPECT_STREQ(to_string(CheckFailure::None), "None");
  EXPECT_STREQ(to_string(CheckFailure::Busy), "Busy");
  EXPECT_STREQ(to_string(CheckFailure::HoleUnordered), "HoleUnordered");
  EXPECT_STREQ(to_string(CheckFailure::HoleOverlap), "HoleOverlap");
  EXPECT_STREQ(to_string(CheckFailure::HoleAdjacent), "HoleAdjacent");
  EXPECT_STREQ(to_string(CheckFailure::HoleOutOfBounds), "HoleOutOfBounds");
  EXPECT_STREQ(to_string(CheckFailure::HoleBadSize), "HoleBadSize");
  EXPECT_STREQ(to_string(CheckFailure::HoleMisaligned), "HoleMisaligned");
  EXPECT_STREQ(to_string(CheckFailure::FreeBytesMismatch), "FreeBytesMismatch");
  EXPECT_STREQ(to_string(CheckFailure::StatsMismatch), "StatsMismatch");
  volatile std::uint8_t raw = 250;
  EXPECT_STREQ(to_string(static_cast<CheckFailure>(raw)), "?");
}

TEST(Names, EveryBackendHasItsNameAndAnUnknownValueIsQuestionMark) {
  EXPECT_STREQ(to_string(Backend::FirstFit), "FirstFit");
  EXPECT_STREQ(to_string(Backend::Tlsf), "Tlsf");
  volatile std::uint8_t raw = 77;
  EXPECT_STREQ(to_string(static_cast<Backend>(raw)), "?");
}

// --- Layout and the block request ---------------------------------------------

TEST(LayoutBoundary, EqualityComparesSizeAndAlignment) {
  // Runtime values: a constant comparison would be folded at compile time.
  volatile std::size_t sixteen = 16;
  volatile std::size_t eight = 8;
  const Layout a{sixteen, eight};
  EXPECT_TRUE(a == (Layout{sixteen, eight}));
  EXPECT_FALSE(a == (Layout{sixteen + eight, eight}));  // size differs
  EXPECT_FALSE(a == (Layout{sixteen, sixteen}));        // alignment differs
  EXPECT_TRUE(a != (Layout{sixteen, sixteen}));
}

TEST(LayoutBoundary, ArrayOfRejectsACountWhoseByteSizeOverflows) {
  const std::size_t max = SIZE_MAX / sizeof(int);
  const std::optional<Layout> largest = Layout::array_of<int>(max);
  ASSERT_TRUE(largest.has_value());
  EXPECT_EQ(largest->size, max * sizeof(int));
  EXPECT_EQ(largest->align, alignof(int));
  EXPECT_FALSE(Layout::array_of<int>(max + 1).has_value());
  EXPECT_FALSE(Layout::array_of<int>(SIZE_MAX).has_value());
}

TEST(BlockRequestBoundary, HeaderPlusPayloadThatOverflowsIsRejected) {
  using detail::kHeaderSize;
  struct Case {
    Layout layout;
    bool fits;
    std::size_t size;
    std::size_t align;
  };
  // Runtime values (not a constant expression), so the guard itself runs.
  const std::array<Case, 6> cases{{
      {{10, 4}, true, kHeaderSize + 10, kHeaderSize},  // small alignment: the header's
      {{10, kHeaderSize}, true, kHeaderSize + 10, kHeaderSize},
      {{10, 64}, true, 64 + 10, 64},  // large alignment: payload A bytes in
      {{SIZE_MAX - kHeaderSize, 8}, true, SIZE_MAX, kHeaderSize},  // exactly fits the word
      {{SIZE_MAX - kHeaderSize + 1, 8}, false, 0, 0},              // one byte too many
      {{SIZE_MAX - 32, 64}, false, 0, 0},
  }};
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "size " << c.layout.size << " align " << c.layout.align);
    const std::optional<detail::BlockRequest> r = detail::block_request(c.layout);
    ASSERT_EQ(r.has_value(), c.fits);
    if (r) {
      EXPECT_EQ(r->size, c.size);
      EXPECT_EQ(r->align, c.align);
    }
  }
}

TEST(BlockRequestBoundary, TheHeapRejectsSuchALayoutBeforeTheBlockRequest) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  // Larger than PTRDIFF_MAX: not a valid layout, so never a block request.
  Result<void*> r = heap.try_alloc_raw(Layout{SIZE_MAX - 4, 8});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Error::InvalidLayout);
  test::expect_pristine(heap);
}

// --- owners: full, empty, self-move -------------------------------------------

TEST(FixedVecBoundary, PushOnAFullVectorFailsAndConstructsNothing) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  {
    Result<FixedVec<int>> made = heap.try_alloc_fixed_vec<int>(3);
    ASSERT_TRUE(made.has_value());
    FixedVec<int>& v = *made;
    for (int i = 1; i <= 3; ++i) {
      const int x = i * 10;
      EXPECT_TRUE(v.push_back(x));
    }
    EXPECT_TRUE(v.full());
    const int extra = 99;
    EXPECT_FALSE(v.push_back(extra));
    EXPECT_EQ(v.size(), 3u);
    EXPECT_EQ(v[2], 30);
  }
  test::expect_pristine(heap);
}

TEST(FixedVecBoundary, PopOnAnEmptyVectorIsNullopt) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  {
    Result<FixedVec<int>> made = heap.try_alloc_fixed_vec<int>(2);
    ASSERT_TRUE(made.has_value());
    FixedVec<int>& v = *made;
    EXPECT_FALSE(v.pop_back().has_value());  // empty from the start
    EXPECT_TRUE(v.push_back(5));
    EXPECT_EQ(v.pop_back(), std::optional<int>(5));
    EXPECT_FALSE(v.pop_back().has_value());  // empty again
    EXPECT_TRUE(v.empty());
  }
  test::expect_pristine(heap);
}

TEST(FixedVecBoundary, RetainCompactsKeptElementsInOrder) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  {
    Result<FixedVec<int>> made = heap.try_alloc_fixed_vec<int>(8);
    ASSERT_TRUE(made.has_value());
    FixedVec<int>& v = *made;
    for (int i = 1; i <= 7; ++i) ASSERT_TRUE(v.push_back(i));
    // Keeps 1 (already in place), drops 2, moves 3 down, ...
    v.retain([](const int& x) { return x % 2 == 1; });
    ASSERT_EQ(v.size(), 4u);
    EXPECT_EQ(std::vector<int>(v.begin(), v.end()), (std::vector<int>{1, 3, 5, 7}));
    v.retain([](const int&) { return false; });
    EXPECT_TRUE(v.empty());
    EXPECT_EQ(v.capacity(), 8u);
  }
  test::expect_pristine(heap);
}

TEST(FixedVecBoundary, SelfMoveAssignKeepsTheElements) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  {
    Result<FixedVec<int>> made = heap.try_alloc_fixed_vec<int>(4);
    ASSERT_TRUE(made.has_value());
    FixedVec<int> v = std::move(*made);
    ASSERT_TRUE(v.push_back(1));
    ASSERT_TRUE(v.push_back(2));
    FixedVec<int>& alias = v;
    v = std::move(alias);
    EXPECT_EQ(v.size(), 2u);
    EXPECT_EQ(v.capacity(), 4u);
    EXPECT_EQ(v[1], 2);

    Result<FixedVec<int>> other = heap.try_alloc_fixed_vec<int>(16);
    ASSERT_TRUE(other.has_value());
    const std::size_t both = heap.stats().allocated_bytes;
    *other = std::move(v);  // other's old block is freed, v is emptied
    EXPECT_EQ(other->size(), 2u);
    EXPECT_EQ(other->capacity(), 4u);
    EXPECT_EQ((*other)[0], 1);
    EXPECT_EQ(v.capacity(), 0u);
    EXPECT_EQ(v.data(), nullptr);
    EXPECT_LT(heap.stats().allocated_bytes, both);
  }
  test::expect_pristine(heap);
}

TEST(ArrayBoundary, SelfMoveAssignKeepsTheArrayAndMoveAssignFreesTheOld) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  {
    Result<Array<int>> a = heap.try_alloc_array<int>(4);
    Result<Array<int>> b = heap.try_alloc_array<int>(16);
    ASSERT_TRUE(a.has_value());
    ASSERT_TRUE(b.has_value());
    for (std::size_t i = 0; i < 4; ++i) (*a)[i] = static_cast<int>(i + 1);
    const std::size_t both = heap.stats().allocated_bytes;

    Array<int>& alias = *a;
    *a = std::move(alias);  // a no-op, not a free
    EXPECT_EQ(a->size(), 4u);
    EXPECT_EQ((*a)[3], 4);
    EXPECT_EQ(heap.stats().allocated_bytes, both);

    *b = std::move(*a);  // b's old block is freed, a is emptied
    EXPECT_EQ(b->size(), 4u);
    EXPECT_EQ((*b)[0], 1);
    EXPECT_TRUE(a->empty());
    EXPECT_EQ(a->data(), nullptr);
    EXPECT_LT(heap.stats().allocated_bytes, both);
  }
  test::expect_pristine(heap);
}

TEST(BoxBoundary, SelfMoveAssignKeepsTheValueAndMoveAssignFreesTheOld) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  {
    Result<Box<int>> a = heap.try_alloc<int>(7);
    Result<Box<int>> b = heap.try_alloc<int>(8);
    ASSERT_TRUE(a.has_value());
    ASSERT_TRUE(b.has_value());
    const std::size_t frees = heap.stats().free_count;
    Box<int>& alias = *a;
    *a = std::move(alias);
    ASSERT_TRUE(static_cast<bool>(*a));
    EXPECT_EQ(**a, 7);
    EXPECT_EQ(heap.stats().free_count, frees);
    *b = std::move(*a);
    EXPECT_EQ(**b, 7);
    EXPECT_FALSE(static_cast<bool>(*a));
    EXPECT_EQ(heap.stats().free_count, frees + 1);
  }
  test::expect_pristine(heap);
}

TEST(ArcBoundary, AnEmptyArcCopiesAsEmptyAndOnlyTheLastOwnerFrees) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  {
    Result<Arc<int>> made = heap.try_alloc_arc<int>(42);
    ASSERT_TRUE(made.has_value());
    Arc<int> first = std::move(*made);
    ASSERT_NE(first.get(), nullptr);
    EXPECT_EQ(*first.get(), 42);

    Arc<int> moved_from = std::move(*made);  // *made was already emptied
    EXPECT_FALSE(static_cast<bool>(moved_from));
    EXPECT_EQ(moved_from.get(), nullptr);
    EXPECT_EQ(moved_from.use_count(), 0u);
    const Arc<int> empty_copy = moved_from;  // copying an empty Arc counts nothing
    EXPECT_EQ(empty_copy.get(), nullptr);
    EXPECT_EQ(empty_copy.use_count(), 0u);

    const std::size_t frees = heap.stats().free_count;
    std::optional<Arc<int>> second(first);
    EXPECT_EQ(first.use_count(), 2u);
    second.reset();  // not the last owner: nothing freed
    EXPECT_EQ(first.use_count(), 1u);
    EXPECT_EQ(heap.stats().free_count, frees);
    first = Arc<int>(moved_from);  // the last owner goes: the block is freed
    EXPECT_EQ(heap.stats().free_count, frees + 1);
    EXPECT_EQ(first.get(), nullptr);
  }
  test::expect_pristine(heap);
}

TEST(WakerBoundary, AnEmptyWakerIsFalseAndWakingItDoesNothing) {
  int calls = 0;
  const Waker counting{[](void* c) { ++*static_cast<int*>(c); }, &calls};
  const Waker empty{};
  EXPECT_TRUE(static_cast<bool>(counting));
  EXPECT_FALSE(static_cast<bool>(empty));
  counting.wake();
  empty.wake();  // no function: nothing is called
  EXPECT_EQ(calls, 1);
  const Waker copy = counting;  // trivially copyable: the copy calls the same function
  copy.wake();
  EXPECT_EQ(calls, 2);
}

// --- Task without an executor ---------------------------------------------------

Task<int> answer() { co_return 42; }

TEST(TaskBoundary, AnEmptyTaskIsNotDoneAndAnAwaitedOneIsDoneAfterwards) {
  const Task<int> empty;
  EXPECT_FALSE(static_cast<bool>(empty));
  EXPECT_FALSE(empty.done());

  int got = 0;
  bool done_before = true;
  bool done_after = false;
  // A coroutine type that is not ours awaits the task: no executor anywhere,
  // so the task runs inline and its final suspend transfers back here.
  [](int& out, bool& before, bool& after) -> test::Detached {
    Task<int> t = answer();
    before = t.done();  // lazy: not started
    out = co_await t;   // the lvalue co_await: t keeps the finished frame
    after = t.done();
  }(got, done_before, done_after);
  EXPECT_EQ(got, 42);
  EXPECT_FALSE(done_before);
  EXPECT_TRUE(done_after);
}

TEST(TaskBoundary, SelfMoveAssignKeepsTheFrame) {
  Executor executor;
  int runs = 0;
  Task<void> t = [](int& n) -> Task<void> {
    ++n;
    co_return;
  }(runs);
  Task<void>& alias = t;
  t = std::move(alias);
  ASSERT_TRUE(static_cast<bool>(t));
  EXPECT_FALSE(t.done());
  executor.spawn(std::move(t));
  EXPECT_FALSE(static_cast<bool>(t));
  executor.run();
  EXPECT_EQ(runs, 1);
}

// A task with no executor (awaited by a foreign coroutine) awaiting an
// allocation: resume_waker() is empty, so the future resumes it inline.
TEST(TaskBoundary, AllocationAwaitedInATaskWithNoExecutor) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  constexpr Layout kSlot{64, 8};
  struct Outcome {
    bool finished = false;
    void* block = nullptr;
  };

  // 1. Room: ready at once, the task never suspends on the future.
  Outcome now;
  [](Heap& h, Outcome& o) -> test::Detached {
    co_await [](Heap& hh, Outcome& oo) -> Task<void> {
      Result<void*> r = co_await hh.alloc_raw(Layout{64, 8});
      EXPECT_TRUE(r.has_value());
      if (r) oo.block = *r;
      oo.finished = true;
    }(h, o);
  }(heap, now);
  ASSERT_TRUE(now.finished);
  ASSERT_NE(now.block, nullptr);
  Heap::free_raw(now.block, kSlot);

  // 2. No room: the task parks; the free resumes it inline, inside free_raw.
  std::vector<void*> blocks = test::fill(heap, kSlot);
  const std::vector<void*> plugs = test::plug(heap);
  Outcome later;
  [](Heap& h, Outcome& o) -> test::Detached {
    co_await [](Heap& hh, Outcome& oo) -> Task<void> {
      Result<void*> r = co_await hh.alloc_raw(Layout{64, 8});
      EXPECT_TRUE(r.has_value());
      if (r) oo.block = *r;
      oo.finished = true;
    }(h, o);
  }(heap, later);
  EXPECT_FALSE(later.finished);
  EXPECT_EQ(heap.stats().waiters, 1u);
  void* const handed = blocks.back();
  blocks.pop_back();
  Heap::free_raw(handed, kSlot);
  EXPECT_TRUE(later.finished);
  EXPECT_EQ(later.block, handed);  // the freed block was handed to the waiter
  Heap::free_raw(later.block, kSlot);
  test::free_all(blocks, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

// --- the waker-lifetime guarantee, deterministically -------------------------------

// Destroying a future whose waker is being called on another thread returns
// only after that call returned ("safe waker lifetime"). The waker blocks
// until released, and is released only after the destructor has started, so
// the destructor must wait; the block handed over but never taken goes back.
TEST(AllocWaitBoundary, DestroyingAFutureWaitsForItsWakerRunningOnAnotherThread) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  constexpr Layout kSlot{64, 8};
  std::vector<void*> blocks = test::fill(heap, kSlot);
  const std::vector<void*> plugs = test::plug(heap);

  struct Gate {
    std::atomic<bool> in_call{false};
    std::atomic<bool> release{false};
    std::atomic<bool> returned{false};
  } gate;
  const Waker blocking{[](void* g) {
                         auto* gate = static_cast<Gate*>(g);
                         gate->in_call.store(true);
                         while (!gate->release.load()) std::this_thread::yield();
                         gate->returned.store(true);
                       },
                       &gate};

  std::optional<decltype(heap.alloc_raw(kSlot))> fut;
  fut.emplace(heap.alloc_raw(kSlot));  // moved in before its first poll: allowed
  ASSERT_FALSE(fut->poll(blocking).has_value());

  // The free hands the block to our waiter and calls its waker on `freer`.
  void* const freed = blocks.back();
  blocks.pop_back();
  std::thread freer([freed] { Heap::free_raw(freed, Layout{64, 8}); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!gate.in_call.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  if (!gate.in_call.load()) {
    gate.release.store(true);
    freer.join();
    FAIL() << "the free did not call the waiter's waker";
  }

  std::thread releaser([&gate] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    gate.release.store(true);
  });
  fut.reset();  // the waker is still running on `freer`: this must wait for it
  EXPECT_TRUE(gate.returned.load());
  releaser.join();
  freer.join();

  test::free_all(blocks, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

// --- the wait queue's list edges -------------------------------------------------

using detail::WaitNode;
using detail::WaitQueue;

TEST(WaitQueueBoundary, UnlinkingOneOfTwoToWakeNodesKeepsWakesPending) {
  WaitQueue q;
  WaitNode a, b;
  q.lock();
  q.push_back(&a);
  q.push_back(&b);
  q.complete(&a, WaitNode::Outcome::Ready);
  q.complete(&b, WaitNode::Outcome::Closed);
  EXPECT_FALSE(q.unlink(&a));
  EXPECT_EQ(a.where, WaitNode::Where::Detached);
  EXPECT_TRUE(q.wakes_pending());  // b is still to be woken
  Waker w;
  EXPECT_EQ(q.pop_wake(w), &b);
  EXPECT_FALSE(q.wakes_pending());
  EXPECT_FALSE(q.release());
}

TEST(WaitQueueBoundary, UnlinkLeavesDetachedAndCallingNodesAlone) {
  WaitQueue q;
  WaitNode detached, calling;
  q.lock();
  EXPECT_FALSE(q.unlink(&detached));
  EXPECT_EQ(detached.where, WaitNode::Where::Detached);
  q.push_back(&calling);
  q.complete(&calling, WaitNode::Outcome::Ready);
  Waker w;
  ASSERT_EQ(q.pop_wake(w), &calling);
  EXPECT_FALSE(q.unlink(&calling));
  EXPECT_EQ(calling.where, WaitNode::Where::Calling);
  EXPECT_EQ(calling.outcome, WaitNode::Outcome::Ready);
  EXPECT_FALSE(q.release());
}

// lock() spins while another context holds the lock and returns once it is
// released: never both holders at once.
TEST(WaitQueueBoundary, LockWaitsForTheHolderToRelease) {
  WaitQueue q;
  ASSERT_TRUE(q.try_lock());
  std::atomic<bool> started{false};
  std::atomic<bool> acquired{false};
  std::thread other([&] {
    started.store(true);
    q.lock();
    acquired.store(true);
    EXPECT_FALSE(q.release());
  });
  while (!started.load()) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(acquired.load());  // still held here
  EXPECT_FALSE(q.release());
  other.join();
  EXPECT_TRUE(acquired.load());
  EXPECT_TRUE(q.try_lock());
  EXPECT_FALSE(q.release());
}

}  // namespace
}  // namespace mnemos
