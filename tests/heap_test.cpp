// The heap's synchronous API: bootstrap, try_alloc_raw / free_raw, errors,
// alignment, contents, Guard, stats, check.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "test_support.hpp"

using namespace mnemos;
using test::Region;

namespace {

void fill(void* p, std::size_t n, std::uint8_t seed) {
  auto* b = static_cast<std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7);
}

bool intact(const void* p, std::size_t n, std::uint8_t seed) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (b[i] != static_cast<std::uint8_t>(seed + i * 7)) return false;
  }
  return true;
}

}  // namespace

TEST(HeapBootstrap, PlacesStateAtRegionStartAndManagesTheRest) {
  Region region(4096);
  Result<Heap*> made = Heap::bootstrap(region.span());
  ASSERT_TRUE(made.has_value());
  EXPECT_EQ(static_cast<void*>(*made), static_cast<void*>(region.span().data()));
  const Stats s = (*made)->stats();
  EXPECT_GT(s.capacity_bytes, 4096 - sizeof(Heap) - 16);
  EXPECT_LE(s.capacity_bytes, 4096 - sizeof(Heap));
  EXPECT_EQ(s.free_bytes, s.capacity_bytes);
  EXPECT_EQ(s.allocated_bytes, 0u);
  EXPECT_TRUE((*made)->check().ok());
}

TEST(HeapBootstrap, RejectsMisalignedRegion) {
  Region region(4096);
  Result<Heap*> made = Heap::bootstrap(region.span().subspan(1));
  ASSERT_FALSE(made.has_value());
  EXPECT_EQ(made.error(), Error::RegionMisaligned);
}

TEST(HeapBootstrap, RejectsRegionTooSmallForStateAndOneBlock) {
  Region region(4096);
  EXPECT_EQ(Heap::bootstrap(region.span().first(sizeof(Heap) - 8)).error(), Error::RegionTooSmall);
  EXPECT_EQ(Heap::bootstrap(region.span().first(sizeof(Heap) + 8)).error(), Error::RegionTooSmall);
  EXPECT_TRUE(Heap::bootstrap(region.span().first(sizeof(Heap) + 16)).has_value());
}

TEST(HeapErrors, InvalidLayouts) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  EXPECT_EQ(heap.try_alloc_raw(Layout{0, 8}).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_raw(Layout{8, 0}).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_raw(Layout{8, 12}).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_raw(Layout{SIZE_MAX, 1}).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_array<std::uint64_t>(SIZE_MAX / 2).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_array<int>(0).error(), Error::InvalidLayout);
  test::expect_pristine(heap);
}

TEST(HeapErrors, TooLargeIsExactAtTheEmptyArenaBoundary) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  const std::size_t capacity = heap.capacity();
  // One header word plus the payload must fit in the whole arena.
  EXPECT_EQ(heap.try_alloc_raw(Layout{capacity - 7, 1}).error(), Error::TooLarge);
  EXPECT_EQ(heap.try_alloc_raw(Layout{8, std::size_t{1} << 40}).error(), Error::TooLarge);
  EXPECT_EQ(heap.try_alloc_raw(Layout{static_cast<std::size_t>(PTRDIFF_MAX), 1}).error(),
            Error::TooLarge);
  Result<void*> whole = heap.try_alloc_raw(Layout{capacity - 8, 8});
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(heap.stats().free_bytes, 0u);
  // TooLarge does not depend on the arena being empty, NoMemory does.
  EXPECT_EQ(heap.try_alloc_raw(Layout{capacity, 1}).error(), Error::TooLarge);
  EXPECT_EQ(heap.try_alloc_raw(Layout{8, 8}).error(), Error::NoMemory);
  Heap::free_raw(*whole, Layout{capacity - 8, 8});
  test::expect_pristine(heap);
}

TEST(HeapErrors, NoMemoryWhenFullIsCountedAndRecovers) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  std::vector<void*> blocks;
  for (;;) {
    Result<void*> r = heap.try_alloc_raw(Layout{56, 8});
    if (!r) {
      EXPECT_EQ(r.error(), Error::NoMemory);
      break;
    }
    blocks.push_back(*r);
  }
  EXPECT_EQ(heap.stats().alloc_no_memory_count, 1u);
  EXPECT_TRUE(heap.check().ok());
  Heap::free_raw(blocks.back(), Layout{56, 8});
  blocks.pop_back();
  Result<void*> again = heap.try_alloc_raw(Layout{56, 8});
  ASSERT_TRUE(again.has_value());
  blocks.push_back(*again);
  for (void* p : blocks) Heap::free_raw(p, Layout{56, 8});
  test::expect_pristine(heap);
}

TEST(HeapErrors, LockedWhileAGuardIsHeld) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard.has_value());
    EXPECT_FALSE(heap.try_lock().has_value());
    EXPECT_EQ(heap.try_alloc_raw(Layout{16, 8}).error(), Error::Locked);
    EXPECT_EQ(heap.try_alloc<int>(1).error(), Error::Locked);
    EXPECT_EQ(heap.check().failure, CheckFailure::Busy);
    // Errors that the lock cannot change are reported first.
    EXPECT_EQ(heap.try_alloc_raw(Layout{0, 8}).error(), Error::InvalidLayout);
    EXPECT_EQ(heap.try_alloc_raw(Layout{1 << 20, 8}).error(), Error::TooLarge);
  }
  EXPECT_TRUE(heap.try_lock().has_value());
  test::expect_pristine(heap);
}

