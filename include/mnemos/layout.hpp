/// @file
/// @brief Layout: the size and alignment of a request, as Rust's core::alloc::Layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "mnemos/detail/align.hpp"

namespace mnemos {

/// The size and alignment of a request, as Rust's core::alloc::Layout.
///
/// A raw allocation (Heap::try_alloc_raw, Heap::alloc_raw) takes one, and
/// Heap::free_raw must be given the same one back. Plain data: any thread.
struct Layout {
  std::size_t size = 0;   ///< bytes requested; 0 is not a valid layout
  std::size_t align = 1;  ///< alignment in bytes; must be a power of two

  /// The layout of one T: {sizeof(T), alignof(T)}.
  template <class T>
  static constexpr Layout of() noexcept {
    return Layout{sizeof(T), alignof(T)};
  }

  /// n elements of T; nullopt when n * sizeof(T) overflows.
  template <class T>
  static constexpr std::optional<Layout> array_of(std::size_t n) noexcept {
    if (n > SIZE_MAX / sizeof(T)) return std::nullopt;
    return Layout{n * sizeof(T), alignof(T)};
  }

  /// Whether the allocator accepts this layout: non-zero size, power-of-two
  /// alignment, and a size that stays representable once rounded up to the
  /// alignment (the rule of Rust's Layout::from_size_align, with PTRDIFF_MAX as
  /// the bound). An allocation with an invalid layout fails with
  /// Error::InvalidLayout.
  constexpr bool valid() const noexcept {
    return size != 0 && detail::is_power_of_two(align) &&
           size <= static_cast<std::size_t>(PTRDIFF_MAX) - (align - 1);
  }

  /// Equal when both size and alignment are.
  friend constexpr bool operator==(const Layout&, const Layout&) = default;
};

}  // namespace mnemos
