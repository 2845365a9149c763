// Misuse detection (MNEMOS_HARDENING, detail/hardening.hpp, mnemos/fault.hpp):
// every case of issue 6 with a recording handler, on both backends. After each
// bad call: exactly one fault of the expected kind, the arena untouched
// (stats and check() as before), and the heap still serves allocations.
// The default handler's message is covered in fault_death_test.cpp.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "mnemos/alloc.hpp"
#include "mnemos/detail/asan.hpp"
#include "mnemos/detail/hardening.hpp"
#include "test_support.hpp"

#if MNEMOS_HARDENING

namespace mnemos {
namespace {

using test::Region;

using test::recorded_faults;

// The recording handler is installed for each test and the previous restored.
class Hardening : public test::FaultRecording {
 protected:
  // Exactly one fault, of `kind`, at `address`.
  static ::testing::AssertionResult one_fault(FaultKind kind, const void* address) {
    if (recorded_faults().size() != 1) {
      return ::testing::AssertionFailure() << recorded_faults().size() << " faults recorded, expected 1";
    }
    const Fault& f = recorded_faults().front();
    if (f.kind != kind || f.address != address) {
      return ::testing::AssertionFailure() << "fault " << to_string(f.kind) << " at " << f.address << ", expected "
                                           << to_string(kind) << " at " << address;
    }
    return ::testing::AssertionSuccess();
  }

  // The arena is as `before` said, check() passes, and an allocation works.
  static void expect_unharmed(Heap& heap, const Stats& before) {
    const Stats now = heap.stats();
    EXPECT_EQ(now.allocated_bytes, before.allocated_bytes);
    EXPECT_EQ(now.free_count, before.free_count);
    EXPECT_EQ(now.deferred_pending, before.deferred_pending);
    const CheckReport report = heap.check();
    EXPECT_TRUE(report.ok()) << to_string(report.failure) << " at " << report.address;
    Result<void*> p = heap.try_alloc_raw(Layout{24, 8});
    ASSERT_TRUE(p.has_value());
    Heap::free_raw(*p, Layout{24, 8});
  }
};

// Reads and writes a header word, which is poisoned under ASan.
std::uintptr_t header(void* payload) { return detail::asan_load(detail::header_slot(payload)); }
void set_header(void* payload, std::uintptr_t word) { detail::asan_store(detail::header_slot(payload), word); }

TEST_P(Hardening, ValidFreesReportNothing) {
  Region region(8192);
  Heap& heap = make_heap(region);
  for (const Layout l : {Layout{1, 1}, Layout{8, 8}, Layout{24, 16}, Layout{100, 64}, Layout{33, 4}}) {
    Result<void*> p = heap.try_alloc_raw(l);
    ASSERT_TRUE(p.has_value());
    Heap::free_raw(*p, l);
  }
  EXPECT_TRUE(recorded_faults().empty());
  test::expect_pristine(heap);
}

TEST_P(Hardening, HeaderIsEncodedNotThePlainHeapPointer) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* p = *heap.try_alloc_raw(test::kPlug);
  EXPECT_NE(header(p), detail::addr(&heap));
  EXPECT_EQ(header(p) & detail::kTagMask, detail::kLiveTag);
  Heap::free_raw(p, test::kPlug);
}

// --- double free --------------------------------------------------------------

// Alignment >= 32: the header lies beyond any node, so the scrub survives and
// names the heap.
TEST_P(Hardening, DoubleFreeOfAnOveralignedBlockNamesTheHeap) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout l{100, 64};
  void* p = *heap.try_alloc_raw(l);
  void* keep = *heap.try_alloc_raw(l);
  Heap::free_raw(p, l);
  const Stats before = heap.stats();
  Heap::free_raw(p, l);
  EXPECT_TRUE(one_fault(FaultKind::DoubleFree, p));
  EXPECT_EQ(recorded_faults().front().heap, &heap);
  expect_unharmed(heap, before);
  Heap::free_raw(keep, l);
  test::expect_pristine(heap);
}

