// TLSF backend: two-level segregated fit with O(1) allocate and free, and no
// per-block header.
//
// Why this design (issue 7 wants O(1) *and* "Box<T> overhead exactly one
// pointer", as first fit has)
//   (a) Classic TLSF keeps a header (size, free bit, previous-physical pointer)
//       in front of every block, allocated or not: one or two words per block
//       on top of the heap's own header word. Rejected: it breaks the
//       one-pointer overhead.
//   (b) Header-less TLSF with a 16-byte granule (header and tag in one
//       granule): built and measured first, then rejected too, because
//       rounding every block to 16 bytes makes Box<T> cost sizeof(T) + 16
//       whenever sizeof(T) is a multiple of 16 (Box<16-byte T> = 32 bytes
//       where tests/owners_test.cpp, BoxOwner.OverheadIsExactlyOnePointer, expects
//       24): one pointer of header plus a word of rounding.
//   (c) Chosen: header-less TLSF with an 8-byte granule, so rounded_size() is
//       first fit's (multiples of 8, at least 16) and the owners above see the
//       same one-pointer overhead with either backend.
//     - deallocate() is told the size again (the heap knows it from the
//       layout), so an allocated block carries nothing of ours;
//     - a free block carries its metadata inside itself, as 32-bit granule
//       counts and indices: its size at offset 0, the list links next (+8)
//       and prev (+16; +12 in a 16-byte block), and a copy of its size (the
//       end tag) in its last 4 bytes. A 16-byte block holds size, next and
//       prev; its size is also known from its marks (both granules marked),
//       so it needs no end tag (src/tlsf.cpp has the picture; "Misuse
//       detection" below says why the fields sit where they do);
//     - an 8-byte free block (a "fragment": the rest of a split, or the front
//       padding of an aligned block, one granule long) holds only its size
//       and tag. It is too small for any request, so it is in no list: it
//       only waits, marked, to merge when a neighbour is freed. Allowing it
//       means a split never has to refuse a block for the 8 bytes it would
//       strand (first fit's rule R3), so fits_when_empty() is the plain "fits";
//     - to find out in O(1) whether the physical neighbours of a block being
//       freed are free, a *mark bitmap* holds one bit per granule, set on the
//       first and on the last granule of every free block and clear everywhere
//       else (an allocated block has no marks). The granule just before a
//       freed block is marked iff the block ending there is free (and then it
//       is that block's last granule: its tag gives its start); the granule
//       just after is marked iff the block starting there is free (its size
//       field says how far it goes). One bit for both ends, not two bitmaps:
//       1.6% of the arena.
//   The marks, the list heads (32 x 4 bytes per first level in use) and three
//   scratch granules live at the start of the region given to init(), so
//   sizeof(Tlsf) stays small (a heap that can hold either backend does not
//   grow by kilobytes); capacity() counts only the blocks.
//   Measured (tests/tlsf_test.cpp, Utilisation1MiB): a 1 MiB region gives a
//   capacity of 98.3% of it; filling it with random 8..512 B requests, each
//   plus the heap's 8-byte header, uses ~97% of the region (requested bytes +
//   headers) before the first failure. The rest is the marks and heads,
//   rounding to 8 bytes (3.5 B per block on average) and the tail left when
//   the first request does not fit. 32-bit indices bound the arena to
//   kMaxGranules granules (8 GiB); the rest of a larger region is unused.
//
// Size classes (sizes are counted in granules; listed blocks have g >= 2)
//   Linear class numbers c = fl * 32 + sl, computed with one bit scan:
//   w = max(bit_width(g) - 6, 0) (via bit_width(g | 63), i.e. countl_zero),
//   c = (w << 5) + (g >> w). That is:
//     fl 0: g in [2, 32), 32 classes one granule wide (g = 0, 1 unused)
//     fl 1: g in [32, 64), one granule wide: every size below 512 B has an
//           exact class, so small requests lose nothing to class rounding
//     fl f >= 2: g in [32 << (f-1), 64 << (f-1)), 32 classes 2^(f-1) wide.
//   A free block is filed in the class of its size. allocate() searches from
//   the class of the request *rounded up to the next class boundary* ("good
//   fit"), so any block found is large enough without looking at it; the block
//   is then split to exactly rounded_size() and the rest filed again. If that
//   finds nothing, one more O(1) probe looks at the head of the first
//   non-empty class at or above the request's own class (it may hold a block
//   that is large enough); this makes fits_when_empty() mean simply "fits in
//   the arena".
//
// Rules
//   T1 rounded_size(n) = align_up(max(n, 16), 8) (first fit's R1 on LP64).
//      allocate() hands out, and deallocate() takes back, exactly that many
//      bytes; rounded_size is idempotent, so the heap may pass either the
//      request or the rounded size.
//   T2 Alignment A = max(align, 8). The block starts at the first A-aligned
//      granule of the free block chosen; the front padding (a multiple of 8)
//      stays a free block, or a fragment. For A > 8 the search size is
//      g + A/8 - 1 granules, so any block found fits at any address.
//   T3 allocate() fails only when (a) no free block lies in the search class
//      of the search size (T2) or above, and (b) the head of the first
//      non-empty class at or above the request's own class cannot hold it.
//      In particular it never fails while a free block of at least the search
//      size rounded up to a class boundary exists.
//   T4 deallocate() merges the block with the free block (or fragment) that
//      ends where it starts and with the one that starts where it ends
//      (either, both, neither), so no two free blocks ever touch; the result
//      is filed at the head of its class.
//   T5 init() aligns start up and the end down to 8, places the marks, the
//      heads and the scratch granules at the start, the blocks at the end; the
//      blocks form one free block. Fails (backend left empty) if fewer than
//      kMinBlock bytes would remain for blocks.
//
// Bounds (the worst case, independent of the number of free blocks)
//   allocate() and deallocate() contain no loop: every path is straight-line
//   code. A "step" below is one constant-time primitive: a class mapping plus
//   two-level bitmap search (one bit scan, two countr_zero), a list unlink or
//   link, or a test of a neighbour's mark. Counted by a test-only probe
//   compiled into the same code (tests/tlsf_test.cpp):
//     allocate():   <= kAllocateMaxSteps = 5   (search, fallback probe, unlink,
//                                               file front padding, file rest)
//     deallocate(): <= kDeallocateMaxSteps = 5 (test prev, unlink prev, test
//                                               next, unlink next, link)
//   plus at most 4 single-bit mark updates each. List links and unlinks are
//   branch-free (a missing neighbour is index 0, the scratch granules, so its
//   link is written there instead of being tested). The data-dependent
//   branches left are "merge with prev?", "merge with next?", "split?" and
//   "is it a fragment?". No division: shifts and masks only.
//
// Cost, measured locally (not a committed benchmark; bench/ comes later):
//   1,000 live blocks of 8..512 B plus the heap's 8-byte header, one free +
//   one allocate per step, 2M steps, fixed seed, per-thread CPU time on the
//   shared 2-vCPU machine: ~35 ns per pair with g++ 12 -O2 (~32 ns with
//   clang++ 14), against ~16 ns for glibc malloc/free in the same process:
//   about 2x glibc, so issue 7's "<= 1.0x glibc" target is missed (the
//   well-known C TLSF measured ~39 ns there). Callgrind (repeatable): ~260
//   instructions and ~1.5 simulated branch misses per pair (allocate ~138,
//   deallocate ~120) against ~155 and ~0.6 for glibc, whose tcache serves
//   this loop from per-size LIFO caches without coalescing, while this
//   backend merges and re-files on every free. The misses are the data-
//   dependent branches named above (split? 0.5, merge prev/next? 0.33 each,
//   fragment? 0.35 per pair). The 16-byte-granule variant (b) measured ~31 ns
//   (1.8x) and ~0.9 misses: no fragments, but it fails the overhead target.
//
// Misuse detection (MNEMOS_HARDENING, detail/hardening.hpp): a block freed
// twice must still be recognised as freed, whatever this backend wrote over
// its header word meanwhile. The header word of a block whose bytes are all
// free is any word of a free block but its last; of each such word this
// backend writes only the low half (+0: size, +8: next, +16: prev), or
// writes kFreeHalfTag into the high half (+12, in blocks of 3 granules or
// more), so the high half keeps the freed scrub's kFreeHalfTag and the word
// reads as freed. The one exception, +12 = prev in a 2-granule block, is no
// header position: that block's neighbour after it is allocated, so a block
// with its header there would not be all free. Cost (callgrind, bench/): ~20
// instructions per allocate + deallocate pair, for the class-dependent prev
// offset, one store per link and one mark test when a free merges with a
// 2-granule block. With MNEMOS_HARDENING=0 the compact layout is used instead
// (next +4, prev +8, every block with its end tag; kNextAt, kPrevAt*).
//
// Sanitizers: under ASan (detail/asan.hpp) every metadata field in a free
// block is read and written with its 8-byte granule opened for just that
// access and its poisoning restored after (src/tlsf.cpp, load32/store32), as
// first fit does for its nodes. So when the heap keeps free bytes poisoned,
// they all stay poisoned between calls; memory nobody poisoned (a bare
// backend in a test) is left alone. The marks, the list heads and the scratch
// granules lie below arena_begin() and are never poisoned. allocate() returns
// the block's bytes as they were; the caller unpoisons what it hands out.
// Without ASan they are plain accesses.
//
// Threads: none of the functions synchronise. The caller (the heap, under its
// try-lock) serialises every call; const queries may run concurrently with
// each other but not with a mutating call. No function allocates, throws or
// uses RTTI.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "mnemos/check.hpp"
#include "mnemos/detail/align.hpp"
#include "mnemos/detail/deferred_node.hpp"
#include "mnemos/detail/hardening.hpp"

