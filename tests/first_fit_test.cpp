// Unit tests of the first-fit backend (include/mnemos/detail/first_fit.hpp).
// check() is called after every step of every sequence.
#include "mnemos/detail/first_fit.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <random>
#include <utility>
#include <vector>

namespace mnemos::detail {

// White-box access: corrupts the list on purpose to exercise check().
struct first_fit_test_access {
  using Hole = FirstFit::Hole;
  // A Hole object lives at `hole` (it came from for_each_hole), so launder
  // yields a pointer to it.
  static Hole* node(std::byte* hole) { return std::launder(reinterpret_cast<Hole*>(hole)); }
  static void set_size(std::byte* hole, std::size_t size) { node(hole)->size = size; }
  // `target` need not hold a Hole: check() must judge the address before it
  // reads anything there, so the pointer is only stored, never dereferenced.
  static void set_next(std::byte* hole, std::byte* target) {
    node(hole)->next = reinterpret_cast<Hole*>(target);
  }
  static void set_free_bytes(FirstFit& ff, std::size_t n) { ff.free_ = n; }
};

namespace {

using Access = first_fit_test_access;
constexpr std::size_t G = FirstFit::kGranule;
constexpr std::size_t M = FirstFit::kMinBlock;

::testing::AssertionResult Ok(const FirstFit& ff) {
  const CheckReport r = ff.check();
  if (r.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "check() failed: " << to_string(r.failure) << " at "
                                       << r.address;
}

struct HoleSpan {
  std::byte* start;
  std::size_t size;
  bool operator==(const HoleSpan&) const = default;
};

std::vector<HoleSpan> holes(const FirstFit& ff) {
  std::vector<HoleSpan> v;
  ff.for_each_hole([&](std::byte* s, std::size_t n) { v.push_back({s, n}); });
  return v;
}

std::size_t sum_holes(const FirstFit& ff) {
  std::size_t n = 0;
  ff.for_each_hole([&](std::byte*, std::size_t s) { n += s; });
  return n;
}

std::byte* B(void* p) { return static_cast<std::byte*>(p); }

TEST(FirstFit, ConstantsMatchTheHoleNode) {
  EXPECT_EQ(G, alignof(void*));
  EXPECT_EQ(M, 2 * sizeof(void*));
}

TEST(FirstFit, DefaultConstructedIsEmpty) {
  FirstFit ff;
  EXPECT_EQ(ff.capacity(), 0u);
  EXPECT_EQ(ff.free_bytes(), 0u);
  EXPECT_EQ(ff.hole_count(), 0u);
  EXPECT_EQ(ff.allocate(1, 1), nullptr);
  EXPECT_FALSE(ff.fits_when_empty(1, 1));
  EXPECT_TRUE(Ok(ff));
}

TEST(FirstFit, InitAlignsBothEnds) {
  alignas(4096) std::byte arena[256];
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena + 3, 100));
  EXPECT_EQ(ff.arena_begin(), arena + G);
  EXPECT_EQ(ff.arena_end(), arena + (103 / G) * G);
  EXPECT_EQ(ff.capacity(), static_cast<std::size_t>(ff.arena_end() - ff.arena_begin()));
  EXPECT_EQ(ff.free_bytes(), ff.capacity());
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{ff.arena_begin(), ff.capacity()}}));
  EXPECT_TRUE(Ok(ff));

  ASSERT_TRUE(ff.init(arena, sizeof arena));  // re-init discards the old state
  EXPECT_EQ(ff.arena_begin(), arena);
  EXPECT_EQ(ff.capacity(), sizeof arena);
  EXPECT_EQ(ff.hole_count(), 1u);
  EXPECT_TRUE(Ok(ff));
}

