// Tlsf::check() on corrupted structures that tlsf_test.cpp does not build:
// stray state in an empty backend, bitmap bits beyond the levels in use, a
// free block's back link out of bounds or onto an allocated granule, a forward
// link to the last granule, and bogus class-list heads. Each corruption must be
// reported (and named), never crash or loop.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "mnemos/detail/tlsf.hpp"

namespace mnemos::detail {

// White-box access (this binary's own; tlsf_test.cpp has its own too). A bare
// backend's arena is never poisoned, so plain writes are fine under ASan.
struct tlsf_test_access {
  static constexpr std::size_t G = Tlsf::kGranule;
  static std::size_t index(const Tlsf& t, const void* p) {
    return static_cast<std::size_t>(static_cast<const std::byte*>(p) - t.base_) / G;
  }
  static std::byte* at(const Tlsf& t, std::size_t k) { return t.at(k); }
  static std::size_t end_index(const Tlsf& t) { return t.end_index(); }
  static bool marked(const Tlsf& t, std::size_t k) { return t.marked(k); }
  // Fields of a free block (granule indices): size +0, next and prev (of a
  // block of 3 granules or more) where Tlsf keeps them (src/tlsf.cpp).
  static void set_next(std::byte* block, std::uint32_t k) { std::memcpy(block + Tlsf::kNextAt, &k, sizeof k); }
  static void set_prev(std::byte* block, std::uint32_t k) { std::memcpy(block + Tlsf::kPrevAtLong, &k, sizeof k); }
  static void set_size(std::byte* block, std::uint32_t g) { std::memcpy(block + 0, &g, sizeof g); }
  // The end tag of a one-granule block lies in that same granule (+4).
  static void set_tag_of_single(std::byte* granule, std::uint32_t g) { std::memcpy(granule + 4, &g, sizeof g); }
  static void set_mark(Tlsf& t, std::size_t k) { t.set_mark(k); }
  // Empties class c's list head, with the bitmaps agreeing.
  static void clear_head(Tlsf& t, unsigned c) {
    t.heads_[c] = 0;
    t.sl_bitmap_[c / Tlsf::kSlCount] &= ~(std::uint32_t{1} << (c % Tlsf::kSlCount));
    if (t.sl_bitmap_[c / Tlsf::kSlCount] == 0) t.fl_bitmap_ &= ~(std::uint32_t{1} << (c / Tlsf::kSlCount));
  }
  static std::uint32_t prev_of(const std::byte* block) {
    std::uint32_t k;
    std::memcpy(&k, block + Tlsf::kPrevAtLong, sizeof k);
    return k;
  }
  static void set_free_bytes(Tlsf& t, std::size_t n) { t.free_ = n; }
  static std::uint32_t& fl_bitmap(Tlsf& t) { return t.fl_bitmap_; }
  static std::uint32_t& sl_bitmap(Tlsf& t, unsigned fl) { return t.sl_bitmap_[fl]; }
  static unsigned fl_count(const Tlsf& t) { return t.fl_count_; }
  static unsigned class_of(std::size_t g) { return Tlsf::class_of(g); }
  // Files `k` as the head of class c, with the bitmaps agreeing.
  static void set_head(Tlsf& t, unsigned c, std::uint32_t k) {
    t.heads_[c] = k;
    t.sl_bitmap_[c / Tlsf::kSlCount] |= std::uint32_t{1} << (c % Tlsf::kSlCount);
    t.fl_bitmap_ |= std::uint32_t{1} << (c / Tlsf::kSlCount);
  }
};

namespace {

using Access = tlsf_test_access;

void ExpectFailure(const Tlsf& t, CheckFailure f, const void* where) {
  const CheckReport r = t.check();
  EXPECT_EQ(r.failure, f) << to_string(r.failure);
  EXPECT_EQ(r.address, where);
}

TEST(TlsfCheckEdge, AnEmptyBackendWithStrayStateIsReported) {
  Tlsf t;
  ASSERT_TRUE(t.check().ok());
  Access::set_free_bytes(t, Tlsf::kGranule);
  ExpectFailure(t, CheckFailure::FreeBytesMismatch, &t);
  Access::set_free_bytes(t, 0);
  Access::fl_bitmap(t) = 1;
  ExpectFailure(t, CheckFailure::HoleUnordered, &t);
  Access::fl_bitmap(t) = 0;
  Access::sl_bitmap(t, 3) = 1u << 7;
  ExpectFailure(t, CheckFailure::HoleUnordered, &t);
  Access::sl_bitmap(t, 3) = 0;
  EXPECT_TRUE(t.check().ok());
}

// One allocated block at the start, then one free block to the end.
struct OneBlockThenFree {
  alignas(64) std::byte arena[4096]{};  // zeroed: no stale words in the arena
  Tlsf t;
  std::byte* live = nullptr;
  std::byte* free_block = nullptr;
  std::size_t free_granules = 0;

