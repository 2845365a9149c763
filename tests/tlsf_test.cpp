// Unit tests of the TLSF backend (include/mnemos/detail/tlsf.hpp).
// check() is called after every step of every sequence.
#include "mnemos/detail/tlsf.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "mnemos/detail/block_header.hpp"
#include "mnemos/detail/deferred_node.hpp"
#include "mnemos/detail/first_fit.hpp"

namespace mnemos::detail {

// White-box access: the granule index space, the step-counting entry points,
// and deliberate corruption of the structure to exercise check().
struct tlsf_test_access {
  static constexpr std::size_t G = Tlsf::kGranule;

  static std::size_t index(const Tlsf& t, const void* p) {
    return static_cast<std::size_t>(static_cast<const std::byte*>(p) - t.base_) / G;
  }
  static std::byte* at(const Tlsf& t, std::size_t k) { return t.at(k); }
  static std::size_t granules(const Tlsf& t) { return t.granules_; }

  static std::uint32_t load(const std::byte* p) {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(std::byte* p, std::uint32_t v) { std::memcpy(p, &v, sizeof v); }
  // Fields of the free block starting at `block` (src/tlsf.cpp): size +0,
  // next and prev (of a block of 3 granules or more) where Tlsf keeps them;
  // the end tag is in the last 4 bytes of its last granule.
  static void set_size(std::byte* block, std::uint32_t g) { store(block + 0, g); }
  static void set_next(std::byte* block, std::uint32_t k) { store(block + Tlsf::kNextAt, k); }
  static void set_prev(std::byte* block, std::uint32_t k) { store(block + Tlsf::kPrevAtLong, k); }
  static void set_tag(std::byte* last_granule, std::uint32_t g) { store(last_granule + G - 4, g); }
  static std::size_t end_index(const Tlsf& t) { return t.end_index(); }

  static bool marked(const Tlsf& t, std::size_t k) { return t.marked(k); }
  static void flip_mark(Tlsf& t, std::size_t k) {
    if (t.marked(k)) {
      t.clear_mark(k);
    } else {
      t.set_mark(k);
    }
  }
  static std::uint32_t& head(Tlsf& t, std::size_t g) { return t.head(Tlsf::class_of(g)); }
  static void flip_sl_bit(Tlsf& t, unsigned fl, unsigned sl) { t.sl_bitmap_[fl] ^= std::uint32_t{1} << sl; }
  static void flip_fl_bit(Tlsf& t, unsigned fl) { t.fl_bitmap_ ^= std::uint32_t{1} << fl; }
  static void set_free_bytes(Tlsf& t, std::size_t n) { t.free_ = n; }

  // Classes as (first level, second level).
  static std::pair<unsigned, unsigned> split(unsigned c) { return {c / Tlsf::kSlCount, c % Tlsf::kSlCount}; }
  static std::pair<unsigned, unsigned> class_of(std::size_t g) { return split(Tlsf::class_of(g)); }
  static std::pair<unsigned, unsigned> search_class(std::size_t g) { return split(Tlsf::search_class(g)); }

  static void* allocate(Tlsf& t, std::size_t size, std::size_t align, std::size_t& steps) {
    TlsfSteps s;
    void* p = t.allocate_impl(size, align, s);
    steps = s.count;
    return p;
  }
  static void deallocate(Tlsf& t, void* p, std::size_t size, std::size_t& steps) {
    TlsfSteps s;
    t.deallocate_impl(p, size, s);
    steps = s.count;
  }
};

namespace {

using Access = tlsf_test_access;
constexpr std::size_t G = Tlsf::kGranule;
constexpr std::size_t M = Tlsf::kMinBlock;

::testing::AssertionResult Ok(const Tlsf& t) {
  const CheckReport r = t.check();
  if (r.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "check() failed: " << to_string(r.failure) << " at " << r.address;
}

struct HoleSpan {
  std::byte* start;
  std::size_t size;
  bool operator==(const HoleSpan&) const = default;
};

std::vector<HoleSpan> holes(const Tlsf& t) {
  std::vector<HoleSpan> v;
  t.for_each_hole([&](std::byte* s, std::size_t n) { v.push_back({s, n}); });
  return v;
}

std::byte* B(void* p) { return static_cast<std::byte*>(p); }

// An independent statement of TLSF's good-fit rounding (tlsf.hpp, "Size
// classes"): below 64 granules every size is a class; from 64 on, the classes
// of [2^b, 2^(b+1)) are 2^(b-5) granules wide. Returns g rounded up to one.
std::size_t model_round_up(std::size_t g) {
  std::size_t width = 1;
  while (g >= 64 * width) width *= 2;
  return (g + width - 1) / width * width;
}

// The worst-case front padding of T2, in granules.
std::size_t model_extra(std::size_t align) { return align <= G ? 0 : align / G - 1; }

TEST(Tlsf, ConstantsFitADeferredNode) {
  EXPECT_EQ(G, 8u);
  EXPECT_EQ(M, 16u);
  EXPECT_GE(M, 2 * sizeof(void*));
  EXPECT_GE(M, sizeof(DeferredNode));
  EXPECT_EQ(G % alignof(DeferredNode), 0u);
}

TEST(Tlsf, SizeClasses) {
  // Exact classes below 64 granules (512 B): no rounding for small requests.
  for (std::size_t g = 1; g < 64; ++g) {
    EXPECT_EQ(Access::search_class(g), Access::class_of(g));
    EXPECT_EQ(model_round_up(g), g);
    EXPECT_EQ(Access::class_of(g), std::make_pair(static_cast<unsigned>(g / 32), static_cast<unsigned>(g % 32)));
  }
  EXPECT_EQ(Access::class_of(64), std::make_pair(2u, 0u));
  EXPECT_EQ(Access::class_of(65), std::make_pair(2u, 0u));
  EXPECT_EQ(Access::class_of(66), std::make_pair(2u, 1u));
  EXPECT_EQ(Access::class_of(127), std::make_pair(2u, 31u));
  EXPECT_EQ(Access::class_of(128), std::make_pair(3u, 0u));
  // Classes are ordered intervals. The search class is the class of the
  // model's rounding: the first class whose every member is >= g, so a block
  // found there fits without looking at it.
  std::pair<unsigned, unsigned> last{0, 1};
  for (std::size_t g = 1; g < (1u << 17); ++g) {
    const auto c = Access::class_of(g);
    ASSERT_GE(c, last);
    last = c;
    const std::size_t floor = model_round_up(g);
    const auto search = Access::search_class(g);
    ASSERT_EQ(search, Access::class_of(floor)) << g;
    ASSERT_GE(floor, g);
    ASSERT_LT(Access::class_of(floor - 1), search) << g;  // floor is the class's smallest member
    ASSERT_TRUE(floor == g || search > c) << g;
  }
  for (std::size_t g : {std::size_t{1} << 20, (std::size_t{1} << 30) - 2, std::size_t{3} << 30}) {
    EXPECT_EQ(Access::search_class(g), Access::class_of(model_round_up(g)));
    EXPECT_LT(Access::search_class(g).first, Tlsf::kFlCount);
  }
}

TEST(Tlsf, DefaultConstructedIsEmpty) {
  Tlsf t;
  EXPECT_EQ(t.capacity(), 0u);
  EXPECT_EQ(t.free_bytes(), 0u);
  EXPECT_EQ(t.hole_count(), 0u);
  EXPECT_EQ(t.arena_begin(), nullptr);
  EXPECT_EQ(t.allocate(1, 1), nullptr);
  EXPECT_EQ(t.allocate(0, 1), nullptr);
  EXPECT_EQ(t.allocate(0, 64), nullptr);
  EXPECT_FALSE(t.fits_when_empty(1, 1));
  t.deallocate(nullptr, 16);
  EXPECT_TRUE(Ok(t));
}

TEST(Tlsf, InitPlacesMetadataFirstAndAlignsBothEnds) {
  alignas(4096) static std::byte arena[8192];
  Tlsf t;
  ASSERT_TRUE(t.init(arena + 3, 5000));
  EXPECT_EQ(addr(t.arena_begin()) % G, 0u);
  EXPECT_GT(t.arena_begin(), arena + 3);  // the marks and heads come first
  EXPECT_EQ(t.arena_end(), arena + 3 + (5000 - (G - 3)) / G * G + (G - 3));
  EXPECT_LE(t.arena_end(), arena + 3 + 5000);
  EXPECT_EQ(t.capacity(), static_cast<std::size_t>(t.arena_end() - t.arena_begin()));
  EXPECT_EQ(t.free_bytes(), t.capacity());
  EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{t.arena_begin(), t.capacity()}}));
  // Metadata: 32 heads of 4 bytes for each of at most 6 first levels, and
  // one mark bit per granule (in 8-byte words).
  // Lost: the start and end rounding, the heads, the marks, their rounding
  // to a granule, and the two scratch granules.
  EXPECT_GE(t.capacity(), 5000 - 2 * G - 6 * 32 * 4 - (5000 / G / 64 + 1) * 8 - 3 * G);
  EXPECT_TRUE(Ok(t));