// Alignment 8, same thread, block returned to the backend at once: a node
// (first fit's hole, TLSF's free block) lands on its header word, and what it
// writes there is still recognised as freed (hardening.hpp).
TEST_P(Hardening, DoubleFreeSameThreadIsADoubleFree) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* a = *heap.try_alloc_raw(test::kPlug);
  void* p = *heap.try_alloc_raw(test::kPlug);
  void* b = *heap.try_alloc_raw(test::kPlug);
  Heap::free_raw(p, test::kPlug);  // between two live blocks: a node lands on its header
  const Stats before = heap.stats();
  Heap::free_raw(p, test::kPlug);
  EXPECT_TRUE(one_fault(FaultKind::DoubleFree, p));
  expect_unharmed(heap, before);
  Heap::free_raw(a, test::kPlug);
  Heap::free_raw(b, test::kPlug);
  EXPECT_EQ(recorded_faults().size(), 1u);
  test::expect_pristine(heap);
}

// Every alignment class, every route of the first and of the second free:
// straight to the backend, or queued while the heap is locked (the second
// free then arrives through the deferred path too), with the first free
// drained before the second or still queued. Always a DoubleFree.
TEST_P(Hardening, DoubleFreeIsNamedForEveryAlignmentAndRoute) {
  enum Route { kDirect, kQueuedThenDrained, kBothWhileLocked, kDirectThenLocked };
  for (const std::size_t align : {std::size_t{1}, std::size_t{8}, std::size_t{16}, std::size_t{32}, std::size_t{64}}) {
    for (const std::size_t size : {std::size_t{1}, std::size_t{8}, std::size_t{24}, std::size_t{40}}) {
      for (const Route route : {kDirect, kQueuedThenDrained, kBothWhileLocked, kDirectThenLocked}) {
        Region region(4096);
        Heap& heap = make_heap(region);
        const Layout l{size, align};
        void* a = *heap.try_alloc_raw(l);
        void* p = *heap.try_alloc_raw(l);
        void* b = *heap.try_alloc_raw(l);
        recorded_faults().clear();
        if (route == kDirect || route == kDirectThenLocked) {
          Heap::free_raw(p, l);
        } else if (route == kQueuedThenDrained) {
          auto guard = heap.try_lock();
          Heap::free_raw(p, l);  // queued; drained when the guard goes
        }
        const std::size_t allocated = heap.stats().allocated_bytes;
        if (route == kBothWhileLocked) {
          auto guard = heap.try_lock();
          Heap::free_raw(p, l);  // queued
          Heap::free_raw(p, l);  // finds the queued node on (or before) its header
          EXPECT_EQ(heap.stats().deferred_pending, 1u);
        } else if (route == kDirectThenLocked) {
          auto guard = heap.try_lock();
          Heap::free_raw(p, l);  // would be queued: refused before the push
          EXPECT_EQ(heap.stats().deferred_pending, 0u);
        } else {
          Heap::free_raw(p, l);
        }
        EXPECT_TRUE(one_fault(FaultKind::DoubleFree, p))
            << "size " << size << " align " << align << " route " << route;
        if (route != kBothWhileLocked) {
          EXPECT_EQ(heap.stats().allocated_bytes, allocated);
        }
        recorded_faults().clear();
        Heap::free_raw(a, l);
        Heap::free_raw(b, l);
        EXPECT_TRUE(recorded_faults().empty());
        test::expect_pristine(heap);
        const CheckReport report = heap.check();
        EXPECT_TRUE(report.ok()) << to_string(report.failure);
      }
    }
  }
}

// The freed block's bytes are merged into a larger free span, and a later
// split puts a new free-list node 8 bytes before it: the node's link word (not
// tagged) now lies on the header word, and the node's first word before it.
// TLSF: the same shape arises when the freed block merges with a one-granule
// fragment in front of it.
TEST_P(Hardening, DoubleFreeUnderANodesLinkWordIsADoubleFree) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout x_layout{16, 8};  // a 24-byte block
  void* x = *heap.try_alloc_raw(x_layout);
  void* c = *heap.try_alloc_raw(test::kPlug);
  void* y = *heap.try_alloc_raw(test::kPlug);
  ASSERT_EQ(static_cast<std::byte*>(c), static_cast<std::byte*>(x) + 24);
  Heap::free_raw(x, x_layout);
  Heap::free_raw(c, test::kPlug);  // merges with x's space: [x - 8, c + 8) is free
  // 16 bytes from the front of that span: the rest, [c - 8, c + 8), gets a node.
  void* front = *heap.try_alloc_raw(test::kPlug);
  ASSERT_EQ(static_cast<std::byte*>(front), static_cast<std::byte*>(x));
  const Stats before = heap.stats();
  Heap::free_raw(c, test::kPlug);
  EXPECT_TRUE(one_fault(FaultKind::DoubleFree, c));
  expect_unharmed(heap, before);
  Heap::free_raw(front, test::kPlug);
  Heap::free_raw(y, test::kPlug);
  EXPECT_EQ(recorded_faults().size(), 1u);
  test::expect_pristine(heap);
}

