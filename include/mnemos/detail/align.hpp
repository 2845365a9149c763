// Integer helpers for alignment arithmetic, shared by the backends and the heap.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mnemos::detail {

constexpr bool is_power_of_two(std::size_t x) noexcept { return x != 0 && (x & (x - 1)) == 0; }

// Precondition: align is a power of two and x + align - 1 does not overflow.
constexpr std::uintptr_t align_up(std::uintptr_t x, std::size_t align) noexcept {
  return (x + (align - 1)) & ~static_cast<std::uintptr_t>(align - 1);
}

constexpr std::uintptr_t align_down(std::uintptr_t x, std::size_t align) noexcept {
  return x & ~static_cast<std::uintptr_t>(align - 1);
}

// Address of a pointer as an integer: every backend computes on addresses, and the
// round trip through uintptr_t is the implementation-defined but universal mapping.
inline std::uintptr_t addr(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

}  // namespace mnemos::detail