  ASSERT_TRUE(t.init(arena, sizeof arena));  // re-init discards the old state
  EXPECT_EQ(t.arena_end(), arena + sizeof arena);
  EXPECT_EQ(t.hole_count(), 1u);
  EXPECT_EQ(t.free_bytes(), t.capacity());
  EXPECT_TRUE(Ok(t));
}

TEST(Tlsf, InitRejectsTinyRegion) {
  alignas(4096) static std::byte arena[1024];
  Tlsf t;
  EXPECT_FALSE(t.init(nullptr, 0));
  EXPECT_FALSE(t.init(nullptr, 1024));
  EXPECT_FALSE(t.init(arena + 1, 3));
  // There is a smallest region that holds one block; every larger one works.
  std::size_t smallest = 0;
  for (std::size_t n = 0; n <= sizeof arena; ++n) {
    const bool ok = t.init(arena, n);
    ASSERT_TRUE(Ok(t));
    if (ok && smallest == 0) smallest = n;
    if (smallest != 0) {
      ASSERT_TRUE(ok) << n;
      ASSERT_EQ(t.capacity(), t.free_bytes());
    } else {
      // A failed init leaves the backend empty and unusable, but consistent.
      ASSERT_EQ(t.capacity(), 0u);
      ASSERT_EQ(t.free_bytes(), 0u);
      ASSERT_EQ(t.hole_count(), 0u);
      ASSERT_EQ(t.allocate(1, 1), nullptr);
      ASSERT_FALSE(t.fits_when_empty(1, 1));
    }
  }
  ASSERT_NE(smallest, 0u);
  EXPECT_LE(smallest, 192u);  // marks (one word), one first level of heads, scratch, one block
  ASSERT_TRUE(t.init(arena, smallest));
  EXPECT_EQ(t.capacity(), M);
  EXPECT_EQ(t.allocate(1, 1), t.arena_begin());
  EXPECT_TRUE(Ok(t));
  // Misaligned start: the same region one byte later needs G - 1 more bytes.
  EXPECT_FALSE(t.init(arena + 1, smallest));
  EXPECT_TRUE(t.init(arena + 1, smallest + G - 1));
  EXPECT_TRUE(Ok(t));
}

TEST(Tlsf, RoundedSize) {
  static_assert(Tlsf::rounded_size(1) == M);
  EXPECT_EQ(Tlsf::rounded_size(0), M);
  EXPECT_EQ(Tlsf::rounded_size(1), M);
  EXPECT_EQ(Tlsf::rounded_size(16), 16u);
  EXPECT_EQ(Tlsf::rounded_size(17), 24u);
  EXPECT_EQ(Tlsf::rounded_size(24), 24u);
  EXPECT_EQ(Tlsf::rounded_size(25), 32u);
  EXPECT_EQ(Tlsf::rounded_size(1000), 1000u);
  EXPECT_EQ(Tlsf::rounded_size(1001), 1008u);
  for (std::size_t n = 0; n < 5000; ++n) {
    // Idempotent: the heap may pass the rounded size back to deallocate().
    ASSERT_EQ(Tlsf::rounded_size(Tlsf::rounded_size(n)), Tlsf::rounded_size(n));
  }
}

TEST(Tlsf, RoundsLikeFirstFit) {
  // The heap's byte counts and the owners' overhead do not depend on the backend.
  for (std::size_t n = 0; n < 5000; ++n) ASSERT_EQ(Tlsf::rounded_size(n), FirstFit::rounded_size(n)) << n;
}

// Box<T>'s cost as tests/owners_test.cpp measures it (Box.OverheadIsExactlyOnePointer),
// through the heap's own block request: fill a fresh arena with blocks of
// `layout`, then bytes used per block.
std::size_t bytes_per_block(Layout layout, std::size_t* count) {
  alignas(4096) static std::byte arena[64 * 1024];
  Tlsf t;
  EXPECT_TRUE(t.init(arena, sizeof arena));
  const BlockRequest r = *block_request(layout);
  std::size_t n = 0;
  while (t.allocate(r.size, r.align) != nullptr) ++n;
  EXPECT_TRUE(Ok(t));
  *count = n;
  const std::size_t used = t.capacity() - t.free_bytes();
  EXPECT_LT(t.free_bytes(), used / n + 64);  // the arena really is full
  return used / n;
}

TEST(Tlsf, BoxOverheadIsExactlyOnePointer) {
  std::size_t n = 0;
  EXPECT_EQ(bytes_per_block(Layout{16, 8}, &n), 16u + sizeof(void*));
  EXPECT_EQ(bytes_per_block(Layout{24, 8}, &n), 24u + sizeof(void*));
  EXPECT_EQ(bytes_per_block(Layout{64, 8}, &n), 64u + sizeof(void*));
  EXPECT_EQ(bytes_per_block(Layout{16, 16}, &n), 32u);  // 16 + 8 rounded to 16
  EXPECT_EQ(bytes_per_block(Layout{48, 16}, &n), 64u);  // 48 + 8 rounded to 16
  EXPECT_EQ(bytes_per_block(Layout{64, 64}, &n), 128u);  // 64 + 8 rounded to 64
  EXPECT_GT(n, 400u);
}

TEST(Tlsf, AllocateAccountsExactlyTheRoundedSize) {
  alignas(4096) static std::byte arena[4096];
  Tlsf t;
  ASSERT_TRUE(t.init(arena, sizeof arena));
  const std::size_t cap = t.capacity();
  void* a = t.allocate(1, 1);
  ASSERT_EQ(a, t.arena_begin());
  EXPECT_EQ(t.free_bytes(), cap - M);
  ASSERT_TRUE(Ok(t));
  void* b = t.allocate(17, 8);
  EXPECT_EQ(b, t.arena_begin() + M);
  EXPECT_EQ(t.free_bytes(), cap - M - 24);
  ASSERT_TRUE(Ok(t));
  t.deallocate(a, Tlsf::rounded_size(1));  // the rounded size is accepted too
  ASSERT_TRUE(Ok(t));
  t.deallocate(b, 17);
  ASSERT_TRUE(Ok(t));
  EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{t.arena_begin(), cap}}));
}

