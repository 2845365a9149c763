// TLSF backend: see include/mnemos/detail/tlsf.hpp for the design, the rules
// (T1-T5) and the bounds that this file implements.
#include "mnemos/detail/tlsf.hpp"

#include <bit>
#include <new>

#include "mnemos/detail/asan.hpp"
#include "mnemos/detail/hardening.hpp"

namespace mnemos::detail {

namespace {

// A free block's metadata, as byte offsets into it (all 32-bit granule counts
// or indices; index 0 means "none"):
//   2 granules:            [ size | ---- | next | prev ]
//                            +0     +4     +8     +12
//   3 or more granules:    [ size | ---- | next | HALF | prev | ... | tag ]
//                            +0     +4     +8     +12    +16         last 4 bytes
//   fragment (1 granule):  [ size | tag ]
// The size is always at +0, so a neighbour's size is read the same way
// whatever its kind. The tag (the size again) is in the last 4 bytes, except
// in a 2-granule block, whose +12 holds prev: its size is known from the
// marks instead (both of its granules are marked; see deallocate_impl()).
// Why this shape (tlsf.hpp, "Misuse detection"): the high half (+4) of every
// word that can be a freed block's header position is never written, or
// holds kFreeHalfTag (HALF, +12, written under MNEMOS_HARDENING), so the
// freed scrub's high half survives under the low-half fields. prev sits at
// +16 in longer blocks for the same reason; a list holds blocks of one class
// and class 2 holds exactly the 2-granule blocks, so every list operation
// knows which offset its neighbours use (prev_at()).
// That is the layout under MNEMOS_HARDENING; without it, the compact one:
// [ size | next | prev | ... | tag ] at +0, +4, +8 and the last 4 bytes, the
// tag in every block (Tlsf::kNextAt, kPrevAt*).
constexpr std::size_t kSize = 0;
constexpr std::size_t kNext = Tlsf::kNextAt;
constexpr std::size_t kHalf = 12;
constexpr std::size_t kTag = Tlsf::kGranule - 4;  // offset in the last granule
// The class of 2-granule blocks (class_of(2): level 0 is one granule wide).
constexpr unsigned kTwoGranuleClass = 2;
// Where prev lives in the blocks of class c. Branch-free.
constexpr std::size_t prev_at(unsigned c) noexcept {
  return c == kTwoGranuleClass ? Tlsf::kPrevAtTwo : Tlsf::kPrevAtLong;
}
// Whether a 2-granule block keeps its end tag (the compact layout does).
constexpr bool kTwoGranuleTag = Tlsf::kPrevAtTwo != Tlsf::kGranule + kTag;

// Every metadata field is a std::uint32_t object that store32 creates in the
// arena bytes (ending whatever object the bytes held before: the block is the
// backend's while it is free), and that load32 reads back. Typed objects, not
// memcpy, so that the compiler knows a field store cannot change this
// object's pointers and counters (no reloads on the hot paths).
//
// Sanitizers: under ASan (detail/asan.hpp) the heap keeps free blocks
// poisoned, so each access opens the 8-byte granule holding the field (the
// TLSF granule is ASan's: fields never straddle one) for just that access and
// restores its poisoning after, as first fit's load()/store() do for its
// nodes. Opening the whole granule, not the 4-byte field, keeps the
// restoration exact: a field at +4 of a wholly poisoned granule would
// otherwise leave bytes +0..+3 addressable. Memory nobody poisoned (a bare
// backend, the scratch granules) is left alone. Without ASan: plain accesses.
#if MNEMOS_ASAN
const volatile void* granule_of(const std::byte* p) noexcept {
  // Sound: only an address computation within the same granule of the
  // caller's arena (fields are at +0, +4 or +8 of a granule start).
  return p - (addr(p) & (Tlsf::kGranule - 1));
}
#define MNEMOS_TLSF_OPEN(p) const AsanOpen open_field(granule_of(p), Tlsf::kGranule)
static_assert(Tlsf::kGranule == kAsanGranule, "a field's granule is one ASan granule");
#else
#define MNEMOS_TLSF_OPEN(p) static_cast<void>(0)
#endif

void store32(std::byte* p, std::size_t v) noexcept {
  MNEMOS_TLSF_OPEN(p);
  // Sound: p is 4-aligned (a granule start + 0 or 4) inside a free block or
  // the scratch granules, storage the backend owns; every value is a granule
  // index or count <= kMaxGranules + kFirst < 2^31.
  ::new (static_cast<void*>(p)) std::uint32_t(static_cast<std::uint32_t>(v));
}

std::uint32_t load32(const std::byte* p) noexcept {
  MNEMOS_TLSF_OPEN(p);
  // Sound: only fields that store32 wrote are read (a free block's header and
  // tag, untouched since, as the block stayed free), so a std::uint32_t lives
  // at p; launder makes the pointer refer to it. The value is copied before
  // the granule is poisoned again.
  return *std::launder(reinterpret_cast<const std::uint32_t*>(p));
}

#undef MNEMOS_TLSF_OPEN

// The hot helpers below are private and used only in this file; inlining them
// into allocate() and deallocate() saves a call, spills and reloads per use.
#define MNEMOS_TLSF_INLINE [[gnu::always_inline]] inline

// The public entry points count nothing; this compiles away.
struct NoSteps {
  constexpr void operator()() const noexcept {}
};

}  // namespace

void Tlsf::reset() noexcept {
  static_assert(first_level(search_class(2 * kMaxGranules)) < kFlCount,
                "every search size maps to a first level that has a bitmap");
  static_assert(class_of(31) == 31 && class_of(32) == 32 && class_of(64) == 64 && class_of(66) == 65);
  base_ = nullptr;
  end_ = nullptr;
  marks_ = nullptr;
  heads_ = nullptr;
  granules_ = 0;
  free_ = 0;
  fl_count_ = 0;
  fl_bitmap_ = 0;
  for (std::uint32_t& m : sl_bitmap_) m = 0;
}

bool Tlsf::init(std::byte* start, std::size_t size) noexcept {
  reset();
  if (start == nullptr) return false;
  // Bytes skipped to reach the granule; written modulo-style so a start near
  // the top of the address space cannot overflow.
  const std::size_t misalign = static_cast<std::size_t>(addr(start) & (kGranule - 1));
  const std::size_t lead = misalign == 0 ? 0 : kGranule - misalign;
  if (lead >= size) return false;
  std::size_t total = (size - lead) >> kGranuleShift;  // granules in the region
  if (total > kMaxGranules) total = kMaxGranules;      // beyond: left unused
  // Marks cover indices [0, total + kFirst] >= [0, end_index()].
  const std::size_t mark_words = (total + kFirst + 1 + kWordBits - 1) / kWordBits;
  const std::size_t mark_bytes = mark_words * sizeof(Word);
  // Blocks left when the heads of `fls` first levels follow the marks, and
  // the kFirst scratch granules precede the blocks.
  const auto blocks_with = [&](unsigned fls) -> std::size_t {
    const std::size_t meta =
        ((mark_bytes + fls * kSlCount * sizeof(std::uint32_t) + kGranule - 1) >> kGranuleShift) + kFirst;
    return total > meta ? total - meta : 0;
  };
  // Heads for every class a block of `total` granules could need; then, since
  // fewer blocks remain, maybe fewer first levels suffice, and the bytes saved
  // hold more blocks (up to the largest size of the smaller first level).
  const unsigned fls = first_level(class_of(total)) + 1;
  std::size_t g = blocks_with(fls);
  const unsigned fewer = first_level(class_of(g)) + 1;  // class_of(0) is level 0
  if (fewer < fls) {
    const std::size_t largest = fewer == 1 ? kSlCount - 1 : (std::size_t{2 * kSlCount} << (fewer - 2)) - 1;
    const std::size_t more = blocks_with(fewer);  // >= g, and g <= largest
    g = more < largest ? more : largest;
  }
  if (g < kMinBlock / kGranule) return false;
  fl_count_ = first_level(class_of(g)) + 1;

  // Region layout:  [ marks ][ heads ][ unused ][ scratch 0..2 ][ blocks: g granules ]
  //                 ^start + lead                ^base_          ^at(kFirst)         ^end_
  std::byte* const meta = start + lead;
  // Sound: meta is granule-aligned (>= alignof(Word)), mark_bytes fit before
  // the blocks (blocks_with), and the bytes are the caller's, handed to us; a
  // non-allocating placement new[] of a trivial type adds no array cookie
  // (CWG 2382), and `()` zeroes every mark.
  marks_ = ::new (static_cast<void*>(meta)) Word[mark_words]();
  // Sound: meta + mark_bytes is a multiple of sizeof(Word) >= 4 from a
  // granule boundary, the heads of fl_count_ <= fls levels fit (blocks_with),
  // and every head starts empty (0).
  heads_ = ::new (static_cast<void*>(meta + mark_bytes)) std::uint32_t[fl_count_ * kSlCount]();
  end_ = meta + (total << kGranuleShift);  // <= start + size
  // Granules 0 to 2, just below the first block, are reserved (blocks_with):
  // index 0 means "none" in the lists, and the list operations write the
  // link of a missing neighbour there (+8, +12 or +16) instead of branching,
  // so it is scratch that is written but never read. None is ever marked.
  base_ = end_ - ((g + kFirst) << kGranuleShift);
  granules_ = g;
  link(kFirst, g);  // [ one free block: all g granules ]
  set_mark(kFirst);
  set_mark(kFirst + g - 1);
  free_ = g << kGranuleShift;
  return true;
}

std::size_t Tlsf::next_mark(std::size_t k) const noexcept {
  const std::size_t limit = end_index() + 1;  // marks exist for [0, limit)
  if (granules_ == 0 || k >= limit) return limit;
  const std::size_t words = (limit + kWordBits - 1) / kWordBits;
  std::size_t w = k / kWordBits;
  Word bits = marks_[w] & (~Word{0} << (k % kWordBits));
  while (bits == 0) {  // O(words): only check(), hole_count() and for_each_hole() scan
    if (++w == words) return limit;
    bits = marks_[w];
  }
  return w * kWordBits + static_cast<std::size_t>(std::countr_zero(bits));
}

std::size_t Tlsf::block_granules(std::size_t k) const noexcept { return load32(at(k) + kSize); }

MNEMOS_TLSF_INLINE bool Tlsf::find_nonempty(unsigned& c) const noexcept {
  // Branch-free apart from "none": the first levels above c's, plus c's own
  // when it has a non-empty class at or above c. first_level(c) < kFlCount <
  // 32 (see the static_assert in reset()), so every shift is defined.
  const unsigned fl = first_level(c);
  const std::uint32_t sl_here = sl_bitmap_[fl] & (~std::uint32_t{0} << (c & (kSlCount - 1)));
  const std::uint32_t fl_map = (fl_bitmap_ & (~std::uint32_t{0} << fl << 1)) |
                               (static_cast<std::uint32_t>(sl_here != 0) << fl);
  if (fl_map == 0) return false;
  const auto found = static_cast<unsigned>(std::countr_zero(fl_map));  // < kFlCount: a set bit
  const std::uint32_t sl_there = sl_bitmap_[found];
  const auto sl = static_cast<unsigned>(std::countr_zero(found == fl ? sl_here : sl_there));  // non-zero
  c = (found << kSlLog2) + sl;
  return true;
}

MNEMOS_TLSF_INLINE void Tlsf::write_sizes(std::size_t k, std::size_t g) noexcept {
  // Sound: [k, k + g) is a free block inside the arena, so its first 4 bytes
  // and its last 4 bytes are ours (the same granule when g == 1, at +0, +4).
  store32(at(k) + kSize, g);
  store32(at(k + g - 1) + kTag, g);
}

MNEMOS_TLSF_INLINE void Tlsf::link(std::size_t k, std::size_t g) noexcept {
  const unsigned c = class_of(g);
  const std::size_t prev = prev_at(c);
  std::uint32_t& h = head(c);  // first_level(c) < fl_count_: g <= granules_
  const std::uint32_t old = h;
  std::byte* const node = at(k);
  // Sound: g >= 2, so [k, k + g) holds the size, next and prev (bytes 0..15,
  // or 0..19 when g >= 3) and, in its last 4 bytes (>= 12), the tag. Order
  // matters for g == 2: the tag and HALF land on +12, and prev, written
  // last, overwrites them (such a block's size is known from its marks).
  write_sizes(k, g);
  if constexpr (kHardening) store32(node + kHalf, kFreeHalfTag);
  store32(node + kNext, old);
  store32(node + prev, 0);
  // Sound: the old head is a free block of the same class, or 0, the
  // scratch granules (which hold prev at +12 or +16: kFirst is 3).
  store32(at(old) + prev, k);
  h = static_cast<std::uint32_t>(k);  // k <= kMaxGranules < 2^30
  sl_bitmap_[first_level(c)] |= std::uint32_t{1} << (c & (kSlCount - 1));
  fl_bitmap_ |= std::uint32_t{1} << first_level(c);
}

MNEMOS_TLSF_INLINE void Tlsf::file(std::size_t k, std::size_t g) noexcept {
  if (g >= kMinBlock / kGranule) {
    link(k, g);
  } else {
    write_sizes(k, g);  // a fragment: too small for any request, in no list
  }
}

MNEMOS_TLSF_INLINE void Tlsf::clear_if_empty(unsigned c, bool empty) noexcept {
  // Branch-free: clear the class bit if its list emptied, then the first
  // level bit if all its classes are empty.
  const unsigned fl = first_level(c);
  const std::uint32_t sl_map = sl_bitmap_[fl] & ~(static_cast<std::uint32_t>(empty) << (c & (kSlCount - 1)));
  sl_bitmap_[fl] = sl_map;
  fl_bitmap_ &= ~(static_cast<std::uint32_t>(sl_map == 0) << fl);
}

MNEMOS_TLSF_INLINE void Tlsf::unlink(std::size_t k, std::size_t g) noexcept {
  const unsigned c = class_of(g);
  const std::size_t at_prev = prev_at(c);
  const std::byte* const node = at(k);
  const std::uint32_t next = load32(node + kNext);
  const std::uint32_t prev = load32(node + at_prev);
  //   [ prev ] <-> [ k ] <-> [ next ]   becomes   [ prev ] <-> [ next ]
  // Sound: next and prev are free blocks of the same list (so of class c),
  // or 0, the scratch granules (written, never read), so no branch is needed.
  store32(at(next) + at_prev, prev);
  store32(at(prev) + kNext, next);
  std::uint32_t& h = head(c);
  h = h == k ? next : h;  // k is the head iff prev == 0
  clear_if_empty(c, h == 0);
}

MNEMOS_TLSF_INLINE void Tlsf::pop(unsigned c, std::size_t k) noexcept {
  // k is the head of c: the same as unlink() with prev == 0, class known.
  const std::uint32_t next = load32(at(k) + kNext);
  store32(at(next) + prev_at(c), 0);  // Sound: a free block of class c, or the scratch granules
  head(c) = next;
  clear_if_empty(c, next == 0);
}

template <class Probe>
MNEMOS_TLSF_INLINE void* Tlsf::take(unsigned c, std::size_t k, std::size_t s, std::size_t pad, std::size_t g,
                                    Probe& step) noexcept {
  // Take k (s granules, the head of class c) off its list, then split:
  //   before: [ prev (used) ][               k (free, s)               ][ next (used) ]
  //   after:  [ prev (used) ][ front (pad) ][ block (g) ][ back (rest) ][ next (used) ]
  // front and back stay free (each absent when 0, a fragment when one
  // granule); they cannot touch another free block, since k's neighbours are
  // allocated. Marks: k stays the front's first, or is cleared; k + s - 1
  // stays the back's last, or is cleared.
  step();
  pop(c, k);
  const std::size_t block = k + pad;
  const std::size_t back = s - pad - g;
  if (pad != 0) {
    step();
    set_mark(k + pad - 1);
    file(k, pad);
  } else {
    clear_mark(k);
  }
  if (back != 0) {
    step();
    set_mark(block + g);
    file(block + g, back);
  } else {
    clear_mark(k + s - 1);
  }
  free_ -= g << kGranuleShift;
  return at(block);
}

template <class Probe>
void* Tlsf::allocate_impl(std::size_t size, std::size_t align, Probe& step) noexcept {
  // free_ is a multiple of kGranule, so size <= free_ also keeps rounded_size
  // from overflowing; no free block can be larger than free_ anyway.
  if (!is_power_of_two(align) || size > free_) return nullptr;
  const std::size_t g = rounded_size(size) >> kGranuleShift;
  if (align <= kGranule) {
    // The common case, kept short: good fit (T3), no padding (T2). Any block
    // in the search class or above is large enough.
    step();
    unsigned c = search_class(g);
    if (find_nonempty(c)) {
      const std::size_t k = head(c);
      return take(c, k, block_granules(k), 0, g, step);
    }
  }
  return allocate_slow(g, align, align <= kGranule, step);
}

template <class Probe>
[[gnu::noinline]] void* Tlsf::allocate_slow(std::size_t g, std::size_t align, bool searched,
                                            Probe& step) noexcept {
  // Granules from block k to the next align-aligned address: always a whole
  // number of granules (blocks are granule-aligned), 0 when align <= kGranule.
  const auto padding = [&](std::size_t k) -> std::size_t {
    return static_cast<std::size_t>((std::uintptr_t{0} - addr(at(k))) & (align - 1)) >> kGranuleShift;
  };
  // Worst-case front padding in granules (T2).
  const std::size_t extra = (align - 1) >> kGranuleShift;
  // Good fit for the worst-case padding, unless allocate_impl() searched
  // already (align <= kGranule): any block in the search class or above fits
  // at any address. extra >= granules_ means no block could be that large
  // (and keeps g + extra from overflowing).
  if (!searched && extra < granules_) {
    step();
    unsigned c = search_class(g + extra);
    if (find_nonempty(c)) {
      const std::size_t k = head(c);
      return take(c, k, block_granules(k), padding(k), g, step);
    }
  }
  // Fallback probe (T3): the head of the first non-empty class at or above
  // the request's own class may still hold it.
  step();
  unsigned c = class_of(g);
  if (!find_nonempty(c)) return nullptr;
  const std::size_t k = head(c);
  const std::size_t s = block_granules(k);
  const std::size_t pad = padding(k);
  if (s < g || pad > s - g) return nullptr;
  return take(c, k, s, pad, g, step);
}

template <class Probe>
void Tlsf::deallocate_impl(void* p, std::size_t size, Probe& step) noexcept {
  if (p == nullptr) return;
  const std::size_t g = rounded_size(size) >> kGranuleShift;
  // p came from allocate(): a granule of this arena, so the difference is a
  // whole number of granules within the caller's region.
  const std::size_t k = static_cast<std::size_t>(static_cast<std::byte*>(p) - base_) >> kGranuleShift;
  std::size_t first = k;
  std::size_t total = g;
  // Granule k - 1 is marked iff the block ending at p is free, and then it is
  // that block's last granule, whose tag holds its size, unless the block is
  // 2 granules long (its +12 holds prev): then granule k - 2, its first, is
  // marked too, which no other size allows (k - 2 of a fragment would be a
  // free neighbour touching it; of a longer block, an inner granule). (k - 2
  // >= 1: scratch granules are never marked.) A fragment neighbour is merged
  // the same way but is in no list, so there is nothing to unlink.
  //   before: [ prev (free) ][ freed (g) ][ next (free) ]
  //   after:  [ one free block: prev + g + next          ]
  // Marks: the first of prev (or k) and the last of next (or k + g - 1) end
  // up set, the inner ones (k - 1, k + g) cleared.
  step();
  if (marked(k - 1)) {
    // A free block's tag (written by file()), or prev of a 2-granule block:
    // the load is in bounds either way, and the mark picks.
    const std::size_t tag = load32(at(k - 1) + kTag);
    const std::size_t pg = !kTwoGranuleTag && marked(k - 2) ? 2 : tag;
    step();
    if (pg >= kMinBlock / kGranule) unlink(k - pg, pg);
    first = k - pg;
    total += pg;
    clear_mark(k - 1);
    set_mark(first);  // already set (prev's first) unless pg == 1: then it is k - 1
  } else {
    set_mark(k);
  }
  // Granule k + g is marked iff the block starting there is free (k + g <=
  // end_index(): the sentinel after the arena is never marked).
  step();
  if (marked(k + g)) {
    const std::size_t ng = block_granules(k + g);  // a free block's size: written by file()
    step();
    if (ng >= kMinBlock / kGranule) unlink(k + g, ng);
    total += ng;
    clear_mark(k + g);
    set_mark(k + g + ng - 1);  // already set (next's last) unless ng == 1: then it is k + g
  } else {
    set_mark(k + g - 1);
  }
  step();
  link(first, total);
  free_ += g << kGranuleShift;
}

// The entry points and the counted versions for white-box tests.
template void* Tlsf::allocate_impl<TlsfSteps>(std::size_t, std::size_t, TlsfSteps&) noexcept;
template void Tlsf::deallocate_impl<TlsfSteps>(void*, std::size_t, TlsfSteps&) noexcept;

void* Tlsf::allocate(std::size_t size, std::size_t align) noexcept {
  NoSteps none;
  return allocate_impl(size, align, none);
}

void Tlsf::deallocate(void* p, std::size_t size) noexcept {
  NoSteps none;
  deallocate_impl(p, size, none);
}

bool Tlsf::fits_when_empty(std::size_t size, std::size_t align) const noexcept {
  // size > capacity also keeps rounded_size from overflowing (capacity is a
  // multiple of the granule).
  if (!is_power_of_two(align) || granules_ == 0 || size > capacity()) return false;
  const std::size_t g = rounded_size(size) >> kGranuleShift;
  // The one free block starts at kFirst; its padding to `align`, computed
  // modulo-style (no overflow for any power of two).
  const std::size_t pad =
      static_cast<std::size_t>((std::uintptr_t{0} - addr(at(kFirst))) & (align - 1)) >> kGranuleShift;
  // allocate() on the empty arena takes it through the good-fit search when
  // it is large enough for the worst-case padding, and otherwise through the
  // fallback probe, which tests exactly this; any padding or rest is a valid
  // free block or fragment.
  return pad <= granules_ - g;
}

std::size_t Tlsf::hole_count() const noexcept {
  std::size_t count = 0;
  for_each_hole([&](std::byte*, std::size_t) { ++count; });
  return count;
}

CheckReport Tlsf::check() const noexcept {
  if (granules_ == 0) {
    if (free_ != 0) return {CheckFailure::FreeBytesMismatch, this};
    if (fl_bitmap_ != 0) return {CheckFailure::HoleUnordered, this};
    for (std::uint32_t m : sl_bitmap_) {
      if (m != 0) return {CheckFailure::HoleUnordered, this};
    }
    return {};
  }
  const std::size_t e = end_index();
  constexpr std::size_t kMinGranules = kMinBlock / kGranule;
  // A list node of class c needs the granules up to its prev field (+12 or
  // +16) in the arena.
  const auto node_in_bounds = [e](std::size_t i, unsigned c) {
    return i >= kFirst && i + prev_at(c) / kGranule < e;
  };
  // The scratch granules, the sentinel and anything past it are never marked.
  for (std::size_t k = 0; k < kFirst; ++k) {
    if (marked(k)) return {CheckFailure::HoleOutOfBounds, arena_begin()};
  }
  if (next_mark(e) != e + 1) return {CheckFailure::HoleOutOfBounds, end_};

  // 1. The arena in address order: free blocks (a pair of marks, or one mark
  // for a single granule) separated by allocated spans (no marks).
  std::size_t sum = 0;         // granules of all free blocks; no overflow: they are disjoint
  std::size_t count = 0;       // free blocks that must be listed (>= kMinGranules)
  std::size_t listable = 0;    // their granules
  std::size_t prev_end = 0;
  for (std::size_t k = next_mark(kFirst); k < e;) {
    const void* const where = at(k);
    if (k == prev_end) return {CheckFailure::HoleAdjacent, where};
    const std::size_t s = block_granules(k);  // k < e: its first 4 bytes are in the arena
    if (s == 0) return {CheckFailure::HoleBadSize, where};
    if (s > e - k) return {CheckFailure::HoleOutOfBounds, where};
    const std::size_t last = k + s - 1;
    if (s > 1) {
      const std::size_t m = next_mark(k + 1);
      if (m < last) return {CheckFailure::HoleOverlap, where};
      if (m != last) return {CheckFailure::HoleBadSize, where};  // the end mark is missing
    }
    // A 2-granule block has no tag (its +12 holds prev); its two marks say it.
    if ((kTwoGranuleTag || s != 2) && load32(at(last) + kTag) != s) return {CheckFailure::HoleBadSize, where};
    if (s >= kMinGranules) {
      // Linked into the list of its class, with consistent links both ways.
      const unsigned c = class_of(s);  // first_level(c) < fl_count_: s <= granules_
      const std::size_t at_prev = prev_at(c);
      const std::size_t next = load32(at(k) + kNext);
      const std::size_t prev = load32(at(k) + at_prev);
      if (prev == 0) {
        if (head(c) != k) return {CheckFailure::HoleUnordered, where};
      } else {
        if (!node_in_bounds(prev, c)) return {CheckFailure::HoleOutOfBounds, where};
        if (!marked(prev)) return {CheckFailure::HoleMisaligned, where};
        if (load32(at(prev) + kNext) != k) return {CheckFailure::HoleUnordered, where};
      }
      if (next != 0) {
        if (!node_in_bounds(next, c)) return {CheckFailure::HoleOutOfBounds, where};
        if (!marked(next)) return {CheckFailure::HoleMisaligned, where};
        if (load32(at(next) + at_prev) != k) return {CheckFailure::HoleUnordered, where};
      }
      ++count;
      listable += s;
    }
    sum += s;
    prev_end = last + 1;
    k = next_mark(last + 1);
  }

  // 2. The index: bitmaps agree with the lists; every listed block is a free
  // block of that class. Walks are bounded by `count`, so a cycle stops.
  if ((fl_bitmap_ >> kFlCount) != 0) return {CheckFailure::HoleUnordered, this};
  std::size_t listed = 0;
  std::size_t listed_sum = 0;
  for (unsigned fl = 0; fl < kFlCount; ++fl) {
    const std::uint32_t sl_map = sl_bitmap_[fl];
    if (((fl_bitmap_ >> fl) & 1u) != (sl_map != 0 ? 1u : 0u)) return {CheckFailure::HoleUnordered, this};
    if (fl >= fl_count_) {
      if (sl_map != 0) return {CheckFailure::HoleUnordered, this};  // no heads there
      continue;
    }
    for (unsigned sl = 0; sl < kSlCount; ++sl) {
      const std::size_t h = heads_[fl * kSlCount + sl];
      if ((h != 0) != (((sl_map >> sl) & 1u) != 0)) return {CheckFailure::HoleUnordered, this};
      std::size_t prev = 0;
      for (std::size_t i = h; i != 0;) {
        const void* const from = prev == 0 ? static_cast<const void*>(this) : at(prev);
        if (!node_in_bounds(i, fl * kSlCount + sl)) return {CheckFailure::HoleOutOfBounds, from};
        const void* const where = at(i);
        if (!marked(i)) return {CheckFailure::HoleMisaligned, where};
        if (++listed > count) return {CheckFailure::HoleUnordered, where};
        if (load32(at(i) + prev_at(fl * kSlCount + sl)) != prev) return {CheckFailure::HoleUnordered, where};
        const std::size_t s = block_granules(i);
        if (s < kMinGranules) return {CheckFailure::HoleBadSize, where};
        if (s > e - i) return {CheckFailure::HoleOutOfBounds, where};
        if (class_of(s) != fl * kSlCount + sl) return {CheckFailure::HoleUnordered, where};
        listed_sum += s;
        prev = i;
        i = load32(at(i) + kNext);
      }
    }
  }
  if (listed != count || listed_sum != listable) return {CheckFailure::FreeBytesMismatch, this};
  if ((sum << kGranuleShift) != free_) return {CheckFailure::FreeBytesMismatch, this};
  return {};
}

#undef MNEMOS_TLSF_INLINE

}  // namespace mnemos::detail
