// The lock word alone: try-lock, the free path's lock-or-push decision, and the
// holder's take-all / unlock handshake.
#include "mnemos/detail/heap_lock.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

using mnemos::detail::DeferredNode;
using mnemos::detail::HeapLock;
using Route = HeapLock::FreeRoute;

namespace {
// Stand-ins for freed blocks: aligned and large enough for a node.
struct alignas(DeferredNode) FakeBlock {
  std::byte bytes[sizeof(DeferredNode)];
};
// The holder's release step as the heap performs it: take pushed frees if any
// (keeping the lock), else release; nullptr once released.
DeferredNode* unlock_or_take(HeapLock& lock) {
  std::uintptr_t w = lock.load();
  for (;;) {
    if (HeapLock::head_of(w) != nullptr) return lock.take_all();
    if (lock.try_release(w)) return nullptr;
  }
}
}  // namespace

TEST(HeapLock, TryLockIsExclusiveAndUnlockReleases) {
  HeapLock lock;
  EXPECT_FALSE(lock.is_locked());
  ASSERT_TRUE(lock.try_lock());
  EXPECT_TRUE(lock.is_locked());
  EXPECT_FALSE(lock.try_lock());
  EXPECT_EQ(unlock_or_take(lock), nullptr);
  EXPECT_FALSE(lock.is_locked());
  EXPECT_TRUE(lock.try_lock());
}

TEST(HeapLock, FreeOnUnlockedHeapTakesTheLock) {
  HeapLock lock;
  FakeBlock block;
  EXPECT_EQ(lock.lock_or_push(&block, 16), Route::TookLock);
  EXPECT_TRUE(lock.is_locked());
  EXPECT_FALSE(lock.has_deferred());
  EXPECT_EQ(unlock_or_take(lock), nullptr);
}

TEST(HeapLock, FreeOnLockedHeapPushesAndUnlockHandsTheListBack) {
  HeapLock lock;
  ASSERT_TRUE(lock.try_lock());
  FakeBlock a, b, c;
  EXPECT_EQ(lock.lock_or_push(&a, 16), Route::Deferred);
  EXPECT_EQ(lock.lock_or_push(&b, 32), Route::Deferred);
  EXPECT_EQ(lock.lock_or_push(&c, 48), Route::Deferred);
  EXPECT_TRUE(lock.has_deferred());

  // The unlock refuses to release over a non-empty queue: it detaches the list
  // (newest first) and keeps the lock.
  DeferredNode* list = unlock_or_take(lock);
  ASSERT_NE(list, nullptr);
  EXPECT_TRUE(lock.is_locked());
  EXPECT_FALSE(lock.has_deferred());
  EXPECT_EQ(static_cast<void*>(list), static_cast<void*>(&c));
  EXPECT_EQ(list->block_size, 48u);
  EXPECT_EQ(static_cast<void*>(list->next), static_cast<void*>(&b));
  EXPECT_EQ(list->next->block_size, 32u);
  EXPECT_EQ(static_cast<void*>(list->next->next), static_cast<void*>(&a));
  EXPECT_EQ(list->next->next->next, nullptr);

  EXPECT_EQ(unlock_or_take(lock), nullptr);
  EXPECT_FALSE(lock.is_locked());
}

TEST(HeapLock, TakeAllWithoutPushesChangesNothing) {
  HeapLock lock;
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lock.take_all(), nullptr);
  EXPECT_TRUE(lock.is_locked());
  FakeBlock a;
  ASSERT_EQ(lock.lock_or_push(&a, 16), Route::Deferred);
  EXPECT_EQ(static_cast<void*>(lock.take_all()), static_cast<void*>(&a));
  EXPECT_TRUE(lock.is_locked());
  EXPECT_EQ(unlock_or_take(lock), nullptr);
}

// Producers race the holder's unlock: every node is either taken by the holder
// or its producer took the lock itself; none is left behind.
TEST(HeapLock, NoPushIsStrandedWhenProducersRaceTheUnlock) {
  constexpr int kProducers = 3;
  constexpr int kPerProducer = 20000;
  HeapLock lock;
  std::vector<FakeBlock> blocks(kProducers * kPerProducer);
  std::atomic<long> returned{0};
  std::atomic<bool> go{false};

  auto drain = [&](DeferredNode* list) {
    for (; list != nullptr; list = list->next) returned.fetch_add(1, std::memory_order_relaxed);
  };
  std::vector<std::thread> producers;
  for (int t = 0; t < kProducers; ++t) {
    producers.emplace_back([&, t] {
      while (!go.load()) {
      }
      for (int i = 0; i < kPerProducer; ++i) {
        FakeBlock* block = &blocks[static_cast<std::size_t>(t * kPerProducer + i)];
        if (lock.lock_or_push(block, 16) == Route::TookLock) {
          returned.fetch_add(1, std::memory_order_relaxed);
          while (DeferredNode* list = unlock_or_take(lock)) drain(list);
        }
      }
    });
  }
  go.store(true);
  for (int i = 0; i < kPerProducer; ++i) {
    if (lock.try_lock()) {
      while (DeferredNode* list = unlock_or_take(lock)) drain(list);
    }
  }
  for (auto& p : producers) p.join();
  EXPECT_FALSE(lock.is_locked());
  EXPECT_FALSE(lock.has_deferred());
  EXPECT_EQ(returned.load(), kProducers * kPerProducer);
}

TEST(HeapLock, ReleaseFailsWhenTheWordChangedSinceItWasRead) {
  HeapLock lock;
  ASSERT_TRUE(lock.try_lock());
  std::uintptr_t seen = lock.load();
  lock.set_waiters(true);  // as a subscriber would, under the wait-queue lock
  EXPECT_FALSE(lock.try_release(seen));
  EXPECT_TRUE(lock.is_locked());
  EXPECT_TRUE(lock.has_waiters());
  EXPECT_TRUE(lock.try_release(seen));  // seen was refreshed
  EXPECT_FALSE(lock.is_locked());
  EXPECT_TRUE(lock.has_waiters());  // the flag outlives the lock
}

TEST(HeapLock, ServeRequestTakesAFreeLockOrFlagsTheHolder) {
  HeapLock lock;
  EXPECT_TRUE(lock.lock_or_request_serve());  // free: taken
  EXPECT_TRUE(lock.is_locked());
  std::uintptr_t seen = lock.load();
  EXPECT_FALSE(lock.lock_or_request_serve());  // held: flagged for the holder
  EXPECT_NE(lock.load() & HeapLock::kServe, 0u);
  EXPECT_FALSE(lock.try_release(seen));  // the holder notices
  lock.clear_serve();
  seen = lock.load();
  EXPECT_TRUE(lock.try_release(seen));
}
