// The sanitizer-aware arena (include/mnemos/detail/asan.hpp, src/heap.cpp):
// under AddressSanitizer, free and never-allocated arena bytes, header words
// and alignment padding are poisoned, payloads are not, so a user's
// use-after-free or overflow *inside* the arena is reported.
//
// Compiled in every build. The tests that need ASan's shadow (reports,
// __asan_address_is_poisoned) skip without it: legitimately only in the
// non-ASan builds; in the `asan` preset they run. The others (round trips,
// deferred frees) run everywhere and check poisoning only when ASan is on.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "mnemos/detail/asan.hpp"
#include "test_support.hpp"

#if MNEMOS_ASAN
#include <sanitizer/asan_interface.h>
#endif

using namespace mnemos;
using test::Region;

// Skips a test that observes ASan's shadow or expects its report.
#define MNEMOS_REQUIRE_ASAN()                                   \
  do {                                                          \
    if (!detail::kAsan) GTEST_SKIP() << "needs AddressSanitizer"; \
  } while (false)

namespace {

constexpr const char* kReport = "use-after-poison|heap-use-after-free|use-after-free";

// Whether the byte at p is poisoned (always false without ASan).
bool poisoned(const void* p) {
#if MNEMOS_ASAN
  return __asan_address_is_poisoned(p) != 0;
#else
  (void)p;
  return false;
#endif
}

// The first poisoned byte of [p, p + n), or nullptr (always nullptr without ASan).
const void* first_poisoned(const void* p, std::size_t n) {
#if MNEMOS_ASAN
  return __asan_region_is_poisoned(const_cast<void*>(p), n);
#else
  (void)p;
  (void)n;
  return nullptr;
#endif
}

// Every byte of [p, p + n) poisoned (vacuously true without ASan).
bool all_poisoned(const void* p, std::size_t n) {
  if (!detail::kAsan) return true;
  const auto* b = static_cast<const std::byte*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (!poisoned(b + i)) return false;
  }
  return true;
}

// A user's access, as ASan instruments it (volatile: not optimised away).
std::uint8_t peek(const void* p) { return *static_cast<const volatile std::uint8_t*>(p); }
void poke(void* p) { *static_cast<volatile std::uint8_t*>(p) = 0x5a; }

std::byte* bytes(void* p) { return static_cast<std::byte*>(p); }

// The arena: the backend's blocks, after the heap's state in the region.
std::byte* arena_of(const Heap& heap) { return heap_test_access::backend(heap).arena_begin(); }
std::size_t arena_size(const Heap& heap) { return heap.capacity(); }

// The free spans of the heap's backend, all poisoned, nodes included.
bool holes_poisoned(const Heap& heap) {
  bool ok = true;
  heap_test_access::backend(heap).for_each_hole([&](std::byte* start, std::size_t size) {
    ok = ok && all_poisoned(start, size);
  });
  return ok;
}

// The payload wholly addressable and the header word wholly poisoned.
::testing::AssertionResult live_block_ok(void* payload, Layout layout) {
  if (!detail::kAsan) return ::testing::AssertionSuccess();
  if (const void* bad = first_poisoned(payload, layout.size)) {
    const std::ptrdiff_t at = static_cast<const std::byte*>(bad) - bytes(payload);
    return ::testing::AssertionFailure() << "payload byte " << at << " of " << layout.size << " is poisoned";
  }
  if (!all_poisoned(detail::header_slot(payload), detail::kHeaderSize)) {
    return ::testing::AssertionFailure() << "header word not poisoned";
  }
  return ::testing::AssertionSuccess();
}

struct Msg {
  std::uint64_t a;
  std::uint64_t b;
  std::uint64_t c;
  std::uint64_t d;
};

}  // namespace

// --- what ASan reports --------------------------------------------------------

class AsanPoisonDeathTest : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(AsanPoisonDeathTest);

