// First-fit backend: an address-ordered free list kept inside the free memory.
//
// The semantics are those of the Rust crate `linked_list_allocator` (v0.10,
// `hole.rs`), the backend of the MnemOS allocator. A reference model in the
// property tests replicates the rules below exactly; change them only together.
//
// Representation
//   Every free span ("hole") starts with a node `Hole{size, next}` written into
//   the free bytes themselves, so the backend needs no memory of its own beyond
//   this object. Holes are linked in strictly ascending address order, never
//   touch (a free merges with both neighbours), and are all inside the arena.
//   There is no per-block header: deallocate() is told the size again.
//
// Rules (the contract the model replicates)
//   R1 Size rounding: rounded_size(n) = align_up(max(n, kMinBlock), kGranule),
//      with kGranule = alignof(Hole) and kMinBlock = sizeof(Hole) (8 and 16 on
//      LP64). allocate() and deallocate() both apply it, so callers pass the
//      same size to both.
//   R2 Effective alignment: A = max(align, kGranule).
//   R3 Carving a hole [h, e) for rounded size n (in address order):
//        - h % A == 0: the block starts at s = h (no front padding);
//        - otherwise s = align_up(h + kMinBlock, A), so that the front padding
//          [h, s) is itself at least kMinBlock and can stay a hole;
//        - s + n > e: the hole does not fit, try the next one;
//        - back padding b = e - (s + n): b == 0 -> none; 0 < b < kMinBlock ->
//          the hole is REJECTED for this request (those bytes could never become
//          a hole and would leak); b >= kMinBlock -> [s + n, e) becomes a hole.
//        The front padding stays in place (the hole shrinks); the back padding
//        is linked right after it.
//   R4 The first hole that fits wins; allocate() returns nullptr if none does.
//   R5 deallocate(p, n) inserts [p, p + rounded_size(n)) in address order and
//      merges it with the previous hole if that ends at p and with the next
//      hole if it starts at p + rounded_size(n) (possibly both).
//   R6 init(start, size) aligns start up and the end down to kGranule; the
//      range becomes one hole. Fewer than kMinBlock bytes left: init fails and
//      the backend stays empty (capacity 0, every allocate() returns nullptr).
//
// Guarantees and bounds
//   - allocate() and deallocate() are O(number of holes): one walk of the list.
//     There is no bounded worst case independent of fragmentation; use the TLSF
//     backend when a time bound is required.
//   - The only bytes the backend ever writes outside this object are the
//     kMinBlock-byte node at the start of each hole; a live block's bytes are
//     never touched.
//   - Holes are granule-aligned multiples of kGranule, at least kMinBlock long.
//   - check() verifies every invariant above and never crashes on a corrupted
//     list of reasonable shape (it validates a node before reading it).
//
// Sanitizers: under ASan (detail/asan.hpp) every node is read and written
// through load(), store() and modify(), which unpoison the node's bytes only
// for that access and restore their poisoning after. So when the owner of the
// arena keeps the free bytes poisoned (the heap does: it poisons the arena at
// bootstrap and every block it returns, and unpoisons what it carves), all of
// them, nodes included, stay poisoned between calls, and a user's access to a
// free byte is reported. A backend over memory nobody poisoned (the unit
// tests) is left alone. allocate() returns the block's bytes as they were
// (poisoned, in the heap); the caller unpoisons what it hands out. Without ASan
// they are plain loads and stores.
//
// Threads: none of the functions synchronise. The caller (the heap, under its
// try-lock) serialises every call; const queries may run concurrently with
// each other but not with a mutating call. No function allocates, throws or
// uses RTTI.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mnemos/check.hpp"
#include "mnemos/detail/align.hpp"
#include "mnemos/detail/asan.hpp"
#include "mnemos/detail/hardening.hpp"

namespace mnemos::detail {

struct first_fit_test_access;  // white-box tests only (defined in tests/)

class FirstFit {
  // The node at the start of every hole. `size` counts the whole hole,
  // node included.
  struct Hole {
    std::size_t size;
    Hole* next;
  };

 public:
  // Every hole and block starts on, and is a multiple of, the granule.
  static constexpr std::size_t kGranule = alignof(Hole);
  // The smallest block: it must hold a Hole once it is freed again.
  static constexpr std::size_t kMinBlock = sizeof(Hole);
  static_assert(is_power_of_two(kGranule), "alignof is always a power of two");
  static_assert(kMinBlock % kGranule == 0, "sizeof is a multiple of alignof");

  // Empty: no holes, capacity 0; allocate() returns nullptr until init().
  FirstFit() noexcept = default;
  FirstFit(const FirstFit&) = delete;
  FirstFit& operator=(const FirstFit&) = delete;

  // Hands [start, start + size) to the backend as one hole (R6), discarding
  // any previous state. The range must be writable, unused by anything else,
  // and outlive the backend. Returns false, leaving the backend empty, when
  // fewer than kMinBlock bytes remain after aligning both ends. O(1).
  bool init(std::byte* start, std::size_t size) noexcept;