// TLSF: the block freed next to a one-granule fragment in front of it; the
// merged free block's node starts 8 bytes before the block. (First fit leaves
// no 8-byte fragment, rule R3: there the same steps free a plain neighbour.)
TEST_P(Hardening, DoubleFreeAfterMergingAFragmentIsADoubleFree) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout x_layout{16, 8};  // a 24-byte block
  void* x = *heap.try_alloc_raw(x_layout);
  void* c = *heap.try_alloc_raw(test::kPlug);
  void* y = *heap.try_alloc_raw(test::kPlug);
  Heap::free_raw(x, x_layout);
  void* front = *heap.try_alloc_raw(test::kPlug);  // TLSF: leaves an 8-byte fragment before c
  // First fit would leave 8 bytes of x's hole (rule R3), so it places `front`
  // after y, and c's free merges with x's whole hole instead.
  if (backend() == Backend::Tlsf) {
    ASSERT_EQ(front, x);
  }
  Heap::free_raw(c, test::kPlug);  // merges with the fragment (TLSF) or the hole (first fit)
  const Stats before = heap.stats();
  Heap::free_raw(c, test::kPlug);
  EXPECT_TRUE(one_fault(FaultKind::DoubleFree, c));
  expect_unharmed(heap, before);
  Heap::free_raw(front, test::kPlug);
  Heap::free_raw(y, test::kPlug);
  EXPECT_EQ(recorded_faults().size(), 1u);
  test::expect_pristine(heap);
}

// The first free merges into the free space before it: the scrub stays (for
// alignment <= 16 a constant "freed" word, which does not name the heap).
TEST_P(Hardening, DoubleFreeAfterAMergeIsADoubleFree) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* a = *heap.try_alloc_raw(Layout{24, 8});
  void* p = *heap.try_alloc_raw(Layout{24, 8});
  void* b = *heap.try_alloc_raw(Layout{24, 8});
  Heap::free_raw(a, Layout{24, 8});
  Heap::free_raw(p, Layout{24, 8});  // merges with a's hole: its bytes are not rewritten
  const Stats before = heap.stats();
  Heap::free_raw(p, Layout{24, 8});
  EXPECT_TRUE(one_fault(FaultKind::DoubleFree, p));
  expect_unharmed(heap, before);
  Heap::free_raw(b, Layout{24, 8});
  test::expect_pristine(heap);
}

// Both frees while the lock is held: the first is queued, the second finds the
// queued node's tagged size on the header and is refused before it is pushed
// (a second push would link the node to itself).
TEST_P(Hardening, DoubleFreeWhileTheFirstIsQueued) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* p = *heap.try_alloc_raw(test::kPlug);
  {
    auto guard = heap.try_lock();
    ASSERT_TRUE(guard.has_value());
    Heap::free_raw(p, test::kPlug);  // deferred
    EXPECT_EQ(heap.stats().deferred_pending, 1u);
    Heap::free_raw(p, test::kPlug);
    EXPECT_TRUE(one_fault(FaultKind::DoubleFree, p));
    EXPECT_EQ(heap.stats().deferred_pending, 1u);
  }
  EXPECT_EQ(heap.stats().deferred_free_count, 1u);
  EXPECT_EQ(recorded_faults().size(), 1u);
  test::expect_pristine(heap);
}

// The second free arrives through the deferred path: refused at the free, not
// queued, so the drain never sees it.
TEST_P(Hardening, DoubleFreeArrivingWhileLockedIsNotQueued) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout l{48, 32};
  void* p = *heap.try_alloc_raw(l);
  void* keep = *heap.try_alloc_raw(l);
  Heap::free_raw(p, l);
  const Stats before = heap.stats();
  {
    auto guard = heap.try_lock();
    ASSERT_TRUE(guard.has_value());
    Heap::free_raw(p, l);
    EXPECT_TRUE(one_fault(FaultKind::DoubleFree, p));
    EXPECT_EQ(heap.stats().deferred_pending, 0u);
  }
  expect_unharmed(heap, before);
  Heap::free_raw(keep, l);
  test::expect_pristine(heap);
}

