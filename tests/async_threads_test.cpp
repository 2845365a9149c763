// Waiters on one thread, frees from two others: every waiter completes, every
// byte comes back. Once with poll-driven futures, once with coroutines of a
// minimal foreign type resumed inline by the freeing threads.
#include <gtest/gtest.h>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace mnemos;
using test::Detached;
using test::fill;
using test::Region;

namespace {

struct Payload {
  std::uint64_t words[6];
};

// A hosted channel of boxes for the freeing threads (test plumbing).
class Channel {
 public:
  void send(Box<Payload> b) {
    std::lock_guard<std::mutex> lock(mutex_);
    items_.push_back(std::move(b));
  }
  bool receive(Box<Payload>& out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (items_.empty()) return false;
    out = std::move(items_.front());
    items_.pop_front();
    return true;
  }

 private:
  std::mutex mutex_;
  std::deque<Box<Payload>> items_;
};

// Freeing threads: drop whatever arrives until told to stop and drained.
std::vector<std::thread> start_freers(Channel& channel, std::atomic<bool>& stop, int count) {
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&] {
      for (;;) {
        Box<Payload> b = Box<Payload>::from_raw(nullptr);
        if (channel.receive(b)) {
          EXPECT_EQ(b->words[0], b->words[5]);  // the cookie survived
          continue;                             // b dies here: the free
        }
        if (stop.load()) return;
        std::this_thread::yield();
      }
    });
  }
  return threads;
}

}  // namespace

class AsyncThreads : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(AsyncThreads);

TEST_P(AsyncThreads, PollDrivenWaitersCompleteWhileTwoThreadsFree) {
  constexpr int kAllocations = 4000;
  Region region(2048);  // room for very few payloads: almost every request waits
  Heap& heap = make_heap(region);
  Channel channel;
  std::atomic<bool> stop{false};
  std::vector<std::thread> freers = start_freers(channel, stop, 2);

  std::atomic<int> wakes{0};
  Waker waker{[](void* p) { static_cast<std::atomic<int>*>(p)->fetch_add(1); }, &wakes};
  for (int i = 0; i < kAllocations; ++i) {
    auto fut = heap.alloc<Payload>(Payload{{std::uint64_t(i), 0, 0, 0, 0, std::uint64_t(i)}});
    const int seen = wakes.load();
    std::optional<Result<Box<Payload>>> r = fut.poll(waker);
    while (!r) {
      while (wakes.load() == seen) std::this_thread::yield();  // parked until woken
      r = fut.poll(waker);
    }
    ASSERT_TRUE(r->has_value()) << to_string(r->error());
    channel.send(std::move(**r));
  }
  stop.store(true);
  for (auto& t : freers) t.join();
  EXPECT_GT(heap.stats().wait_count, 0u);
  EXPECT_EQ(heap.stats().spurious_wake_count, 0u);
  test::expect_pristine(heap);
}

TEST_P(AsyncThreads, ForeignCoroutinesResumedInlineByFreeingThreads) {
  constexpr int kCoroutines = 8;
  constexpr int kPerCoroutine = 300;
  Region region(2048);
  Heap& heap = make_heap(region);
  Channel channel;
  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};
  std::vector<std::thread> freers = start_freers(channel, stop, 2);

  auto worker = [&](int id) -> Detached {
    for (int i = 0; i < kPerCoroutine; ++i) {
      const auto cookie = static_cast<std::uint64_t>(id * 100000 + i);
      Result<Box<Payload>> b = co_await heap.alloc<Payload>(Payload{{cookie, 0, 0, 0, 0, cookie}});
      EXPECT_TRUE(b.has_value());
      if (b) channel.send(std::move(*b));
    }
    finished.fetch_add(1);
  };
  for (int c = 0; c < kCoroutines; ++c) worker(c);
  while (finished.load() < kCoroutines) std::this_thread::yield();
  stop.store(true);
  for (auto& t : freers) t.join();
  EXPECT_GT(heap.stats().wait_count, 0u);
  EXPECT_EQ(heap.stats().spurious_wake_count, 0u);
  test::expect_pristine(heap);
}