namespace mnemos::detail {

struct tlsf_test_access;  // white-box tests only (defined in tests/)

// Counts the steps (see "Bounds") of one allocate/deallocate; tests only.
struct TlsfSteps {
  std::size_t count = 0;
  constexpr void operator()() noexcept { ++count; }
};

class Tlsf {
 public:
  static constexpr unsigned kGranuleShift = 3;
  // Every block starts on, and is a multiple of, the granule.
  static constexpr std::size_t kGranule = std::size_t{1} << kGranuleShift;
  // The smallest block allocate() hands out: it holds a listed free block's
  // size, links and tag once freed, and a freed block's DeferredNode (two
  // words on LP64). Free fragments of one granule exist (see above).
  static constexpr std::size_t kMinBlock = 2 * kGranule;
  static_assert(kMinBlock >= 2 * sizeof(void*) && kMinBlock >= sizeof(DeferredNode) &&
                    kGranule % alignof(DeferredNode) == 0,
                "a freed block must hold a DeferredNode");
  // Granules addressable with 32-bit indices, leaving room for the scratch
  // granules and the sentinel.
  static constexpr std::size_t kMaxGranules = std::size_t{1} << 30;
  static constexpr unsigned kSlLog2 = 5;
  static constexpr unsigned kSlCount = 1u << kSlLog2;  // second-level classes per first level
  // First levels reachable by any search size computed (< 2^32 granules).
  static constexpr unsigned kFlCount = 28;
  // Where a free block's links live (src/tlsf.cpp has the picture). Under
  // MNEMOS_HARDENING next and prev keep out of the high half of the words a
  // freed header can lie in ("Misuse detection" above), which costs a
  // class-dependent prev offset and a third scratch granule; without it, the
  // compact layout: size +0, next +4, prev +8, tag in the last 4 bytes.
  static constexpr std::size_t kNextAt = kHardening ? 8 : 4;
  static constexpr std::size_t kPrevAtTwo = kHardening ? 12 : 8;   // 2-granule blocks
  static constexpr std::size_t kPrevAtLong = kHardening ? 16 : 8;  // 3 granules or more
  static constexpr std::size_t kAllocateMaxSteps = 5;
  static constexpr std::size_t kDeallocateMaxSteps = 5;

