// Reference model of the first-fit backend (include/mnemos/detail/first_fit.hpp).
//
// What it models: the set of free ranges ("holes") of an arena and the address
// every allocate() returns. Rule it follows: rules R1-R6 documented at the top
// of first_fit.hpp, written as plainly as possible over a std::map from hole
// start to hole size (no intrusive list, no pointers into the arena, so the
// model can never be corrupted by the code it checks). Every arithmetic step
// that could overflow is checked explicitly and counts as "does not fit".
//
// Used by the property tests (proptest/first_fit_prop.cpp, through the heap
// model by heap_prop.cpp and waiters_prop.cpp) and by the fuzz targets. Plain
// C++20, header-only, no dependency on RapidCheck, GoogleTest or the library:
// it computes on addresses (std::uintptr_t) and never touches memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <vector>

namespace mnemos::model {

// One free range [start, start + size).
struct Span {
  std::uintptr_t start = 0;
  std::size_t size = 0;
  std::uintptr_t end() const { return start + size; }
  friend bool operator==(const Span&, const Span&) = default;
};

class FirstFitModel {
  // The shape of the backend's hole node {size, next}: it fixes the granule
  // and the minimum block (R1).
  struct NodeShape {
    std::size_t size;
    void* next;
  };

 public:
  static constexpr std::size_t kGranule = alignof(NodeShape);  // 8 on LP64
  static constexpr std::size_t kMinBlock = sizeof(NodeShape);  // 16 on LP64

  static constexpr bool is_power_of_two(std::size_t x) { return x != 0 && (x & (x - 1)) == 0; }

  // x rounded up to a multiple of a (a power of two); nullopt on overflow.
  static constexpr std::optional<std::uintptr_t> align_up(std::uintptr_t x, std::size_t a) {
    const std::uintptr_t rem = x % a;
    if (rem == 0) return x;
    const std::uintptr_t add = a - rem;
    if (x > UINTPTR_MAX - add) return std::nullopt;
    return x + add;
  }

  // R1: max(size, kMinBlock) rounded up to the granule; nullopt on overflow.
  static constexpr std::optional<std::size_t> rounded_size(std::size_t size) {
    const std::size_t at_least = size < kMinBlock ? kMinBlock : size;
    const std::optional<std::uintptr_t> r = align_up(at_least, kGranule);
    if (!r) return std::nullopt;
    return static_cast<std::size_t>(*r);
  }

  // R2.
  static constexpr std::size_t effective_align(std::size_t align) { return align < kGranule ? kGranule : align; }

  // Empty: no arena, every allocate() fails.
  FirstFitModel() = default;

  // R6: [start, start + size) with the start aligned up and the end aligned
  // down to the granule becomes one hole. Fewer than kMinBlock bytes left (or
  // start == 0, as the backend's nullptr check): false, and the model is empty.
  bool init(std::uintptr_t start, std::size_t size) {
    *this = FirstFitModel{};
    if (start == 0 || size < kMinBlock) return false;
    const std::optional<std::uintptr_t> begin = align_up(start, kGranule);
    if (!begin || *begin - start >= size) return false;
    const std::size_t usable = (size - static_cast<std::size_t>(*begin - start)) / kGranule * kGranule;
    if (usable < kMinBlock) return false;
    begin_ = *begin;
    end_ = *begin + usable;
    holes_[begin_] = usable;
    return true;
  }

  // A model whose arena is [begin, end) (already granule-aligned) and whose
  // holes are `holes`: e.g. to ask questions about the real backend's state.
  static FirstFitModel from_holes(std::uintptr_t begin, std::uintptr_t end, const std::vector<Span>& holes) {
    FirstFitModel m;
    m.begin_ = begin;
    m.end_ = end;
    for (const Span& h : holes) m.holes_[h.start] = h.size;
    return m;
  }