TEST_P(AsanPoisonDeathTest, UseAfterFreeOfABoxPayloadIsReported) {
  MNEMOS_REQUIRE_ASAN();
  Region region(4096);
  Heap& heap = make_heap(region);
  Msg* dangling = nullptr;
  {
    Result<Box<Msg>> box = heap.try_alloc<Msg>(Msg{1, 2, 3, 4});
    ASSERT_TRUE(box.has_value());
    dangling = box->get();
  }  // frees the block: the heap was unlocked, so at once
  EXPECT_EQ(heap.stats().allocated_bytes, 0u);
  EXPECT_DEATH(peek(&dangling->c), kReport);
  EXPECT_DEATH(poke(&dangling->a), kReport);  // the first word too (now the backend's node)
}

TEST_P(AsanPoisonDeathTest, UseAfterFreeWhileTheFreeIsDeferredIsReported) {
  MNEMOS_REQUIRE_ASAN();
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout layout{64, 8};
  void* p = *heap.try_alloc_raw(layout);
  std::optional<Heap::Guard> guard = heap.try_lock();
  ASSERT_TRUE(guard);
  Heap::free_raw(p, layout);  // deferred: the lock is held
  ASSERT_EQ(heap.stats().deferred_pending, 1u);
  // Past the DeferredNode (block bytes 0..15 = header word + payload word 0).
  EXPECT_DEATH(peek(bytes(p) + 8), kReport);
  EXPECT_DEATH(poke(bytes(p) + 63), kReport);
  guard.reset();
  EXPECT_TRUE(all_poisoned(detail::header_slot(p), detail::kHeaderSize + layout.size));
  test::expect_pristine(heap);
}

TEST_P(AsanPoisonDeathTest, OverflowIntoTheNextBlocksHeaderIsReported) {
  MNEMOS_REQUIRE_ASAN();
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout layout{24, 8};  // block = 8 (header) + 24 = 32 bytes
  void* p = *heap.try_alloc_raw(layout);
  void* q = *heap.try_alloc_raw(layout);
  ASSERT_EQ(bytes(q), bytes(p) + 32);  // first fit: adjacent
  ASSERT_EQ(static_cast<void*>(detail::header_slot(q)), static_cast<void*>(bytes(p) + 24));
  poke(bytes(p) + 23);  // the last payload byte is the user's
  EXPECT_DEATH(poke(bytes(p) + 24), kReport);
  EXPECT_DEATH(peek(bytes(p) + 24), kReport);
  EXPECT_DEATH(peek(bytes(q) - 1), kReport);  // underflow of q into its own header
  Heap::free_raw(p, layout);
  Heap::free_raw(q, layout);
  test::expect_pristine(heap);
}

TEST_P(AsanPoisonDeathTest, OverflowIntoFreeSpaceIsReported) {
  MNEMOS_REQUIRE_ASAN();
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout layout{24, 8};
  void* p = *heap.try_alloc_raw(layout);  // the rest of the arena is one hole after it
  EXPECT_DEATH(poke(bytes(p) + 24), kReport);   // the hole's node
  EXPECT_DEATH(peek(bytes(p) + 200), kReport);  // deep in the hole
  Heap::free_raw(p, layout);
  test::expect_pristine(heap);
}

TEST_P(AsanPoisonDeathTest, OverflowIntoTheRoundingTailIsReported) {
  MNEMOS_REQUIRE_ASAN();
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout layout{13, 1};  // 13 payload bytes in a 24-byte block
  void* p = *heap.try_alloc_raw(layout);
  poke(bytes(p) + 12);
  EXPECT_DEATH(poke(bytes(p) + 13), kReport);  // same granule: ASan's partial granule
  Heap::free_raw(p, layout);
  test::expect_pristine(heap);
}