  // Empty: capacity 0; allocate() returns nullptr until init().
  Tlsf() noexcept = default;
  Tlsf(const Tlsf&) = delete;
  Tlsf& operator=(const Tlsf&) = delete;

  // Takes [start, start + size) (T5), discarding any previous state. The range
  // must be writable, unused by anything else, and outlive the backend; its
  // first bytes hold the marks (size / 64 bytes), the list heads (128 bytes
  // per first level in use: 13 for 1 MiB) and three scratch granules, the rest
  // is capacity(). Returns false, leaving the backend empty, when not even one
  // kMinBlock block would remain (regions below 176 bytes on LP64; 168 with
  // MNEMOS_HARDENING=0, whose compact node layout needs one scratch granule less).
  // O(size / 64) byte writes: the marks are zeroed.
  bool init(std::byte* start, std::size_t size) noexcept;

  // T1. Precondition: size <= SIZE_MAX - kGranule (no overflow). O(1).
  // Equal to FirstFit::rounded_size on LP64, so the heap's byte counts and
  // the owners' overhead do not depend on the backend.
  static constexpr std::size_t rounded_size(std::size_t size) noexcept {
    return static_cast<std::size_t>(align_up(size < kMinBlock ? kMinBlock : size, kGranule));
  }

  // Good fit (T2, T3). Returns a block of rounded_size(size) bytes aligned to
  // max(align, kGranule), or nullptr when no free block can serve it as T3
  // says. A non-power-of-two align or a size larger than free_bytes() yields
  // nullptr; size 0 is served as kMinBlock. O(1): at most kAllocateMaxSteps
  // steps, no loop.
  void* allocate(std::size_t size, std::size_t align) noexcept;