TEST(HeapAlloc, HonoursEveryAlignmentFrom1To4096) {
  Region region(64 * 1024);
  Heap& heap = test::make_heap(region);
  for (std::size_t align = 1; align <= 4096; align *= 2) {
    for (std::size_t size : {std::size_t{1}, std::size_t{7}, align, align * 2 + 3}) {
      const Layout layout{size, align};
      Result<void*> r = heap.try_alloc_raw(layout);
      ASSERT_TRUE(r.has_value()) << "size " << size << " align " << align;
      EXPECT_EQ(detail::addr(*r) % align, 0u) << "size " << size << " align " << align;
      fill(*r, size, 3);
      EXPECT_TRUE(heap.check().ok());
      EXPECT_TRUE(intact(*r, size, 3));
      Heap::free_raw(*r, layout);
      EXPECT_TRUE(heap.check().ok());
    }
  }
  test::expect_pristine(heap);
}

TEST(HeapAlloc, ContentsSurviveNeighboursAllocAndFree) {
  Region region(64 * 1024);
  Heap& heap = test::make_heap(region);
  std::mt19937 rng(42);
  struct Live {
    void* p;
    Layout layout;
    std::uint8_t seed;
  };
  std::vector<Live> live;
  for (int step = 0; step < 4000; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      const Layout layout{1 + rng() % 300, std::size_t{1} << (rng() % 7)};
      Result<void*> r = heap.try_alloc_raw(layout);
      if (!r) {
        ASSERT_EQ(r.error(), Error::NoMemory);
        continue;
      }
      const auto seed = static_cast<std::uint8_t>(rng());
      fill(*r, layout.size, seed);
      live.push_back({*r, layout, seed});
    } else {
      const std::size_t i = rng() % live.size();
      ASSERT_TRUE(intact(live[i].p, live[i].layout.size, live[i].seed)) << "step " << step;
      Heap::free_raw(live[i].p, live[i].layout);
      live[i] = live.back();
      live.pop_back();
    }
    ASSERT_TRUE(heap.check().ok()) << "step " << step;
  }
  for (const Live& l : live) {
    ASSERT_TRUE(intact(l.p, l.layout.size, l.seed));
    Heap::free_raw(l.p, l.layout);
  }
  test::expect_pristine(heap);
}

TEST(HeapAlloc, FreeRawOfNullIsIgnored) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  Heap::free_raw(nullptr, Layout{8, 8});
  test::expect_pristine(heap);
}

TEST(HeapStats, CountAllocationsFreesAndPeak) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  void* a = *heap.try_alloc_raw(Layout{24, 8});  // block: 8 + 24 = 32 bytes
  void* b = *heap.try_alloc_raw(Layout{1, 1});   // block: 8 + 1 -> 16 bytes
  Stats s = heap.stats();
  EXPECT_EQ(s.alloc_count, 2u);
  EXPECT_EQ(s.allocated_bytes, 48u);
  EXPECT_EQ(s.peak_allocated_bytes, 48u);
  EXPECT_EQ(s.free_bytes, s.capacity_bytes - 48);
  Heap::free_raw(a, Layout{24, 8});
  s = heap.stats();
  EXPECT_EQ(s.free_count, 1u);
  EXPECT_EQ(s.allocated_bytes, 16u);
  EXPECT_EQ(s.peak_allocated_bytes, 48u);
  Heap::free_raw(b, Layout{1, 1});
  EXPECT_EQ(heap.stats().free_count, 2u);
  EXPECT_EQ(heap.stats().waiters, 0u);
  test::expect_pristine(heap);
}

TEST(HeapGuard, AllocatesAndFreesWithTheLockHeld) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard);
    void* p = *guard->try_alloc_raw(Layout{40, 8});
    Result<Box<std::uint64_t>> box = guard->try_alloc<std::uint64_t>(9u);
    ASSERT_TRUE(box.has_value());
    EXPECT_EQ(**box, 9u);
    EXPECT_TRUE(guard->check().ok());
    guard->free_raw(p, Layout{40, 8});
    EXPECT_EQ(heap.stats().free_count, 1u);  // freed at once, not deferred
    EXPECT_EQ(heap.stats().deferred_pending, 0u);
    EXPECT_EQ(guard->try_alloc_raw(Layout{0, 1}).error(), Error::InvalidLayout);
    guard->free_raw(nullptr, Layout{8, 8});
  }  // the Box dies first, under the lock: its free is deferred, then drained by the release
  EXPECT_EQ(heap.stats().deferred_free_count, 1u);
  test::expect_pristine(heap);
}

TEST(HeapGuard, FreeOfAnotherHeapsBlockGoesToThatHeap) {
  Region r1(4096), r2(4096);
  Heap& one = test::make_heap(r1);
  Heap& two = test::make_heap(r2);
  void* p = *two.try_alloc_raw(Layout{32, 8});
  {
    std::optional<Heap::Guard> guard = one.try_lock();
    guard->free_raw(p, Layout{32, 8});
    EXPECT_TRUE(guard->check().ok());
  }
  test::expect_pristine(one);
  test::expect_pristine(two);
}