  void SetUp() {
    ASSERT_TRUE(t.init(arena, sizeof arena));
    live = static_cast<std::byte*>(t.allocate(64, 8));
    ASSERT_NE(live, nullptr);
    int holes = 0;
    t.for_each_hole([&](std::byte* s, std::size_t n) {
      ++holes;
      free_block = s;
      free_granules = n / Tlsf::kGranule;
    });
    ASSERT_EQ(holes, 1);
    ASSERT_GT(free_block, live);
    ASSERT_TRUE(t.check().ok());
  }
};

TEST(TlsfCheckEdge, AFirstLevelBitBeyondTheLevelsIsReported) {
  OneBlockThenFree s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  Access::fl_bitmap(s.t) |= std::uint32_t{1} << Tlsf::kFlCount;
  ExpectFailure(s.t, CheckFailure::HoleUnordered, &s.t);
}

TEST(TlsfCheckEdge, ASecondLevelMapAboveTheLevelsInUseIsReported) {
  OneBlockThenFree s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  const unsigned unused = Access::fl_count(s.t);  // the first level past this arena's
  ASSERT_LT(unused, Tlsf::kFlCount);
  Access::sl_bitmap(s.t, unused) = 1;
  Access::fl_bitmap(s.t) |= std::uint32_t{1} << unused;  // bitmaps agree with each other
  ExpectFailure(s.t, CheckFailure::HoleUnordered, &s.t);
}

TEST(TlsfCheckEdge, ABackLinkOutOfTheArenaIsReported) {
  OneBlockThenFree s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  Access::set_prev(s.free_block, 1);  // a scratch granule, below every block
  ExpectFailure(s.t, CheckFailure::HoleOutOfBounds, s.free_block);
}

TEST(TlsfCheckEdge, ABackLinkIntoAnAllocatedBlockIsReported) {
  OneBlockThenFree s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  const std::size_t inside_live = Access::index(s.t, s.live);
  ASSERT_FALSE(Access::marked(s.t, inside_live));
  Access::set_prev(s.free_block, static_cast<std::uint32_t>(inside_live));
  ExpectFailure(s.t, CheckFailure::HoleMisaligned, s.free_block);
}

TEST(TlsfCheckEdge, AForwardLinkToTheLastGranuleIsReported) {
  OneBlockThenFree s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  // The last granule has no room for a list node (size, next and prev span two).
  Access::set_next(s.free_block, static_cast<std::uint32_t>(Access::end_index(s.t) - 1));
  ExpectFailure(s.t, CheckFailure::HoleOutOfBounds, s.free_block);
}

// A head in a class smaller than the free block's, which the index walks
// first: out of bounds, on an allocated granule, or the real block in the
// wrong class.
TEST(TlsfCheckEdge, ABogusClassHeadIsReported) {
  const unsigned small = Access::class_of(2);
  {
    OneBlockThenFree s;
    ASSERT_NO_FATAL_FAILURE(s.SetUp());
    ASSERT_LT(small, Access::class_of(s.free_granules));
    Access::set_head(s.t, small, 1);
    ExpectFailure(s.t, CheckFailure::HoleOutOfBounds, &s.t);
  }
  {
    OneBlockThenFree s;
    ASSERT_NO_FATAL_FAILURE(s.SetUp());
    const std::size_t inside_live = Access::index(s.t, s.live);
    Access::set_head(s.t, small, static_cast<std::uint32_t>(inside_live));
    ExpectFailure(s.t, CheckFailure::HoleMisaligned, Access::at(s.t, inside_live));
  }
  {
    OneBlockThenFree s;
    ASSERT_NO_FATAL_FAILURE(s.SetUp());
    Access::set_head(s.t, small, static_cast<std::uint32_t>(Access::index(s.t, s.free_block)));
    ExpectFailure(s.t, CheckFailure::HoleUnordered, s.free_block);
  }
}

// A head in a class above the free block's, pointing at it: the index walk
// meets the block a second time, more blocks listed than there are.
TEST(TlsfCheckEdge, ABlockListedTwiceIsReported) {
  OneBlockThenFree s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  const unsigned own = Access::class_of(s.free_granules);
  const unsigned top = Access::fl_count(s.t) * Tlsf::kSlCount - 1;  // the last class with a head
  ASSERT_LT(own, top);
  Access::set_head(s.t, top, static_cast<std::uint32_t>(Access::index(s.t, s.free_block)));
  ExpectFailure(s.t, CheckFailure::HoleUnordered, s.free_block);
}

// A one-granule free block (a fragment, never listed) forged inside the live
// block, then listed as a class head: the index walk rejects its size.
TEST(TlsfCheckEdge, AListedFragmentIsReported) {
  OneBlockThenFree s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  const std::size_t f = Access::index(s.t, s.live) + 1;  // inside the live block, not its first granule
  ASSERT_LT(f + 1, Access::index(s.t, s.free_block));
  std::byte* const fragment = Access::at(s.t, f);
  Access::set_size(fragment, 1);
  Access::set_tag_of_single(fragment, 1);
  Access::set_mark(s.t, f);
  Access::set_head(s.t, Access::class_of(2), static_cast<std::uint32_t>(f));
  ExpectFailure(s.t, CheckFailure::HoleBadSize, fragment);
}

// Four 64-byte blocks, the first and third freed: two free blocks of one
// class (one behind the other in its list), live blocks between, and the tail.
struct TwoHolesOfOneClass {
  alignas(64) std::byte arena[4096]{};
  Tlsf t;
  std::byte* hole[2] = {};