TEST(FirstFit, InitRejectsTinyRegion) {
  alignas(4096) std::byte arena[64];
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena, sizeof arena));
  EXPECT_FALSE(ff.init(arena, M - 1));
  // 1 + M bytes starting one byte past the granule: only M + 1 - (G - 1) < M
  // bytes remain once the start is aligned up and the end down.
  EXPECT_FALSE(ff.init(arena + 1, M + 1));
  EXPECT_FALSE(ff.init(nullptr, 0));
  EXPECT_FALSE(ff.init(arena + 1, 3));
  // A failed init leaves the backend empty and unusable, but consistent.
  EXPECT_EQ(ff.capacity(), 0u);
  EXPECT_EQ(ff.free_bytes(), 0u);
  EXPECT_EQ(ff.hole_count(), 0u);
  EXPECT_EQ(ff.allocate(1, 1), nullptr);
  EXPECT_FALSE(ff.fits_when_empty(1, 1));
  EXPECT_TRUE(Ok(ff));

  ASSERT_TRUE(ff.init(arena, M));  // exactly one minimum block is enough
  EXPECT_EQ(ff.capacity(), M);
  ASSERT_TRUE(ff.init(arena + 1, M + G - 1));  // aligned: [arena + G, arena + G + M)
  EXPECT_EQ(ff.capacity(), M);
  EXPECT_TRUE(Ok(ff));
}

TEST(FirstFit, RoundedSize) {
  static_assert(FirstFit::rounded_size(1) == M);
  EXPECT_EQ(FirstFit::rounded_size(0), M);
  EXPECT_EQ(FirstFit::rounded_size(1), M);
  EXPECT_EQ(FirstFit::rounded_size(M), M);
  EXPECT_EQ(FirstFit::rounded_size(M + 1), M + G);
  EXPECT_EQ(FirstFit::rounded_size(3 * G + 1), 4 * G);
  EXPECT_EQ(FirstFit::rounded_size(1000), (1000 + G - 1) / G * G);
}

TEST(FirstFit, SizeOneTakesAMinimumBlock) {
  alignas(4096) std::byte arena[256];
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena, sizeof arena));
  void* a = ff.allocate(1, 1);
  ASSERT_EQ(a, arena);
  EXPECT_EQ(ff.free_bytes(), sizeof arena - M);
  EXPECT_TRUE(Ok(ff));
  void* b = ff.allocate(1, 1);
  EXPECT_EQ(b, arena + M);
  EXPECT_TRUE(Ok(ff));
  ff.deallocate(a, 1);
  EXPECT_TRUE(Ok(ff));
  ff.deallocate(b, 1);
  EXPECT_TRUE(Ok(ff));
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena, sizeof arena}}));
}

TEST(FirstFit, AllocationIsFirstFitInAddressOrder) {
  alignas(4096) std::byte arena[1024];
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena, sizeof arena));
  std::vector<void*> p;
  for (int i = 0; i < 8; ++i) {
    p.push_back(ff.allocate(32, 8));
    ASSERT_EQ(p.back(), arena + 32 * i);  // ascending from the start
    ASSERT_TRUE(Ok(ff));
  }
  // Holes: [32, 64), [128, 192), and the tail [256, 1024).
  ff.deallocate(p[1], 32);
  ASSERT_TRUE(Ok(ff));
  ff.deallocate(p[4], 32);
  ASSERT_TRUE(Ok(ff));
  ff.deallocate(p[5], 32);
  ASSERT_TRUE(Ok(ff));
  ASSERT_EQ(ff.hole_count(), 3u);
  // 48 bytes does not fit the first hole; the second (not the roomier tail) wins.
  EXPECT_EQ(ff.allocate(48, 8), arena + 128);
  ASSERT_TRUE(Ok(ff));
  // 16 bytes fits the first hole, leaving a 16-byte hole behind it.
  EXPECT_EQ(ff.allocate(16, 8), arena + 32);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(ff.allocate(16, 8), arena + 48);
  ASSERT_TRUE(Ok(ff));
  // 16 bytes remain at 176 (between the 48-byte block and p[6]).
  EXPECT_EQ(ff.allocate(16, 8), arena + 176);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(ff.allocate(16, 8), arena + 256);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(ff.hole_count(), 1u);
  EXPECT_EQ(sum_holes(ff), ff.free_bytes());
}

