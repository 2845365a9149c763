// Misuse detection: how the header word and the words of a freed block are
// encoded so that a free can tell a live block from anything else, without a
// byte more per allocation (MNEMOS_HARDENING, mnemos/config.hpp).
//
// The header word (LP64, hardening on), the word just before every payload:
//
//   bits 63..48  check  crc16(bits 47..0, block size, header offset)
//                       ^ bind(payload address, secret)
//   bits 47..3   the owning heap's address bits 47..3, XOR the secret
//   bits  2..0   tag    0b101 live header, 0b011 freed header (the scrub a
//                       free writes over the header before anything else)
//
// What the check guarantees, and why:
//   - Any one corrupted byte of a header is detected, always: a byte of bits
//     47..0 is an error burst of at most 8 bits, which a CRC of degree 16
//     (with a constant term) always changes, and bind() does not depend on
//     the stored bits; a byte of the check itself makes it disagree. The
//     byte is even located (repair_single_byte), which tells a smashed header
//     from a free with the wrong layout.
//   - A free with another size class (within 2^16 granules of the real one)
//     or another alignment class never decodes: size and offset are part of
//     the CRC's codeword (crc16_header). A header copied to another block
//     does not decode either, but that binding is a 16-bit hash of the
//     address: a collision is possible with probability 2^-16, as in scudo.
//   - A header cannot be forged without the secret (the heap's address is
//     stored XOR it, and it enters the check).
//   - An arbitrary word (the word before a foreign or interior pointer)
//     decodes with probability 2^-19 (tag and check must both match).
//
// A freed block's header word is then scrubbed, so a second free of it is
// recognised as a double free (DoubleFree), in both backends, for every
// alignment, whether the first free went straight to the backend or through
// the deferred queue. For alignment >= 32 the scrub is the freed encoding
// (tag 0b011, names the heap: the word lies beyond any node the queue or a
// backend writes, and survives); below that it is the constant kFreeWordTag,
// whose top 32 bits are kFreeHalfTag. What may later be written over it is
// made recognisable too, so that every word at the header position of a
// block whose bytes are all still free is a *freed word* (is_freed_word):
//   - the deferred node's size and first fit's hole size carry kFreeWordTag
//     in their unused high bits (tag_free_size);
//   - TLSF writes only the low half of such a word (its 32-bit size, next
//     and prev fields), and writes kFreeHalfTag into the high halves it owns
//     (tlsf.hpp, "Misuse detection"), so the top 32 bits stay kFreeHalfTag;
//   - the one word that carries no tag is a node's link (first fit's next
//     pointer, the deferred queue's next pointer: a pointer or null), and it
//     always follows the node's first word, its tagged size: when
//     the header word is a link (is_link_word), a free of alignment <= 16
//     also reads the word before it (Heap::owner_of), which must be a tagged
//     size spanning the block. When a split places a first-fit node at a new
//     position B, it writes a tagged size (of the rest of the hole) at B + 16,
//     so an older node's size the new link covered (at B + 8) or its link
//     after B + 16 is never left without that witness. The drain puts the
//     scrub back over a queued node's link before the block reaches the
//     backend. TLSF's fields sit in low halves and need none of this.
// A freed word names no heap: the fault then reports "heap unknown".
// What stays undetectable: a second free of a block whose bytes were handed
// out again since (in whole or in part): it is the new block's free (or a
// bad layout for it), and nothing short of a quarantine tells them apart.
// Freed words are recognised with a 19-bit (tagged size) or 32-bit (TLSF
// half) pattern; user data that happens to look like one before an interior
// pointer makes that free read as a double free.
//
// Threads: everything here is pure computation on values; no state besides
// the link-time address the secret is derived from.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "mnemos/config.hpp"
#include "mnemos/detail/align.hpp"

#if MNEMOS_HARDENING && UINTPTR_MAX <= 0xFFFFFFFFu
#error "MNEMOS_HARDENING=1 needs 64-bit pointers: the check bits live in their unused high bits"
#endif

