// The node a freed block becomes while it waits in the deferred-free queue.
#pragma once

#include <cstddef>

namespace mnemos::detail {

// Placed at the start of a block whose free found the heap locked. The block is
// no longer the user's (it is being freed) and not yet the backend's, so its
// first two words are ours: the queue needs no memory of its own and can never
// be full. Every block is at least sizeof(DeferredNode) bytes (the backends'
// minimum block is two words) and starts on alignof(DeferredNode), which leaves
// the low bits of a node address free for the lock word's flags.
//
// The size comes first: for a block of alignment <= 8 the block's first word is
// its header word, and under MNEMOS_HARDENING the heap passes the size tagged
// (detail/hardening.hpp, tag_free_size), so a second free of a queued block
// still finds a word it recognises as freed (DoubleFree, not ForeignPointer).
// For alignment 16 the header word is the second one, `next` (an untagged
// pointer, or null): the free then finds the tagged size just before it
// (Heap::owner_of). For alignment >= 32 the header lies beyond the node and
// keeps its scrub. The lock word and its tests treat the size as an opaque
// value; Heap::check() walks the queue and validates every node.
struct DeferredNode {
  std::size_t block_size;  // the block's size as given to the backend (the heap tags it)
  DeferredNode* next;      // the node pushed before this one (LIFO), or nullptr
};

}  // namespace mnemos::detail
