/// @file
/// @brief The report of a structural check (Heap::check(), backend check()).
#pragma once

#include <cstdint>

namespace mnemos {

/// Which invariant a check found broken (CheckReport::failure).
enum class CheckFailure : std::uint8_t {
  None,             ///< every invariant holds
  Busy,             ///< the heap lock was held, so the arena could not be walked
  HoleUnordered,    ///< free list not in strictly ascending address order
  HoleOverlap,      ///< a free block overlaps the next one
  HoleAdjacent,     ///< two free blocks touch: a merge was missed
  HoleOutOfBounds,  ///< a free block lies (partly) outside the arena
  HoleBadSize,      ///< a free block is smaller than the minimum or not a multiple of the granule
  HoleMisaligned,   ///< a free block does not start on the granule
  FreeBytesMismatch,///< the bytes in the free list differ from the backend's count
  StatsMismatch,    ///< the heap's counters disagree with the backend
  DeferredOutOfBounds,  ///< a deferred-queue link leaves the arena (address: the node holding it, or the heap)
  DeferredMisaligned,   ///< a deferred-queue link is not aligned for a node (address: the node holding it, or the heap)
  DeferredBadSize,      ///< a queued node's size is not a valid, tagged block size inside the arena
  DeferredOverlap,      ///< a queued block overlaps a free block or another queued block
  DeferredCycle,        ///< the deferred queue links back to one of its own nodes
};

/// The enumerator's name ("HoleOverlap"), or "?" for any other value.
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
    case CheckFailure::DeferredOutOfBounds: return "DeferredOutOfBounds";
    case CheckFailure::DeferredMisaligned: return "DeferredMisaligned";
    case CheckFailure::DeferredBadSize: return "DeferredBadSize";
    case CheckFailure::DeferredOverlap: return "DeferredOverlap";
    case CheckFailure::DeferredCycle: return "DeferredCycle";
  }
  return "?";
}

/// The first broken invariant found, and where. ok() when none.
struct CheckReport {
  CheckFailure failure = CheckFailure::None;  ///< the first invariant found broken (None: all hold)
  const void* address = nullptr;  ///< the free block or structure at fault, if any

  /// True when no invariant is broken.
  constexpr bool ok() const noexcept { return failure == CheckFailure::None; }
};

}  // namespace mnemos
