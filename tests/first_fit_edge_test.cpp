// Edges of the first-fit backend that first_fit_test.cpp does not reach:
// check() on a list whose first node lies before the arena, and init()/
// allocate() at the boundaries of the region and of alignment.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>

#include "mnemos/detail/first_fit.hpp"

namespace mnemos::detail {

// White-box access (this binary's own; first_fit_test.cpp has its own too):
// corrupts the list head on purpose to exercise check().
struct first_fit_test_access {
  // `target` is only stored, never dereferenced: check() must judge the
  // address before it reads anything there.
  static void set_head(FirstFit& ff, std::byte* target) {
    ff.head_.next = reinterpret_cast<FirstFit::Hole*>(target);
  }
  // carve() only computes with the hole's address (it reads no memory).
  static bool carve(std::uintptr_t hole, std::size_t hole_size, std::size_t size, std::size_t align) {
    FirstFit::Carve out{};
    return FirstFit::carve(hole, hole_size, size, align, out);
  }
};

namespace {

constexpr std::size_t M = FirstFit::kMinBlock;

struct Buffer {
  alignas(64) std::byte bytes[512];
};

TEST(FirstFitEdge, CheckReportsAFirstHoleBeforeTheArena) {
  Buffer buf;
  FirstFit ff;
  // The arena is the upper half; the lower half is other memory.
  ASSERT_TRUE(ff.init(buf.bytes + 256, 256));
  ASSERT_TRUE(ff.check().ok());
  std::byte* const below = buf.bytes + 64;  // granule-aligned, but not the arena's
  first_fit_test_access::set_head(ff, below);
  const CheckReport r = ff.check();
  EXPECT_EQ(r.failure, CheckFailure::HoleOutOfBounds) << to_string(r.failure);
  EXPECT_EQ(r.address, below);
  first_fit_test_access::set_head(ff, buf.bytes + 256);  // repaired: whole again
  EXPECT_TRUE(ff.check().ok());
}

TEST(FirstFitEdge, CheckReportsAFirstHoleTooCloseToTheEnd) {
  Buffer buf;
  FirstFit ff;
  ASSERT_TRUE(ff.init(buf.bytes, 256));
  std::byte* const last_granule = buf.bytes + 256 - FirstFit::kGranule;  // no room for a node
  first_fit_test_access::set_head(ff, last_granule);
  const CheckReport r = ff.check();
  EXPECT_EQ(r.failure, CheckFailure::HoleOutOfBounds) << to_string(r.failure);
  EXPECT_EQ(r.address, last_granule);
}

TEST(FirstFitEdge, CheckReportsAFirstHolePastTheEnd) {
  Buffer buf;
  FirstFit ff;
  ASSERT_TRUE(ff.init(buf.bytes, 256));
  std::byte* const past = buf.bytes + 256;  // the end itself
  first_fit_test_access::set_head(ff, past);
  const CheckReport r = ff.check();
  EXPECT_EQ(r.failure, CheckFailure::HoleOutOfBounds) << to_string(r.failure);
  EXPECT_EQ(r.address, past);
}

// A misaligned start shorter than one granule past the boundary: init skips
// the lead and needs a minimum block after it.
TEST(FirstFitEdge, InitWithAMisalignedStartKeepsOnlyWholeGranules) {
  Buffer buf;
  FirstFit ff;
  ASSERT_TRUE(ff.init(buf.bytes + 1, M + FirstFit::kGranule));  // lead 7, then exactly M
  EXPECT_EQ(ff.capacity(), M);
  EXPECT_TRUE(ff.check().ok());
  EXPECT_FALSE(ff.init(buf.bytes + 1, M + 2));  // lead 7, then fewer than M
  EXPECT_EQ(ff.capacity(), 0u);
  EXPECT_EQ(ff.allocate(1, 1), nullptr);
}

// The largest alignment a size_t can express cannot be met by any hole in an
// arena that is not itself aligned to it: allocate() refuses, nothing breaks.
TEST(FirstFitEdge, AnAlignmentNoHoleCanMeetIsRefused) {
  Buffer buf;
  FirstFit ff;
  ASSERT_TRUE(ff.init(buf.bytes, 256));
  const std::size_t huge = std::size_t{1} << (sizeof(std::size_t) * 8 - 1);
  EXPECT_EQ(ff.allocate(16, huge), nullptr);
  EXPECT_FALSE(ff.fits_when_empty(16, huge));
  EXPECT_EQ(ff.free_bytes(), 256u);
  EXPECT_TRUE(ff.check().ok());
}

// A hole at the very top of the address space, and an alignment whose next
// multiple past the hole's front padding lies beyond UINTPTR_MAX: carve()
// refuses it instead of wrapping around to a start near address 0.
TEST(FirstFitEdge, CarveRefusesAnAlignedStartThatWouldWrap) {
  const std::uintptr_t top = UINTPTR_MAX - 55;  // granule-aligned; ends at UINTPTR_MAX - 7
  EXPECT_FALSE(first_fit_test_access::carve(top, 48, 16, 4096));
  EXPECT_TRUE(first_fit_test_access::carve(top, 48, 16, 8));  // the same hole, aligned enough
}

}  // namespace
}  // namespace mnemos::detail