TEST(FirstFit, HonoursAlignmentsUpTo4096) {
  alignas(4096) static std::byte arena[64 * 1024];
  for (std::size_t offset : {std::size_t{0}, G, 3 * G}) {
    FirstFit ff;
    ASSERT_TRUE(ff.init(arena + offset, sizeof arena - offset));
    std::vector<std::pair<void*, std::size_t>> live;
    for (std::size_t align = 1; align <= 4096; align *= 2) {
      for (std::size_t size : {std::size_t{1}, std::size_t{24}, std::size_t{100}}) {
        void* p = ff.allocate(size, align);
        ASSERT_NE(p, nullptr) << "align " << align << " size " << size;
        EXPECT_EQ(addr(p) % align, 0u) << "align " << align;
        EXPECT_EQ(addr(p) % G, 0u);
        EXPECT_GE(B(p), ff.arena_begin());
        EXPECT_LE(B(p) + FirstFit::rounded_size(size), ff.arena_end());
        live.emplace_back(p, size);
        ASSERT_TRUE(Ok(ff));
      }
    }
    for (auto& [p, size] : live) {
      ff.deallocate(p, size);
      ASSERT_TRUE(Ok(ff));
    }
    EXPECT_EQ(ff.hole_count(), 1u);
    EXPECT_EQ(ff.free_bytes(), ff.capacity());
  }
}

TEST(FirstFit, FrontPaddingBecomesAHole) {
  alignas(4096) std::byte arena[8192];
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena, sizeof arena));
  void* a = ff.allocate(16, 8);
  ASSERT_EQ(a, arena);
  ASSERT_TRUE(Ok(ff));
  // The hole now starts at 16, not 4096-aligned: the block goes to
  // align_up(16 + kMinBlock, 4096) = 4096 and [16, 4096) stays a hole.
  void* b = ff.allocate(64, 4096);
  ASSERT_EQ(b, arena + 4096);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena + 16, 4096 - 16}, {arena + 4160, 8192 - 4160}}));
  EXPECT_EQ(ff.free_bytes(), sizeof arena - 16 - 64);
  ff.deallocate(b, 64);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena + 16, 8192 - 16}}));
  ff.deallocate(a, 16);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena, 8192}}));
}

TEST(FirstFit, FrontPaddingIsAtLeastAMinimumBlock) {
  alignas(4096) std::byte arena[256];
  FirstFit ff;
  // The hole starts G past a 2G boundary. The next 2G-aligned address is only
  // G away, too little for a hole, so the block goes to align_up(start + M, 2G).
  ASSERT_TRUE(ff.init(arena + G, sizeof arena - G));
  void* p = ff.allocate(16, 2 * G);
  const std::uintptr_t expect = align_up(addr(arena + G) + M, 2 * G);
  ASSERT_EQ(addr(p), expect);
  ASSERT_TRUE(Ok(ff));
  const auto h = holes(ff);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].start, arena + G);
  EXPECT_EQ(h[0].size, expect - addr(arena + G));
  EXPECT_GE(h[0].size, M);
  // An already aligned hole start takes the block with no front padding.
  ASSERT_TRUE(ff.init(arena, sizeof arena));
  EXPECT_EQ(ff.allocate(16, 256), arena);
  EXPECT_EQ(ff.hole_count(), 1u);
  ASSERT_TRUE(Ok(ff));
}

