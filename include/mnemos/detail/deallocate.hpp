// The free entry point the owners call, so they need not include the heap.
#pragma once

#include "mnemos/layout.hpp"

namespace mnemos::detail {

// Frees a payload previously returned for `layout` by any heap: reads the header
// word to find the owning heap, then frees at once or defers (never blocks).
// The same function as Heap::free_raw; a null payload is ignored.
void deallocate(void* payload, Layout layout) noexcept;

// Tag for the owners' adopting constructors: only the allocation paths (and
// from_raw) hand an owner memory they just constructed.
struct Adopt {
  explicit Adopt() = default;
};

}  // namespace mnemos::detail