TEST_P(Hardening, DoubleFreeThroughAGuard) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout l{48, 64};
  void* p = *heap.try_alloc_raw(l);
  {
    auto guard = heap.try_lock();
    ASSERT_TRUE(guard.has_value());
    guard->free_raw(p, l);
    guard->free_raw(p, l);
    EXPECT_TRUE(one_fault(FaultKind::DoubleFree, p));
  }
  test::expect_pristine(heap);
}

TEST_P(Hardening, DoubleDropOfABoxIsRefused) {
  Region region(4096);
  Heap& heap = make_heap(region);
  Result<Box<std::uint64_t>> b = heap.try_alloc<std::uint64_t>(std::uint64_t{7});
  ASSERT_TRUE(b.has_value());
  std::uint64_t* raw = std::move(*b).leak();
  Box<std::uint64_t>::from_raw(raw);  // a temporary: dropped at once (first free)
  {
    auto guard = heap.try_lock();  // the second drop goes through the deferred path
    Box<std::uint64_t>::from_raw(raw);
  }
  ASSERT_EQ(recorded_faults().size(), 1u);
  EXPECT_EQ(recorded_faults().front().address, raw);
  test::expect_pristine(heap);
}

// --- pointers that were never blocks -------------------------------------------

TEST_P(Hardening, InteriorPointerIsForeign) {
  Region region(4096);
  Heap& heap = make_heap(region);
  auto* p = static_cast<std::byte*>(*heap.try_alloc_raw(Layout{64, 8}));
  std::memset(p, 0, 64);
  const Stats before = heap.stats();
  Heap::free_raw(p + 16, Layout{16, 8});
  EXPECT_TRUE(one_fault(FaultKind::ForeignPointer, p + 16));
  EXPECT_EQ(recorded_faults().front().heap, nullptr);
  expect_unharmed(heap, before);
  Heap::free_raw(p, Layout{64, 8});
  test::expect_pristine(heap);
}

struct alignas(16) FakeBlock {
  std::uint64_t before;  // where a header would be
  std::byte payload[32];
};
FakeBlock g_global_block{};

TEST_P(Hardening, StackAndGlobalPointersAreForeign) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Stats before = heap.stats();
  FakeBlock on_stack{};
  Heap::free_raw(on_stack.payload, Layout{32, 8});
  EXPECT_TRUE(one_fault(FaultKind::ForeignPointer, on_stack.payload));
  recorded_faults().clear();
  on_stack.before = detail::addr(&heap);  // an old-style plain header is refused too
  Heap::free_raw(on_stack.payload, Layout{32, 8});
  EXPECT_TRUE(one_fault(FaultKind::ForeignPointer, on_stack.payload));
  recorded_faults().clear();
  Heap::free_raw(g_global_block.payload, Layout{32, 8});
  EXPECT_TRUE(one_fault(FaultKind::ForeignPointer, g_global_block.payload));
  expect_unharmed(heap, before);
}

// Memory from another allocator. (The word before the pointer must be
// readable: the free reads it. Not so for a malloc()ed pointer, whose previous
// word is the allocator's own, so ThreadSanitizer rightly objects; here it is
// an element of the same vector.)
TEST_P(Hardening, PointerFromAnotherAllocatorIsRefused) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Stats before = heap.stats();
  std::vector<std::uint64_t> other(8, 0);
  for (const std::uint64_t word_before : {std::uint64_t{0}, std::uint64_t{0x51}, detail::addr(&other[0]), std::uint64_t{0x00007ffffffffff0}}) {
    recorded_faults().clear();
    other[1] = word_before;
    Heap::free_raw(&other[2], Layout{16, 8});
    EXPECT_TRUE(one_fault(FaultKind::ForeignPointer, &other[2])) << std::hex << word_before;
  }
  expect_unharmed(heap, before);
}

// A foreign pointer 8 bytes into a page whose previous page is unmapped: the
// free may read the word before the pointer (it must be readable, README,
// Limits), but never a word on the page before that one. (Found in review: a
// zero word there looked like a queue link and led to a second read, which
// crossed the page and crashed instead of reporting.)
TEST_P(Hardening, ForeignPointerJustPastAPageBoundaryReadsNoEarlierPage) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Stats before = heap.stats();
  const long page = sysconf(_SC_PAGESIZE);
  void* const two = mmap(nullptr, 2 * static_cast<std::size_t>(page), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(two, MAP_FAILED);
  std::byte* const second = static_cast<std::byte*>(two) + page;
  ASSERT_EQ(munmap(two, static_cast<std::size_t>(page)), 0);  // the page before `second` is gone
  for (const std::size_t align : {std::size_t{1}, std::size_t{8}}) {
    recorded_faults().clear();
    Heap::free_raw(second + 8, Layout{8, align});  // its header word (zero) is `second`'s first word
    EXPECT_TRUE(one_fault(FaultKind::ForeignPointer, second + 8)) << align;
  }
  ASSERT_EQ(munmap(second, static_cast<std::size_t>(page)), 0);
  expect_unharmed(heap, before);
}

