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
struct DeferredNode {
  DeferredNode* next;      // the node pushed before this one (LIFO), or nullptr
  std::size_t block_size;  // the block's size as given to the backend
};

}  // namespace mnemos::detail
