// Frees that find the lock held: deferred, then returned at unlock or before the
// holder's next allocation, never stranded; and the same under real threads.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace mnemos;
using test::Region;

class DeferredFree : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(DeferredFree);

TEST_P(DeferredFree, FreeWhileLockedIsQueuedAndDrainedAtUnlockWithoutPoll) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* p = *heap.try_alloc_raw(Layout{100, 8});
  const std::size_t allocated = heap.stats().allocated_bytes;
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard);
    Heap::free_raw(p, Layout{100, 8});  // as another context would: the lock is busy
    const Stats s = heap.stats();
    EXPECT_EQ(s.deferred_pending, 1u);
    EXPECT_EQ(s.allocated_bytes, allocated);  // still out of the backend
    EXPECT_EQ(s.free_count, 0u);
    EXPECT_TRUE(heap_test_access::lock(heap).has_deferred());
  }
  // No poll(): releasing the guard returned the block.
  const Stats s = heap.stats();
  EXPECT_EQ(s.deferred_pending, 0u);
  EXPECT_EQ(s.deferred_free_count, 1u);
  EXPECT_EQ(s.free_count, 1u);
  EXPECT_EQ(s.allocated_bytes, 0u);
  EXPECT_FALSE(heap_test_access::lock(heap).has_deferred());
  EXPECT_EQ(heap.poll(), 0u);
  test::expect_pristine(heap);
}

TEST_P(DeferredFree, HolderReturnsDeferredBlocksBeforeItsNextAllocation) {
  Region region(4096);
  Heap& heap = make_heap(region);
  // Fill the arena with one block, so the only way to allocate again is to get
  // the deferred block back first.
  const Layout whole{heap.capacity() - 8, 8};
  void* p = *heap.try_alloc_raw(whole);
  std::optional<Heap::Guard> guard = heap.try_lock();
  ASSERT_TRUE(guard);
  Heap::free_raw(p, whole);
  EXPECT_EQ(heap.stats().deferred_pending, 1u);
  Result<void*> again = guard->try_alloc_raw(whole);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, p);
  EXPECT_EQ(heap.stats().deferred_free_count, 1u);
  guard->free_raw(*again, whole);
  guard.reset();
  test::expect_pristine(heap);
}

TEST_P(DeferredFree, PollReturnsTheNumberDrainedAndIsANoOpWhenLocked) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* a = *heap.try_alloc_raw(Layout{8, 8});
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    Heap::free_raw(a, Layout{8, 8});
    EXPECT_EQ(heap.poll(), 0u);  // the lock is held: poll cannot drain
    EXPECT_EQ(heap.stats().deferred_pending, 1u);
  }
  EXPECT_EQ(heap.stats().deferred_pending, 0u);
  test::expect_pristine(heap);
}

TEST_P(DeferredFree, ManyDeferredFreesOfMixedLayoutsAllComeBack) {
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
  std::vector<std::pair<void*, Layout>> blocks;
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    const Layout layout{1 + rng() % 200, std::size_t{1} << (rng() % 6)};
    blocks.emplace_back(*heap.try_alloc_raw(layout), layout);
  }
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    for (auto [p, layout] : blocks) Heap::free_raw(p, layout);
    EXPECT_EQ(heap.stats().deferred_pending, blocks.size());
    EXPECT_TRUE(guard->check().ok());  // deferred blocks still count as allocated
  }
  EXPECT_EQ(heap.stats().deferred_free_count, blocks.size());
  test::expect_pristine(heap);
}

// Thousands of frees from several threads while the owner allocates and holds
// the lock at random: every byte comes back and the free list stays sound.
TEST_P(DeferredFree, FreesFromManyThreadsWhileTheOwnerAllocatesReturnEveryByte) {
  constexpr int kFreers = 2;
  constexpr int kBlocks = 30000;
  constexpr std::size_t kSlots = 64;
  Region region(256 * 1024);
  Heap& heap = make_heap(region);

  // Each block carries its own layout in its first bytes (the cookie checked at
  // free), so a slot is just an atomic pointer.
  std::vector<std::atomic<void*>> slots(kSlots);
  std::atomic<int> freed{0};
  std::atomic<bool> done{false};

  auto freer = [&](int id) {
    std::size_t i = static_cast<std::size_t>(id);
    while (!done.load(std::memory_order_acquire) || freed.load() < kBlocks) {
      // acquire: pairs with the owner's release store, so the block's contents
      // (its layout) are visible here.
      void* p = slots[i % kSlots].exchange(nullptr, std::memory_order_acquire);
      if (p != nullptr) {
        Layout layout;
        std::memcpy(&layout, p, sizeof layout);
        EXPECT_GE(layout.size, sizeof(Layout));
        EXPECT_LT(layout.size, 200u);
        Heap::free_raw(p, layout);
        freed.fetch_add(1);
      } else {
        std::this_thread::yield();  // 2 cores: let the owner refill
      }
      i += kFreers;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kFreers; ++t) threads.emplace_back(freer, t);

  std::mt19937 rng(1);
  std::optional<Heap::Guard> held;
  std::size_t slot = 0;
  for (int made = 0; made < kBlocks;) {
    if (rng() % 16 == 0) {
      if (held) held.reset(); else held = heap.try_lock();
    }
    const Layout layout{sizeof(Layout) + rng() % 120, std::size_t{8} << (rng() % 2)};
    Result<void*> r = held ? held->try_alloc_raw(layout) : heap.try_alloc_raw(layout);
    if (!r) {
      ASSERT_TRUE(r.error() == Error::NoMemory || r.error() == Error::Locked);
      std::this_thread::yield();
      continue;
    }
    std::memcpy(*r, &layout, sizeof layout);
    // Find an empty slot for the block (the freers empty them); only the owner
    // fills slots, so an empty slot stays empty until the store below.
    for (;; slot = (slot + 1) % kSlots) {
      if (slots[slot].load(std::memory_order_relaxed) == nullptr) break;
      std::this_thread::yield();
    }
    // release: publishes the block's contents to the freer.
    slots[slot].store(*r, std::memory_order_release);
    ++made;
  }
  held.reset();
  done.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();

  const Stats s = heap.stats();
  EXPECT_EQ(s.alloc_count, static_cast<std::size_t>(kBlocks));
  EXPECT_EQ(s.free_count, static_cast<std::size_t>(kBlocks));
  test::expect_pristine(heap);
}
