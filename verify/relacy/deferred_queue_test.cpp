// The heap's lock word with its deferred-free stack (detail/heap_lock.hpp),
// compiled against Relacy: every interleaving of producers freeing into the
// queue while a lock holder drains it and releases.
//
// Checked in every explored execution:
//   - every freed block is returned to the "backend" exactly once (a block's
//     `returned` count goes 0 -> 1 once, and is 1 for all at the end), so no
//     node is popped twice and none is lost;
//   - no free is stranded: when every thread is done, the lock is free and
//     the deferred head is empty (the release handshake, as Heap::release_lock);
//   - the drained list is well formed: each node is a block that was freed,
//     found where its push placed it, and the list is no longer than the frees;
//   - ordering (by Relacy's race detector on rl::var): the user's writes to a
//     block before freeing it happen before the drainer reuses its bytes
//     (push release / take_all acquire), and successive lock holders' use of
//     the backend is ordered (try_lock / lock_or_push acquire, release CAS).
#include <cstddef>
#include <cstdint>

#include "mnemos/detail/heap_lock.hpp"
#include "relacy_support.hpp"

using mnemos::detail::DeferredNode;
using mnemos::detail::HeapLock;
using mnemos::detail::mo_acquire;
using mnemos::detail::mo_release;

namespace {

// A block as the heap hands it out. Its first bytes become the DeferredNode when
// it is freed while the lock is held; `payload` stands for the user's bytes,
// written before the free and overwritten by the backend once returned.
struct Block {
  alignas(DeferredNode) unsigned char node[sizeof(DeferredNode)];
  rl::var<int> payload{0};
  rl::var<int> returned{0};  // backend state, touched only under the heap lock
};

// The parts of the heap the protocol needs: the lock word, the blocks, and a
// backend that only lock holders touch. `Producers` threads free; thread 0 is
// the owner that allocates and holds the lock (a Heap::Guard) at times.
template <std::size_t kBlocks>
struct MiniHeap {
  HeapLock lock;
  Block blocks[kBlocks];
  rl::var<int> backend{0};  // any state of the backend: lock holders only
  std::size_t freed = 0;    // blocks freed so far (plain: the test's own bookkeeping)

  std::size_t index_of(const DeferredNode* node) {
    for (std::size_t i = 0; i < kBlocks; ++i) {
      if (static_cast<const void*>(blocks[i].node) == static_cast<const void*>(node)) return i;
    }
    RL_ASSERT(!"a drained node is not one of the blocks");
    return 0;
  }

  // Lock held: the block goes back to the backend (Heap::return_block).
  void return_block(std::size_t i) {
    RL_ASSERT(blocks[i].returned(RL_INFO) == 0);  // never returned twice
    blocks[i].returned(RL_INFO) = 1;
    blocks[i].payload(RL_INFO) = -1;  // the backend reuses the bytes: after the user's writes
    backend(RL_INFO) = backend(RL_INFO) + 1;
  }

  // Lock held: Heap::drain.
  void drain(DeferredNode* list) {
    std::size_t n = 0;
    while (list != nullptr) {
      RL_ASSERT(++n <= kBlocks);  // acyclic, and no longer than the frees
      DeferredNode* next = list->next;  // read the link before the block is reused
      const std::size_t i = index_of(list);
      RL_ASSERT(list->block_size == i);  // the node's fields are those its push wrote
      return_block(i);
      list = next;
    }
  }

  // Lock held: returns what is queued (Heap::drain_pending, and the start of
  // every allocation under the lock).
  void drain_pending() { drain(lock.take_all()); }

  // The release handshake of Heap::release_lock (no waiters in this test):
  // drain while the head is non-empty, release only over an empty queue.
  void unlock() {
    std::uintptr_t w = lock.load();
    for (;;) {
      if (HeapLock::head_of(w) != nullptr) {
        drain_pending();
      } else {
        RL_ASSERT((w & HeapLock::kServe) == 0);  // nobody requests service here
        if (lock.try_release(w)) return;
        continue;  // try_release reloaded w
      }
      w = lock.load();
    }
  }