TEST(Tlsf, HonoursAlignmentsUpTo4096) {
  alignas(4096) static std::byte arena[96 * 1024];
  for (std::size_t offset : {std::size_t{0}, std::size_t{1}, G, 3 * G, std::size_t{1000}}) {
    Tlsf t;
    ASSERT_TRUE(t.init(arena + offset, sizeof arena - offset));
    std::vector<std::pair<void*, std::size_t>> live;
    for (std::size_t align = 1; align <= 4096; align *= 2) {
      for (std::size_t size : {std::size_t{1}, std::size_t{24}, std::size_t{100}, std::size_t{4096}}) {
        void* p = t.allocate(size, align);
        ASSERT_NE(p, nullptr) << "align " << align << " size " << size;
        EXPECT_EQ(addr(p) % align, 0u) << "align " << align;
        EXPECT_EQ(addr(p) % G, 0u);
        EXPECT_GE(B(p), t.arena_begin());
        EXPECT_LE(B(p) + Tlsf::rounded_size(size), t.arena_end());
        std::memset(p, 0xA5, size);
        live.emplace_back(p, size);
        ASSERT_TRUE(Ok(t));
      }
    }
    std::mt19937 rng(static_cast<std::uint32_t>(offset));
    std::shuffle(live.begin(), live.end(), rng);
    for (auto& [p, size] : live) {
      t.deallocate(p, size);
      ASSERT_TRUE(Ok(t));
    }
    EXPECT_EQ(t.hole_count(), 1u);
    EXPECT_EQ(t.free_bytes(), t.capacity());
  }
}

TEST(Tlsf, FrontPaddingStaysAFreeBlock) {
  alignas(4096) static std::byte arena[16384];
  Tlsf t;
  ASSERT_TRUE(t.init(arena, sizeof arena));
  std::byte* const begin = t.arena_begin();
  void* a = t.allocate(16, 8);
  ASSERT_EQ(a, begin);
  ASSERT_TRUE(Ok(t));
  // The free block now starts at begin + 16; the next 4096-aligned address
  // is whole granules later, and the granules in between stay free.
  std::byte* const aligned = begin + ((0 - addr(begin + 16)) & 4095) + 16;
  ASSERT_EQ(addr(aligned) % 4096, 0u);
  void* b = t.allocate(64, 4096);
  ASSERT_EQ(b, aligned);
  ASSERT_TRUE(Ok(t));
  if (aligned != begin + 16) {
    EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{begin + 16, static_cast<std::size_t>(aligned - begin - 16)},
                                               {aligned + 64, static_cast<std::size_t>(t.arena_end() - aligned - 64)}}));
  }
  EXPECT_EQ(t.free_bytes(), t.capacity() - 16 - 64);
  t.deallocate(b, 64);
  ASSERT_TRUE(Ok(t));
  EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{begin + 16, t.capacity() - 16}}));
  t.deallocate(a, 16);
  ASSERT_TRUE(Ok(t));
  EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{begin, t.capacity()}}));
}

TEST(Tlsf, OneGranulePaddingBecomesAFragment) {
  // Unlike first fit, an 8-byte front padding is allowed: it becomes a
  // fragment (a free block in no list) that merges when a neighbour is freed.
  alignas(4096) static std::byte arena[4096];
  Tlsf t;
  ASSERT_TRUE(t.init(arena, sizeof arena));
  std::byte* const begin = t.arena_begin();
  // A first block that leaves the free space at 8 mod 16.
  const std::size_t first = addr(begin) % 16 == 0 ? 24 : 16;
  void* a = t.allocate(first, 8);
  ASSERT_EQ(a, begin);
  ASSERT_TRUE(Ok(t));
  void* b = t.allocate(32, 16);
  ASSERT_EQ(B(b), begin + first + G);
  ASSERT_TRUE(Ok(t));
  EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{begin + first, G},
                                             {begin + first + G + 32, t.capacity() - first - G - 32}}));
  EXPECT_EQ(t.free_bytes(), t.capacity() - first - 32);
  t.deallocate(a, first);  // merges with the fragment
  ASSERT_TRUE(Ok(t));
  EXPECT_EQ(holes(t).front(), (HoleSpan{begin, first + G}));
  t.deallocate(b, 32);
  ASSERT_TRUE(Ok(t));
  EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{begin, t.capacity()}}));
}

// Blocks of 32 bytes fill the whole arena exactly (the last one takes the
// rest), so no tail free block interferes with the merges.
struct Full {
  alignas(4096) std::byte arena[4096];
  Tlsf t;
  std::vector<void*> p;
  std::size_t last_size = 0;
};

void Fill(Full& s) {
  ASSERT_TRUE(s.t.init(s.arena, sizeof s.arena));
  for (int i = 0; i < 6; ++i) {
    s.p.push_back(s.t.allocate(32, 8));
    ASSERT_EQ(s.p.back(), s.t.arena_begin() + 32 * i);
    ASSERT_TRUE(Ok(s.t));
  }
  s.last_size = s.t.free_bytes();
  s.p.push_back(s.t.allocate(s.last_size, 8));  // the rest, exactly
  ASSERT_EQ(s.p.back(), s.t.arena_begin() + 32 * 6);
  ASSERT_EQ(s.t.hole_count(), 0u);
  ASSERT_EQ(s.t.free_bytes(), 0u);
  ASSERT_EQ(s.t.allocate(1, 1), nullptr);
  ASSERT_TRUE(Ok(s.t));
}

