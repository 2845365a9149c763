// First-fit backend: see include/mnemos/detail/first_fit.hpp for the rules
// (R1-R6) that this file implements and that the reference model replicates.
#include "mnemos/detail/first_fit.hpp"

#include <cstdint>
#include <new>

namespace mnemos::detail {

namespace {
constexpr std::size_t effective_align(std::size_t align) noexcept {
  return align < FirstFit::kGranule ? FirstFit::kGranule : align;  // R2
}
}  // namespace

void FirstFit::reset() noexcept {
  head_.next = nullptr;
  begin_ = nullptr;
  end_ = nullptr;
  free_ = 0;
}

std::byte* FirstFit::at(std::uintptr_t a) const noexcept {
  // Derive the pointer from begin_ rather than from the integer, so that it
  // keeps the provenance of the caller's arena array (a lies inside it).
  return begin_ + static_cast<std::size_t>(a - addr(begin_));
}

bool FirstFit::init(std::byte* start, std::size_t size) noexcept {
  reset();
  if (start == nullptr || size < kMinBlock) return false;
  // Bytes skipped to reach the granule; written modulo-style so a start near
  // the top of the address space cannot overflow.
  const std::size_t misalign = static_cast<std::size_t>(addr(start) & (kGranule - 1));
  const std::size_t lead = misalign == 0 ? 0 : kGranule - misalign;  // < kGranule <= kMinBlock <= size
  // The end aligned down: start + lead is aligned, so align the length.
  const std::size_t usable = static_cast<std::size_t>(align_down(size - lead, kGranule));
  if (usable < kMinBlock) return false;
  begin_ = start + lead;
  end_ = begin_ + usable;
  // Sound: begin_ is granule-aligned (= alignof(Hole)), usable >= kMinBlock =
  // sizeof(Hole), and the bytes are the caller's arena, handed over to us.
  head_.next = store(begin_, Hole{usable, nullptr});
  free_ = usable;
  return true;
}

bool FirstFit::carve(std::uintptr_t hole, std::size_t hole_size, std::size_t size,
                     std::size_t align, Carve& out) noexcept {
  const std::uintptr_t end = hole + hole_size;  // no overflow: the hole lies in the arena
  std::uintptr_t start = hole;
  if ((hole & (align - 1)) != 0) {
    // Unaligned hole: leave at least kMinBlock in front so that the front
    // padding can stay a hole.
    //   [ front padding >= kMinBlock ][ block ... (aligned start)
    const std::uintptr_t earliest = hole + kMinBlock;  // <= end: hole_size >= kMinBlock
    if (align - 1 > UINTPTR_MAX - earliest) return false;  // the aligned start would wrap
    start = align_up(earliest, align);
  }
  if (start > end || size > end - start) return false;  // does not fit
  const std::size_t back = static_cast<std::size_t>(end - start - size);
  // 0 < back < kMinBlock: these bytes could never hold a Hole and would leak,
  // so linked_list_allocator rejects the hole for this request (R3).
  if (back != 0 && back < kMinBlock) return false;
  out = Carve{start, static_cast<std::size_t>(start - hole), back};
  return true;
}

void* FirstFit::allocate(std::size_t size, std::size_t align) noexcept {
  // free_ is a multiple of kGranule, so size <= free_ also keeps rounded_size
  // from overflowing; no hole can be larger than free_ anyway.
  if (!is_power_of_two(align) || size > free_) return nullptr;
  const std::size_t n = rounded_size(size);
  const std::size_t a = effective_align(align);
  // O(number of holes): first fit walks the list until a hole fits (R4).
  // `prev_node` and `cur_node` are copies of the nodes (load()); changes go
  // through store() and modify().
  Hole* prev = &head_;
  Hole prev_node = head_;
  while (prev_node.next != nullptr) {
    Hole* const cur = prev_node.next;
    // Copied before anything is written: with no front padding the block
    // starts on cur's node, and the caller may overwrite it.
    const Hole cur_node = load(cur);
    Carve c{};
    if (!carve(addr(cur), cur_node.size, n, a, c)) {
      prev = cur;
      prev_node = cur_node;
      continue;
    }
    // The hole is split (either padding may be absent):
    //   before: [ prev ] .. [               cur                ] .. [ after ]
    //   after:  [ prev ] .. [ front ][ block (n) ][ back padding ] .. [ after ]
    Hole* rest = cur_node.next;  // `after`
    if (c.back_padding != 0) {
      // Sound: block + n is granule-aligned (block is aligned to a >= kGranule
      // and n is a multiple of kGranule), back_padding >= kMinBlock, and
      // [block + n, block + n + back_padding) is the tail of cur, in the arena.
      rest = store(at(c.block + n), Hole{c.back_padding, cur_node.next});
      if constexpr (kHardening) {
        // Misuse detection (hardening.hpp): a link word lying on a freed
        // block's header position is recognised by the tagged size just before
        // it, spanning the block. The new node's link covers the word after
        // B = block + n, which may have been such a size (of a node left at
        // B + 8), and the word after that, B + 16, may hold one (of a node left
        // at B + 16) whose link follows. So B + 16 gets a tagged size for the
        // rest of the hole from there: a freed word for whatever lies at
        // B + 16, and a valid "size before" for a link at B + 24. Never read
        // as a node (only list nodes are). Sound: the word lies in the back
        // padding (>= 24 bytes), granule-aligned.
        if (c.back_padding >= 3 * kGranule) {
          asan_store<std::uint64_t>(at(c.block + n + 2 * kGranule), tag_free_size(c.back_padding - 2 * kGranule));
        }
      }
    }
    if (c.front_padding != 0) {
      // cur shrinks to its front padding and stays linked
      modify(cur, [&](Hole& h) {
        h.size = c.front_padding;
        h.next = rest;
      });
    } else {
      modify(prev, [&](Hole& h) { h.next = rest; });  // cur is consumed from its start: unlink it
    }
    free_ -= n;
    return at(c.block);
  }
  return nullptr;
}

void FirstFit::deallocate(void* p, std::size_t size) noexcept {
  if (p == nullptr) return;
  const std::size_t n = rounded_size(size);
  const std::uintptr_t start = addr(p);
  // O(number of holes): find the last hole below p (or the sentinel).
  // `prev_node` is a copy of prev's node (load()).
  Hole* prev = &head_;
  Hole prev_node = head_;
  while (prev_node.next != nullptr && addr(prev_node.next) < start) {
    prev = prev_node.next;
    prev_node = load(prev);
  }
  Hole* const next = prev_node.next;
  const bool merge_prev = prev != &head_ && addr(prev) + prev_node.size == start;
  const bool merge_next = next != nullptr && start + n == addr(next);
  free_ += n;

  if (merge_prev && merge_next) {
    // The block fills the gap exactly; three holes become one:
    //   before: [ prev ][ freed ][ next ]
    //   after:  [ prev                  ]
    const Hole next_node = load(next);
    modify(prev, [&](Hole& h) {
      h.size += n + next_node.size;
      h.next = next_node.next;
    });
  } else if (merge_prev) {
    //   before: [ prev ][ freed ] used .. [ next ]
    //   after:  [ prev          ] used .. [ next ]
    modify(prev, [&](Hole& h) { h.size += n; });
  } else if (merge_next) {
    //   before: [ prev ] .. used [ freed ][ next ]
    //   after:  [ prev ] .. used [ freed        ]
    // Sound: p came from allocate(), so it is granule-aligned inside the arena,
    // and the merged span n + next->size >= kMinBlock. next's node is absorbed.
    const Hole next_node = load(next);
    Hole* const merged = store(p, Hole{n + next_node.size, next_node.next});
    modify(prev, [&](Hole& h) { h.next = merged; });
  } else {
    //   before: [ prev ] .. used [ freed ] used .. [ next ]
    //   after:  [ prev ] .. used [ hole  ] used .. [ next ]
    // Sound: p is granule-aligned inside the arena (from allocate()) and
    // n >= kMinBlock = sizeof(Hole) (R1).
    Hole* const hole = store(p, Hole{n, next});
    modify(prev, [&](Hole& h) { h.next = hole; });
  }
}

bool FirstFit::fits_when_empty(std::size_t size, std::size_t align) const noexcept {
  const std::size_t cap = capacity();
  // size > cap also keeps rounded_size from overflowing (cap is a multiple of
  // the granule).
  if (!is_power_of_two(align) || cap < kMinBlock || size > cap) return false;
  Carve c{};
  return carve(addr(begin_), cap, rounded_size(size), effective_align(align), c);
}

std::size_t FirstFit::hole_count() const noexcept {
  std::size_t count = 0;
  for (const Hole* h = head_.next; h != nullptr; h = load(h).next) ++count;
  return count;
}

CheckReport FirstFit::check() const noexcept {
  const std::uintptr_t lo = addr(begin_);
  const std::uintptr_t hi = addr(end_);
  std::uintptr_t prev_start = 0;
  std::uintptr_t prev_end = 0;
  bool have_prev = false;
  std::size_t sum = 0;  // cannot overflow: the counted holes are disjoint and inside the arena
  // Each node is validated (ascending, in bounds, aligned) before it is read,
  // so the walk only reads arena memory and, being strictly ascending inside a
  // bounded range, terminates even on a corrupted list.
  for (const Hole* h = head_.next; h != nullptr;) {
    const std::uintptr_t a = addr(h);
    if (have_prev) {
      if (a <= prev_start) return {CheckFailure::HoleUnordered, h};
      if (a < prev_end) return {CheckFailure::HoleOverlap, h};
      if (a == prev_end) return {CheckFailure::HoleAdjacent, h};
    }
    if (a < lo || a >= hi || hi - a < kMinBlock) return {CheckFailure::HoleOutOfBounds, h};
    if ((a & (kGranule - 1)) != 0) return {CheckFailure::HoleMisaligned, h};
    const Hole node = load(h);  // only now: h is validated
    const std::size_t size = node.size;
    if (size < kMinBlock || size % kGranule != 0) return {CheckFailure::HoleBadSize, h};
    if (size > hi - a) return {CheckFailure::HoleOutOfBounds, h};
    sum += size;
    prev_start = a;
    prev_end = a + size;
    have_prev = true;
    h = node.next;
  }
  if (sum != free_) return {CheckFailure::FreeBytesMismatch, this};
  return {};
}

}  // namespace mnemos::detail