  // Any thread: the free path (Heap::free_any_context).
  void free_block(std::size_t i, int user_value) {
    blocks[i].payload(RL_INFO) = user_value;  // the user's last write before the free
    switch (lock.lock_or_push(blocks[i].node, i)) {
      case HeapLock::FreeRoute::TookLock:
        return_block(i);
        unlock();
        return;
      case HeapLock::FreeRoute::Deferred:
        return;
    }
  }

  // The owner under a Guard: takes the lock if free, allocates (touches the
  // backend, after returning what is queued) and releases.
  void owner_step() {
    if (!lock.try_lock()) return;  // held by a producer returning its block
    drain_pending();
    backend(RL_INFO) = backend(RL_INFO) + 1;
    unlock();
  }

  // When every thread is done: every block returned once, nothing stranded.
  void check_quiescent() {
    RL_ASSERT(lock.load() == 0);  // unlocked, empty deferred head, no flags
    for (std::size_t i = 0; i < kBlocks; ++i) RL_ASSERT(blocks[i].returned(RL_INFO) == 1);
  }
};

// 2 producers free one block each while the owner holds the lock from the start
// (a Guard taken before the frees) and then releases: every push either lands
// before the release CAS (which then fails and drains it) or after it (the push
// CAS fails, the producer takes the lock itself).
struct TwoProducersOwnerHolds : rl::test_suite<TwoProducersOwnerHolds, 3> {
  MiniHeap<2> heap;
  void before() { RL_ASSERT(heap.lock.try_lock()); }  // the owner's Guard
  void thread(unsigned id) {
    if (id == 0) {
      heap.drain_pending();  // an allocation under the Guard returns what is queued first
      heap.backend(RL_INFO) = heap.backend(RL_INFO) + 1;
      heap.unlock();
    } else {
      heap.free_block(id - 1, static_cast<int>(id));
    }
  }
  void after() { heap.check_quiescent(); }
};

// 2 producers free one block each while the owner takes and releases the lock
// once at an arbitrary point (so a producer may win the lock and free at once,
// then drain the other's push, or the owner drains both).
struct TwoProducersOwnerLocksOnce : rl::test_suite<TwoProducersOwnerLocksOnce, 3> {
  MiniHeap<2> heap;
  void thread(unsigned id) {
    if (id == 0) {
      heap.owner_step();
    } else {
      heap.free_block(id - 1, static_cast<int>(id));
    }
  }
  void after() { heap.check_quiescent(); }
};

// 2 producers free two blocks each while the owner takes and releases the lock
// twice at arbitrary points: pushes, direct frees by producers that won the
// lock, and drains by either kind of holder all interleave.
struct TwoProducersTwoBlocksOwnerLocksTwice : rl::test_suite<TwoProducersTwoBlocksOwnerLocksTwice, 3> {
  MiniHeap<4> heap;
  void thread(unsigned id) {
    if (id == 0) {
      heap.owner_step();
      heap.owner_step();
    } else {
      const std::size_t first = (id - 1) * 2;
      heap.free_block(first, static_cast<int>(id));
      heap.free_block(first + 1, static_cast<int>(id));
    }
  }
  void after() { heap.check_quiescent(); }
};

// The same with `kProducers` producers of one block each, the owner holding the
// lock from the start: for context-bounded search (full search is too big).
template <unsigned kProducers>
struct ManyProducersOwnerHolds : rl::test_suite<ManyProducersOwnerHolds<kProducers>, kProducers + 1> {
  MiniHeap<kProducers * 2> heap;
  void before() { RL_ASSERT(heap.lock.try_lock()); }
  void thread(unsigned id) {
    if (id == 0) {
      heap.drain_pending();
      heap.unlock();
      heap.owner_step();
    } else {
      heap.free_block((id - 1) * 2, static_cast<int>(id));
      heap.free_block((id - 1) * 2 + 1, static_cast<int>(id));
    }
  }
  void after() { heap.check_quiescent(); }
};

// Ownership moves between threads, and a block's address is reused: the owner
// allocates a block from the backend (under the lock), writes it and hands it
// to a producer through an atomic transfer slot; the producer frees it; the
// owner allocates the same block again once it is back. The Treiber stack with
// a take-all drain has no ABA: each lifetime of the block is returned once.
struct OwnershipTransferAndReuse : rl::test_suite<OwnershipTransferAndReuse, 3> {
  static constexpr std::size_t kBlocks = 2;
  static constexpr int kRounds = 2;
  MiniHeap<kBlocks> heap;
  rl::atomic<int> slot[2];  // 0 empty, else 1 + block index handed to producer 1 or 2