void Free(Full& s, int i) {
  s.t.deallocate(s.p[static_cast<std::size_t>(i)], 32);
  ASSERT_TRUE(Ok(s.t));
}

TEST(Tlsf, SplitTakesTheFrontAndFilesTheRest) {
  Full s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));
  ASSERT_NO_FATAL_FAILURE(Free(s, 3));  // two free blocks of 32 bytes
  std::byte* const a = s.t.arena_begin();
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 32, 32}, {a + 96, 32}}));
  // A two-granule request takes the front of the most recently freed block
  // of the first non-empty class (the list head) and files the rest.
  EXPECT_EQ(s.t.allocate(16, 8), a + 96);
  ASSERT_TRUE(Ok(s.t));
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 32, 32}, {a + 112, 16}}));
  EXPECT_EQ(s.t.allocate(16, 8), a + 112);  // exact fit in the 2-granule class
  ASSERT_TRUE(Ok(s.t));
  EXPECT_EQ(s.t.allocate(48, 8), nullptr);  // free blocks exist, none large enough
  ASSERT_TRUE(Ok(s.t));
  EXPECT_EQ(s.t.free_bytes(), 32u);
}

TEST(Tlsf, BackRestOfOneGranuleBecomesAFragment) {
  Full s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  std::byte* const a = s.t.arena_begin();
  ASSERT_NO_FATAL_FAILURE(Free(s, 2));  // 32 bytes free at a + 64
  // 24 bytes leave 8: first fit would refuse the hole (R3); here the rest is
  // a fragment, free but in no list, and nothing is refused.
  void* p = s.t.allocate(24, 8);
  ASSERT_EQ(p, a + 64);
  ASSERT_TRUE(Ok(s.t));
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 88, G}}));
  EXPECT_EQ(s.t.free_bytes(), G);
  EXPECT_EQ(s.t.allocate(1, 1), nullptr);  // a fragment serves nothing
  ASSERT_TRUE(Ok(s.t));
  s.t.deallocate(p, 24);  // merges with the fragment after it
  ASSERT_TRUE(Ok(s.t));
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 64, 32}}));
  EXPECT_EQ(s.t.allocate(32, 8), a + 64);
  ASSERT_TRUE(Ok(s.t));
}

TEST(Tlsf, MergeWithFragmentsOnBothSides) {
  Full s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  std::byte* const a = s.t.arena_begin();
  // [ 0 ][ 1: 24 + fragment ][ 2: 24 + fragment ][ 3 ] ...
  ASSERT_NO_FATAL_FAILURE(Free(s, 2));
  void* x = s.t.allocate(24, 8);
  ASSERT_EQ(x, a + 64);
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));
  void* y = s.t.allocate(24, 8);
  ASSERT_EQ(y, a + 32);
  ASSERT_TRUE(Ok(s.t));
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 56, G}, {a + 88, G}}));
  // Freeing x joins both fragments; neither was in a list.
  std::size_t steps = 0;
  Access::deallocate(s.t, x, 24, steps);
  ASSERT_TRUE(Ok(s.t));
  EXPECT_LE(steps, Tlsf::kDeallocateMaxSteps);
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 56, 40}}));
  s.t.deallocate(y, 24);  // and the block before them
  ASSERT_TRUE(Ok(s.t));
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 32, 64}}));
}

TEST(Tlsf, MergeNoNeighbour) {
  Full s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  std::byte* const a = s.t.arena_begin();
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));
  ASSERT_NO_FATAL_FAILURE(Free(s, 3));
  ASSERT_NO_FATAL_FAILURE(Free(s, 5));
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 32, 32}, {a + 96, 32}, {a + 160, 32}}));
}

TEST(Tlsf, MergeWithPrevious) {
  Full s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  std::byte* const a = s.t.arena_begin();
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));
  ASSERT_NO_FATAL_FAILURE(Free(s, 2));  // starts where the free block 1 ends
  //   [ 0 ][ 1 free ][ 2 freed ][ 3 ]  ->  [ 0 ][ free (64 bytes) ][ 3 ]
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 32, 64}}));
  EXPECT_EQ(s.t.free_bytes(), 64u);
  EXPECT_EQ(s.t.allocate(64, 8), a + 32);  // the merged block serves a 64-byte request
  ASSERT_TRUE(Ok(s.t));
}

TEST(Tlsf, MergeWithNext) {
  Full s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  std::byte* const a = s.t.arena_begin();
  ASSERT_NO_FATAL_FAILURE(Free(s, 2));
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));  // ends where the free block 2 starts
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a + 32, 64}}));
  ASSERT_NO_FATAL_FAILURE(Free(s, 0));  // again, now at the arena's start
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a, 96}}));
}

TEST(Tlsf, MergeWithBoth) {
  Full s;
  ASSERT_NO_FATAL_FAILURE(Fill(s));
  std::byte* const a = s.t.arena_begin();
  ASSERT_NO_FATAL_FAILURE(Free(s, 0));
  ASSERT_NO_FATAL_FAILURE(Free(s, 2));
  ASSERT_EQ(s.t.hole_count(), 2u);
  ASSERT_NO_FATAL_FAILURE(Free(s, 1));  // fills the gap exactly
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a, 96}}));
  ASSERT_NO_FATAL_FAILURE(Free(s, 4));
  s.t.deallocate(s.p[6], s.last_size);  // the last block, at the arena's end
  ASSERT_TRUE(Ok(s.t));
  ASSERT_NO_FATAL_FAILURE(Free(s, 5));  // joins block 4 and the last one
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a, 96}, {a + 128, s.t.capacity() - 128}}));
  ASSERT_NO_FATAL_FAILURE(Free(s, 3));
  EXPECT_EQ(holes(s.t), (std::vector<HoleSpan>{{a, s.t.capacity()}}));
  EXPECT_EQ(s.t.free_bytes(), s.t.capacity());
}

TEST(Tlsf, MinimumBlocksMerge) {
  // Free blocks of kMinBlock bytes hold size, both links and tag exactly.
  alignas(4096) static std::byte arena[2048];
  Tlsf t;
  ASSERT_TRUE(t.init(arena, sizeof arena));
  std::vector<void*> p;
  while (void* q = t.allocate(1, 1)) {
    p.push_back(q);
    ASSERT_TRUE(Ok(t));
  }
  ASSERT_EQ(p.size() * M + t.free_bytes(), t.capacity());
  ASSERT_EQ(t.free_bytes(), t.capacity() % M);  // at most one fragment at the end
  for (std::size_t i = 0; i < p.size(); i += 2) {
    t.deallocate(p[i], 1);
    ASSERT_TRUE(Ok(t));
  }
  EXPECT_EQ(t.hole_count(), (p.size() + 1) / 2 + (t.capacity() % M != 0 && p.size() % 2 == 0 ? 1 : 0));
  for (std::size_t i = 1; i < p.size(); i += 2) {
    t.deallocate(p[i], 1);
    ASSERT_TRUE(Ok(t));
  }
  EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{t.arena_begin(), t.capacity()}}));
}