TEST(FirstFit, BackPaddingTooSmallRejectsTheHole) {
  alignas(4096) std::byte arena[512];
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena, sizeof arena));
  void* a = ff.allocate(32, 8);
  void* b = ff.allocate(32, 8);
  ASSERT_EQ(a, arena);
  ASSERT_EQ(b, arena + 32);
  ff.deallocate(a, 32);  // holes: [0, 32) and [64, 512)
  ASSERT_TRUE(Ok(ff));
  const std::size_t free_before = ff.free_bytes();
  // 24 bytes would leave 8 < kMinBlock behind in the 32-byte hole: rejected,
  // the later hole serves it.
  void* c = ff.allocate(24, 8);
  ASSERT_EQ(c, arena + 64);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(ff.free_bytes(), free_before - 24);  // exactly the rounded size, nothing leaked
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena, 32}, {arena + 88, 512 - 88}}));
  EXPECT_EQ(sum_holes(ff) + 32 + 24, ff.capacity());  // free + live = capacity
  // 16 bytes leave exactly kMinBlock: accepted in the first hole.
  void* d = ff.allocate(16, 8);
  EXPECT_EQ(d, arena);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena + 16, 16}, {arena + 88, 512 - 88}}));
  ff.deallocate(d, 16);
  ASSERT_TRUE(Ok(ff));
  // 32 bytes fill the first hole exactly.
  EXPECT_EQ(ff.allocate(32, 8), arena);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena + 88, 512 - 88}}));
}

TEST(FirstFit, BackPaddingRuleAppliesToTheOnlyHole) {
  alignas(4096) std::byte arena[32];
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena, sizeof arena));
  EXPECT_EQ(ff.allocate(24, 8), nullptr);  // 8 bytes would be stranded
  EXPECT_FALSE(ff.fits_when_empty(24, 8));
  EXPECT_EQ(ff.free_bytes(), 32u);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(ff.allocate(32, 8), arena);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(ff.hole_count(), 0u);
}

// Four 32-byte blocks fill the arena exactly, so no tail hole interferes.
struct Full4 {
  alignas(4096) std::byte arena[128];
  FirstFit ff;
  void* p[4] = {};
};

void Fill(Full4& s) {
  ASSERT_TRUE(s.ff.init(s.arena, sizeof s.arena));
  for (int i = 0; i < 4; ++i) {
    s.p[i] = s.ff.allocate(32, 8);
    ASSERT_EQ(s.p[i], s.arena + 32 * i);
    ASSERT_TRUE(Ok(s.ff));
  }
  ASSERT_EQ(s.ff.hole_count(), 0u);
  ASSERT_EQ(s.ff.free_bytes(), 0u);
}

void Free(Full4& s, int i) {
  s.ff.deallocate(s.p[i], 32);
  ASSERT_TRUE(Ok(s.ff));
}

TEST(FirstFit, MergeNoNeighbour) {
  Full4 s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  FirstFit& ff = s.ff;
  std::byte* arena = s.arena;
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));
  ASSERT_NO_FATAL_FAILURE(Free(s, 3));
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena + 32, 32}, {arena + 96, 32}}));
  EXPECT_EQ(ff.allocate(64, 8), nullptr);  // full of holes, none big enough
  ASSERT_TRUE(Ok(ff));
}

TEST(FirstFit, MergeWithPrevious) {
  Full4 s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  FirstFit& ff = s.ff;
  std::byte* arena = s.arena;
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));
  ASSERT_NO_FATAL_FAILURE(Free(s, 2));  // starts where hole 1 ends
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena + 32, 64}}));
  EXPECT_EQ(ff.free_bytes(), 64u);
}

TEST(FirstFit, MergeWithNext) {
  Full4 s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  FirstFit& ff = s.ff;
  std::byte* arena = s.arena;
  ASSERT_NO_FATAL_FAILURE(Free(s, 2));
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));  // ends where hole 2 starts
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena + 32, 64}}));
  ASSERT_NO_FATAL_FAILURE(Free(s, 0));  // again with next, now as the lowest hole
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena, 96}}));
}

TEST(FirstFit, MergeWithBoth) {
  Full4 s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  FirstFit& ff = s.ff;
  std::byte* arena = s.arena;
  ASSERT_NO_FATAL_FAILURE(Free(s, 0));
  ASSERT_NO_FATAL_FAILURE(Free(s, 2));
  ASSERT_EQ(ff.hole_count(), 2u);
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));  // fills the gap exactly
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena, 96}}));
  ASSERT_NO_FATAL_FAILURE(Free(s, 3));
  EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{arena, 128}}));
  EXPECT_EQ(ff.free_bytes(), ff.capacity());
}