// A block of another heap freed through this heap's guard goes to its own heap.
TEST_P(Hardening, BlockOfAnotherHeapGoesHome) {
  Region ra(4096);
  Region rb(4096);
  Heap& a = make_heap(ra);
  Heap& b = make_heap(rb);
  void* p = *b.try_alloc_raw(test::kPlug);
  {
    auto guard = a.try_lock();
    ASSERT_TRUE(guard.has_value());
    guard->free_raw(p, test::kPlug);
  }
  EXPECT_TRUE(recorded_faults().empty());
  test::expect_pristine(a);
  test::expect_pristine(b);
}

// A header copied onto another block does not decode there.
TEST_P(Hardening, CopiedHeaderDoesNotDecode) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* p = *heap.try_alloc_raw(Layout{32, 8});
  void* q = *heap.try_alloc_raw(Layout{32, 8});
  const std::uintptr_t q_header = header(q);
  set_header(q, header(p));
  const Stats before = heap.stats();
  Heap::free_raw(q, Layout{32, 8});
  ASSERT_EQ(recorded_faults().size(), 1u);
  EXPECT_EQ(recorded_faults().front().address, q);
  // Valid for p, not for q: it reads as a layout mismatch (or, with probability
  // ~3%, as a one-byte smash).
  EXPECT_TRUE(recorded_faults().front().kind == FaultKind::BadLayout || recorded_faults().front().kind == FaultKind::CorruptHeader);
  expect_unharmed(heap, before);
  set_header(q, q_header);
  Heap::free_raw(q, Layout{32, 8});
  Heap::free_raw(p, Layout{32, 8});
  EXPECT_EQ(recorded_faults().size(), 1u);
  test::expect_pristine(heap);
}

// --- a smashed header -------------------------------------------------------------

TEST_P(Hardening, EveryByteOfTheHeaderFlippedIsACorruptHeader) {
  Region region(4096);
  Heap& heap = make_heap(region);
  for (const Layout l : {Layout{8, 8}, Layout{40, 16}, Layout{64, 64}}) {
    void* p = *heap.try_alloc_raw(l);
    void* keep = *heap.try_alloc_raw(l);
    const std::uintptr_t good = header(p);
    for (int byte = 0; byte < 8; ++byte) {
      for (const unsigned flip : {0x01u, 0x10u, 0x80u, 0xFFu, 0x5Au}) {
        recorded_faults().clear();
        set_header(p, good ^ (std::uintptr_t{flip} << (8 * byte)));
        const Stats before = heap.stats();
        Heap::free_raw(p, l);
        ASSERT_TRUE(one_fault(FaultKind::CorruptHeader, p)) << "byte " << byte << " ^ " << flip;
        // The heap, unless two one-byte repairs decode (then unknown).
        EXPECT_TRUE(recorded_faults().front().heap == &heap || recorded_faults().front().heap == nullptr);
        EXPECT_EQ(heap.stats().allocated_bytes, before.allocated_bytes);
        EXPECT_TRUE(heap.check().ok());
      }
    }
    set_header(p, good);
    recorded_faults().clear();
    Heap::free_raw(p, l);
    Heap::free_raw(keep, l);
    EXPECT_TRUE(recorded_faults().empty());
  }
  test::expect_pristine(heap);
}

TEST_P(Hardening, AnOverflowIntoTheNextHeaderIsCaughtAtItsFree) {
  Region region(4096);
  Heap& heap = make_heap(region);
  auto* a = static_cast<std::byte*>(*heap.try_alloc_raw(Layout{24, 8}));
  void* b = *heap.try_alloc_raw(Layout{24, 8});
  ASSERT_EQ(static_cast<void*>(a + 32), b);  // [hdr a][24][hdr b][24]
  const std::uintptr_t good = header(b);
  // The user's one-byte overflow past a's payload lands on b's header.
  detail::asan_modify(reinterpret_cast<unsigned char*>(a + 24), [](unsigned char& c) { c ^= 0x42; });
  Heap::free_raw(b, Layout{24, 8});
  EXPECT_TRUE(one_fault(FaultKind::CorruptHeader, b));
  set_header(b, good);
  Heap::free_raw(b, Layout{24, 8});
  Heap::free_raw(a, Layout{24, 8});
  EXPECT_EQ(recorded_faults().size(), 1u);
  test::expect_pristine(heap);
}