  // R2-R4: the block for `size` bytes aligned to `align`, first fit in address
  // order, or nullopt. A non-power-of-two align never fits.
  std::optional<std::uintptr_t> allocate(std::size_t size, std::size_t align) {
    if (!is_power_of_two(align)) return std::nullopt;
    const std::optional<std::size_t> n = rounded_size(size);
    if (!n) return std::nullopt;
    const std::size_t a = effective_align(align);
    for (auto it = holes_.begin(); it != holes_.end(); ++it) {
      const std::uintptr_t h = it->first;
      const std::uintptr_t e = h + it->second;
      // R3: no front padding if the hole is aligned, else at least kMinBlock.
      std::uintptr_t s = h;
      if (h % a != 0) {
        const std::optional<std::uintptr_t> up = align_up(h + kMinBlock, a);
        if (!up) continue;
        s = *up;
      }
      if (s > e || *n > e - s) continue;  // does not fit
      const std::size_t back = static_cast<std::size_t>(e - s - *n);
      if (back != 0 && back < kMinBlock) continue;  // the tail would leak: rejected
      // Fits: the hole becomes its front padding (if any) and its back padding (if any).
      holes_.erase(it);
      if (s != h) holes_[h] = static_cast<std::size_t>(s - h);
      if (back != 0) holes_[s + *n] = back;
      return s;
    }
    return std::nullopt;
  }

  // R5: [p, p + rounded_size(size)) becomes free and merges with a hole ending
  // at p and a hole starting at its end. p == 0 is ignored (as nullptr). A
  // range that cannot be an allocated block (outside the arena, misaligned,
  // overlapping a hole) is refused: false and no change. O(log holes).
  bool deallocate(std::uintptr_t p, std::size_t size) {
    if (p == 0) return true;
    const std::optional<std::size_t> rounded = rounded_size(size);
    if (!rounded) return false;
    const std::size_t n = *rounded;
    if (p < begin_ || p >= end_ || p % kGranule != 0 || n > end_ - p) return false;
    if (overlaps_hole(p, n)) return false;
    std::uintptr_t start = p;
    std::size_t len = n;
    auto next = holes_.lower_bound(p);  // first hole at or after p (after p: no overlap)
    if (next != holes_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == p) {  // merge with the previous hole
        start = prev->first;
        len += prev->second;
        holes_.erase(prev);
      }
    }
    if (next != holes_.end() && next->first == p + n) {  // merge with the next hole
      len += next->second;
      holes_.erase(next);
    }
    holes_[start] = len;
    return true;
  }

  // Whether allocate(size, align) would succeed on the whole arena as one hole.
  bool fits_when_empty(std::size_t size, std::size_t align) const {
    if (capacity() < kMinBlock) return false;
    FirstFitModel empty = from_holes(begin_, end_, {Span{begin_, capacity()}});
    return empty.allocate(size, align).has_value();
  }

  // Whether allocate(size, align) would succeed now (the model is unchanged).
  bool fits(std::size_t size, std::size_t align) const {
    FirstFitModel copy = *this;
    return copy.allocate(size, align).has_value();
  }

  // Whether [p, p + n) shares a byte with a hole.
  bool overlaps_hole(std::uintptr_t p, std::size_t n) const {
    auto it = holes_.upper_bound(p);  // first hole starting after p
    if (it != holes_.end() && it->first < p + n) return true;
    if (it != holes_.begin()) {
      --it;  // last hole starting at or before p
      if (it->first + it->second > p) return true;
    }
    return false;
  }

  std::uintptr_t begin() const { return begin_; }
  std::uintptr_t end() const { return end_; }
  std::size_t capacity() const { return static_cast<std::size_t>(end_ - begin_); }
  std::size_t free_bytes() const {
    std::size_t sum = 0;
    for (const auto& [start, size] : holes_) sum += size;
    return sum;
  }
  std::size_t hole_count() const { return holes_.size(); }
  // The holes in address order.
  std::vector<Span> holes() const {
    std::vector<Span> v;
    v.reserve(holes_.size());
    for (const auto& [start, size] : holes_) v.push_back(Span{start, size});
    return v;
  }

  friend bool operator==(const FirstFitModel&, const FirstFitModel&) = default;

 private:
  std::uintptr_t begin_ = 0;
  std::uintptr_t end_ = 0;
  std::map<std::uintptr_t, std::size_t> holes_;  // start -> size, never touching
};

}  // namespace mnemos::model