TEST_P(AsanPoisonDeathTest, ReadingNeverAllocatedArenaBytesIsReported) {
  MNEMOS_REQUIRE_ASAN();
  Region region(4096);
  Heap& heap = make_heap(region);
  std::byte* arena = arena_of(heap);
  EXPECT_TRUE(all_poisoned(arena, arena_size(heap)));
  EXPECT_DEATH(peek(arena), kReport);  // the backend's first node
  EXPECT_DEATH(peek(arena + 1000), kReport);
  EXPECT_DEATH(peek(arena + arena_size(heap) - 1), kReport);
  void* p = *heap.try_alloc_raw(Layout{100, 8});
  EXPECT_DEATH(peek(arena + 2000), kReport);  // still never allocated
  Heap::free_raw(p, Layout{100, 8});
  test::expect_pristine(heap);
}

// --- the shadow, state by state ----------------------------------------------

class AsanPoison : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(AsanPoison);

TEST_P(AsanPoison, HeapStateIsNeverPoisoned) {
  MNEMOS_REQUIRE_ASAN();
  Region region(4096);
  Heap& heap = make_heap(region);
  void* p = *heap.try_alloc_raw(Layout{64, 8});
  EXPECT_EQ(first_poisoned(region.span().data(), sizeof(Heap)), nullptr);
  Heap::free_raw(p, Layout{64, 8});
  EXPECT_EQ(first_poisoned(region.span().data(), sizeof(Heap)), nullptr);
  EXPECT_TRUE(heap.check().ok());
}

TEST_P(AsanPoison, HeaderWordAndAlignmentPaddingArePoisonedWhileLive) {
  MNEMOS_REQUIRE_ASAN();
  Region region(4096);
  Heap& heap = make_heap(region);
  for (std::size_t align : {1u, 8u, 16u, 64u, 256u}) {
    const Layout layout{40, align};
    void* p = *heap.try_alloc_raw(layout);
    ASSERT_EQ(detail::addr(p) % align, 0u);
    EXPECT_TRUE(live_block_ok(p, layout)) << "align " << align;
    // For align > word the block starts `align` bytes before the payload; all
    // of it but the payload is padding + header: poisoned.
    std::byte* start = detail::block_start(p, align);
    EXPECT_TRUE(all_poisoned(start, static_cast<std::size_t>(bytes(p) - start))) << "align " << align;
    Heap::free_raw(p, layout);
  }
  test::expect_pristine(heap);
}

TEST_P(AsanPoison, WholePayloadIsAddressableAfterAllocation) {
  MNEMOS_REQUIRE_ASAN();
  Region region(16 * 1024);
  Heap& heap = make_heap(region);
  std::vector<std::pair<void*, Layout>> live;
  for (std::size_t size : {1u, 7u, 8u, 9u, 13u, 16u, 24u, 100u, 1000u}) {
    for (std::size_t align : {1u, 4u, 8u, 16u, 64u}) {
      const Layout layout{size, align};
      Result<void*> r = heap.try_alloc_raw(layout);
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(first_poisoned(*r, size), nullptr) << size << "/" << align;
      EXPECT_TRUE(poisoned(bytes(*r) + size)) << size << "/" << align;  // tail, header, padding or hole
      EXPECT_TRUE(live_block_ok(*r, layout));
      std::memset(*r, 0xab, size);
      live.emplace_back(*r, layout);
    }
  }
  // The typed family and the Guard go through the same carve().
  std::optional<Result<Array<std::uint32_t>>> xs = heap.try_alloc_array<std::uint32_t>(37);
  ASSERT_TRUE(xs->has_value());
  EXPECT_EQ(first_poisoned((*xs)->data(), 37 * sizeof(std::uint32_t)), nullptr);
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard);
    void* g = *guard->try_alloc_raw(Layout{48, 16});
    EXPECT_TRUE(live_block_ok(g, Layout{48, 16}));
    guard->free_raw(g, Layout{48, 16});
    EXPECT_TRUE(all_poisoned(g, 48));
  }
  for (auto [p, layout] : live) {
    Heap::free_raw(p, layout);
    EXPECT_TRUE(all_poisoned(p, layout.size));
  }
  xs.reset();
  EXPECT_TRUE(holes_poisoned(heap));
  test::expect_pristine(heap);
  EXPECT_TRUE(all_poisoned(arena_of(heap), arena_size(heap)));
}