  // R1. Precondition: size <= SIZE_MAX - kGranule (no overflow). O(1).
  static constexpr std::size_t rounded_size(std::size_t size) noexcept {
    return static_cast<std::size_t>(align_up(size < kMinBlock ? kMinBlock : size, kGranule));
  }

  // First fit (R2-R4). Returns a block of rounded_size(size) bytes aligned to
  // max(align, kGranule), or nullptr when no hole fits (never fails otherwise).
  // Precondition: align is a power of two and size > 0; a non-power-of-two
  // align or a size too large to round yields nullptr rather than corruption,
  // and size 0 is served as kMinBlock. O(number of holes).
  void* allocate(std::size_t size, std::size_t align) noexcept;

  // Returns a block (R5). Precondition: p came from allocate() on this backend
  // with the same size and has not been returned since; a violation corrupts
  // the list (the heap's block header detects double and foreign frees before
  // they get here). nullptr is ignored. Never fails. O(number of holes).
  void deallocate(void* p, std::size_t size) noexcept;

  // Whether allocate(size, align) would succeed if the whole arena were one
  // free hole: the same rules as allocate(), so a false answer is an exact
  // TooLarge. Huge sizes and alignments (and non-powers of two) give false,
  // without overflow. O(1).
  bool fits_when_empty(std::size_t size, std::size_t align) const noexcept;

  // Bytes managed after init()'s alignment; 0 when empty. O(1).
  std::size_t capacity() const noexcept { return static_cast<std::size_t>(end_ - begin_); }
  // Sum of the hole sizes, kept as a counter (check() verifies it). O(1).
  std::size_t free_bytes() const noexcept { return free_; }
  // Number of holes. O(number of holes): walks the list.
  std::size_t hole_count() const noexcept;

  std::byte* arena_begin() const noexcept { return begin_; }
  std::byte* arena_end() const noexcept { return end_; }

  // Calls f(std::byte* start, std::size_t size) for every hole in address
  // order. f must not allocate or free on this backend. O(number of holes).
  template <class F>
  void for_each_hole(F&& f) const {
    for (Hole* h = head_.next; h != nullptr; h = load(h).next) {
      // Sound: h points into the caller's std::byte arena (init); viewing a
      // hole as its first byte yields the address the arena already had.
      f(reinterpret_cast<std::byte*>(h), load(h).size);
    }
  }

  // Walks the list and reports the first broken invariant, in walk order, with
  // the address of the hole at fault: HoleUnordered, HoleOverlap, HoleAdjacent
  // (against the previous hole), HoleOutOfBounds, HoleMisaligned, HoleBadSize;
  // after the walk FreeBytesMismatch (address: this object). A node is read
  // only after its address is found in bounds, aligned and above the previous
  // hole, so a corrupted list cannot make the walk crash or loop.
  // O(number of holes).
  CheckReport check() const noexcept;

 private:
  friend struct first_fit_test_access;

  struct Carve {
    std::uintptr_t block;       // where the block starts
    std::size_t front_padding;  // 0, or >= kMinBlock: stays a hole
    std::size_t back_padding;   // 0, or >= kMinBlock: becomes a hole
  };
  // R3 on the hole [hole, hole + hole_size) for a rounded size and effective
  // alignment; false if the hole does not fit or is rejected. Overflow-free
  // for any size and power-of-two align.
  static bool carve(std::uintptr_t hole, std::size_t hole_size, std::size_t size,
                    std::size_t align, Carve& out) noexcept;
  // Every access to a node goes through these three (see "Sanitizers" above).
  // load: a copy of the node at h. store: places `node` at p (granule-aligned,
  // at least kMinBlock bytes the backend owns) and returns it. modify: runs
  // f(Hole&) on the node at h, to update fields in place. Without ASan: `*h`,
  // `::new (p) Hole(node)` and `f(*h)`.
  // Under MNEMOS_HARDENING the size word is stored tagged (tag_free_size,
  // detail/hardening.hpp): a hole's first word is where a freed block of
  // alignment <= 8 had its header, and the tag lets a second free of it be
  // named a double free. These three add and strip the tag, so everything
  // else sees plain sizes (an untagged size, e.g. a test's, reads the same).
  static Hole load(const Hole* h) noexcept {
    Hole node = asan_load(h);
    node.size = untag_free_size(node.size);
    return node;
  }
  static Hole* store(void* p, const Hole& node) noexcept {
    return asan_store(p, Hole{tag_free_size(node.size), node.next});
  }
  template <class F>
  static void modify(Hole* h, F&& f) noexcept {
    asan_modify(h, [&](Hole& stored) {
      Hole node{untag_free_size(stored.size), stored.next};
      f(node);
      stored = Hole{tag_free_size(node.size), node.next};
    });
  }
  // The pointer into the arena at address a (begin_ <= a <= end_).
  std::byte* at(std::uintptr_t a) const noexcept;
  void reset() noexcept;

  Hole head_{0, nullptr};  // sentinel: head_.next is the lowest hole; not in the arena
  std::byte* begin_ = nullptr;
  std::byte* end_ = nullptr;
  std::size_t free_ = 0;
};

}  // namespace mnemos::detail