// --- misaligned pointers and impossible layouts --------------------------------------

TEST_P(Hardening, MisalignedPointerIsRefused) {
  Region region(4096);
  Heap& heap = make_heap(region);
  auto* p = static_cast<std::byte*>(*heap.try_alloc_raw(Layout{64, 8}));
  const Stats before = heap.stats();
  for (const std::size_t off : {1u, 3u, 4u, 7u}) {
    recorded_faults().clear();
    Heap::free_raw(p + off, Layout{8, 1});
    EXPECT_TRUE(one_fault(FaultKind::Misaligned, p + off));
  }
  // Word-aligned but not aligned to the layout's alignment.
  std::byte* odd = detail::addr(p) % 64 == 0 ? p + 8 : p;
  recorded_faults().clear();
  Heap::free_raw(odd, Layout{8, 64});
  EXPECT_TRUE(one_fault(FaultKind::Misaligned, odd));
  expect_unharmed(heap, before);
  Heap::free_raw(p, Layout{64, 8});
  test::expect_pristine(heap);
}

TEST_P(Hardening, ImpossibleLayoutIsRefused) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* p = *heap.try_alloc_raw(Layout{64, 8});
  const Stats before = heap.stats();
  for (const Layout bad : {Layout{0, 8}, Layout{64, 3}, Layout{64, 0}, Layout{SIZE_MAX, 8}, Layout{SIZE_MAX - 4, 1}}) {
    recorded_faults().clear();
    Heap::free_raw(p, bad);
    EXPECT_TRUE(one_fault(FaultKind::BadLayout, p)) << bad.size << "/" << bad.align;
  }
  {
    auto guard = heap.try_lock();
    recorded_faults().clear();
    guard->free_raw(p, Layout{0, 8});
    EXPECT_TRUE(one_fault(FaultKind::BadLayout, p));
  }
  expect_unharmed(heap, before);
  Heap::free_raw(p, Layout{64, 8});
  test::expect_pristine(heap);
}

// A layout of another size class or alignment would hand the backend the
// wrong block: the header is bound to both, so it does not decode.
TEST_P(Hardening, LayoutOtherThanTheAllocationsIsRefused) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* p = *heap.try_alloc_raw(Layout{64, 64});
  const Stats before = heap.stats();
  for (const Layout wrong : {Layout{128, 64}, Layout{64, 32}, Layout{8, 64}}) {
    recorded_faults().clear();
    Heap::free_raw(p, wrong);
    ASSERT_EQ(recorded_faults().size(), 1u);
    EXPECT_EQ(recorded_faults().front().address, p);
    EXPECT_TRUE(recorded_faults().front().kind == FaultKind::BadLayout ||
                recorded_faults().front().kind == FaultKind::CorruptHeader);  // ~3%: see hardening.hpp
  }
  // Sizes that round to the same block are the same block: accepted.
  recorded_faults().clear();
  expect_unharmed(heap, before);
  Heap::free_raw(p, Layout{60, 64});
  EXPECT_TRUE(recorded_faults().empty());
  test::expect_pristine(heap);
}

// --- corruption found later ---------------------------------------------------------

// A use-after-free writes into a block while it waits in the deferred queue:
// the drain finds the node broken, reports it and does not follow it.
TEST_P(Hardening, DeferredNodeOverwrittenWhileQueuedIsACorruptArena) {
  Region region(4096);
  Heap& heap = make_heap(region);
  auto* p = static_cast<std::byte*>(*heap.try_alloc_raw(Layout{24, 8}));
  {
    auto guard = heap.try_lock();
    Heap::free_raw(p, Layout{24, 8});  // queued: its node is [header][payload word 0]
    std::uint64_t junk = 0x0123456789abcdefull;
    std::memcpy(p, &junk, sizeof junk);  // the use-after-free: payload word 0 = the link
  }
  // The block is lost (still counted as allocated), nothing else.
  test::expect_broken_queued_block_lost(heap, p);
}

