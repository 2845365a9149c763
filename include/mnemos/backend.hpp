/// @file
/// @brief The choice of allocator underneath a Heap (Heap::Options::backend).
#pragma once

#include <cstdint>

namespace mnemos {

/// The allocator underneath a Heap, chosen at Heap::bootstrap.
///
/// Both backends hand out the same block sizes (multiples of 8 bytes, at least
/// 16, on LP64), so the owners above see the same one-pointer overhead and the
/// same Stats with either; they differ in time bounds, in placement and in the
/// metadata they keep in the region.
enum class Backend : std::uint8_t {
  /// Address-ordered first fit (linked_list_allocator, the original's):
  /// O(free blocks) per allocate and free, no metadata besides the free blocks.
  FirstFit,
  /// Two-level segregated fit (detail/tlsf.hpp): O(1) allocate and free with a
  /// bounded worst case (no loop); keeps a mark bitmap (1/64 of the region)
  /// and class list heads at the start of the arena.
  Tlsf,
};

/// The enumerator's name ("FirstFit", "Tlsf"), or "?" for any other value.
constexpr const char* to_string(Backend b) noexcept {
  switch (b) {
    case Backend::FirstFit: return "FirstFit";
    case Backend::Tlsf: return "Tlsf";
  }
  return "?";
}

}  // namespace mnemos
