// Reference model of the TLSF backend (include/mnemos/detail/tlsf.hpp): not
// an exact-address model, but the rules any correct answer must obey.
//
// TLSF chooses among free blocks by class lists whose order depends on the
// history, so the model does not predict addresses. It tracks the live blocks
// of the arena in a std::map (start -> rounded size) and derives everything
// else from them:
//   - the free blocks are exactly the maximal gaps between live blocks
//     (immediate coalescing, T4: no two free blocks ever touch), so the
//     backend's holes must equal holes() span for span;
//   - an allocation must be a granule-aligned range of rounded_size() bytes
//     (T1), aligned to max(align, 8) (T2), lying wholly inside one gap (no
//     overlap with a live block, inside the arena);
//   - an allocation may fail only when the search rule of T3 (a) finds
//     nothing, stated on sizes rather than on class lists:
//         search(size, align) = class_floor(g + extra) granules, where
//           g     = rounded_size(size) / 8,
//           extra = 0 for align <= 8, else align / 8 - 1 (worst-case padding),
//           class_floor(n) = n rounded up to its class width: width 1 below
//             64 granules, then 2^k for n in [64 << (k - 1), 128 << (k - 1))
//             (32 classes per power of two);
//       so a failure is allowed iff align is not a power of two, the size is
//       too large to round, or every free block is smaller than search()
//       granules. (T3 (b), the one-probe fallback, can only make allocate()
//       succeed more often; fits_when_empty() tests it exactly below.)
//   - fits_when_empty(size, align) is exact: the request, placed at the
//     first align-aligned granule of the arena, ends within it.
//
// Plain C++20, header-only, computes on addresses and never touches memory;
// shared by proptest/tlsf_prop.cpp and fuzz/tlsf.cpp.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "first_fit_model.hpp"  // Span

namespace mnemos::model {

class TlsfModel {
 public:
  static constexpr std::size_t kGranule = 8;
  static constexpr std::size_t kMinBlock = 16;

  static constexpr bool is_power_of_two(std::size_t x) { return x != 0 && (x & (x - 1)) == 0; }

  // T1; nullopt when rounding would overflow.
  static std::optional<std::size_t> rounded_size(std::size_t n) {
    if (n > SIZE_MAX - kGranule) return std::nullopt;
    const std::size_t m = n < kMinBlock ? kMinBlock : n;
    return (m + kGranule - 1) / kGranule * kGranule;
  }

  // The smallest member of the class at or above n granules (the "good fit"
  // rounding of T3); saturates instead of overflowing.
  static std::size_t class_floor(std::size_t n) {
    std::size_t width = 1;
    while (n >= 64 * width && width <= SIZE_MAX / 128) width *= 2;
    if (n > SIZE_MAX - (width - 1)) return SIZE_MAX;
    return (n + width - 1) / width * width;
  }

  // Granules of the smallest free block the good-fit search is guaranteed to
  // find for this request; nullopt when no arena could hold it.
  static std::optional<std::size_t> search_granules(std::size_t size, std::size_t align) {
    const std::optional<std::size_t> n = rounded_size(size);
    if (!n || !is_power_of_two(align)) return std::nullopt;
    const std::size_t g = *n / kGranule;
    const std::size_t extra = align <= kGranule ? 0 : align / kGranule - 1;
    if (extra > SIZE_MAX - g) return std::nullopt;
    return class_floor(g + extra);
  }

  // The arena as the backend reports it after init(): [begin, end).
  void reset(std::uintptr_t begin, std::uintptr_t end) {
    begin_ = begin;
    end_ = end;
    live_.clear();
    live_bytes_ = 0;
  }

  std::uintptr_t begin() const { return begin_; }
  std::uintptr_t end() const { return end_; }
  std::size_t capacity() const { return static_cast<std::size_t>(end_ - begin_); }
  std::size_t free_bytes() const { return capacity() - live_bytes_; }
  std::size_t live_count() const { return live_.size(); }

  // The free blocks: the maximal gaps between live blocks, in address order.
  std::vector<Span> holes() const {
    std::vector<Span> v;
    std::uintptr_t cursor = begin_;
    for (const auto& [start, size] : live_) {
      if (start > cursor) v.push_back(Span{cursor, static_cast<std::size_t>(start - cursor)});
      cursor = start + size;
    }
    if (end_ > cursor) v.push_back(Span{cursor, static_cast<std::size_t>(end_ - cursor)});
    return v;
  }

  // The largest free block, in bytes (0 when none).
  std::size_t largest_hole() const {
    std::size_t best = 0;
    for (const Span& h : holes()) best = h.size > best ? h.size : best;
    return best;
  }

  // Whether allocate(size, align) may return nullptr now (T3 (a)).
  bool may_fail(std::size_t size, std::size_t align) const {
    const std::optional<std::size_t> search = search_granules(size, align);
    if (!search || *search > SIZE_MAX / kGranule) return true;
    return largest_hole() < *search * kGranule;
  }

  // Exact: whether allocate(size, align) succeeds on the empty arena.
  bool fits_when_empty(std::size_t size, std::size_t align) const {
    const std::optional<std::size_t> n = rounded_size(size);
    if (!n || !is_power_of_two(align) || capacity() == 0 || size > capacity()) return false;
    const std::uintptr_t a = align < kGranule ? kGranule : align;
    const std::size_t pad = static_cast<std::size_t>((std::uintptr_t{0} - begin_) & (a - 1));
    return pad <= capacity() && *n <= capacity() - pad;
  }

  // Records a block the backend returned for (size, align); an empty string
  // when it obeys the rules above, else what is wrong.
  std::string allocated(std::uintptr_t p, std::size_t size, std::size_t align) {
    const std::optional<std::size_t> n = rounded_size(size);
    if (!n) return "a block for a size that cannot be rounded";
    if (!is_power_of_two(align)) return "a block for an alignment that is not a power of two";
    if (p % kGranule != 0) return "block not granule-aligned";
    if (p % align != 0) return "block misaligned";
    if (p < begin_ || p > end_ || *n > end_ - p) return "block outside the arena";
    auto next = live_.lower_bound(p);
    if (next != live_.end() && next->first < p + *n) return "block overlaps a live block after it";
    if (next != live_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second > p) return "block overlaps a live block before it";
    }
    live_.emplace(p, *n);
    live_bytes_ += *n;
    return {};
  }

  // Forgets a live block; false if there is none at p.
  bool freed(std::uintptr_t p) {
    auto it = live_.find(p);
    if (it == live_.end()) return false;
    live_bytes_ -= it->second;
    live_.erase(it);
    return true;
  }

 private:
  std::uintptr_t begin_ = 0;
  std::uintptr_t end_ = 0;
  std::map<std::uintptr_t, std::size_t> live_;  // start -> rounded size
  std::size_t live_bytes_ = 0;
};

}  // namespace mnemos::model