TEST(FirstFit, FreeEverythingInRandomOrderGivesOneHole) {
  alignas(4096) static std::byte arena[32 * 1024];
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    FirstFit ff;
    ASSERT_TRUE(ff.init(arena, sizeof arena));
    struct Live {
      std::byte* p;
      std::size_t size;
      std::byte fill;
    };
    std::vector<Live> live;
    std::size_t live_bytes = 0;
    for (int i = 0; i < 2000; ++i) {
      const std::size_t size = 1 + rng() % 300;
      const std::size_t align = std::size_t{1} << (rng() % 9);
      void* p = ff.allocate(size, align);
      ASSERT_TRUE(Ok(ff));
      if (p == nullptr) {
        if (live.empty()) break;
        continue;
      }
      ASSERT_EQ(addr(p) % align, 0u);
      const auto fill = static_cast<std::byte>(i);
      std::memset(p, static_cast<int>(fill), size);
      live.push_back({B(p), size, fill});
      live_bytes += FirstFit::rounded_size(size);
      ASSERT_EQ(ff.free_bytes() + live_bytes, ff.capacity());
      // Now and then free a random block, so holes form in the middle.
      if (rng() % 3 == 0) {
        const std::size_t k = rng() % live.size();
        ff.deallocate(live[k].p, live[k].size);
        ASSERT_TRUE(Ok(ff));
        live_bytes -= FirstFit::rounded_size(live[k].size);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
    // Live blocks are disjoint, inside the arena, and their bytes untouched.
    std::sort(live.begin(), live.end(), [](const Live& x, const Live& y) { return x.p < y.p; });
    for (std::size_t k = 0; k < live.size(); ++k) {
      ASSERT_GE(live[k].p, ff.arena_begin());
      ASSERT_LE(live[k].p + FirstFit::rounded_size(live[k].size), ff.arena_end());
      if (k + 1 < live.size()) {
        ASSERT_LE(live[k].p + FirstFit::rounded_size(live[k].size), live[k + 1].p);
      }
      for (std::size_t j = 0; j < live[k].size; ++j) ASSERT_EQ(live[k].p[j], live[k].fill);
    }
    std::shuffle(live.begin(), live.end(), rng);
    for (const Live& l : live) {
      ff.deallocate(l.p, l.size);
      ASSERT_TRUE(Ok(ff));
    }
    EXPECT_EQ(holes(ff), (std::vector<HoleSpan>{{ff.arena_begin(), ff.capacity()}}));
    EXPECT_EQ(ff.free_bytes(), ff.capacity());
  }
}

TEST(FirstFit, FitsWhenEmptyIsExactAtTheBoundary) {
  alignas(4096) std::byte buffer[8192] = {};
  // A start that is 4096-aligned but not 8192-aligned, wherever the stack is.
  std::byte* const arena = addr(buffer) % 8192 == 0 ? buffer + 4096 : buffer;
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena, 4096));
  const std::size_t cap = ff.capacity();
  EXPECT_TRUE(ff.fits_when_empty(cap, 1));
  EXPECT_TRUE(ff.fits_when_empty(cap, 4096));
  EXPECT_FALSE(ff.fits_when_empty(cap + 1, 1));
  EXPECT_FALSE(ff.fits_when_empty(cap, 8192));  // the start is not 8192-aligned
  EXPECT_FALSE(ff.fits_when_empty(cap - G, 1));  // would strand G < kMinBlock bytes
  EXPECT_TRUE(ff.fits_when_empty(cap - M, 1));
  EXPECT_FALSE(ff.fits_when_empty(SIZE_MAX, 1));
  EXPECT_FALSE(ff.fits_when_empty(SIZE_MAX - G, 8));
  EXPECT_FALSE(ff.fits_when_empty(16, std::size_t{1} << (sizeof(std::size_t) * 8 - 1)));
  EXPECT_FALSE(ff.fits_when_empty(SIZE_MAX, std::size_t{1} << (sizeof(std::size_t) * 8 - 1)));
  EXPECT_FALSE(ff.fits_when_empty(16, 3));  // not a power of two
  EXPECT_FALSE(ff.fits_when_empty(16, 0));
  EXPECT_TRUE(Ok(ff));

  // The same sizes really allocate (or not) on the empty arena.
  void* p = ff.allocate(cap, 1);
  EXPECT_EQ(p, arena);
  ff.deallocate(p, cap);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(ff.allocate(cap + 1, 1), nullptr);
  EXPECT_EQ(ff.allocate(cap - G, 1), nullptr);
  EXPECT_EQ(ff.allocate(SIZE_MAX, 1), nullptr);
  EXPECT_EQ(ff.allocate(16, std::size_t{1} << (sizeof(std::size_t) * 8 - 1)), nullptr);
  EXPECT_EQ(ff.allocate(16, 3), nullptr);
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(ff.free_bytes(), cap);
}