TEST(Tlsf, FreeEverythingInRandomOrderGivesOneBlock) {
  alignas(4096) static std::byte arena[32 * 1024];
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    Tlsf t;
    ASSERT_TRUE(t.init(arena + seed % 3 * 8, sizeof arena - seed % 3 * 8));
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
      void* p = t.allocate(size, align);
      ASSERT_TRUE(Ok(t));
      if (p != nullptr) {
        ASSERT_EQ(addr(p) % align, 0u);
        const auto fill = static_cast<std::byte>(i);
        std::memset(p, static_cast<int>(fill), size);
        live.push_back({B(p), size, fill});
        live_bytes += Tlsf::rounded_size(size);
        ASSERT_EQ(t.free_bytes() + live_bytes, t.capacity());
      }
      if (!live.empty() && rng() % 3 == 0) {
        const std::size_t k = rng() % live.size();
        t.deallocate(live[k].p, live[k].size);
        ASSERT_TRUE(Ok(t));
        live_bytes -= Tlsf::rounded_size(live[k].size);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
    // Live blocks are disjoint, inside the arena, and their bytes untouched.
    std::sort(live.begin(), live.end(), [](const Live& x, const Live& y) { return x.p < y.p; });
    for (std::size_t k = 0; k < live.size(); ++k) {
      ASSERT_GE(live[k].p, t.arena_begin());
      ASSERT_LE(live[k].p + Tlsf::rounded_size(live[k].size), t.arena_end());
      if (k + 1 < live.size()) {
        ASSERT_LE(live[k].p + Tlsf::rounded_size(live[k].size), live[k + 1].p);
      }
      for (std::size_t j = 0; j < live[k].size; ++j) ASSERT_EQ(live[k].p[j], live[k].fill);
    }
    std::shuffle(live.begin(), live.end(), rng);
    for (const Live& l : live) {
      t.deallocate(l.p, l.size);
      ASSERT_TRUE(Ok(t));
    }
    EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{t.arena_begin(), t.capacity()}}));
    EXPECT_EQ(t.free_bytes(), t.capacity());
  }
}

TEST(Tlsf, FitsWhenEmptyIsExactAtTheBoundary) {
  alignas(8192) static std::byte buffer[3 * 4096];
  Tlsf t;
  ASSERT_TRUE(t.init(buffer, sizeof buffer));
  const std::size_t cap = t.capacity();
  std::byte* const begin = t.arena_begin();
  EXPECT_TRUE(t.fits_when_empty(cap, 1));
  EXPECT_TRUE(t.fits_when_empty(cap, G));
  EXPECT_TRUE(t.fits_when_empty(cap - 1, 1));
  EXPECT_TRUE(t.fits_when_empty(cap - G, 1));  // nothing refused: the 8-byte rest is a fragment
  EXPECT_FALSE(t.fits_when_empty(cap + 1, 1));
  EXPECT_FALSE(t.fits_when_empty(SIZE_MAX, 1));
  EXPECT_FALSE(t.fits_when_empty(SIZE_MAX - G, 8));
  EXPECT_FALSE(t.fits_when_empty(16, 3));  // not a power of two
  EXPECT_FALSE(t.fits_when_empty(16, 0));
  for (std::size_t align = 2 * G; align <= 8192; align *= 2) {
    const std::size_t pad = (0 - addr(begin)) & (align - 1);
    EXPECT_TRUE(t.fits_when_empty(cap - pad, align)) << align;
    EXPECT_FALSE(t.fits_when_empty(cap - pad + 1, align)) << align;
  }
  // An alignment larger than the arena fits only if the start happens to be aligned.
  const std::size_t huge = std::size_t{1} << (sizeof(std::size_t) * 8 - 1);
  EXPECT_FALSE(t.fits_when_empty(16, huge));
  EXPECT_FALSE(t.fits_when_empty(SIZE_MAX, huge));
  const std::size_t low = std::size_t{1} << std::countr_zero(addr(begin));  // begin's own alignment
  EXPECT_TRUE(t.fits_when_empty(cap, low));
  EXPECT_FALSE(t.fits_when_empty(cap, 2 * low));  // would need front padding
  EXPECT_TRUE(Ok(t));

  // The same requests really allocate (or not) on the empty arena.
  void* p = t.allocate(cap, 1);
  EXPECT_EQ(p, begin);
  t.deallocate(p, cap);
  ASSERT_TRUE(Ok(t));
  p = t.allocate(cap, low);
  EXPECT_EQ(p, begin);
  t.deallocate(p, cap);
  ASSERT_TRUE(Ok(t));
  EXPECT_EQ(t.allocate(cap + 1, 1), nullptr);
  EXPECT_EQ(t.allocate(cap, 2 * low), nullptr);
  EXPECT_EQ(t.allocate(SIZE_MAX, 1), nullptr);
  EXPECT_EQ(t.allocate(16, huge), nullptr);
  EXPECT_EQ(t.allocate(16, 3), nullptr);
  for (std::size_t align = 2 * G; align <= 8192; align *= 2) {
    const std::size_t pad = (0 - addr(begin)) & (align - 1);
    EXPECT_EQ(t.allocate(cap - pad + 1, align), nullptr) << align;
    p = t.allocate(cap - pad, align);
    EXPECT_EQ(p, begin + pad) << align;
    t.deallocate(p, cap - pad);
    ASSERT_TRUE(Ok(t));
  }
  EXPECT_EQ(t.free_bytes(), cap);
  EXPECT_EQ(t.hole_count(), 1u);
}

TEST(Tlsf, FitsWhenEmptyAgreesWithAllocateOnAnEmptyArena) {
  alignas(4096) static std::byte arena[16384 + 512];
  std::mt19937 rng(7);
  for (std::size_t offset : {std::size_t{0}, std::size_t{3}, G, 2 * G, 5 * G, std::size_t{200}}) {
    for (std::size_t length : {std::size_t{200}, std::size_t{300}, std::size_t{1000}, std::size_t{4096},
                               std::size_t{4200}, std::size_t{16384}}) {
      Tlsf t;
      ASSERT_TRUE(t.init(arena + offset, length)) << length;
      ASSERT_TRUE(Ok(t));
      for (int i = 0; i < 400; ++i) {
        // Sizes cluster around the capacity, where the answer changes.
        const std::size_t size = i % 2 == 0 ? 1 + rng() % (t.capacity() + 64)
                                            : t.capacity() + 32 - rng() % std::min<std::size_t>(t.capacity(), 600);
        const std::size_t align = std::size_t{1} << (rng() % 15);
        const bool fits = t.fits_when_empty(size, align);
        void* p = t.allocate(size, align);
        ASSERT_EQ(fits, p != nullptr) << "offset " << offset << " length " << length << " size " << size
                                      << " align " << align;
        ASSERT_TRUE(Ok(t));
        if (p != nullptr) {
          ASSERT_EQ(addr(p) % align, 0u);
          t.deallocate(p, size);
        }
        ASSERT_TRUE(Ok(t));
        ASSERT_EQ(t.hole_count(), 1u);
      }
    }
  }
}

