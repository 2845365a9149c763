// co_await on allocation futures: inside Task<T> on the Executor (resumed on
// the executor, not inline), and from a minimal foreign coroutine type
// (resumed inline by the free that made room).
#include <gtest/gtest.h>

#include <coroutine>
#include <thread>
#include <vector>

#include "mnemos/task.hpp"
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

constexpr Layout kSlot{56, 8};

}  // namespace

class Coroutine : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(Coroutine);

TEST_P(Coroutine, TaskGetsItsBoxWithoutSuspendingWhenThereIsRoom) {
  Region region(4096);
  Heap& heap = make_heap(region);
  Executor executor;
  const int b = executor.block_on([](Heap& h) -> Task<int> {
    Result<Box<Msg>> m = co_await h.alloc<Msg>(1, 2);
    co_return m ? m.value()->b : -1;
  }(heap));
  EXPECT_EQ(b, 2);
  test::expect_pristine(heap);
}

TEST_P(Coroutine, TaskWaitingForRoomIsResumedOnTheExecutorNotInline) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  Executor executor;
  bool done = false;
  std::thread::id resumed_on;
  executor.spawn([](Heap& h, bool& finished, std::thread::id& where) -> Task<void> {
    Result<void*> p = co_await h.alloc_raw(kSlot);
    where = std::this_thread::get_id();
    EXPECT_TRUE(p.has_value());
    if (p) Heap::free_raw(*p, kSlot);
    finished = true;
  }(heap, done, resumed_on));
  executor.run_until_idle();
  EXPECT_FALSE(done);  // parked: the arena is full
  EXPECT_EQ(heap.stats().waiters, 1u);

  // The free happens on another thread; the task must not run there.
  std::thread([&] { Heap::free_raw(blocks.back(), kSlot); }).join();
  blocks.pop_back();
  EXPECT_FALSE(done);  // scheduled on the executor, not resumed inline
  executor.run();
  EXPECT_TRUE(done);
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
  for (void* p : blocks) Heap::free_raw(p, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(Coroutine, TasksCompleteInFifoOrderOfTheirRequests) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  Executor executor;
  std::vector<int> order;
  for (int i = 0; i < 4; ++i) {
    executor.spawn([](Heap& h, std::vector<int>& out, int id) -> Task<void> {
      Result<void*> p = co_await h.alloc_raw(kSlot);
      out.push_back(id);
      if (p) Heap::free_raw(*p, kSlot);
    }(heap, order, i));
  }
  executor.run_until_idle();
  EXPECT_TRUE(order.empty());
  // Each free serves the oldest waiter; it frees its block at once, which
  // serves the next, and so on.
  Heap::free_raw(blocks.back(), kSlot);
  blocks.pop_back();
  executor.run_until_idle();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  for (void* p : blocks) Heap::free_raw(p, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(Coroutine, ForeignCoroutineIsResumedInlineByTheFree) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  bool done = false;
  [](Heap& h, bool& finished) -> Detached {
    Result<Box<Msg>> m = co_await h.alloc<Msg>(3, 4);
    EXPECT_TRUE(m.has_value());
    finished = true;
  }(heap, done);
  EXPECT_FALSE(done);
  Heap::free_raw(blocks.back(), kSlot);  // resumes the coroutine inside this call
  blocks.pop_back();
  EXPECT_TRUE(done);
  for (void* p : blocks) Heap::free_raw(p, kSlot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(Coroutine, ImpossibleRequestsReturnAtOnceFromCoAwait) {
  Region region(4096);
  Heap& heap = make_heap(region);
  Executor executor;
  const Error e = executor.block_on([](Heap& h) -> Task<Error> {
    Result<Array<int>> r = co_await h.alloc_array<int>(1 << 20);
    co_return r.error();
  }(heap));
  EXPECT_EQ(e, Error::TooLarge);
}

TEST_P(Coroutine, CloseCompletesAWaitingTaskWithClosed) {
  Region region(4096);
  Heap& heap = make_heap(region);
  std::vector<void*> blocks = fill(heap, kSlot);
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  Executor executor;
  Error seen = Error::NoMemory;
  executor.spawn([](Heap& h, Error& out) -> Task<void> {
    Result<Box<Msg>> m = co_await h.alloc<Msg>(0, 0);
    out = m ? Error::NoMemory : m.error();
  }(heap, seen));
  executor.run_until_idle();
  heap.close();
  executor.run();
  EXPECT_EQ(seen, Error::Closed);
  for (void* p : blocks) Heap::free_raw(p, kSlot);
  test::free_all(plugs, test::kPlug);
}