  // Returns a block (T4). Precondition: p came from allocate() on this
  // backend with a size of the same rounded_size() and has not been returned
  // since; a violation corrupts the structure (the heap's block header
  // detects double and foreign frees before they get here). nullptr is
  // ignored. Never fails. O(1): at most kDeallocateMaxSteps steps, no loop.
  void deallocate(void* p, std::size_t size) noexcept;

  // Whether allocate(size, align) would succeed on the empty arena: exactly
  // when the block, aligned within the one free block, fits in capacity()
  // (the fallback probe of T3 makes this exact). Huge sizes and alignments
  // (and non-powers of two) give false, without overflow. O(1).
  bool fits_when_empty(std::size_t size, std::size_t align) const noexcept;

  // Bytes of blocks after init()'s metadata and alignment; 0 when empty. O(1).
  std::size_t capacity() const noexcept { return granules_ << kGranuleShift; }
  // Sum of the free block sizes, kept as a counter (check() verifies it). O(1).
  std::size_t free_bytes() const noexcept { return free_; }
  // Number of free blocks, fragments included. O(capacity / 512 + free
  // blocks): scans the marks.
  std::size_t hole_count() const noexcept;

  std::byte* arena_begin() const noexcept { return granules_ == 0 ? nullptr : at(kFirst); }
  std::byte* arena_end() const noexcept { return granules_ == 0 ? nullptr : end_; }

  // Calls f(std::byte* start, std::size_t size) for every free block in
  // address order, fragments included. f must not allocate or free on this
  // backend. O(capacity / 512 + free blocks): scans the marks.
  template <class F>
  void for_each_hole(F&& f) const {
    for (std::size_t k = next_mark(kFirst); k < end_index();) {
      const std::size_t g = block_granules(k);
      f(at(k), g << kGranuleShift);
      k = next_mark(k + (g == 0 ? 1 : g));  // g == 0 only if corrupted: still progress
    }
  }

  // Walks the arena through the marks, then every class list, and reports
  // the first broken invariant with the address of the free block at fault
  // (or of this object). The mapping onto CheckFailure (named for first fit's
  // list) is:
  //   HoleOutOfBounds   a free block runs past the arena end, a mark is set
  //                     outside the arena, or a list link leaves the arena;
  //   HoleBadSize       a free block of size 0, a listed block below
  //                     kMinBlock, or an end tag or end mark that disagrees
  //                     with the size field (sizes are counted in granules,
  //                     so "not a multiple" cannot occur; one-granule
  //                     fragments are valid, unlisted free blocks);
  //   HoleOverlap       a mark inside a free block: another block's boundary
  //                     lies within it;
  //   HoleAdjacent      two free blocks touch: a merge was missed;
  //   HoleMisaligned    a list head or link names a granule that is not
  //                     marked as a free block's boundary;
  //   HoleUnordered     the segregated index is inconsistent: a block filed in
  //                     the wrong class, a broken back link or a cycle, a free
  //                     block not linked into its class, or a first/second
  //                     level bitmap bit that disagrees with its list;
  //   FreeBytesMismatch (address: this) the free block sizes do not add up to
  //                     the counter, or the lists hold a different number of
  //                     blocks than the arena.
  // Every index is range-checked before the bytes it names are read, and list
  // walks are bounded by the number of free blocks found, so a corrupted
  // structure cannot make check() crash or loop.
  // O(capacity / 512 + free blocks + first levels * 32).
  CheckReport check() const noexcept;

 private:
  friend struct tlsf_test_access;

  // Classes are numbered linearly, c = fl * kSlCount + sl, so "the next
  // class" is c + 1 and a list head is heads_[c].
  //
  // log2 of the class width for g: 0 below 2 * kSlCount, then one more per
  // doubling. One bit scan, branch-free.
  static constexpr unsigned width_log2(std::size_t g) noexcept {
    return static_cast<unsigned>(std::bit_width(g | (2 * kSlCount - 1))) - (kSlLog2 + 1);
  }
  // The class a free block of g >= 1 granules is filed in: with w =
  // width_log2(g), g >> w is g itself below 32 (level 0) and in [32, 64)
  // above, so (w << 5) + (g >> w) is fl * 32 + sl in both cases. O(1).
  static constexpr unsigned class_of(std::size_t g) noexcept {
    const unsigned w = width_log2(g);
    return (w << kSlLog2) + static_cast<unsigned>(g >> w);
  }
  // The class searched for g (T3, "good fit"): the class of g if g is its
  // smallest member, else the next one, so every block there or above is
  // >= g. O(1).
  static constexpr unsigned search_class(std::size_t g) noexcept {
    const unsigned w = width_log2(g);
    const std::size_t below = g & ((std::size_t{1} << w) - 1);  // g above its class's floor
    return (w << kSlLog2) + static_cast<unsigned>(g >> w) + static_cast<unsigned>(below != 0);
  }
  static constexpr unsigned first_level(unsigned c) noexcept { return c >> kSlLog2; }