// --- check() walks the deferred queue ---------------------------------------------

// Two blocks queued under a guard (the queue is LIFO: `second` is the head and
// links to `first`); each case corrupts one node through the test's own view
// of it, asserts what guard.check() reports, then restores it, so the drain
// at the guard's release finds an intact queue.
struct QueuedPair {
  Heap& heap;
  void* first;
  void* second;
  void* keep;  // between them, so the two blocks are not adjacent
  std::optional<Heap::Guard> guard;

  static constexpr Layout kLayout{24, 8};  // 32-byte blocks, node at the block's start
  explicit QueuedPair(Heap& h) : heap(h) {
    first = *heap.try_alloc_raw(kLayout);
    keep = *heap.try_alloc_raw(kLayout);
    second = *heap.try_alloc_raw(kLayout);
    guard = heap.try_lock();
    Heap::free_raw(first, kLayout);
    Heap::free_raw(second, kLayout);
  }
  static detail::DeferredNode* node(void* payload) {
    // The node is the block's first two words (deferred_node.hpp): block start.
    return reinterpret_cast<detail::DeferredNode*>(detail::block_start(payload, kLayout.align));
  }
};

TEST_P(Hardening, CheckPassesWithQueuedBlocksAndCountsThem) {
  Region region(4096);
  Heap& heap = make_heap(region);
  QueuedPair q(heap);
  ASSERT_EQ(heap.stats().deferred_pending, 2u);
  const CheckReport report = q.guard->check();
  EXPECT_TRUE(report.ok()) << to_string(report.failure) << " at " << report.address;
  q.guard.reset();
  Heap::free_raw(q.keep, QueuedPair::kLayout);
  EXPECT_TRUE(recorded_faults().empty());
  test::expect_pristine(heap);
}

TEST_P(Hardening, CheckReportsACorruptQueuedNode) {
  struct Case {
    const char* what;
    CheckFailure expected;
    bool at_first;  // the report names `first` (else `second`)
    void (*corrupt)(detail::DeferredNode* second, detail::DeferredNode* first, Heap& heap);
  };
  const Case cases[] = {
      {"size untagged or zero", CheckFailure::DeferredBadSize, true,
       [](detail::DeferredNode*, detail::DeferredNode* f, Heap&) { f->block_size = 0; }},
      {"size not a multiple of 8", CheckFailure::DeferredBadSize, true,
       [](detail::DeferredNode*, detail::DeferredNode* f, Heap&) { f->block_size = detail::tag_free_size(36); }},
      {"size runs past the arena", CheckFailure::DeferredBadSize, true,
       [](detail::DeferredNode*, detail::DeferredNode* f, Heap&) { f->block_size = detail::tag_free_size(std::size_t{1} << 40); }},
      {"size overlaps the free space", CheckFailure::DeferredOverlap, false,
       [](detail::DeferredNode* s, detail::DeferredNode*, Heap&) { s->block_size = detail::tag_free_size(64); }},
      {"size overlaps the other node", CheckFailure::DeferredOverlap, true,
       [](detail::DeferredNode*, detail::DeferredNode* f, Heap&) { f->block_size = detail::tag_free_size(96); }},
      {"link leaves the arena", CheckFailure::DeferredOutOfBounds, false,
       [](detail::DeferredNode* s, detail::DeferredNode*, Heap& h) {
         s->next = reinterpret_cast<detail::DeferredNode*>(&h) - 1;  // below the arena: never read
       }},
      {"link misaligned", CheckFailure::DeferredMisaligned, false,
       [](detail::DeferredNode* s, detail::DeferredNode* f, Heap&) {
         s->next = reinterpret_cast<detail::DeferredNode*>(reinterpret_cast<std::byte*>(f) + 4);
       }},
      {"cycle", CheckFailure::DeferredCycle, false,
       [](detail::DeferredNode* s, detail::DeferredNode* f, Heap&) { f->next = s; }},
  };
  for (const Case& c : cases) {
    Region region(4096);
    Heap& heap = make_heap(region);
    QueuedPair q(heap);
    detail::DeferredNode* const second = QueuedPair::node(q.second);
    detail::DeferredNode* const first = QueuedPair::node(q.first);
    ASSERT_EQ(second->next, first) << "the queue is LIFO";
    const detail::DeferredNode saved_second = *second;
    const detail::DeferredNode saved_first = *first;
    c.corrupt(second, first, heap);
    const CheckReport report = q.guard->check();
    EXPECT_EQ(report.failure, c.expected) << c.what << ": " << to_string(report.failure);
    EXPECT_EQ(report.address, c.at_first ? static_cast<const void*>(first) : static_cast<const void*>(second)) << c.what;
    *second = saved_second;
    *first = saved_first;
    EXPECT_TRUE(q.guard->check().ok()) << c.what;
    q.guard.reset();
    Heap::free_raw(q.keep, QueuedPair::kLayout);
    EXPECT_TRUE(recorded_faults().empty()) << c.what;
    test::expect_pristine(heap);
  }
}