TEST(FirstFit, FitsWhenEmptyAgreesWithAllocateOnAnEmptyArena) {
  alignas(4096) std::byte arena[4096 + 256];
  std::mt19937 rng(7);
  for (std::size_t offset : {std::size_t{0}, G, 2 * G, 5 * G}) {
    for (std::size_t length : {std::size_t{64}, std::size_t{200}, std::size_t{4096}, std::size_t{4200}}) {
      FirstFit ff;
      ASSERT_TRUE(ff.init(arena + offset, length));
      for (int i = 0; i < 300; ++i) {
        const std::size_t size = 1 + rng() % (ff.capacity() + 32);
        const std::size_t align = std::size_t{1} << (rng() % 14);
        const bool fits = ff.fits_when_empty(size, align);
        void* p = ff.allocate(size, align);
        ASSERT_EQ(fits, p != nullptr) << "offset " << offset << " length " << length << " size "
                                      << size << " align " << align;
        ASSERT_TRUE(Ok(ff));
        if (p != nullptr) ff.deallocate(p, size);
        ASSERT_TRUE(Ok(ff));
        ASSERT_EQ(ff.hole_count(), 1u);
      }
    }
  }
}

TEST(FirstFit, ReturnsNullptrWhenFull) {
  alignas(4096) std::byte arena[1024];
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena, sizeof arena));
  std::vector<void*> p;
  while (void* q = ff.allocate(48, 16)) {
    p.push_back(q);
    ASSERT_TRUE(Ok(ff));
  }
  ASSERT_TRUE(Ok(ff));
  EXPECT_EQ(ff.free_bytes() + p.size() * 48, ff.capacity());
  EXPECT_EQ(sum_holes(ff), ff.free_bytes());
  // Whatever is left is too small for another 48-byte block.
  EXPECT_LT(ff.free_bytes(), 48u + M);
  EXPECT_EQ(ff.allocate(48, 16), nullptr);
  EXPECT_EQ(ff.allocate(ff.capacity(), 1), nullptr);
  EXPECT_EQ(ff.allocate(SIZE_MAX, 1), nullptr);
  ASSERT_TRUE(Ok(ff));
  // Fill the rest with minimum blocks, then nothing at all fits.
  while (void* q = ff.allocate(1, 1)) {
    (void)q;
    ASSERT_TRUE(Ok(ff));
  }
  EXPECT_EQ(ff.free_bytes(), 0u);
  EXPECT_EQ(ff.hole_count(), 0u);
  EXPECT_EQ(ff.allocate(1, 1), nullptr);
  ASSERT_TRUE(Ok(ff));
}

TEST(FirstFit, DeallocateNullIsIgnored) {
  alignas(4096) std::byte arena[64];
  FirstFit ff;
  ASSERT_TRUE(ff.init(arena, sizeof arena));
  ff.deallocate(nullptr, 16);
  EXPECT_EQ(ff.free_bytes(), 64u);
  EXPECT_TRUE(Ok(ff));
}

// Holes [0, 32) and [64, 512); [32, 64) is live.
struct TwoHoles {
  alignas(4096) std::byte arena[512];
  FirstFit ff;
  std::byte* first = arena;
  std::byte* second = arena + 64;
};