namespace mnemos::detail {

inline constexpr bool kHardening = MNEMOS_HARDENING != 0;

inline constexpr std::uint64_t kTagMask = 0x7;
inline constexpr std::uint64_t kLiveTag = 0x5;
inline constexpr std::uint64_t kFreedTag = 0x3;
inline constexpr unsigned kCheckShift = 48;
inline constexpr std::uint64_t kFieldMask = (std::uint64_t{1} << kCheckShift) - 1;  // bits 47..0
inline constexpr std::uint64_t kHeapMask = kFieldMask & ~kTagMask;                   // bits 47..3
// High bits of a free node's size word (see above). Zero without hardening.
inline constexpr std::uint64_t kFreeWordTag = kHardening ? (std::uint64_t{0xF8EE} << kCheckShift) : 0;

// --- CRC-16/CCITT (polynomial 0x1021, init 0xFFFF) over the 6 low bytes -------
constexpr std::array<std::uint16_t, 256> make_crc16_table() noexcept {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    std::uint16_t c = static_cast<std::uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b) {
      c = static_cast<std::uint16_t>((c & 0x8000u) != 0 ? (c << 1) ^ 0x1021u : c << 1);
    }
    t[i] = c;
  }
  return t;
}
inline constexpr std::array<std::uint16_t, 256> kCrc16Table = make_crc16_table();

constexpr std::uint16_t crc16_step(std::uint16_t c, std::uint8_t byte) noexcept {
  return static_cast<std::uint16_t>((c << 8) ^ kCrc16Table[static_cast<std::uint8_t>((c >> 8) ^ byte)]);
}

// The CRC over the stored field (6 bytes) followed by the block's size in
// granules (4 bytes) and its header offset's log2 (1 byte): one codeword, so
// a difference confined to a 16-bit span of it is always detected: any one
// byte of the header, or a size class that differs from the allocation's
// within 2^16 granules, or another alignment class.
constexpr std::uint16_t crc16_header(std::uint64_t field, std::size_t block_size, std::size_t offset) noexcept {
  std::uint16_t c = 0xFFFF;
  for (int i = 5; i >= 0; --i) c = crc16_step(c, static_cast<std::uint8_t>(field >> (8 * i)));
  const auto granules = static_cast<std::uint32_t>(block_size >> 3);
  for (int i = 3; i >= 0; --i) c = crc16_step(c, static_cast<std::uint8_t>(granules >> (8 * i)));
  // offset is a power of two (header_offset()): its log2 is its trailing zeros.
  return crc16_step(c, static_cast<std::uint8_t>(std::countr_zero(offset | (std::size_t{1} << 63))));
}

// splitmix64's finaliser: a cheap bijective mix.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Defined in src/fault.cpp (one definition for the whole program, so every
// translation unit and library agrees on the secret). Only its address is used.
extern const char kHeaderSecretAnchor;

// The secret, restricted to the heap-address bits. Derived from the load
// address of a static object (different per run under ASLR) and the build's
// MNEMOS_HARDENING_SECRET; the same value for every call in a process, so it
// needs no storage and no synchronisation. A few ALU operations.
inline std::uint64_t header_secret() noexcept {
  return mix64(addr(&kHeaderSecretAnchor) ^ static_cast<std::uint64_t>(MNEMOS_HARDENING_SECRET)) & kHeapMask;
}

// The part of the check that binds a header to its place (a hash: a header
// copied elsewhere fails with probability 1 - 2^-16).
inline std::uint16_t header_bind(std::uintptr_t payload, std::uint64_t secret) noexcept {
  return static_cast<std::uint16_t>(mix64(static_cast<std::uint64_t>(payload) ^ secret) >> 48);
}

// What the header binds besides the heap: the payload address, the block size
// as the backend rounds it (both backends: multiples of 8, at least 16) and
// the payload's offset in the block (the alignment class). A free must give
// the same three to decode the header.
struct HeaderKey {
  std::uintptr_t payload;
  std::size_t block_size;
  std::size_t offset;
};

// The header word for a block of heap `heap` (8-aligned, below 2^48: checked
// at bootstrap) with tag kLiveTag or kFreedTag.
inline std::uint64_t encode_header(std::uintptr_t heap, const HeaderKey& key, std::uint64_t tag) noexcept {
  const std::uint64_t secret = header_secret();
  const std::uint64_t field = ((static_cast<std::uint64_t>(heap) ^ secret) & kHeapMask) | tag;
  const std::uint16_t check = crc16_header(field, key.block_size, key.offset) ^ header_bind(key.payload, secret);
  return (static_cast<std::uint64_t>(check) << kCheckShift) | field;
}