TEST_P(AsanPoison, BlockHandedToAWaiterIsAddressable) {
  MNEMOS_REQUIRE_ASAN();
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout slot{56, 8};
  std::vector<void*> blocks = test::fill(heap, slot);
  ASSERT_FALSE(blocks.empty());
  // Whatever room the backend leaves after the slots: taken too.
  const std::vector<void*> plugs = test::plug(heap);
  int wakes = 0;
  auto fut = heap.alloc_raw(Layout{40, 8});
  EXPECT_FALSE(fut.poll(Waker{[](void* c) { ++*static_cast<int*>(c); }, &wakes}).has_value());
  void* freed = blocks.back();
  blocks.pop_back();
  Heap::free_raw(freed, slot);  // serve_head() carves the block for the waiter
  EXPECT_EQ(wakes, 1);
  std::optional<Result<void*>> r = fut.poll(Waker{});
  ASSERT_TRUE(r && r->has_value());
  void* p = **r;
  EXPECT_TRUE(live_block_ok(p, Layout{40, 8}));
  EXPECT_TRUE(poisoned(bytes(p) + 40));  // the rest of the 64-byte block (16 bytes) is not the user's
  std::memset(p, 1, 40);
  Heap::free_raw(p, Layout{40, 8});
  for (void* b : blocks) Heap::free_raw(b, slot);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}

TEST_P(AsanPoison, BootstrapOverARegionUsedBeforeHasNoFalsePositives) {
  Region region(4096);
  Heap& first = make_heap(region);
  void* p = *first.try_alloc_raw(Layout{64, 8});
  (void)p;  // abandoned with the heap: the region is handed over again
  Heap& second = make_heap(region);
  EXPECT_EQ(first_poisoned(region.span().data(), sizeof(Heap)), nullptr);
  EXPECT_TRUE(all_poisoned(arena_of(second), arena_size(second)));
  void* q = *second.try_alloc_raw(Layout{64, 8});
  std::memset(q, 7, 64);
  Heap::free_raw(q, Layout{64, 8});
  test::expect_pristine(second);
}

TEST_P(AsanPoison, BareBackendLeavesUnpoisonedMemoryAlone) {
  // The first-fit backend's own tests write nodes directly: a backend over
  // memory nobody poisoned must never poison it.
  alignas(16) std::byte buffer[512];
  detail::FirstFit ff;
  ASSERT_TRUE(ff.init(buffer, sizeof buffer));
  void* a = ff.allocate(40, 8);
  void* b = ff.allocate(24, 16);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ff.deallocate(a, 40);
  EXPECT_EQ(ff.hole_count(), 2u);
  EXPECT_TRUE(ff.check().ok());
  ff.deallocate(b, 24);
  EXPECT_EQ(ff.hole_count(), 1u);
  EXPECT_TRUE(ff.check().ok());
  EXPECT_EQ(first_poisoned(buffer, sizeof buffer), nullptr);
}

// --- no false positives, consistent arena (every build) --------------------------

