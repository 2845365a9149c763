// StdAllocator<T> (mnemos/std_allocator.hpp): std::vector, std::list, std::map
// on a heap; rebind, over-aligned T, overflow, exhaustion (built with
// exceptions: std::bad_alloc), equality and the propagation choices.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "mnemos/std_allocator.hpp"
#include "test_support.hpp"

using namespace mnemos;
using test::Region;

namespace {

template <class T>
using HeapVector = std::vector<T, StdAllocator<T>>;

// --- the Allocator requirements, checked at compile time ---------------------
using IntAlloc = StdAllocator<int>;
using Traits = std::allocator_traits<IntAlloc>;
static_assert(std::is_same_v<Traits::value_type, int>);
static_assert(std::is_same_v<Traits::rebind_alloc<double>, StdAllocator<double>>);
static_assert(std::is_same_v<Traits::pointer, int*>);
static_assert(Traits::propagate_on_container_copy_assignment::value);
static_assert(Traits::propagate_on_container_move_assignment::value);
static_assert(Traits::propagate_on_container_swap::value);
static_assert(!Traits::is_always_equal::value);
static_assert(std::is_nothrow_copy_constructible_v<IntAlloc>);
static_assert(std::is_nothrow_move_constructible_v<IntAlloc>);
static_assert(std::is_nothrow_constructible_v<StdAllocator<double>, const IntAlloc&>);
static_assert(!std::is_default_constructible_v<IntAlloc>);
// Propagating move assignment makes the containers' move assignment noexcept.
static_assert(std::is_nothrow_move_assignable_v<HeapVector<int>>);

class StdAllocatorTest : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(StdAllocatorTest);

TEST_P(StdAllocatorTest, VectorBytesComeFromTheArena) {
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
  {
    HeapVector<std::uint32_t> v{StdAllocator<std::uint32_t>(heap)};
    for (std::uint32_t i = 0; i < 2000; ++i) v.push_back(i * 3);
    EXPECT_TRUE(test::in_arena(region, v.data(), v.size() * sizeof(std::uint32_t)));
    for (std::uint32_t i = 0; i < 2000; ++i) ASSERT_EQ(v[i], i * 3);
    EXPECT_GE(heap.stats().allocated_bytes, 2000 * sizeof(std::uint32_t));
    EXPECT_TRUE(heap.check().ok());
    v.shrink_to_fit();
    v.clear();
    v.shrink_to_fit();
  }
  const Stats s = heap.stats();
  EXPECT_EQ(s.alloc_count, s.free_count);
  test::expect_pristine(heap);
}

TEST_P(StdAllocatorTest, ListNodesAreRebound) {
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
  {
    // The list allocates its nodes through StdAllocator<node>, rebound from ours.
    std::list<std::uint64_t, StdAllocator<std::uint64_t>> l{StdAllocator<std::uint64_t>(heap)};
    for (std::uint64_t i = 0; i < 500; ++i) l.push_back(i);
    EXPECT_EQ(heap.stats().alloc_count, 500u);  // one node each
    std::uint64_t expect = 0;
    for (const std::uint64_t& x : l) {
      EXPECT_TRUE(test::in_arena(region, &x, sizeof x));
      ASSERT_EQ(x, expect++);
    }
    l.remove_if([](std::uint64_t x) { return x % 2 == 0; });
    EXPECT_EQ(heap.stats().free_count, 250u);
    EXPECT_TRUE(heap.check().ok());
  }
  test::expect_pristine(heap);
}

TEST_P(StdAllocatorTest, MapOfHeapStrings) {
  Region region(128 * 1024);
  Heap& heap = make_heap(region);
  using HeapString = std::basic_string<char, std::char_traits<char>, StdAllocator<char>>;
  using Pair = std::pair<const int, HeapString>;
  {
    StdAllocator<Pair> alloc(heap);
    std::map<int, HeapString, std::less<int>, StdAllocator<Pair>> m(alloc);
    for (int i = 0; i < 200; ++i) {
      HeapString s("value number " + std::to_string(i) + " is long enough for the heap", StdAllocator<char>(alloc));
      m.emplace(i, std::move(s));
    }
    for (const auto& [k, v] : m) {
      EXPECT_TRUE(test::in_arena(region, &k, sizeof k));
      EXPECT_TRUE(test::in_arena(region, v.data(), v.size() + 1));
    }
    EXPECT_EQ(m.at(42), HeapString("value number 42 is long enough for the heap", StdAllocator<char>(heap)));
    EXPECT_TRUE(heap.check().ok());
  }
  test::expect_pristine(heap);
}

struct alignas(64) Line {
  std::uint8_t bytes[64];
};

TEST_P(StdAllocatorTest, OverAlignedElements) {
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
  {
    HeapVector<Line> v{StdAllocator<Line>(heap)};
    for (int i = 0; i < 50; ++i) {
      v.push_back(Line{});
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.data()) % 64, 0u);
    }
    std::list<Line, StdAllocator<Line>> l{StdAllocator<Line>(heap)};
    for (int i = 0; i < 20; ++i) {
      l.emplace_back();
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&l.back()) % 64, 0u);
      EXPECT_TRUE(test::in_arena(region, &l.back(), sizeof(Line)));
    }
    EXPECT_TRUE(heap.check().ok());
  }
  test::expect_pristine(heap);
}

TEST_P(StdAllocatorTest, CountOverflowThrowsBadArrayNewLength) {
  Region region(4096);
  Heap& heap = make_heap(region);
  StdAllocator<std::uint64_t> alloc(heap);
  EXPECT_THROW((void)alloc.allocate(SIZE_MAX / sizeof(std::uint64_t) + 1), std::bad_array_new_length);
  EXPECT_THROW((void)alloc.allocate(SIZE_MAX / sizeof(std::uint64_t)), std::bad_alloc);  // InvalidLayout
  EXPECT_THROW((void)alloc.allocate(4096), std::bad_alloc);                             // TooLarge
  EXPECT_EQ(heap.stats().alloc_count, 0u);
  test::expect_pristine(heap);
}

