// The report of a structural check (Heap::check(), backend check()).
#pragma once

#include <cstdint>

namespace mnemos {

enum class CheckFailure : std::uint8_t {
  None,
  Busy,             // the heap lock was held, so the arena could not be walked
  HoleUnordered,    // free list not in strictly ascending address order
  HoleOverlap,      // a free block overlaps the next one
  HoleAdjacent,     // two free blocks touch: a merge was missed
  HoleOutOfBounds,  // a free block lies (partly) outside the arena
  HoleBadSize,      // a free block is smaller than the minimum or not a multiple of the granule
  HoleMisaligned,   // a free block does not start on the granule
  FreeBytesMismatch,// the bytes in the free list differ from the backend's count
  StatsMismatch,    // the heap's counters disagree with the backend
};

constexpr const char* to_string(CheckFailure f) noexcept {
  switch (f) {
    case CheckFailure::None: return "None";
    case CheckFailure::Busy: return "Busy";
    case CheckFailure::HoleUnordered: return "HoleUnordered";
    case CheckFailure::HoleOverlap: return "HoleOverlap";
    case CheckFailure::HoleAdjacent: return "HoleAdjacent";
    case CheckFailure::HoleOutOfBounds: return "HoleOutOfBounds";
    case CheckFailure::HoleBadSize: return "HoleBadSize";
    case CheckFailure::HoleMisaligned: return "HoleMisaligned";
    case CheckFailure::FreeBytesMismatch: return "FreeBytesMismatch";
    case CheckFailure::StatsMismatch: return "StatsMismatch";
  }
  return "?";
}

// The first broken invariant found, and where. ok() when none.
struct CheckReport {
  CheckFailure failure = CheckFailure::None;
  const void* address = nullptr;  // the free block or structure at fault, if any

  constexpr bool ok() const noexcept { return failure == CheckFailure::None; }
};

}  // namespace mnemos