TEST(Tlsf, ReturnsNullptrWhenFull) {
  alignas(4096) static std::byte arena[4096];
  Tlsf t;
  ASSERT_TRUE(t.init(arena, sizeof arena));
  std::vector<void*> p;
  while (void* q = t.allocate(48, 8)) {
    p.push_back(q);
    ASSERT_TRUE(Ok(t));
  }
  ASSERT_TRUE(Ok(t));
  EXPECT_EQ(t.free_bytes() + p.size() * 48, t.capacity());
  EXPECT_LT(t.free_bytes(), 48u);  // exact classes: whatever is left is smaller
  EXPECT_EQ(t.allocate(48, 8), nullptr);
  EXPECT_EQ(t.allocate(t.capacity(), 1), nullptr);
  EXPECT_EQ(t.allocate(SIZE_MAX, 1), nullptr);
  ASSERT_TRUE(Ok(t));
  while (void* q = t.allocate(1, 1)) {
    (void)q;
    ASSERT_TRUE(Ok(t));
  }
  EXPECT_LT(t.free_bytes(), M);  // nothing, or one fragment
  EXPECT_EQ(t.hole_count(), t.free_bytes() / G);
  EXPECT_EQ(t.allocate(1, 1), nullptr);
  EXPECT_EQ(t.allocate(0, 1), nullptr);
  EXPECT_EQ(t.allocate(1, 4096), nullptr);
  ASSERT_TRUE(Ok(t));
  for (void* q : p) {
    t.deallocate(q, 48);
    ASSERT_TRUE(Ok(t));
  }
}

// Builds the free blocks of two sizes 101 and 100 granules (class [100, 102)
// at first level 2) separated by live blocks, with nothing else free.
struct SameClass {
  alignas(4096) std::byte arena[16384];
  Tlsf t;
  void* b101 = nullptr;
  void* b100 = nullptr;
};

void BuildSameClass(SameClass& s) {
  ASSERT_TRUE(s.t.init(s.arena, sizeof s.arena));
  s.b101 = s.t.allocate(101 * G, 8);
  ASSERT_NE(s.t.allocate(G, 8), nullptr);
  s.b100 = s.t.allocate(100 * G, 8);
  ASSERT_NE(s.t.allocate(s.t.free_bytes(), 8), nullptr);  // the rest
  ASSERT_EQ(s.t.free_bytes(), 0u);
  ASSERT_TRUE(Ok(s.t));
}

TEST(Tlsf, FallbackProbeServesABlockBelowTheRoundedClass) {
  SameClass s;
  ASSERT_NO_FATAL_FAILURE(BuildSameClass(s));
  ASSERT_EQ(Access::class_of(101), Access::class_of(100));
  ASSERT_EQ(Access::search_class(101), Access::class_of(102));
  s.t.deallocate(s.b101, 101 * G);
  ASSERT_TRUE(Ok(s.t));
  // The good-fit search (class of 102) finds nothing; the probe of the head of
  // class [100, 102) finds 101 granules, enough.
  EXPECT_EQ(s.t.allocate(101 * G, 8), s.b101);
  ASSERT_TRUE(Ok(s.t));
}

TEST(Tlsf, FallbackProbeLooksAtTheHeadOnly) {
  SameClass s;
  ASSERT_NO_FATAL_FAILURE(BuildSameClass(s));
  s.t.deallocate(s.b101, 101 * G);
  s.t.deallocate(s.b100, 100 * G);  // now the head of the class
  ASSERT_TRUE(Ok(s.t));
  // T3: the head (100) is too small and nothing lies in the class of 102 or
  // above, so the request fails although the 101-granule block would fit. This
  // is the price of O(1); a request of a class boundary never meets it.
  EXPECT_EQ(s.t.allocate(101 * G, 8), nullptr);
  EXPECT_EQ(s.t.allocate(100 * G, 8), s.b100);
  ASSERT_TRUE(Ok(s.t));
  EXPECT_EQ(s.t.allocate(101 * G, 8), s.b101);  // now the head
  ASSERT_TRUE(Ok(s.t));
}

TEST(Tlsf, DeallocateNullIsIgnored) {
  alignas(4096) static std::byte arena[1024];
  Tlsf t;
  ASSERT_TRUE(t.init(arena, sizeof arena));
  const std::size_t before = t.free_bytes();
  t.deallocate(nullptr, 16);
  EXPECT_EQ(t.free_bytes(), before);
  EXPECT_TRUE(Ok(t));
}

// The worst case of first fit: 5,000 small free blocks, then a request that
// fits only in the free block at the end. TLSF never looks at the small blocks:
// the white-box step count is the same as on a fresh arena, and within the
// documented bounds.
TEST(Tlsf, FiveThousandHolesCostNoMoreSteps) {
  alignas(4096) static std::byte arena[1 << 20];
  std::size_t fresh_alloc = 0;
  std::size_t fresh_free = 0;
  for (std::size_t holes_wanted : {std::size_t{0}, std::size_t{10}, std::size_t{5000}}) {
    Tlsf t;
    ASSERT_TRUE(t.init(arena, sizeof arena));
    std::vector<void*> small;
    for (std::size_t i = 0; i < 2 * holes_wanted; ++i) {
      small.push_back(t.allocate(48, 8));
      ASSERT_NE(small.back(), nullptr);
    }
    for (std::size_t i = 0; i < small.size(); i += 2) t.deallocate(small[i], 48);
    ASSERT_TRUE(Ok(t));
    ASSERT_EQ(t.hole_count(), holes_wanted + 1);  // plus the tail

    std::size_t alloc_steps = 0;
    void* big = Access::allocate(t, 1000, 8, alloc_steps);
    ASSERT_NE(big, nullptr);
    if (!small.empty()) {
      EXPECT_GT(B(big), B(small.back()));  // at the end
    }
    ASSERT_TRUE(Ok(t));
    std::size_t free_steps = 0;
    Access::deallocate(t, big, 1000, free_steps);  // merges with the tail
    ASSERT_TRUE(Ok(t));
    EXPECT_LE(alloc_steps, Tlsf::kAllocateMaxSteps);
    EXPECT_LE(free_steps, Tlsf::kDeallocateMaxSteps);
    if (holes_wanted == 0) {
      fresh_alloc = alloc_steps;
      fresh_free = free_steps;
    } else {
      EXPECT_EQ(alloc_steps, fresh_alloc) << holes_wanted << " holes";
      EXPECT_EQ(free_steps, fresh_free) << holes_wanted << " holes";
    }
    // A free that merges with both neighbours, among 5,000 free blocks.
    if (small.size() >= 3) {
      std::size_t steps = 0;
      Access::deallocate(t, small[1], 48, steps);
      ASSERT_TRUE(Ok(t));
      EXPECT_EQ(steps, Tlsf::kDeallocateMaxSteps);
      // And an aligned request, which may split off front padding and a back rest.
      const std::size_t holes_before = t.hole_count();
      void* q = Access::allocate(t, 16, 64, steps);
      ASSERT_NE(q, nullptr);
      ASSERT_TRUE(Ok(t));
      EXPECT_LE(steps, Tlsf::kAllocateMaxSteps);
      EXPECT_LE(t.hole_count(), holes_before + 1);
    }
  }
}