TEST_P(AsanPoison, FreeAndReallocateRoundTripHasNoFalsePositives) {
  Region region(32 * 1024);
  Heap& heap = make_heap(region);
  std::mt19937 rng(20240611);
  struct Live {
    void* p;
    Layout layout;
    std::uint8_t seed;
  };
  std::vector<Live> live;
  for (int step = 0; step < 4000; ++step) {
    const bool alloc = live.empty() || rng() % 5 < 3;
    if (alloc) {
      const Layout layout{1 + rng() % 300, std::size_t{1} << (rng() % 7)};
      Result<void*> r = heap.try_alloc_raw(layout);
      if (!r) {
        ASSERT_EQ(r.error(), Error::NoMemory);
        continue;
      }
      const auto seed = static_cast<std::uint8_t>(rng());
      // Every payload byte is the user's: read and write them all.
      std::memset(*r, seed, layout.size);
      ASSERT_TRUE(live_block_ok(*r, layout));
      live.push_back({*r, layout, seed});
    } else {
      const std::size_t i = rng() % live.size();
      const Live l = live[i];
      for (std::size_t k = 0; k < l.layout.size; ++k) {
        ASSERT_EQ(static_cast<std::uint8_t>(bytes(l.p)[k]), l.seed) << "payload changed";
      }
      live[i] = live.back();
      live.pop_back();
      if (rng() % 2 == 0) {
        Heap::free_raw(l.p, l.layout);
      } else {
        std::optional<Heap::Guard> guard = heap.try_lock();
        ASSERT_TRUE(guard);
        guard->free_raw(l.p, l.layout);
      }
      ASSERT_TRUE(all_poisoned(l.p, l.layout.size));
    }
    if (step % 64 == 0) {
      ASSERT_TRUE(heap.check().ok());
      ASSERT_TRUE(holes_poisoned(heap));
    }
  }
  for (const Live& l : live) Heap::free_raw(l.p, l.layout);
  test::expect_pristine(heap);
  EXPECT_TRUE(all_poisoned(arena_of(heap), arena_size(heap)));
}

TEST_P(AsanPoison, DeferredFreesLeaveTheArenaConsistent) {
  Region region(16 * 1024);
  Heap& heap = make_heap(region);
  std::vector<std::pair<void*, Layout>> blocks;
  for (std::size_t i = 0; i < 24; ++i) {
    const Layout layout{8 + 24 * i, i % 3 == 0 ? 64u : 8u};
    void* p = *heap.try_alloc_raw(layout);
    std::memset(p, static_cast<int>(i), layout.size);
    blocks.emplace_back(p, layout);
  }
  {
    std::optional<Heap::Guard> guard = heap.try_lock();
    ASSERT_TRUE(guard);
    // Half freed from this context, half from another thread: all deferred.
    for (std::size_t i = 0; i < blocks.size(); i += 2) Heap::free_raw(blocks[i].first, blocks[i].second);
    std::thread other([&] {
      for (std::size_t i = 1; i < blocks.size(); i += 2) Heap::free_raw(blocks[i].first, blocks[i].second);
    });
    other.join();
    EXPECT_EQ(heap.stats().deferred_pending, blocks.size());
    if (detail::kAsan) {
      for (auto [p, layout] : blocks) {
        // The DeferredNode (the block's first 16 bytes) is the queue's; the
        // rest of the block is poisoned already.
        std::byte* start = detail::block_start(p, layout.align);
        EXPECT_EQ(first_poisoned(start, sizeof(detail::DeferredNode)), nullptr);
        const std::size_t block =
            detail::FirstFit::rounded_size(detail::header_offset(layout.align) + layout.size);
        const std::size_t node = sizeof(detail::DeferredNode);
        EXPECT_TRUE(all_poisoned(start + node, block - node));
      }
    }
    // The holder's allocation drains the queue first, and gets clean memory.
    void* g = *guard->try_alloc_raw(Layout{200, 8});
    EXPECT_EQ(heap.stats().deferred_pending, 0u);
    EXPECT_TRUE(live_block_ok(g, Layout{200, 8}));
    std::memset(g, 3, 200);
    EXPECT_TRUE(guard->check().ok());
    // And a deferred free again, drained by the release this time.
    std::thread([&] { Heap::free_raw(g, Layout{200, 8}); }).join();
    EXPECT_EQ(heap.stats().deferred_pending, 1u);
  }
  EXPECT_EQ(heap.stats().deferred_pending, 0u);
  for (auto [p, layout] : blocks) EXPECT_TRUE(all_poisoned(p, layout.size));
  EXPECT_TRUE(holes_poisoned(heap));
  test::expect_pristine(heap);
  EXPECT_TRUE(all_poisoned(arena_of(heap), arena_size(heap)));
}