// Whether `word` is exactly the header encode_header(h, key, tag) for some h.
inline bool header_matches(std::uint64_t word, const HeaderKey& key, std::uint64_t tag) noexcept {
  if ((word & kTagMask) != tag) return false;
  const std::uint64_t secret = header_secret();
  const std::uint16_t check = crc16_header(word & kFieldMask, key.block_size, key.offset) ^ header_bind(key.payload, secret);
  return static_cast<std::uint16_t>(word >> kCheckShift) == check;
}

// The heap address a matching header names.
inline std::uintptr_t header_heap(std::uint64_t word) noexcept {
  return static_cast<std::uintptr_t>((word & kHeapMask) ^ header_secret());
}

// A word a free-list or deferred node puts where a header was (see above):
// a tagged size, or the constant scrub.
constexpr bool is_free_word(std::uint64_t word) noexcept {
  return kHardening && (word & ~kFieldMask) == kFreeWordTag && (word & kTagMask) == 0;
}
// The top 32 bits of kFreeWordTag: what TLSF keeps (or writes) in the high
// half of every word of a free block that can be a header position.
inline constexpr std::uint32_t kFreeHalfTag = static_cast<std::uint32_t>(std::uint64_t{0xF8EE} << 16);
// Any word a free of this block, the deferred queue or a backend leaves at a
// header position (see above): a free word, or a word whose high half is
// kFreeHalfTag (a TLSF field written over the low half of one). A live
// header's top 32 bits are its check and heap bits 32..47, so it matches only
// with probability 2^-32 (and is tested for first anyway).
constexpr bool is_freed_word(std::uint64_t word) noexcept {
  return kHardening && (is_free_word(word) || static_cast<std::uint32_t>(word >> 32) == kFreeHalfTag);
}
// A size stored in a free node, tagged; and back. The tag occupies bits no
// arena size reaches (sizes < 2^48), so the value is exact.
constexpr std::size_t tag_free_size(std::size_t size) noexcept {
  return static_cast<std::size_t>(static_cast<std::uint64_t>(size) | kFreeWordTag);
}
constexpr std::size_t untag_free_size(std::size_t word) noexcept {
  return kHardening ? static_cast<std::size_t>(static_cast<std::uint64_t>(word) & kFieldMask) : word;
}

// Whether `word` could be a node's link: a pointer (first fit's next, the
// deferred queue's next: 8-aligned, below 2^48) or null. A live header has
// tag 0b101 and, but with probability 2^-16, check bits set: one changed
// byte cannot clear both.
constexpr bool is_link_word(std::uint64_t word) noexcept {
  return (word & kTagMask) == 0 && (word >> kCheckShift) == 0;
}

// Whether `word` is a live header for `key` with exactly one byte changed; if
// so, `heap` is the heap it named, or 0 when two different one-byte repairs
// both decode (two codewords can differ in two bytes) and the heap is
// therefore ambiguous. For telling a smashed header (CorruptHeader) from a
// free with the wrong layout (BadLayout). Fault path only: up to 8 x 255
// evaluations of the check.
inline bool repair_single_byte(std::uint64_t word, const HeaderKey& key, std::uintptr_t& heap) noexcept {
  bool found = false;
  heap = 0;
  for (int i = 0; i < 8; ++i) {
    const std::uint64_t mask = std::uint64_t{0xFF} << (8 * i);
    for (unsigned v = 0; v < 256; ++v) {
      const std::uint64_t candidate = (word & ~mask) | (std::uint64_t{v} << (8 * i));
      if (candidate == word || !header_matches(candidate, key, kLiveTag)) continue;
      // A second repair names another heap: two live headers for one key with
      // the same heap bits have the same field, hence the same check: equal.
      if (found) {
        heap = 0;
        return true;
      }
      found = true;
      heap = header_heap(candidate);
    }
  }
  return found;
}

}  // namespace mnemos::detail