// Issue 7: >= 95% of a 1 MiB arena usable by 8..512 B requests, counting the
// heap's one-word header as used. Fill a fresh arena until the first failure.
TEST(Tlsf, Utilisation1MiB) {
  alignas(4096) static std::byte arena[1 << 20];
  double worst = 1.0;
  for (std::uint32_t seed : {1u, 2u, 3u, 42u}) {
    Tlsf t;
    ASSERT_TRUE(t.init(arena, sizeof arena));
    std::mt19937 rng(seed);
    std::size_t used = 0;
    std::size_t blocks = 0;
    for (;;) {
      const std::size_t payload = 8 + rng() % 505;   // 8..512
      const std::size_t request = payload + sizeof(void*);  // the heap's header
      void* p = t.allocate(request, sizeof(void*));  // the heap asks at least word alignment
      ASSERT_TRUE(Ok(t));
      if (p == nullptr) break;
      used += request;
      ++blocks;
    }
    const double ratio = static_cast<double>(used) / static_cast<double>(sizeof arena);
    std::printf("[ utilisation ] seed %u: %zu blocks, %zu of %zu bytes = %.2f%% (capacity %.2f%%, %zu B left)\n",
                seed, blocks, used, sizeof arena, 100.0 * ratio,
                100.0 * static_cast<double>(t.capacity()) / static_cast<double>(sizeof arena), t.free_bytes());
    EXPECT_GE(ratio, 0.95) << "seed " << seed;
    worst = std::min(worst, ratio);
  }
  RecordProperty("worst_utilisation_permille", static_cast<int>(worst * 1000));
}

// Randomized differential test against a simple model of the arena: live
// blocks never overlap, stay inside, honour their alignment and keep their
// bytes; live and free blocks tile the arena; free_bytes is exact; allocate
// fails only as T3 allows; every call stays within its step bound.
TEST(Tlsf, RandomizedAgainstAModel) {
  alignas(4096) static std::byte arena[64 * 1024];
  for (std::uint32_t seed = 1; seed <= 12; ++seed) {
    std::mt19937 rng(seed);
    const std::size_t offset = (seed % 4) * 8;
    Tlsf t;
    ASSERT_TRUE(t.init(arena + offset, sizeof arena - offset - (seed % 3) * 1000));
    struct Live {
      std::byte* p;
      std::size_t size;
      std::size_t align;
      std::uint8_t fill;
    };
    std::vector<Live> live;
    std::size_t live_bytes = 0;
    std::size_t failures = 0;
    for (int step = 0; step < 4000; ++step) {
      const bool do_alloc = live.empty() || rng() % 100 < 55;
      std::size_t steps = 0;
      if (do_alloc) {
        std::size_t size;
        switch (rng() % 10) {
          case 0: size = 1 + rng() % 8192; break;   // large
          case 1: size = rng() % 17; break;         // tiny, including 0
          default: size = 1 + rng() % 600; break;   // the common mix
        }
        const std::size_t align = rng() % 4 == 0 ? std::size_t{1} << (rng() % 13) : std::size_t{1} << (rng() % 5);
        // The model's view before the call: the free blocks.
        const std::vector<HoleSpan> free_before = holes(t);
        void* p = Access::allocate(t, size, align, steps);
        ASSERT_LE(steps, Tlsf::kAllocateMaxSteps);
        ASSERT_TRUE(Ok(t));
        const std::size_t n = Tlsf::rounded_size(size);
        if (p == nullptr) {
          ++failures;
          // T3: no free block of the rounded-up search size existed.
          const std::size_t search = model_round_up(n / G + model_extra(align)) * G;
          for (const HoleSpan& h : free_before) {
            ASSERT_LT(h.size, search) << "seed " << seed << " step " << step << " size " << size << " align " << align;
          }
        } else {
          ASSERT_EQ(addr(p) % align, 0u);
          ASSERT_EQ(addr(p) % G, 0u);
          ASSERT_GE(B(p), t.arena_begin());
          ASSERT_LE(B(p) + n, t.arena_end());
          const auto fill = static_cast<std::uint8_t>(rng());
          std::memset(p, fill, n);  // the whole block is ours, padding included
          live.push_back({B(p), size, align, fill});
          live_bytes += n;
        }
      } else {
        const std::size_t k = rng() % live.size();
        const Live l = live[k];
        for (std::size_t j = 0; j < Tlsf::rounded_size(l.size); ++j) {
          ASSERT_EQ(static_cast<std::uint8_t>(l.p[j]), l.fill) << "a live block was touched";
        }
        Access::deallocate(t, l.p, rng() % 2 == 0 ? l.size : Tlsf::rounded_size(l.size), steps);
        ASSERT_LE(steps, Tlsf::kDeallocateMaxSteps);
        ASSERT_TRUE(Ok(t));
        live_bytes -= Tlsf::rounded_size(l.size);
        live[k] = live.back();
        live.pop_back();
      }
      ASSERT_EQ(t.free_bytes() + live_bytes, t.capacity());
      // Live and free blocks tile [arena_begin, arena_end) exactly.
      std::vector<HoleSpan> spans = holes(t);
      for (const Live& l : live) spans.push_back({l.p, Tlsf::rounded_size(l.size)});
      std::sort(spans.begin(), spans.end(), [](const HoleSpan& a, const HoleSpan& b) { return a.start < b.start; });
      std::byte* cursor = t.arena_begin();
      for (const HoleSpan& s : spans) {
        ASSERT_EQ(s.start, cursor) << "seed " << seed << " step " << step;
        cursor += s.size;
      }
      ASSERT_EQ(cursor, t.arena_end());
    }
    EXPECT_GT(failures, 0u) << "the test should reach a full arena";
    for (const Live& l : live) {
      t.deallocate(l.p, l.size);
      ASSERT_TRUE(Ok(t));
    }
    EXPECT_EQ(holes(t), (std::vector<HoleSpan>{{t.arena_begin(), t.capacity()}}));
  }
}

// --- check() on deliberately corrupted structures ----------------------------