  void before() {
    for (auto& s : slot) s.store(0, rl::mo_relaxed, RL_INFO);
    for (auto& b : heap.blocks) b.returned(RL_INFO) = 1;  // every block starts in the backend
  }

  // Lock held: a block from the backend, if one is free.
  int allocate() {
    heap.drain_pending();
    for (std::size_t i = 0; i < kBlocks; ++i) {
      if (heap.blocks[i].returned(RL_INFO) == 1) {
        heap.blocks[i].returned(RL_INFO) = 0;  // live again: may be returned once more
        return static_cast<int>(i);
      }
    }
    return -1;
  }

  void thread(unsigned id) {
    if (id == 0) {
      // Two rounds: hand one block to each producer per round, if allocation
      // succeeds; the second round reuses blocks the producers freed.
      for (int round = 0; round < kRounds; ++round) {
        for (int p = 0; p < 2; ++p) {
          if (slot[p].load(rl::mo_acquire, RL_INFO) != 0) continue;  // not taken yet
          if (!heap.lock.try_lock()) continue;
          const int b = allocate();
          heap.unlock();
          if (b < 0) continue;
          heap.blocks[b].payload(RL_INFO) = 100 + b;  // the owner writes the block
          // release: the producer that takes the slot sees the block's contents.
          slot[p].store(1 + b, rl::mo_release, RL_INFO);
        }
      }
    } else {
      const int p = static_cast<int>(id) - 1;
      for (int round = 0; round < kRounds; ++round) {
        // acquire: pairs with the owner's release store of the slot.
        const int v = slot[p].load(rl::mo_acquire, RL_INFO);
        if (v == 0) continue;
        const std::size_t b = static_cast<std::size_t>(v - 1);
        RL_ASSERT(heap.blocks[b].payload(RL_INFO) == 100 + static_cast<int>(b));
        // release: the owner's next allocation of this slot sees it emptied
        // (the block itself travels back through the heap's queue).
        slot[p].store(0, rl::mo_release, RL_INFO);
        heap.free_block(b, static_cast<int>(id));
      }
    }
  }

  void after() {
    RL_ASSERT(heap.lock.load() == 0);
    for (std::size_t i = 0; i < kBlocks; ++i) {
      // Every block handed out and not still sitting in a slot came back.
      bool in_slot = false;
      for (auto& s : slot) in_slot = in_slot || s.load(rl::mo_relaxed, RL_INFO) == static_cast<int>(1 + i);
      RL_ASSERT(heap.blocks[i].returned(RL_INFO) == (in_slot ? 0 : 1));
    }
  }
};

}  // namespace

// Budget (2 cores, with the rest of verify/relacy/run.sh under ~2 minutes):
// the 2-producer case with the owner holding the lock is searched in full;
// the others with a preemption bound (MNEMOS_RELACY_SEARCH goes deeper).
int main(int argc, char** argv) {
  using mnemos::verify::run;
  const mnemos::verify::Filter only(argc, argv);
  bool ok = true;
  if (only("full")) ok &= run<TwoProducersOwnerHolds>("deferred: 2 producers x1, owner holds lock", rl::sched_full);
  if (only("once")) ok &= run<TwoProducersOwnerLocksOnce>("deferred: 2 producers x1, owner locks once", rl::sched_bound, 5);
  if (only("twice")) {
    ok &= run<TwoProducersTwoBlocksOwnerLocksTwice>("deferred: 2 producers x2, owner locks twice", rl::sched_bound, 3);
  }
  if (only("reuse")) ok &= run<OwnershipTransferAndReuse>("deferred: ownership transfer + block reuse", rl::sched_bound, 2);
  if (only("three")) ok &= run<ManyProducersOwnerHolds<3>>("deferred: 3 producers x2, owner holds lock", rl::sched_bound, 1);
  if (only("four")) ok &= run<ManyProducersOwnerHolds<4>>("deferred: 4 producers x2, owner holds lock", rl::sched_random, 0, 200000);
  return ok ? 0 : 1;
}
