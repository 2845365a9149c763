// MemoryResource (mnemos/memory_resource.hpp): std::pmr containers on a heap,
// bytes from the arena, alignment, exhaustion (std::bad_alloc: this file is
// built with exceptions), the Locked policy, FIFO fairness and equality.
// The exceptions-off policy is std_noexcept_test.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory_resource>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mnemos/memory_resource.hpp"
#include "test_support.hpp"

using namespace mnemos;
using test::Region;

namespace {

// Long enough to defeat the small-string optimisation: the bytes are allocated.
std::string long_text(int i) { return "a string long enough to leave the SSO buffer #" + std::to_string(i); }

class MemoryResourceTest : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(MemoryResourceTest);

TEST_P(MemoryResourceTest, PmrVectorBytesComeFromTheArena) {
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  {
    std::pmr::vector<int> v(&resource);
    for (int i = 0; i < 1000; ++i) v.push_back(i);
    EXPECT_TRUE(test::in_arena(region, v.data(), v.size() * sizeof(int)));
    const Stats s = heap.stats();
    EXPECT_GE(s.alloc_count, 1u);  // the growth steps
    EXPECT_GE(s.allocated_bytes, 1000 * sizeof(int));
    EXPECT_TRUE(heap.check().ok());
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(v[static_cast<std::size_t>(i)], i);
  }
  const Stats s = heap.stats();
  EXPECT_EQ(s.alloc_count, s.free_count);  // every growth step was freed
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, NestedPmrStringsUseTheSameResource) {
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  {
    // Uses-allocator construction: each element string gets &resource too.
    std::pmr::vector<std::pmr::string> names(&resource);
    for (int i = 0; i < 100; ++i) names.emplace_back(long_text(i));
    for (int i = 0; i < 100; ++i) {
      const std::pmr::string& s = names[static_cast<std::size_t>(i)];
      EXPECT_EQ(s.get_allocator().resource(), &resource);
      EXPECT_TRUE(test::in_arena(region, s.data(), s.size() + 1)) << i;
      EXPECT_EQ(std::string(s), long_text(i));
    }
    EXPECT_TRUE(heap.check().ok());
  }
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, PmrMapNodesComeFromTheArena) {
  Region region(128 * 1024);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  {
    std::pmr::map<int, std::pmr::string> m(&resource);
    for (int i = 0; i < 300; ++i) m.emplace(i, long_text(i));
    for (const auto& [k, v] : m) {
      EXPECT_TRUE(test::in_arena(region, &k, sizeof k)) << k;  // the node
      EXPECT_TRUE(test::in_arena(region, v.data(), v.size() + 1)) << k;
    }
    const std::size_t live = heap.stats().allocated_bytes;
    for (int i = 0; i < 300; i += 2) m.erase(i);
    EXPECT_LT(heap.stats().allocated_bytes, live);
    EXPECT_TRUE(heap.check().ok());
    EXPECT_EQ(m.size(), 150u);
    EXPECT_EQ(std::string(m.at(7)), long_text(7));
  }
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, HonoursEveryAlignment) {
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  std::pmr::memory_resource& r = resource;
  for (std::size_t align = 1; align <= 4096; align *= 2) {
    for (std::size_t bytes : {std::size_t{1}, std::size_t{24}, std::size_t{100}}) {
      void* p = r.allocate(bytes, align);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << bytes << " @ " << align;
      EXPECT_TRUE(test::in_arena(region, p, bytes));
      std::memset(p, 0xA5, bytes);  // the bytes are ours (ASan checks it)
      EXPECT_TRUE(heap.check().ok());
      r.deallocate(p, bytes, align);
    }
  }
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, ZeroBytesGivesDistinctBlocks) {
  Region region(4096);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  void* a = resource.allocate(0, 8);
  void* b = resource.allocate(0, 8);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(heap.stats().alloc_count, 2u);
  resource.deallocate(a, 0, 8);  // freed with the layout it was allocated with
  resource.deallocate(b, 0, 8);
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, ExhaustionThrowsBadAllocAndLosesNothing) {
  Region region(16 * 1024);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  std::vector<void*> blocks;
  bool threw = false;
  try {
    for (;;) blocks.push_back(resource.allocate(256, 16));
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  ASSERT_TRUE(threw);
  EXPECT_GT(blocks.size(), 40u);
  EXPECT_LE(blocks.size(), 16u * 1024 / 256);
  EXPECT_EQ(heap.stats().alloc_no_memory_count, 1u);  // the refusal that threw
  EXPECT_TRUE(heap.check().ok());
  for (void* p : blocks) resource.deallocate(p, 256, 16);
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, RequestsThatCanNeverFitThrowAtOnce) {
  Region region(16 * 1024);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  EXPECT_THROW((void)resource.allocate(32 * 1024, 8), std::bad_alloc);                // TooLarge
  // volatile: hides the size from GCC's alloc_size check (it is the point here).
  volatile std::size_t overflowing = SIZE_MAX - 4;
  EXPECT_THROW((void)resource.allocate(overflowing, 8), std::bad_alloc);              // size overflow
  volatile std::size_t not_a_power_of_two = 24;  // a precondition violation, caught
  EXPECT_THROW((void)resource.allocate(64, not_a_power_of_two), std::bad_alloc);
  // Retries are for Locked only: any other failure is final at once.
  MemoryResource retrying(heap, MemoryResource::Options{.locked_retries = 5});
  EXPECT_THROW((void)retrying.allocate(32 * 1024, 8), std::bad_alloc);
  EXPECT_EQ(heap.stats().alloc_count, 0u);
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, VectorGrowthFailureKeepsTheContents) {
  Region region(8 * 1024);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  {
    std::pmr::vector<std::uint64_t> v(&resource);
    std::size_t size_when_full = 0;
    try {
      for (std::uint64_t i = 0;; ++i) {
        size_when_full = v.size();
        v.push_back(i);
      }
    } catch (const std::bad_alloc&) {
    }
    // push_back's strong guarantee: the failed growth left v as it was.
    ASSERT_EQ(v.size(), size_when_full);
    EXPECT_GT(v.size(), 100u);
    for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], i);
    EXPECT_TRUE(test::in_arena(region, v.data(), v.size() * sizeof(std::uint64_t)));
    EXPECT_TRUE(heap.check().ok());
  }
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, LockedIsAFailureByDefault) {
  Region region(4096);
  Heap& heap = make_heap(region);
  MemoryResource plain(heap);
  MemoryResource retrying(heap, MemoryResource::Options{.locked_retries = 1000});
  EXPECT_EQ(&retrying.heap(), &heap);
  EXPECT_EQ(plain.options().locked_retries, 0u);
  EXPECT_EQ(retrying.options().locked_retries, 1000u);
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard.has_value());
    // Held by this very thread: waiting could never end, so both give up (the
    // retries are bounded) rather than deadlock.
    EXPECT_THROW((void)plain.allocate(64, 8), std::bad_alloc);
    EXPECT_THROW((void)retrying.allocate(64, 8), std::bad_alloc);
    EXPECT_EQ(heap.stats().alloc_count, 0u);
  }
  void* p = plain.allocate(64, 8);  // the lock is free again
  plain.deallocate(p, 64, 8);
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, LockedRetriesOutlastABriefHolder) {
  Region region(4096);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap, MemoryResource::Options{.locked_retries = UINT_MAX});
  std::atomic<bool> held{false};
  std::thread holder([&] {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard.has_value());
    held.store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });  // the guard is released when the thread's lambda returns
  while (!held.load()) std::this_thread::yield();
  void* p = resource.allocate(64, 8);  // Locked for ~5 ms, then served
  EXPECT_NE(p, nullptr);
  holder.join();
  resource.deallocate(p, 64, 8);
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, DeallocationFromAnotherThreadWhileLockedIsDeferred) {
  Region region(4096);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  void* p = resource.allocate(100, 8);
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard.has_value());
    std::thread([&] { resource.deallocate(p, 100, 8); }).join();  // never blocks
    EXPECT_EQ(heap.stats().deferred_pending, 1u);
  }  // the release drains it
  EXPECT_EQ(heap.stats().deferred_free_count, 1u);
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, AsyncWaitersComeFirst) {
  Region region(8 * 1024);
  Heap& heap = make_heap(region);
  MemoryResource resource(heap);
  std::vector<void*> blocks = test::fill(heap, Layout{256, 8});
  std::vector<void*> plugs = test::plug(heap);
  Heap::free_raw(blocks.back(), Layout{256, 8});  // room for a small request, not for 1 KiB
  blocks.pop_back();
  {
    bool woken = false;
    auto big = heap.alloc_raw(Layout{1024, 8});
    Waker waker{[](void* flag) { *static_cast<bool*>(flag) = true; }, &woken};
    ASSERT_FALSE(big.poll(waker).has_value());  // parked
    EXPECT_EQ(heap.stats().waiters, 1u);
    // 64 bytes would fit, but the older waiter comes first (FIFO): NoMemory.
    EXPECT_THROW((void)resource.allocate(64, 8), std::bad_alloc);
  }  // dropping the future cancels the wait
  EXPECT_EQ(heap.stats().waiters, 0u);
  void* p = resource.allocate(64, 8);
  resource.deallocate(p, 64, 8);
  test::free_all(blocks, Layout{256, 8});
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(MemoryResourceTest, EqualityMeansTheSameHeap) {
  Region region_a(4096), region_b(4096);
  Heap& a = make_heap(region_a);
  Heap& b = make_heap(region_b);
  MemoryResource a1(a), a2(a), b1(b);
  EXPECT_TRUE(a1.is_equal(a1));
  EXPECT_TRUE(a1.is_equal(a2));  // RTTI is on in this test
  EXPECT_TRUE(a1 == a2);
  EXPECT_FALSE(a1.is_equal(b1));
  EXPECT_FALSE(a1.is_equal(*std::pmr::new_delete_resource()));
  EXPECT_FALSE(std::pmr::new_delete_resource()->is_equal(a1));
  // Memory from one equal resource may be freed through the other.
  void* p = a1.allocate(48, 16);
  a2.deallocate(p, 48, 16);
  test::expect_pristine(a);
}

TEST_P(MemoryResourceTest, MoveAssignmentStealsOnlyBetweenEqualResources) {
  Region region_a(16 * 1024), region_b(16 * 1024);
  Heap& a = make_heap(region_a);
  Heap& b = make_heap(region_b);
  MemoryResource a1(a), a2(a), b1(b);
  {
    std::pmr::vector<int> src(100, 7, &a1);
    const int* storage = src.data();
    std::pmr::vector<int> same_heap(&a2);
    same_heap = std::move(src);
    EXPECT_EQ(same_heap.data(), storage);  // equal resources: the buffer moved

    std::pmr::vector<int> other_heap(&b1);
    other_heap = same_heap;  // pmr never propagates: the copy stays on b
    EXPECT_TRUE(test::in_arena(region_b, other_heap.data(), 100 * sizeof(int)));
    std::pmr::vector<int> moved_to_b(&b1);
    moved_to_b = std::move(same_heap);  // unequal: element-wise, into b's arena
    EXPECT_TRUE(test::in_arena(region_b, moved_to_b.data(), 100 * sizeof(int)));
    EXPECT_EQ(moved_to_b, other_heap);
  }
  test::expect_pristine(a);
  test::expect_pristine(b);
}

}  // namespace