  void SetUp() {
    ASSERT_TRUE(t.init(arena, sizeof arena));
    void* blocks[4];
    for (void*& b : blocks) {
      b = t.allocate(64, 8);
      ASSERT_NE(b, nullptr);
    }
    t.deallocate(blocks[0], 64);
    t.deallocate(blocks[2], 64);
    std::size_t n = 0;
    t.for_each_hole([&](std::byte* start, std::size_t size) {
      if (size == 64 && n < 2) hole[n++] = start;
    });
    ASSERT_EQ(n, 2u);
    ASSERT_TRUE(t.check().ok());
  }
};

// A free block that is second in its own class list, also filed as the head
// of a smaller class: its back link names its real predecessor, not "none".
TEST(TlsfCheckEdge, AHeadWithABackLinkIsReported) {
  TwoHolesOfOneClass s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  std::byte* const second = Access::prev_of(s.hole[0]) != 0 ? s.hole[0] : s.hole[1];
  ASSERT_NE(Access::prev_of(second), 0u);
  ASSERT_LT(Access::class_of(2), Access::class_of(64 / Tlsf::kGranule));
  Access::set_head(s.t, Access::class_of(2), static_cast<std::uint32_t>(Access::index(s.t, second)));
  ExpectFailure(s.t, CheckFailure::HoleUnordered, second);
}

// The end mark of a free block that is not at the arena's end, listed as a
// head, with a size word (never read by the address walk, which reads the end
// tag) that runs past the arena.
TEST(TlsfCheckEdge, AListedNodeWhoseSizeRunsPastTheArenaIsReported) {
  TwoHolesOfOneClass s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  // The hole followed by a live block (not by the free tail).
  std::size_t last = 0;
  for (std::byte* h : s.hole) {
    const std::size_t l = Access::index(s.t, h) + 64 / Tlsf::kGranule - 1;
    if (!Access::marked(s.t, l + 1)) last = l;
  }
  ASSERT_NE(last, 0u);
  std::byte* const end_granule = Access::at(s.t, last);
  ASSERT_TRUE(Access::marked(s.t, last));
  // The word read as its back link is the live block's first payload word
  // (ours to write): "none".
  std::memset(Access::at(s.t, last + 1), 0, 4);
  ASSERT_EQ(Access::prev_of(end_granule), 0u);
  Access::set_size(end_granule, 1u << 20);
  ASSERT_TRUE(s.t.check().ok());  // the address walk is not affected
  Access::set_head(s.t, Access::class_of(2), static_cast<std::uint32_t>(last));
  ExpectFailure(s.t, CheckFailure::HoleOutOfBounds, end_granule);
}

// The two blocks of one class linked only to each other (a cycle no head
// leads to): each link is consistent both ways, but the index lists fewer
// blocks than the arena holds.
TEST(TlsfCheckEdge, FreeBlocksNoHeadLeadsToAreReported) {
  TwoHolesOfOneClass s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  std::byte* const first = Access::prev_of(s.hole[0]) == 0 ? s.hole[0] : s.hole[1];  // the list head
  std::byte* const second = first == s.hole[0] ? s.hole[1] : s.hole[0];
  ASSERT_EQ(Access::prev_of(second), Access::index(s.t, first));
  Access::set_prev(first, static_cast<std::uint32_t>(Access::index(s.t, second)));
  Access::set_next(second, static_cast<std::uint32_t>(Access::index(s.t, first)));
  Access::clear_head(s.t, Access::class_of(64 / Tlsf::kGranule));
  ExpectFailure(s.t, CheckFailure::FreeBytesMismatch, &s.t);
}

TEST(TlsfCheckEdge, AnEmptyBackendHasNoArena) {
  Tlsf t;
  EXPECT_EQ(t.arena_begin(), nullptr);
  EXPECT_EQ(t.arena_end(), nullptr);
  alignas(64) std::byte arena[1024]{};
  ASSERT_TRUE(t.init(arena, sizeof arena));
  ASSERT_NE(t.arena_end(), nullptr);
  EXPECT_EQ(static_cast<std::size_t>(t.arena_end() - t.arena_begin()), t.capacity());
}

// Records the holes for_each_hole reports (one functor type for both walks).
struct Walk {
  struct Hole {
    std::byte* start;
    std::size_t size;
  };
  Hole holes[64];
  std::size_t count = 0;
  void operator()(std::byte* start, std::size_t size) {
    if (count < 64) holes[count] = {start, size};
    ++count;
  }
};

// A free block whose size field reads 0 (corrupted) must not stop the walk
// from making progress: for_each_hole reports it and moves on, and check()
// names it.
TEST(TlsfCheckEdge, AZeroSizedFreeBlockStillLetsTheHoleWalkFinish) {
  OneBlockThenFree s;
  ASSERT_NO_FATAL_FAILURE(s.SetUp());
  Walk clean;
  s.t.for_each_hole(clean);
  ASSERT_EQ(clean.count, 1u);
  EXPECT_EQ(clean.holes[0].start, s.free_block);
  EXPECT_EQ(clean.holes[0].size, s.free_granules * Tlsf::kGranule);

  Access::set_size(s.free_block, 0);
  Walk corrupted;
  s.t.for_each_hole(corrupted);  // returns: every step advances at least one granule
  ASSERT_GE(corrupted.count, 1u);
  EXPECT_LE(corrupted.count, s.free_granules);
  EXPECT_EQ(corrupted.holes[0].start, s.free_block);
  EXPECT_EQ(corrupted.holes[0].size, 0u);
  ExpectFailure(s.t, CheckFailure::HoleBadSize, s.free_block);
}

}  // namespace
}  // namespace mnemos::detail