// Free blocks: F1 (4 granules) and the tail; live: b and c (4 granules each).
constexpr std::size_t kBlock = 4 * G;
struct Corruptible {
  alignas(4096) std::byte arena[4096];
  Tlsf t;
  std::byte* f1 = nullptr;
  std::byte* b = nullptr;
  std::byte* c = nullptr;
  std::byte* tail = nullptr;
  std::size_t k1 = 0;  // granule index of F1
};

void Build(Corruptible& s) {
  ASSERT_TRUE(s.t.init(s.arena, sizeof s.arena));
  s.f1 = B(s.t.allocate(kBlock, 8));
  s.b = B(s.t.allocate(kBlock, 8));
  s.c = B(s.t.allocate(kBlock, 8));
  s.t.deallocate(s.f1, kBlock);
  s.tail = s.c + kBlock;
  s.k1 = Access::index(s.t, s.f1);
  ASSERT_EQ(holes(s.t),
            (std::vector<HoleSpan>{{s.f1, kBlock}, {s.tail, static_cast<std::size_t>(s.t.arena_end() - s.tail)}}));
  ASSERT_TRUE(Ok(s.t));
}

void ExpectFailure(const Tlsf& t, CheckFailure f, const void* where) {
  const CheckReport r = t.check();
  EXPECT_EQ(r.failure, f) << to_string(r.failure);
  EXPECT_EQ(r.address, where);
}

TEST(Tlsf, CorruptSizeZero) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_size(s.f1, 0);
  ExpectFailure(s.t, CheckFailure::HoleBadSize, s.f1);
}

TEST(Tlsf, CorruptSizeRunsPastTheArena) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_size(s.tail, 1u << 20);
  ExpectFailure(s.t, CheckFailure::HoleOutOfBounds, s.tail);
}

TEST(Tlsf, CorruptSizeShorterMissesTheEndMark) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_size(s.f1, 3);  // the end mark is on its 4th granule, not the 3rd
  ExpectFailure(s.t, CheckFailure::HoleBadSize, s.f1);
}

TEST(Tlsf, CorruptSizeLongerSwallowsAMark) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_size(s.f1, 6);  // would cover its own end mark and part of b
  ExpectFailure(s.t, CheckFailure::HoleOverlap, s.f1);
}

TEST(Tlsf, CorruptEndTag) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_tag(Access::at(s.t, s.k1 + 3), 7);
  ExpectFailure(s.t, CheckFailure::HoleBadSize, s.f1);
}

TEST(Tlsf, CorruptMarkInsideAFreeBlock) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  const std::size_t kt = Access::index(s.t, s.tail);
  Access::flip_mark(s.t, kt + 2);
  ExpectFailure(s.t, CheckFailure::HoleOverlap, s.tail);
}

TEST(Tlsf, CorruptTwoFreeBlocksTouch) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  // b looks free (a mark on its first granule, a valid header and tag): a missed merge.
  const std::size_t kb = Access::index(s.t, s.b);
  Access::flip_mark(s.t, kb);
  Access::flip_mark(s.t, kb + 3);
  Access::set_size(s.b, 4);
  Access::set_tag(Access::at(s.t, kb + 3), 4);
  ExpectFailure(s.t, CheckFailure::HoleAdjacent, s.b);
}

TEST(Tlsf, CorruptSentinelMarks) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  for (std::size_t scratch : {std::size_t{0}, std::size_t{1}}) {
    Access::flip_mark(s.t, scratch);
    ExpectFailure(s.t, CheckFailure::HoleOutOfBounds, s.t.arena_begin());
    Access::flip_mark(s.t, scratch);
    ASSERT_TRUE(Ok(s.t));
  }
  Access::flip_mark(s.t, Access::end_index(s.t));  // just past the last granule
  ExpectFailure(s.t, CheckFailure::HoleOutOfBounds, s.t.arena_end());
}

TEST(Tlsf, CorruptNextIntoALiveBlock) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_next(s.f1, static_cast<std::uint32_t>(Access::index(s.t, s.b) + 1));  // not a free block
  ExpectFailure(s.t, CheckFailure::HoleMisaligned, s.f1);
}

TEST(Tlsf, CorruptNextLeavesTheArena) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_next(s.f1, static_cast<std::uint32_t>(Access::end_index(s.t) + 5));
  ExpectFailure(s.t, CheckFailure::HoleOutOfBounds, s.f1);
}

TEST(Tlsf, CorruptBackLink) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_prev(s.f1, static_cast<std::uint32_t>(Access::index(s.t, s.tail)));  // tail.next != f1
  ExpectFailure(s.t, CheckFailure::HoleUnordered, s.f1);
}

TEST(Tlsf, CorruptBlockMissingFromItsList) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::head(s.t, 4) = 0;  // F1 is no longer reachable
  ExpectFailure(s.t, CheckFailure::HoleUnordered, s.f1);
}

TEST(Tlsf, CorruptBlockInTheWrongClass) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  // F1 shrunk consistently to 3 granules (size, tag, marks) but still filed
  // under 4 granules.
  Access::set_size(s.f1, 3);
  Access::set_tag(Access::at(s.t, s.k1 + 2), 3);
  Access::flip_mark(s.t, s.k1 + 3);
  Access::flip_mark(s.t, s.k1 + 2);
  ExpectFailure(s.t, CheckFailure::HoleUnordered, s.f1);
}

TEST(Tlsf, CorruptFragmentInAList) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  // F1 shrunk consistently to a one-granule fragment, but still listed.
  Access::set_size(s.f1, 1);
  Access::set_tag(s.f1, 1);
  Access::flip_mark(s.t, s.k1 + 3);
  ExpectFailure(s.t, CheckFailure::HoleBadSize, s.f1);
}

TEST(Tlsf, CorruptBitmapsDisagreeWithTheLists) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::flip_sl_bit(s.t, 0, 7);  // class of 7 granules claims a block
  ExpectFailure(s.t, CheckFailure::HoleUnordered, &s.t);
  Access::flip_sl_bit(s.t, 0, 7);
  ASSERT_TRUE(Ok(s.t));
  Access::flip_fl_bit(s.t, 7);  // beyond the first levels in use
  ExpectFailure(s.t, CheckFailure::HoleUnordered, &s.t);
  Access::flip_fl_bit(s.t, 7);
  Access::flip_fl_bit(s.t, 0);  // first level 0 holds F1: its bit must be set
  ExpectFailure(s.t, CheckFailure::HoleUnordered, &s.t);
}

TEST(Tlsf, CorruptCycleInAList) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_next(s.f1, static_cast<std::uint32_t>(s.k1));  // points at itself
  ExpectFailure(s.t, CheckFailure::HoleUnordered, s.f1);
}

TEST(Tlsf, CorruptFreeByteCounter) {
  Corruptible s;
  ASSERT_NO_FATAL_FAILURE(Build(s));
  Access::set_free_bytes(s.t, s.t.free_bytes() + G);
  ExpectFailure(s.t, CheckFailure::FreeBytesMismatch, &s.t);
}

}  // namespace
}  // namespace mnemos::detail
