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
// heap's address (encoded with check bits under MNEMOS_HARDENING, see
// detail/hardening.hpp), so a free from any thread finds its heap from the
// pointer alone. For A > word the block starts A-aligned and the payload sits A bytes
// in: the cost is the alignment, as the usual "rounded to the alignment" rule.
// When the block is freed its header is scrubbed, then its first words may
// become a DeferredNode or the backend's free-list node; what they put on the
// header word stays recognisable as freed (detail/hardening.hpp), so a second
// free is still named a double free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "mnemos/detail/align.hpp"
#include "mnemos/detail/hardening.hpp"
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
// (The slot is viewed as an unsigned word: it holds an encoded heap address,
// never dereferenced as a pointer.)
inline std::uintptr_t* header_slot(void* payload) noexcept {
  return reinterpret_cast<std::uintptr_t*>(static_cast<std::byte*>(payload) - kHeaderSize);
}

// The header word of a live block of `heap`: the heap's address, encoded and
// checked under MNEMOS_HARDENING (bound to the payload address, the block size
// as the backend rounds it, and the alignment class), plain otherwise.
inline std::uintptr_t live_header(const Heap* heap, void* payload, std::size_t block_size,
                                  std::size_t align) noexcept {
  // (One line for the plain case: clang 14's coverage counts the discarded
  // branch of an `if constexpr`'s else as never run.)
  if constexpr (!kHardening) return addr(heap);
  return static_cast<std::uintptr_t>(
      encode_header(addr(heap), HeaderKey{addr(payload), block_size, header_offset(align)}, kLiveTag));
}

// The scrub a free writes over the header (hardening only): it names the heap
// and the block, but as freed, so a second free is a recognised double free.
inline std::uintptr_t freed_header(const Heap* heap, void* payload, std::size_t block_size,
                                   std::size_t align) noexcept {
  return static_cast<std::uintptr_t>(
      encode_header(addr(heap), HeaderKey{addr(payload), block_size, header_offset(align)}, kFreedTag));
}

// The heap a live header names, without validation (hardening off, or after
// header_matches()). Sound: the word was made from that heap's address by
// live_header(), and converting back is the universal mapping.
inline Heap* header_heap_unchecked(std::uintptr_t word) noexcept {
  return reinterpret_cast<Heap*>(kHardening ? header_heap(word) : word);
}

// The block size a header is bound to: the request rounded to the 8-byte
// granule, which is what both backends' rounded_size() give on the 64-bit
// targets hardening runs on (any request is at least 9 bytes, so the 16-byte
// minimum adds nothing). Needs no heap, so a free can compute it before it
// trusts the header.
constexpr std::size_t header_size_class(const BlockRequest& request) noexcept {
  return static_cast<std::size_t>(align_up(request.size, 8));
}

inline std::byte* block_start(void* payload, std::size_t align) noexcept {
  return static_cast<std::byte*>(payload) - header_offset(align);
}

inline void* payload_of(void* block_start, std::size_t align) noexcept {
  return static_cast<std::byte*>(block_start) + header_offset(align);
}

}  // namespace mnemos::detail
