// Misuse detection, the cases hardening_test.cpp leaves out: every way a
// queued block's node can be found broken by the drain, headers that decode
// but do not belong to the heap, a word one byte away from two different live
// headers, a region the header cannot encode, and the fault line for every
// kind. Recording handler, both backends; after each bad call exactly one
// fault of the expected kind and a heap that still balances and serves.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "mnemos/alloc.hpp"
#include "mnemos/detail/block_header.hpp"
#include "mnemos/detail/hardening.hpp"
#include "test_support.hpp"

#if MNEMOS_HARDENING

namespace mnemos {
namespace {

using test::Region;
using test::recorded_faults;

class HardeningPaths : public test::FaultRecording {};
MNEMOS_TEST_ALL_BACKENDS(HardeningPaths);

// The key a free of `payload` with `layout` checks its header against.
detail::HeaderKey key_for(const void* payload, Layout layout) {
  return detail::HeaderKey{detail::addr(payload), detail::header_size_class(*detail::block_request(layout)),
                           detail::header_offset(layout.align)};
}

// --- the drain: a queued block's node overwritten ------------------------------

// What a use-after-free writes over the node of a queued 32-byte block (its
// size word, the block's first, or its link, the second).
struct NodeDamage {
  const char* what;
  bool link;  // the link word, else the size word
  std::uint64_t (*value)(Heap& heap, const Region& region);
};

const NodeDamage kNodeDamage[] = {
    {"size word without the free tag", false, [](Heap&, const Region&) -> std::uint64_t { return 32; }},
    {"free tag with tag bits set", false,
     [](Heap&, const Region&) -> std::uint64_t { return detail::tag_free_size(32) | detail::kLiveTag; }},
    {"size below a node", false, [](Heap&, const Region&) -> std::uint64_t { return detail::tag_free_size(8); }},
    {"size not a granule multiple", false,
     [](Heap&, const Region&) -> std::uint64_t { return detail::tag_free_size(36); }},
    {"size reaching past the arena", false,
     [](Heap&, const Region&) -> std::uint64_t { return detail::tag_free_size(std::size_t{1} << 40); }},
    {"link past the arena's end", true,
     [](Heap& heap, const Region&) -> std::uint64_t {
       const std::uintptr_t end = detail::addr(heap_test_access::backend(heap).arena_end());
       return (end + 64) & ~std::uintptr_t{15};  // aligned for a node, yet outside
     }},
    {"link before the arena", true,
     [](Heap&, const Region& region) -> std::uint64_t {
       return detail::addr(region.span().data());  // the heap's own state
     }},
};

TEST_P(HardeningPaths, EveryBrokenQueuedNodeIsACorruptArenaAndIsNotFollowed) {
  for (const NodeDamage& damage : kNodeDamage) {
    SCOPED_TRACE(damage.what);
    Region region(4096);
    Heap& heap = make_heap(region);
    recorded_faults().clear();
    auto* p = static_cast<std::byte*>(*heap.try_alloc_raw(Layout{24, 8}));
    {
      auto guard = heap.try_lock();
      Heap::free_raw(p, Layout{24, 8});  // queued: its node is [size word at p - 8][link at p]
      const std::uint64_t v = damage.value(heap, region);
      std::memcpy(damage.link ? p : p - 8, &v, sizeof v);  // the node's 16 bytes stay addressable
    }
    test::expect_broken_queued_block_lost(heap, p);
  }
}

// --- frees whose header decodes, or nearly ----------------------------------------

// A header forged for this heap (right key, right heap) before memory outside
// its arena: the header decodes, but the block is not the heap's.
TEST_P(HardeningPaths, ADecodingHeaderBeforeAForeignBlockIsAForeignPointer) {
  Region region(4096);
  Heap& heap = make_heap(region);
  alignas(16) std::uint64_t outside[4] = {};
  void* payload = &outside[2];
  const Layout l{8, 8};
  outside[1] = detail::encode_header(detail::addr(&heap), key_for(payload, l), detail::kLiveTag);
  const Stats before = heap.stats();
  Heap::free_raw(payload, l);
  ASSERT_EQ(recorded_faults().size(), 1u);
  EXPECT_EQ(recorded_faults().front().kind, FaultKind::ForeignPointer);
  EXPECT_EQ(recorded_faults().front().address, payload);
  EXPECT_EQ(heap.stats().free_count, before.free_count);
  EXPECT_TRUE(heap.check().ok());
}

// A word with a live header's tag but no check bits is no header, and no
// single byte makes it one: a foreign pointer, not a bad layout.
TEST_P(HardeningPaths, ALiveTagWithoutCheckBitsIsAForeignPointer) {
  alignas(16) std::uint64_t outside[4] = {};
  void* payload = &outside[2];
  const Layout l{8, 8};
  const detail::HeaderKey key = key_for(payload, l);
  // The check depends on the per-run secret: pick a tagged word (top 16 bits
  // clear) that neither decodes nor is one byte from a header.
  std::uint64_t word = 0;
  for (std::uint64_t k = 1; k < 64 && word == 0; ++k) {
    const std::uint64_t w = (k << 16) | detail::kLiveTag;
    std::uintptr_t named = 0;
    if (!detail::header_matches(w, key, detail::kLiveTag) && !detail::repair_single_byte(w, key, named)) word = w;
  }
  ASSERT_NE(word, 0u);
  outside[1] = word;
  Heap::free_raw(payload, l);
  ASSERT_EQ(recorded_faults().size(), 1u);
  EXPECT_EQ(recorded_faults().front().kind, FaultKind::ForeignPointer);
  EXPECT_EQ(recorded_faults().front().address, payload);
}

// Two live headers for one key can differ in exactly two bytes (a byte of the
// heap field and one of the check: the CRC's difference for a one-byte change
// of the field sometimes has a zero byte). A word between them is one byte
// from each: a smashed header, but whose heap cannot be told, so none is named.
TEST_P(HardeningPaths, AWordOneByteFromTwoHeadersIsACorruptHeaderOfNoKnownHeap) {
  alignas(16) std::uint64_t outside[4] = {};
  void* payload = &outside[2];
  const Layout l{8, 8};
  const detail::HeaderKey key = key_for(payload, l);
  const std::uintptr_t heap1 = 0x00007f0012345000u;
  const std::uint64_t h1 = detail::encode_header(heap1, key, detail::kLiveTag);
  std::uint64_t between = 0;
  for (int i = 0; i < 6 && between == 0; ++i) {
    for (std::uint64_t v = 1; v < 256 && between == 0; ++v) {
      if (i == 0 && (v & detail::kTagMask) != 0) continue;  // keep the tag
      const std::uint64_t h2 = detail::encode_header(heap1 ^ (v << (8 * i)), key, detail::kLiveTag);
      const std::uint64_t diff = h1 ^ h2;
      int bytes = 0;
      int last = 0;
      for (int b = 0; b < 8; ++b) {
        if (((diff >> (8 * b)) & 0xFF) != 0) {
          ++bytes;
          last = b;
        }
      }
      if (bytes != 2) continue;
      const std::uint64_t mask = std::uint64_t{0xFF} << (8 * last);  // the check byte
      between = (h1 & ~mask) | (h2 & mask);
    }
  }
  ASSERT_NE(between, 0u) << "no two live headers two bytes apart";
  std::uintptr_t named = 1;
  EXPECT_TRUE(detail::repair_single_byte(between, key, named));
  EXPECT_EQ(named, 0u);  // ambiguous

  outside[1] = between;
  Heap::free_raw(payload, l);
  ASSERT_EQ(recorded_faults().size(), 1u);
  EXPECT_EQ(recorded_faults().front().kind, FaultKind::CorruptHeader);
  EXPECT_EQ(recorded_faults().front().address, payload);
  EXPECT_EQ(recorded_faults().front().heap, nullptr);
}

// --- bootstrap ----------------------------------------------------------------------

// Headers store the heap's address bits 47..3: a region above 2^48 is refused
// before a byte of it is touched.
TEST(HardeningBootstrap, ARegionAboveTheEncodableRangeIsRefused) {
  auto* high = reinterpret_cast<std::byte*>(std::uintptr_t{1} << 48);
  const Result<Heap*> made = Heap::bootstrap(std::span<std::byte>(high, std::size_t{1} << 20));
  ASSERT_FALSE(made.has_value());
  EXPECT_EQ(made.error(), Error::RegionMisaligned);
}

// --- the check's CRC ------------------------------------------------------------------

// The table computed at compile time is CRC-16/CCITT's, and so is the CRC:
// the standard check value of "123456789" (CRC-16/CCITT-FALSE) is 0x29B1.
TEST(HardeningCrc, TheTableIsCcittsAndGivesTheStandardCheckValue) {
  // Through a pointer, so the table is also built at run time.
  std::array<std::uint16_t, 256> (*volatile make)() noexcept = &detail::make_crc16_table;
  EXPECT_EQ(make(), detail::kCrc16Table);
  EXPECT_EQ(detail::kCrc16Table[1], 0x1021u);
  std::uint16_t c = 0xFFFF;
  for (const char ch : std::string_view("123456789")) c = detail::crc16_step(c, static_cast<std::uint8_t>(ch));
  EXPECT_EQ(c, 0x29B1u);
}

// --- the fault line ---------------------------------------------------------------------

TEST(HardeningFormat, EveryKindHasALineNamingTheAddress) {
  char buf[256];
  const auto* p = reinterpret_cast<const void*>(std::uintptr_t{0x1230});
  const auto* h = reinterpret_cast<const Heap*>(std::uintptr_t{0xab00});
  format_fault(Fault{FaultKind::CorruptArena, p, h}, buf, sizeof buf);
  EXPECT_NE(std::strstr(buf, "corrupt arena"), nullptr) << buf;
  EXPECT_NE(std::strstr(buf, "0x1230"), nullptr) << buf;
  EXPECT_NE(std::strstr(buf, "(heap 0xab00)"), nullptr) << buf;
  format_fault(Fault{FaultKind::AllocationFailed, nullptr, h}, buf, sizeof buf);
  EXPECT_STREQ(buf, "mnemos-alloc: allocation failed with no error to return (exceptions disabled) (heap 0xab00)");
  // A null address prints as 0x0.
  format_fault(Fault{FaultKind::DoubleFree, nullptr, nullptr}, buf, sizeof buf);
  EXPECT_STREQ(buf, "mnemos-alloc: double free of 0x0 (heap unknown)");
  // A kind this build does not know (the enum holds any byte): the prefix and
  // the heap, nothing invented.
  format_fault(Fault{static_cast<FaultKind>(200), p, h}, buf, sizeof buf);
  EXPECT_STREQ(buf, "mnemos-alloc:  (heap 0xab00)");
  // No room at all: nothing written, not even the terminator.
  buf[0] = 'x';
  EXPECT_EQ(format_fault(Fault{FaultKind::DoubleFree, p, h}, buf, 0), 0u);
  EXPECT_EQ(buf[0], 'x');
}

}  // namespace
}  // namespace mnemos

#else  // !MNEMOS_HARDENING

TEST(HardeningPaths, DisabledInThisBuild) { GTEST_SKIP() << "MNEMOS_HARDENING=0"; }

#endif
