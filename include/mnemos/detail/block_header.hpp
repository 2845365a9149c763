// Where a block's header and payload sit, and the one word of overhead.
//
// A block as the backend hands it out, for a request of alignment A:
//
//   A <= word:  [ header ][ payload ......... ][pad]
//               ^start    ^start + word
//   A >  word:  [ unused .... ][ header ][ payload ......... ][pad]
//               ^start (A-aligned)       ^start + A (A-aligned)
//
// The header is always the word just before the payload and holds the owning
// heap's address, so a free from any thread finds its heap from the pointer
// alone. For A > word the block starts A-aligned and the payload sits A bytes
// in: the cost is the alignment, as the usual "rounded to the alignment" rule.
// When the block is freed its first two words become a DeferredNode (or the
// backend's free-list node), so the header of a freed block is overwritten.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mnemos/detail/align.hpp"
#include "mnemos/layout.hpp"

namespace mnemos {
class Heap;
}

namespace mnemos::detail {

inline constexpr std::size_t kHeaderSize = sizeof(void*);

// Bytes from the block start to the payload for a given alignment.
constexpr std::size_t header_offset(std::size_t align) noexcept {
  return align > kHeaderSize ? align : kHeaderSize;
}

// The block the backend must provide for `layout` before its own rounding.
struct BlockRequest {
  std::size_t size;   // header offset + payload size
  std::size_t align;  // at least the header's alignment
};

// nullopt when header + payload overflows: no arena could hold it.
constexpr std::optional<BlockRequest> block_request(Layout layout) noexcept {
  const std::size_t offset = header_offset(layout.align);
  if (layout.size > SIZE_MAX - offset) return std::nullopt;
  return BlockRequest{offset + layout.size, layout.align > kHeaderSize ? layout.align : kHeaderSize};
}

// The header word of a payload: the word just before it. Sound because every
// payload was placed header_offset(align) >= one word into its block, and the
// word before it is aligned (the payload is at least word-aligned).
inline Heap** header_slot(void* payload) noexcept {
  return reinterpret_cast<Heap**>(static_cast<std::byte*>(payload) - kHeaderSize);
}

inline std::byte* block_start(void* payload, std::size_t align) noexcept {
  return static_cast<std::byte*>(payload) - header_offset(align);
}

inline void* payload_of(void* block_start, std::size_t align) noexcept {
  return static_cast<std::byte*>(block_start) + header_offset(align);
}

}  // namespace mnemos::detail