void Split(TwoHoles& s) {
  ASSERT_TRUE(s.ff.init(s.arena, sizeof s.arena));
  void* a = s.ff.allocate(32, 8);
  ASSERT_EQ(s.ff.allocate(32, 8), s.arena + 32);
  s.ff.deallocate(a, 32);
  ASSERT_TRUE(Ok(s.ff));
  ASSERT_EQ(s.ff.hole_count(), 2u);
}

void ExpectFailure(const FirstFit& ff, CheckFailure f, const void* where) {
  const CheckReport r = ff.check();
  EXPECT_EQ(r.failure, f) << to_string(r.failure);
  EXPECT_EQ(r.address, where);
}

TEST(FirstFit, CorruptSizeNotAGranuleMultiple) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  Access::set_size(s.first, 13 + G);
  ExpectFailure(s.ff, CheckFailure::HoleBadSize, s.first);
}

TEST(FirstFit, CorruptSizeBelowMinimum) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  Access::set_size(s.second, G);
  ExpectFailure(s.ff, CheckFailure::HoleBadSize, s.second);
}

TEST(FirstFit, CorruptSizeShrunkMiscountsFreeBytes) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  Access::set_size(s.first, 16);  // still a valid hole, but 16 bytes went missing
  ExpectFailure(s.ff, CheckFailure::FreeBytesMismatch, &s.ff);
}

TEST(FirstFit, CorruptFreeByteCounterWrong) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  Access::set_free_bytes(s.ff, s.ff.free_bytes() + G);
  ExpectFailure(s.ff, CheckFailure::FreeBytesMismatch, &s.ff);
}

TEST(FirstFit, CorruptSizeRunsPastTheArena) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  Access::set_size(s.second, 4096);
  ExpectFailure(s.ff, CheckFailure::HoleOutOfBounds, s.second);
}

TEST(FirstFit, CorruptTwoHolesTouch) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  Access::set_size(s.first, 64);  // now ends where the second begins: a missed merge
  ExpectFailure(s.ff, CheckFailure::HoleAdjacent, s.second);
}

TEST(FirstFit, CorruptHolesOverlap) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  Access::set_size(s.first, 96);
  ExpectFailure(s.ff, CheckFailure::HoleOverlap, s.second);
}

TEST(FirstFit, CorruptListGoesBackwards) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  Access::set_next(s.second, s.first);  // a cycle: the walk must still stop
  ExpectFailure(s.ff, CheckFailure::HoleUnordered, s.first);
}

TEST(FirstFit, CorruptNextIsMisaligned) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  std::byte* const bogus = s.arena + 32 + G / 2;  // inside the live block, off the granule
  Access::set_next(s.first, bogus);
  ExpectFailure(s.ff, CheckFailure::HoleMisaligned, bogus);
}

TEST(FirstFit, CorruptNextLeavesTheArena) {
  TwoHoles s;
  // Only the lower half of the buffer is the arena; one block, then one hole.
  ASSERT_TRUE(s.ff.init(s.arena, sizeof s.arena / 2));
  ASSERT_EQ(s.ff.allocate(32, 8), s.arena);
  ASSERT_TRUE(Ok(s.ff));
  std::byte* const outside = s.arena + 384;
  Access::set_next(s.arena + 32, outside);
  ExpectFailure(s.ff, CheckFailure::HoleOutOfBounds, outside);
}

TEST(FirstFit, CorruptNodeStraddlesTheEnd) {
  TwoHoles s;
  ASSERT_NO_FATAL_FAILURE(Split(s));
  std::byte* const near_end = s.arena + sizeof s.arena - G;  // no room for a node
  Access::set_size(s.second, sizeof s.arena - 64 - 2 * M);   // ends 2M before the end
  Access::set_next(s.second, near_end);
  ExpectFailure(s.ff, CheckFailure::HoleOutOfBounds, near_end);
}

}  // namespace
}  // namespace mnemos::detail