// A corrupted free-list link is found by check(), with its address.
TEST_P(Hardening, CorruptedFreeListLinkIsFoundByCheck) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* a = *heap.try_alloc_raw(Layout{24, 8});
  void* p = *heap.try_alloc_raw(Layout{24, 8});
  void* b = *heap.try_alloc_raw(Layout{24, 8});
  Heap::free_raw(p, Layout{24, 8});  // a free block between two live ones
  auto* hole = static_cast<std::byte*>(p) - 8;
  // First fit: the link is the hole's second word; TLSF: the next index at +4
  // (and size at +0). Overwrite 8 bytes at +8 (first fit) or the size (TLSF).
  std::byte* target = backend() == Backend::FirstFit ? hole + 8 : hole;
  const std::uint64_t saved = detail::asan_load(reinterpret_cast<std::uint64_t*>(target));
  detail::asan_store<std::uint64_t>(target, backend() == Backend::FirstFit ? 0x10ull : (saved & ~0xFFFFFFFFull) | 0x7FFFu);
  const CheckReport report = heap.check();
  EXPECT_FALSE(report.ok());
  EXPECT_NE(report.address, nullptr);
  detail::asan_store<std::uint64_t>(target, saved);
  EXPECT_TRUE(heap.check().ok());
  Heap::free_raw(a, Layout{24, 8});
  Heap::free_raw(b, Layout{24, 8});
  EXPECT_TRUE(recorded_faults().empty());
  test::expect_pristine(heap);
}

// --- the handler itself ----------------------------------------------------------

void other(const Fault&) {}

TEST_P(Hardening, SetFaultHandlerReturnsThePreviousOne) {
  EXPECT_EQ(set_fault_handler(&other), &test::record_fault);
  EXPECT_EQ(fault_handler(), &other);
  EXPECT_EQ(set_fault_handler(nullptr), &other);
  EXPECT_EQ(fault_handler(), &default_fault_handler);
  EXPECT_EQ(set_fault_handler(&test::record_fault), &default_fault_handler);
}

TEST(FaultFormat, MessagesNameTheFaultAddressAndHeap) {
  char buf[256];
  const auto* p = reinterpret_cast<const void*>(std::uintptr_t{0x1230});
  const auto* h = reinterpret_cast<const Heap*>(std::uintptr_t{0xab00});
  format_fault(Fault{FaultKind::DoubleFree, p, h}, buf, sizeof buf);
  EXPECT_STREQ(buf, "mnemos-alloc: double free of 0x1230 (heap 0xab00)");
  format_fault(Fault{FaultKind::DoubleFree, p, nullptr}, buf, sizeof buf);
  EXPECT_STREQ(buf, "mnemos-alloc: double free of 0x1230 (heap unknown)");
  format_fault(Fault{FaultKind::Misaligned, p, nullptr}, buf, sizeof buf);
  EXPECT_STREQ(buf, "mnemos-alloc: free of misaligned pointer 0x1230 (heap unknown)");
  format_fault(Fault{FaultKind::CorruptHeader, p, h}, buf, sizeof buf);
  EXPECT_STREQ(buf, "mnemos-alloc: corrupt header before 0x1230 (overwritten by an overflow?) (heap 0xab00)");
  char tiny[8];
  EXPECT_EQ(format_fault(Fault{FaultKind::ForeignPointer, p, h}, tiny, sizeof tiny), 7u);
  EXPECT_STREQ(tiny, "mnemos-");
}

MNEMOS_TEST_ALL_BACKENDS(Hardening);

}  // namespace
}  // namespace mnemos

#else  // !MNEMOS_HARDENING

TEST(Hardening, DisabledInThisBuild) { GTEST_SKIP() << "MNEMOS_HARDENING=0"; }

#endif
