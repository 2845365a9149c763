/// @file
/// @brief Error values of every fallible mnemos-alloc call. No exceptions anywhere.
#pragma once

#include <cstdint>

namespace mnemos {

/// Why a call failed: the error of a Result<T>.
///
/// Only NoMemory and Locked can be cured by waiting; a waiting allocation
/// (an AllocFuture) never completes with them. TooLarge and InvalidLayout are
/// final for that request, Closed for that heap.
enum class Error : std::uint8_t {
  InvalidLayout,   ///< size 0, alignment not a power of two, or size overflow
  TooLarge,        ///< could not fit even in the empty arena: waiting cannot help
  NoMemory,        ///< no room now; a free may make room
  Locked,          ///< the heap lock is held (by a Guard or another thread)
  RegionTooSmall,  ///< bootstrap: the region cannot hold the heap state and one block
  RegionMisaligned,///< bootstrap: the region does not start at alignof(Heap)
  Closed,          ///< the heap was closed (async layer)
  Cancelled,       ///< the request was cancelled through its stop token (async layer)
};

/// A short, stable name for logs and test output ("NoMemory"); "?" for a
/// value that is not an enumerator. Constant time, any context.
constexpr const char* to_string(Error e) noexcept {
  switch (e) {
    case Error::InvalidLayout: return "InvalidLayout";
    case Error::TooLarge: return "TooLarge";
    case Error::NoMemory: return "NoMemory";
    case Error::Locked: return "Locked";
    case Error::RegionTooSmall: return "RegionTooSmall";
    case Error::RegionMisaligned: return "RegionMisaligned";
    case Error::Closed: return "Closed";
    case Error::Cancelled: return "Cancelled";
  }
  return "?";
}

}  // namespace mnemos
