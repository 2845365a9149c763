// The heap's synchronous API: bootstrap, try_alloc_raw / free_raw, errors,
// alignment, contents, Guard, stats, check.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <optional>
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

class HeapErrors : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(HeapErrors);

TEST_P(HeapErrors, InvalidLayouts) {
  Region region(4096);
  Heap& heap = make_heap(region);
  EXPECT_EQ(heap.try_alloc_raw(Layout{0, 8}).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_raw(Layout{8, 0}).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_raw(Layout{8, 12}).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_raw(Layout{SIZE_MAX, 1}).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_array<std::uint64_t>(SIZE_MAX / 2).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_array<int>(0).error(), Error::InvalidLayout);
  test::expect_pristine(heap);
}

TEST_P(HeapErrors, TooLargeIsExactAtTheEmptyArenaBoundary) {
  Region region(4096);
  Heap& heap = make_heap(region);
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

TEST_P(HeapErrors, NoMemoryWhenFullIsCountedAndRecovers) {
  Region region(4096);
  Heap& heap = make_heap(region);
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

TEST_P(HeapErrors, LockedWhileAGuardIsHeld) {
  Region region(4096);
  Heap& heap = make_heap(region);
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

class HeapAlloc : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(HeapAlloc);

TEST_P(HeapAlloc, HonoursEveryAlignmentFrom1To4096) {
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
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

TEST_P(HeapAlloc, ContentsSurviveNeighboursAllocAndFree) {
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
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

TEST_P(HeapAlloc, FreeRawOfNullIsIgnored) {
  Region region(4096);
  Heap& heap = make_heap(region);
  Heap::free_raw(nullptr, Layout{8, 8});
  EXPECT_EQ(heap.stats().free_count, 0u);  // not counted as a free
  test::expect_pristine(heap);
}

class HeapStats : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(HeapStats);

TEST_P(HeapStats, CountAllocationsFreesAndPeak) {
  Region region(4096);
  Heap& heap = make_heap(region);
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

class HeapGuard : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(HeapGuard);

TEST_P(HeapGuard, AllocatesAndFreesWithTheLockHeld) {
  Region region(4096);
  Heap& heap = make_heap(region);
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

TEST_P(HeapGuard, FreeOfAnotherHeapsBlockGoesToThatHeap) {
  Region r1(4096), r2(4096);
  Heap& one = make_heap(r1);
  Heap& two = make_heap(r2);
  void* p = *two.try_alloc_raw(Layout{32, 8});
  {
    std::optional<Heap::Guard> guard = one.try_lock();
    guard->free_raw(p, Layout{32, 8});
    EXPECT_TRUE(guard->check().ok());
  }
  test::expect_pristine(one);
  test::expect_pristine(two);
}

// --- Backend selection: HeapOptions{.backend = Backend::Tlsf} ---------------------

TEST(HeapBackend, DefaultIsFirstFitAndTlsfIsSelectable) {
  Region r1(4096), r2(4096);
  Heap& ff = test::make_heap(r1);
  Heap& tlsf = test::make_heap(r2, Heap::Options{.backend = Backend::Tlsf});
  EXPECT_EQ(heap_test_access::backend(ff).kind(), Backend::FirstFit);
  EXPECT_NE(heap_test_access::backend(ff).first_fit(), nullptr);
  EXPECT_EQ(heap_test_access::backend(ff).tlsf(), nullptr);
  EXPECT_EQ(heap_test_access::backend(tlsf).kind(), Backend::Tlsf);
  EXPECT_NE(heap_test_access::backend(tlsf).tlsf(), nullptr);
  EXPECT_EQ(heap_test_access::backend(tlsf).first_fit(), nullptr);
  EXPECT_TRUE(tlsf.check().ok());
}

TEST(HeapBackend, InvalidBackendValueIsRejected) {
  Region region(4096);
  const Heap::Options bad{.backend = static_cast<Backend>(7)};
  EXPECT_EQ(Heap::bootstrap(region.span(), bad).error(), Error::InvalidLayout);
}

// TLSF keeps its marks (1 bit per 8 bytes), class heads and two scratch
// granules in the region, between the heap state and the blocks.
TEST(HeapBackend, TlsfMetadataLiesBetweenTheStateAndTheArena) {
  Region region(64 * 1024);
  Heap& heap = test::make_heap(region, Heap::Options{.backend = Backend::Tlsf});
  const detail::AnyBackend& backend = heap_test_access::backend(heap);
  const std::byte* const after_state = region.span().data() + sizeof(Heap);
  EXPECT_GT(backend.arena_begin(), after_state + (64 * 1024) / 64);  // the marks at least
  EXPECT_LE(backend.arena_end(), region.span().data() + region.span().size());
  EXPECT_EQ(static_cast<std::size_t>(backend.arena_end() - backend.arena_begin()), heap.capacity());
  const Stats s = heap.stats();
  EXPECT_EQ(s.capacity_bytes, heap.capacity());
  EXPECT_GT(s.capacity_bytes, 64 * 1024 * 95 / 100);  // metadata ~2%
  EXPECT_EQ(s.free_bytes, s.capacity_bytes);
  test::expect_pristine(heap);
}

TEST(HeapBackend, TlsfRejectsARegionTooSmallForItsMetadataAndOneBlock) {
  Region region(4096);
  const Heap::Options tlsf{.backend = Backend::Tlsf};
  EXPECT_EQ(Heap::bootstrap(region.span().first(sizeof(Heap) + 16), tlsf).error(), Error::RegionTooSmall);
  std::size_t smallest = sizeof(Heap);
  while (!Heap::bootstrap(region.span().first(smallest), tlsf)) smallest += 8;
  EXPECT_LE(smallest, sizeof(Heap) + 256);  // ~170 bytes of metadata, then one 16-byte block
  Heap& heap = *Heap::bootstrap(region.span().first(smallest), tlsf).value();
  EXPECT_GE(heap.capacity(), detail::Tlsf::kMinBlock);
  Result<void*> one = heap.try_alloc_raw(Layout{8, 8});
  ASSERT_TRUE(one.has_value());
  EXPECT_TRUE(heap.check().ok());
  Heap::free_raw(*one, Layout{8, 8});
  test::expect_pristine(heap);
}

// The same operations give the same byte counts with either backend: block
// sizes do not depend on it (one pointer of overhead, the same rounding).
TEST(HeapBackend, BothBackendsCountTheSameBytes) {
  Region r1(256 * 1024), r2(256 * 1024);
  Heap& ff = test::make_heap(r1);
  Heap& tlsf = test::make_heap(r2, Heap::Options{.backend = Backend::Tlsf});
  std::mt19937 rng(7);
  std::vector<std::pair<void*, Layout>> a, b;
  for (int step = 0; step < 3000; ++step) {
    if (a.empty() || rng() % 5 < 3) {
      const Layout layout{1 + rng() % 700, std::size_t{1} << (rng() % 8)};
      Result<void*> pa = ff.try_alloc_raw(layout);
      Result<void*> pb = tlsf.try_alloc_raw(layout);
      ASSERT_TRUE(pa && pb) << "step " << step;  // far from full
      a.emplace_back(*pa, layout);
      b.emplace_back(*pb, layout);
    } else {
      const std::size_t i = rng() % a.size();
      Heap::free_raw(a[i].first, a[i].second);
      Heap::free_raw(b[i].first, b[i].second);
      a[i] = a.back();
      a.pop_back();
      b[i] = b.back();
      b.pop_back();
    }
    const Stats sa = ff.stats(), sb = tlsf.stats();
    ASSERT_EQ(sa.allocated_bytes, sb.allocated_bytes) << "step " << step;
    ASSERT_EQ(sa.peak_allocated_bytes, sb.peak_allocated_bytes);
    ASSERT_EQ(sa.alloc_count, sb.alloc_count);
    ASSERT_EQ(sa.free_count, sb.free_count);
    ASSERT_EQ(sb.allocated_bytes + sb.free_bytes, sb.capacity_bytes);
    ASSERT_TRUE(tlsf.check().ok()) << "step " << step;
  }
  for (auto& [p, l] : a) Heap::free_raw(p, l);
  for (auto& [p, l] : b) Heap::free_raw(p, l);
  test::expect_pristine(ff);
  test::expect_pristine(tlsf);
}

// Fragmentation does not slow TLSF down or make it miss a block that fits:
// 2,000 small holes, then a request that only the large tail can serve.
TEST(HeapBackend, TlsfServesALargeRequestPastManySmallHoles) {
  Region region(256 * 1024);
  Heap& heap = test::make_heap(region, Heap::Options{.backend = Backend::Tlsf});
  const Layout small{24, 8};  // 32-byte blocks
  std::vector<void*> blocks;
  for (int i = 0; i < 4000; ++i) blocks.push_back(*heap.try_alloc_raw(small));
  for (std::size_t i = 0; i < blocks.size(); i += 2) Heap::free_raw(blocks[i], small);
  EXPECT_EQ(heap_test_access::backend(heap).hole_count(), 2001u);  // 2,000 holes and the tail
  const Layout large{4096, 64};
  Result<void*> big = heap.try_alloc_raw(large);
  ASSERT_TRUE(big.has_value());
  EXPECT_GT(static_cast<std::byte*>(*big), static_cast<std::byte*>(blocks.back()));  // from the tail
  EXPECT_EQ(detail::addr(*big) % 64, 0u);
  EXPECT_TRUE(heap.check().ok());
  Heap::free_raw(*big, large);
  for (std::size_t i = 1; i < blocks.size(); i += 2) Heap::free_raw(blocks[i], small);
  test::expect_pristine(heap);
}

// Issue 7's utilisation target through the heap: from a fresh 1 MiB region,
// requests of 8..512 bytes (plus the header) fill at least 95% of it.
TEST(HeapBackend, TlsfUsesAtLeast95PercentOfAMebibyte) {
  Region region(1 << 20);
  Heap& heap = test::make_heap(region, Heap::Options{.backend = Backend::Tlsf});
  std::mt19937 rng(1);
  std::vector<std::pair<void*, Layout>> live;
  std::size_t used = 0;
  for (;;) {
    const Layout layout{8 + rng() % 505, 8};
    Result<void*> r = heap.try_alloc_raw(layout);
    if (!r) {
      EXPECT_EQ(r.error(), Error::NoMemory);
      break;
    }
    live.emplace_back(*r, layout);
    used += layout.size + sizeof(void*);
  }
  EXPECT_GE(static_cast<double>(used), 0.95 * (1 << 20));
  EXPECT_TRUE(heap.check().ok());
  for (auto& [p, l] : live) Heap::free_raw(p, l);
  test::expect_pristine(heap);
}

// Move-assigning a guard releases the lock it held (draining that heap's
// deferred frees), and takes over the other's; self-assignment and assigning
// into a moved-from guard release nothing.
TEST_P(HeapGuard, MoveAssignmentReleasesTheLockItHeldAndTakesOverTheOther) {
  Region ra(4096);
  Region rb(4096);
  Heap& a = make_heap(ra);
  Heap& b = make_heap(rb);
  void* p = *a.try_alloc_raw(test::kPlug);
  std::optional<Heap::Guard> ga = a.try_lock();
  std::optional<Heap::Guard> gb = b.try_lock();
  ASSERT_TRUE(ga && gb);
  Heap::free_raw(p, test::kPlug);  // a is locked: queued
  EXPECT_EQ(a.stats().deferred_pending, 1u);

  *ga = std::move(*gb);
  EXPECT_FALSE(heap_test_access::lock(a).is_locked());
  EXPECT_EQ(a.stats().deferred_pending, 0u);  // drained on the way out
  EXPECT_EQ(a.stats().allocated_bytes, 0u);
  EXPECT_TRUE(heap_test_access::lock(b).is_locked());
  EXPECT_EQ(&ga->heap(), &b);

  Heap::Guard& same = *ga;
  *ga = std::move(same);  // self-assignment: still b's lock
  EXPECT_TRUE(heap_test_access::lock(b).is_locked());
  EXPECT_EQ(&ga->heap(), &b);

  *gb = std::move(*ga);  // into the moved-from guard: nothing to release first
  EXPECT_TRUE(heap_test_access::lock(b).is_locked());
  EXPECT_EQ(&gb->heap(), &b);
  ga.reset();  // moved from: releases nothing
  EXPECT_TRUE(heap_test_access::lock(b).is_locked());
  gb.reset();
  EXPECT_FALSE(heap_test_access::lock(b).is_locked());
  test::expect_pristine(a);
  test::expect_pristine(b);
}

// check() also verifies that the counters agree with the backend: a lost
// update of allocated_bytes is a StatsMismatch naming the heap, through the
// heap and through a guard alike.
TEST_P(HeapStats, CheckFindsCountersThatDisagreeWithTheBackend) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* p = *heap.try_alloc_raw(test::kPlug);
  heap_test_access::skew_allocated_bytes(heap, 8);
  const CheckReport report = heap.check();
  EXPECT_EQ(report.failure, CheckFailure::StatsMismatch);
  EXPECT_EQ(report.address, &heap);
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard.has_value());
    EXPECT_EQ(guard->check().failure, CheckFailure::StatsMismatch);
  }
  heap_test_access::skew_allocated_bytes(heap, -8);
  EXPECT_TRUE(heap.check().ok());
  Heap::free_raw(p, test::kPlug);
  test::expect_pristine(heap);
}
