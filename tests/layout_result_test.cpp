#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "mnemos/alloc.hpp"

using namespace mnemos;

TEST(Layout, ValidRejectsZeroSizeAndBadAlignment) {
  EXPECT_TRUE((Layout{1, 1}.valid()));
  EXPECT_TRUE((Layout{48, 16}.valid()));
  EXPECT_FALSE((Layout{0, 8}.valid()));
  EXPECT_FALSE((Layout{8, 0}.valid()));
  EXPECT_FALSE((Layout{8, 3}.valid()));
  EXPECT_FALSE((Layout{8, 24}.valid()));
}

TEST(Layout, ValidRejectsSizesThatOverflowWhenRounded) {
  EXPECT_TRUE((Layout{static_cast<std::size_t>(PTRDIFF_MAX), 1}.valid()));
  EXPECT_FALSE((Layout{static_cast<std::size_t>(PTRDIFF_MAX), 2}.valid()));
  EXPECT_FALSE((Layout{SIZE_MAX, 1}.valid()));
}

TEST(Layout, ArrayOfDetectsOverflow) {
  EXPECT_EQ(Layout::array_of<std::uint64_t>(4), (Layout{32, alignof(std::uint64_t)}));
  EXPECT_FALSE(Layout::array_of<std::uint64_t>(SIZE_MAX / 4).has_value());
}

TEST(Result, HoldsValueOrError) {
  Result<int> ok = 7;
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(static_cast<bool>(ok));
  EXPECT_EQ(*ok, 7);
  EXPECT_EQ(ok.value(), 7);

  Result<int> bad = Error::NoMemory;
  EXPECT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error(), Error::NoMemory);
}

TEST(Result, MovesMoveOnlyValuesAndReassigns) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  Result<std::unique_ptr<int>> moved = std::move(r);
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(**moved, 5);
  moved = Error::Locked;
  EXPECT_EQ(moved.error(), Error::Locked);
  moved = std::make_unique<int>(6);
  EXPECT_EQ(*moved.value(), 6);
  EXPECT_EQ(*moved->get(), 6);
}

TEST(Result, ValueOnErrorAborts) {
  Result<int> bad = Error::TooLarge;
  EXPECT_DEATH((void)bad.value(), "");
  Result<int> ok = 1;
  EXPECT_DEATH((void)ok.error(), "");
}

TEST(Error, NamesEveryValue) {
  EXPECT_EQ(std::string_view(to_string(Error::InvalidLayout)), "InvalidLayout");
  EXPECT_EQ(std::string_view(to_string(Error::TooLarge)), "TooLarge");
  EXPECT_EQ(std::string_view(to_string(Error::NoMemory)), "NoMemory");
  EXPECT_EQ(std::string_view(to_string(Error::Locked)), "Locked");
  EXPECT_EQ(std::string_view(to_string(Error::RegionTooSmall)), "RegionTooSmall");
  EXPECT_EQ(std::string_view(to_string(Error::RegionMisaligned)), "RegionMisaligned");
  EXPECT_EQ(std::string_view(to_string(Error::Closed)), "Closed");
  EXPECT_EQ(std::string_view(to_string(Error::Cancelled)), "Cancelled");
}

TEST(CheckReport, NamesEveryFailureAndOkMeansNone) {
  EXPECT_TRUE(CheckReport{}.ok());
  EXPECT_FALSE((CheckReport{CheckFailure::Busy, nullptr}.ok()));
  const CheckFailure all[] = {CheckFailure::None,           CheckFailure::Busy,           CheckFailure::HoleUnordered,
                              CheckFailure::HoleOverlap,    CheckFailure::HoleAdjacent,   CheckFailure::HoleOutOfBounds,
                              CheckFailure::HoleBadSize,    CheckFailure::HoleMisaligned, CheckFailure::FreeBytesMismatch,
                              CheckFailure::StatsMismatch};
  const char* names[] = {"None",        "Busy",        "HoleUnordered",  "HoleOverlap",       "HoleAdjacent",
                         "HoleOutOfBounds", "HoleBadSize", "HoleMisaligned", "FreeBytesMismatch", "StatsMismatch"};
  for (std::size_t i = 0; i < std::size(all); ++i) EXPECT_EQ(std::string_view(to_string(all[i])), names[i]);
}

TEST(Result, ConstAccessReadsTheValue) {
  const Result<int> ok = 7;
  EXPECT_EQ(*ok, 7);
  EXPECT_EQ(ok.value(), 7);
  const Result<std::unique_ptr<int>> p = std::make_unique<int>(3);
  EXPECT_EQ(*p->get(), 3);
  EXPECT_EQ(**p, 3);
}