TEST_P(StdAllocatorTest, ZeroElementsStillGivesABlock) {
  Region region(4096);
  Heap& heap = make_heap(region);
  StdAllocator<int> alloc(heap);
  int* p = alloc.allocate(0);
  int* q = alloc.allocate(0);
  EXPECT_NE(p, nullptr);
  EXPECT_NE(p, q);
  alloc.deallocate(p, 0);
  alloc.deallocate(q, 0);
  test::expect_pristine(heap);
}

TEST_P(StdAllocatorTest, ExhaustionThrowsAndKeepsTheContainer) {
  Region region(8 * 1024);
  Heap& heap = make_heap(region);
  {
    std::list<std::uint64_t, StdAllocator<std::uint64_t>> l{StdAllocator<std::uint64_t>(heap)};
    bool threw = false;
    try {
      for (std::uint64_t i = 0;; ++i) l.push_back(i);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    ASSERT_TRUE(threw);
    EXPECT_GT(l.size(), 100u);
    EXPECT_EQ(heap.stats().alloc_count, l.size());
    EXPECT_EQ(heap.stats().alloc_no_memory_count, 1u);
    std::uint64_t expect = 0;
    for (std::uint64_t x : l) ASSERT_EQ(x, expect++);
    EXPECT_TRUE(heap.check().ok());
    l.pop_front();
    l.push_back(0);  // room again
  }
  test::expect_pristine(heap);
}

TEST_P(StdAllocatorTest, LockedIsAFailureUnlessRetried) {
  Region region(4096);
  Heap& heap = make_heap(region);
  StdAllocator<int> plain(heap);
  StdAllocator<int> retrying(heap, 100);
  EXPECT_EQ(StdAllocator<double>(retrying).locked_retries(), 100u);  // rebinding keeps the policy
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard.has_value());
    EXPECT_THROW((void)plain.allocate(4), std::bad_alloc);
    EXPECT_THROW((void)retrying.allocate(4), std::bad_alloc);  // bounded: held by this thread
  }
  int* p = plain.allocate(4);
  plain.deallocate(p, 4);
  test::expect_pristine(heap);
}

TEST_P(StdAllocatorTest, EqualityFollowsTheHeapAcrossRebinds) {
  Region region_a(4096), region_b(4096);
  Heap& a = make_heap(region_a);
  Heap& b = make_heap(region_b);
  const StdAllocator<int> ia(a), ia2(a, 7), ib(b);
  const StdAllocator<double> da(ia);
  EXPECT_TRUE(ia == ia2);  // the retry policy does not matter
  EXPECT_TRUE(ia == da);
  EXPECT_TRUE(da == ia);
  EXPECT_FALSE(ia == ib);
  EXPECT_TRUE(ia != ib);
  EXPECT_EQ(&da.heap(), &a);
  // Equal allocators free each other's memory, across a rebind too.
  StdAllocator<std::uint64_t> wa(ia);
  std::uint64_t* p = wa.allocate(3);
  StdAllocator<std::uint64_t>(da).deallocate(p, 3);
  test::expect_pristine(a);
}

TEST_P(StdAllocatorTest, TheHeapTravelsWithTheContents) {
  Region region_a(16 * 1024), region_b(16 * 1024);
  Heap& a = make_heap(region_a);
  Heap& b = make_heap(region_b);
  {
    HeapVector<int> on_a(100, 1, StdAllocator<int>(a));
    HeapVector<int> on_b(50, 2, StdAllocator<int>(b));
    const int* a_storage = on_a.data();
    const int* b_storage = on_b.data();

    // Swap across heaps: defined (propagate_on_container_swap), O(1).
    on_a.swap(on_b);
    EXPECT_EQ(on_a.data(), b_storage);
    EXPECT_EQ(&on_a.get_allocator().heap(), &b);
    EXPECT_EQ(&on_b.get_allocator().heap(), &a);
    on_a.swap(on_b);

    // Copy assignment: the destination takes the source's heap.
    HeapVector<int> copy(StdAllocator<int>{b});
    copy = on_a;
    EXPECT_EQ(&copy.get_allocator().heap(), &a);
    EXPECT_TRUE(test::in_arena(region_a, copy.data(), copy.size() * sizeof(int)));
    EXPECT_EQ(copy, on_a);

    // Move assignment: the buffer moves with its heap, whatever the heaps.
    HeapVector<int> moved(StdAllocator<int>{b});
    moved = std::move(on_a);
    EXPECT_EQ(moved.data(), a_storage);
    EXPECT_EQ(&moved.get_allocator().heap(), &a);
    EXPECT_TRUE(a.check().ok());
    EXPECT_TRUE(b.check().ok());
  }
  test::expect_pristine(a);
  test::expect_pristine(b);
}

TEST_P(StdAllocatorTest, SharedPtrThroughAllocateShared) {
  Region region(4096);
  Heap& heap = make_heap(region);
  {
    std::shared_ptr<std::uint64_t> sp = std::allocate_shared<std::uint64_t>(StdAllocator<std::uint64_t>(heap), 42);
    EXPECT_TRUE(test::in_arena(region, sp.get(), sizeof(std::uint64_t)));  // control block and value: one block
    EXPECT_EQ(heap.stats().alloc_count, 1u);
    std::shared_ptr<std::uint64_t> copy = sp;
    EXPECT_EQ(*copy, 42u);
  }
  test::expect_pristine(heap);
}

}  // namespace