  using Word = std::size_t;  // mark bitmap word
  static constexpr unsigned kWordBits = sizeof(Word) * 8;

  // Granule indices: blocks span [kFirst, end_index()). Granules 0 to 2 are
  // reserved scratch just below the first block, so index 0 can mean "no
  // block" in the lists and list updates can write a missing neighbour's link
  // (at +8, +12 or +16) there instead of branching. Marks exist for [0,
  // end_index()]; 0 to 2 and end_index() are never set, so the neighbours of
  // the first and last blocks read as allocated.
  static constexpr std::size_t kFirst = kHardening ? 3 : 2;
  std::size_t end_index() const noexcept { return granules_ + kFirst; }
  std::byte* at(std::size_t k) const noexcept { return base_ + (k << kGranuleShift); }

  bool marked(std::size_t k) const noexcept { return (marks_[k / kWordBits] >> (k % kWordBits)) & 1u; }
  void set_mark(std::size_t k) noexcept { marks_[k / kWordBits] |= Word{1} << (k % kWordBits); }
  void clear_mark(std::size_t k) noexcept { marks_[k / kWordBits] &= ~(Word{1} << (k % kWordBits)); }
  // The first marked index >= k, or a value >= end_index() when none. O(words).
  std::size_t next_mark(std::size_t k) const noexcept;
  // The size field of the free block starting at k (no validation).
  std::size_t block_granules(std::size_t k) const noexcept;

  std::uint32_t& head(unsigned c) const noexcept { return heads_[c]; }
  // The first non-empty class >= c, in place; false if none. O(1).
  bool find_nonempty(unsigned& c) const noexcept;
  // Writes the size and end tag of the free block [k, k + g), g >= 1.
  void write_sizes(std::size_t k, std::size_t g) noexcept;
  // Files the free block [k, k + g), g >= 2, at the head of its class and
  // writes its size, links and end tag (not its marks: callers set only those
  // that change). O(1), branch-free.
  void link(std::size_t k, std::size_t g) noexcept;
  // link() for g >= 2, write_sizes() only for a fragment (g == 1).
  void file(std::size_t k, std::size_t g) noexcept;
  // Removes the free block at k, of g >= 2 granules, from its class list.
  // O(1), branch-free.
  void unlink(std::size_t k, std::size_t g) noexcept;
  // unlink() for k, the head of class c. O(1), branch-free.
  void pop(unsigned c, std::size_t k) noexcept;
  // After a removal from class c: clears its bitmap bits if `empty`.
  void clear_if_empty(unsigned c, bool empty) noexcept;

  // allocate()/deallocate() with a step counter; the public functions use a
  // no-op one (identical code). Defined and instantiated in src/tlsf.cpp.
  template <class Probe>
  void* allocate_impl(std::size_t size, std::size_t align, Probe& step) noexcept;
  template <class Probe>
  void deallocate_impl(void* p, std::size_t size, Probe& step) noexcept;
  // allocate()'s aligned requests and fallback probe, out of line; g is the
  // request in granules; `searched`: the good-fit search already failed.
  template <class Probe>
  void* allocate_slow(std::size_t g, std::size_t align, bool searched, Probe& step) noexcept;
  // Takes block k (s granules, head of class c) and splits off `pad` front
  // granules and the rest behind g granules as free blocks or fragments. O(1).
  template <class Probe>
  void* take(unsigned c, std::size_t k, std::size_t s, std::size_t pad, std::size_t g, Probe& step) noexcept;

  void reset() noexcept;

  std::byte* base_ = nullptr;         // granule 0 (scratch); blocks start at granule kFirst
  std::byte* end_ = nullptr;          // one past the last block
  Word* marks_ = nullptr;             // end_index() + 1 bits, in the region
  std::uint32_t* heads_ = nullptr;    // fl_count_ * kSlCount list heads, in the region; 0 = empty
  std::size_t granules_ = 0;          // capacity in granules
  std::size_t free_ = 0;              // bytes
  unsigned fl_count_ = 0;             // first levels with heads: first_level(class_of(granules_)) + 1
  std::uint32_t fl_bitmap_ = 0;       // bit f: sl_bitmap_[f] != 0
  std::uint32_t sl_bitmap_[kFlCount] = {};  // bit s of [f]: heads (f, s) non-empty
};

}  // namespace mnemos::detail
