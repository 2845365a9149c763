// API-contract misuse that must abort rather than corrupt: Result accessors on
// the wrong alternative, moving a polled (pinned) future, polling a future
// whose value was already taken, await_resume without a wake, and an exception
// escaping a Task. Each is a
// death test; coverage builds flush the child's profile on SIGABRT
// (coverage_flush_on_abort.cpp).
#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <stop_token>
#include <utility>
#include <vector>

#include "mnemos/alloc.hpp"
#include "mnemos/executor.hpp"
#include "test_support.hpp"

namespace mnemos {
namespace {

using test::Region;

constexpr Layout kBlock{64, 8};

// Death tests re-run the test body in a fresh process ("threadsafe"), so a
// heap set up before the statement is rebuilt, not shared, in the child.
class ContractDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

struct WakeCount {
  int calls = 0;
  Waker waker() { return Waker{[](void* self) { ++static_cast<WakeCount*>(self)->calls; }, this}; }
};

// A heap with no room left for kBlock (nor for anything else).
struct FullHeap {
  Region region{4096};
  Heap& heap = test::make_heap(region);
  std::vector<void*> blocks = test::fill(heap, kBlock);
  std::vector<void*> plugs = test::plug(heap);

  ~FullHeap() {
    test::free_all(blocks, kBlock);
    test::free_all(plugs, test::kPlug);
    test::expect_pristine(heap);
  }
};

TEST_F(ContractDeathTest, ResultValueOfAnErrorAborts) {
  Result<int> r(Error::NoMemory);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Error::NoMemory);  // the right accessor works
  EXPECT_DEATH((void)r.value(), "");
  EXPECT_DEATH((void)*r, "");
}

TEST_F(ContractDeathTest, ResultErrorOfAValueAborts) {
  Result<int> r(7);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r.value(), 7);  // the right accessor works
  EXPECT_DEATH((void)r.error(), "");
}

TEST_F(ContractDeathTest, MovingAPolledFutureAborts) {
  FullHeap full;
  WakeCount wakes;
  auto fut = full.heap.alloc_raw(kBlock);
  ASSERT_FALSE(fut.poll(wakes.waker()).has_value());  // parked: its node is linked
  EXPECT_EQ(full.heap.stats().waiters, 1u);
  EXPECT_DEATH({ auto moved = std::move(fut); (void)moved; }, "");
  // In this process the future was never moved: still parked, and destroying
  // it (end of scope) unlinks it; its waker was never called.
  EXPECT_EQ(full.heap.stats().waiters, 1u);
  EXPECT_EQ(wakes.calls, 0);
}

TEST_F(ContractDeathTest, GivingAPolledFutureAStopTokenAborts) {
  FullHeap full;
  WakeCount wakes;
  std::stop_source source;
  auto fut = full.heap.alloc_raw(kBlock);
  ASSERT_FALSE(fut.poll(wakes.waker()).has_value());
  EXPECT_DEATH({ auto with_token = std::move(fut).with(source.get_token()); (void)with_token; }, "");
  EXPECT_EQ(full.heap.stats().waiters, 1u);  // in this process: still parked, unchanged
}

TEST_F(ContractDeathTest, MovingAFutureBeforeItsFirstPollIsAllowed) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  auto fut = heap.alloc_raw(kBlock);
  auto moved = std::move(fut);  // not polled yet: not pinned
  std::optional<Result<void*>> r = moved.poll(Waker{});
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->has_value());
  Heap::free_raw(r->value(), kBlock);
  test::expect_pristine(heap);
}

TEST_F(ContractDeathTest, PollingAFutureWhoseValueWasTakenAborts) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  auto fut = heap.alloc_raw(kBlock);
  std::optional<Result<void*>> r = fut.poll(Waker{});  // room: ready at the first poll
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->has_value());
  void* p = r->value();
  EXPECT_DEATH((void)fut.poll(Waker{}), "");
  Heap::free_raw(p, kBlock);
  test::expect_pristine(heap);
}

TEST_F(ContractDeathTest, PollingAFutureThatFailedAborts) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  auto fut = heap.alloc_raw(Layout{0, 8});  // invalid: fails at the first poll
  std::optional<Result<void*>> r = fut.poll(Waker{});
  ASSERT_TRUE(r.has_value());
  ASSERT_FALSE(r->has_value());
  EXPECT_EQ(r->error(), Error::InvalidLayout);
  EXPECT_DEATH((void)fut.poll(Waker{}), "");
}

// await_resume is for a coroutine the future's waker resumed; called on a
// future that is still pending (no wake yet) it has no value to return.
TEST_F(ContractDeathTest, AwaitResumeWithoutAWakeAborts) {
  FullHeap full;
  WakeCount wakes;
  auto fut = full.heap.alloc_raw(kBlock);
  ASSERT_FALSE(fut.poll(wakes.waker()).has_value());
  EXPECT_DEATH((void)fut.await_resume(), "");
  EXPECT_EQ(wakes.calls, 0);
}

// Tasks have no exception channel: an exception escaping a task's body aborts
// (the promise's unhandled_exception), even in a build with exceptions on.
Task<int> fails_if(bool fail) {
  if (fail) throw std::runtime_error("escapes the task");
  co_return 1;
}

TEST_F(ContractDeathTest, AnExceptionEscapingATaskAborts) {
  Executor ok;
  EXPECT_EQ(ok.block_on(fails_if(false)), 1);
  EXPECT_DEATH(
      {
        Executor executor;
        (void)executor.block_on(fails_if(true));
      },
      "");
}

}  // namespace
}  // namespace mnemos
