// The intrusive wait queue of pending allocations.
//
// A WaitNode lives inside its AllocFuture: waiting needs no memory. The queue
// keeps two doubly linked FIFO lists under one small lock:
//   waiting  - requests not yet served, oldest first (the heap serves the head);
//   to_wake  - requests that have their outcome (a block, Closed, Cancelled)
//              and whose waker has not been called yet.
//
// States of a node (`where`), who may touch it, and whether it is linked:
//
//     Detached --subscribe--> Waiting --complete(outcome)--> ToWake --pop--> Calling --call returns--> Detached
//        ^                      |                              |                |
//        |                      +--cancel/destroy--------------+                +--owner polls: outcome consumed
//        +--------------------------------------------------------------------------------------+
//
//   Detached  not linked. Only the owning future touches it.
//   Waiting   linked in `waiting`. Fields change only under the queue lock.
//   ToWake    linked in `to_wake`, outcome set. Under the queue lock; the owner
//             may take the outcome and unlink it itself (no call needed then).
//   Calling   unlinked; one context is calling a copy of its waker, outside
//             every lock. The owner may take the outcome, but must not free the
//             node until call_done (below), unless the call is on its own stack.
//   Closed    is not a place but an outcome: close() completes every Waiting
//             node with Outcome::Closed, and the heap refuses new waiters.
//
// Lost wakeups. A future subscribes (links its node) *before* it retries the
// allocation, and the heap serves waiters whenever its lock is released with
// waiters present (the WAITERS bit lives in the heap's lock word, set and
// cleared under this lock). So a free landing between a failed attempt and the
// park cannot be missed: either it happened before the subscription, and the
// retry sees its room, or after, and its unlock sees WAITERS and serves the node.
//
// The lock. Thread contexts (poll, a future's destructor, close, stop
// callbacks) spin on it: every critical section is a few pointer writes. The
// heap's free path, which may run in an interrupt handler, never spins: it only
// tries the lock, and if it is held it leaves a request (SERVICE_REQUESTED) that
// the holder finds when it releases, the same handshake as the heap lock's.
//
// Wakers are called outside every lock, one node at a time (run_wakes pops one
// node under the lock, releases, calls). Waker lifetime: when the owner destroys
// a node that is being called on *another* thread, it waits for call_done; when
// the call is on its own thread's stack (a waker that resumes the coroutine
// inline, which then destroys the future), waiting would deadlock, so the
// destructor marks the thread's WakeFrame instead and the caller never touches
// the node again. Either way, once the destructor returns, no call of its waker
// is running on another thread and none will start.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mnemos/config.hpp"
#include "mnemos/detail/atomic.hpp"
#include "mnemos/layout.hpp"
#include "mnemos/waker.hpp"

namespace mnemos::detail {

struct WaitNode {
  enum class Where : std::uint8_t { Detached, Waiting, ToWake, Calling };
  enum class Outcome : std::uint8_t { None, Ready, Closed, Cancelled };

  WaitNode* prev = nullptr;
  WaitNode* next = nullptr;
  Where where = Where::Detached;
  Outcome outcome = Outcome::None;
  bool woken = false;     // its waker was called since the owner last polled
  Waker waker{};          // latest waker given by the owner (may be empty)
  Layout layout{};        // the request
  void* block = nullptr;  // the payload handed over when outcome == Ready
  // false while a context outside the lock is calling this node's waker.
  // release (store true after the call) pairs with the owner's acquire load in
  // wait_for_call, so the owner frees the node only after the call returned.
  Atomic<bool> call_done{true};
};

// One waker call in progress on this thread; frames nest when a waker's call
// leads to another run_wakes (inline coroutine resumption).
struct WakeFrame {
  WaitNode* node;
  bool node_destroyed;
  WakeFrame* outer;
};

class WaitQueue {
 public:
  static constexpr std::uintptr_t kLocked = 1;
  static constexpr std::uintptr_t kServiceRequested = 2;  // a heap holder wanted to serve
  static constexpr std::uintptr_t kWakesPending = 4;      // to_wake is not empty

  // --- the lock -------------------------------------------------------------

  // Thread contexts only: spins while another context holds the lock.
  void lock() noexcept {
    while (!try_lock()) {
      MNEMOS_SPIN_WAIT();
    }
  }

  bool try_lock() noexcept {
    std::uintptr_t w = word_.load(mo_relaxed);
    while ((w & kLocked) == 0) {
      // acquire: pairs with the release in release()/release_unless_service_requested,
      // so this holder sees the lists as the previous holder left them.
      if (word_.compare_exchange_weak(w, w | kLocked, mo_acquire, mo_relaxed)) return true;
    }
    return false;
  }

  // Any context, never spins: takes the lock, or leaves a service request for
  // the current holder (who finds it when it releases) and returns false.
  bool try_lock_or_request_service() noexcept {
    std::uintptr_t w = word_.load(mo_relaxed);
    for (;;) {
      const std::uintptr_t want = (w & kLocked) == 0 ? (w | kLocked) : (w | kServiceRequested);
      // acquire on success when taking the lock (as try_lock); relaxed is enough
      // for the request: the holder's release CAS reads it (same word, RMW).
      if (word_.compare_exchange_weak(w, want, mo_acquire, mo_relaxed)) return (w & kLocked) == 0;
    }
  }

  // Releases the lock and clears any service request; returns whether one was
  // pending, in which case the caller (who does not hold the heap lock) must
  // try to serve the heap's waiters itself.
  bool release() noexcept {
    // One exchange, no CAS loop: while the lock is held, the holder alone
    // changes the word but for the request bit, which the exchange returns.
    // release: pairs with the next holder's acquire.
    const std::uintptr_t w = word_.exchange(wakes_pending_bit(), mo_release);
    return (w & kServiceRequested) != 0;
  }

  // For a holder that also holds the heap lock: releases unless a service was
  // requested since it took the lock; then it clears the request, keeps the lock
  // and returns false, and the caller serves again before retrying.
  bool release_unless_service_requested() noexcept {
    std::uintptr_t w = word_.load(mo_relaxed);
    for (;;) {
      if ((w & kServiceRequested) != 0) {
        if (word_.compare_exchange_weak(w, w & ~kServiceRequested, mo_relaxed, mo_relaxed)) return false;
      } else if (word_.compare_exchange_weak(w, wakes_pending_bit(), mo_release, mo_relaxed)) {
        return true;  // release: as in release()
      }
    }
  }

  // A relaxed peek for the fast path of run_wakes: a stale "no" is harmless,
  // because whoever adds to to_wake holds the lock and runs the wakes after
  // releasing it.
  bool wakes_pending() const noexcept { return (word_.load(mo_relaxed) & kWakesPending) != 0; }

  // --- the lists (holder only) -----------------------------------------------

  bool empty() const noexcept { return waiting_.head == nullptr; }
  WaitNode* front() const noexcept { return waiting_.head; }
  std::size_t size() const noexcept { return waiting_count_; }

  void push_back(WaitNode* node) noexcept {
    waiting_.push_back(node);
    node->where = WaitNode::Where::Waiting;
    ++waiting_count_;
  }

  // Waiting -> ToWake with an outcome; the waker is called by run_wakes.
  void complete(WaitNode* node, WaitNode::Outcome outcome) noexcept {
    remove_waiting(node);
    node->outcome = outcome;
    to_wake_.push_back(node);
    node->where = WaitNode::Where::ToWake;
    set_wakes_pending(true);
  }

  // Unlinks a node from whichever list holds it (Waiting or ToWake); a node in
  // Calling or Detached is left as is. Returns whether it was Waiting.
  bool unlink(WaitNode* node) noexcept {
    if (node->where == WaitNode::Where::Waiting) {
      remove_waiting(node);
      node->where = WaitNode::Where::Detached;
      return true;
    }
    if (node->where == WaitNode::Where::ToWake) {
      to_wake_.remove(node);
      node->where = WaitNode::Where::Detached;
      if (to_wake_.head == nullptr) set_wakes_pending(false);
    }
    return false;
  }

  // Pops the oldest completed node for run_wakes: marks it Calling and returns
  // it with a copy of its waker, or nullptr.
  WaitNode* pop_wake(Waker& waker) noexcept {
    WaitNode* node = to_wake_.head;
    if (node == nullptr) return nullptr;
    to_wake_.remove(node);
    if (to_wake_.head == nullptr) set_wakes_pending(false);
    node->where = WaitNode::Where::Calling;
    node->woken = true;
    // relaxed: published to the owner by the lock release that follows.
    node->call_done.store(false, mo_relaxed);
    waker = node->waker;
    return node;
  }

  // --- waker calls (no lock held) ---------------------------------------------

  // Calls `waker` for `node` (just popped by pop_wake) with a WakeFrame on this
  // thread, then marks the call done unless the node was destroyed inside it.
  static void call(WaitNode* node, const Waker& waker) noexcept {
    WakeFrame frame{node, false, current_frame_};
    current_frame_ = &frame;
    waker.wake();
    current_frame_ = frame.outer;
    if (!frame.node_destroyed) {
      // The node is alive: its owner, if destroying it on another thread, is
      // waiting for this store (release; pairs with wait_for_call's acquire).
      node->call_done.store(true, mo_release);
    }
  }

  // Holder, thread context: a node in Calling is about to be destroyed. If the
  // call is on this thread's stack, marks its frame (the caller will not touch
  // the node again) and returns false; otherwise returns true: the caller must
  // release the lock and wait_for_call before freeing the node.
  static bool must_wait_for_call(WaitNode* node) noexcept {
    if (node->where != WaitNode::Where::Calling) return false;
    for (WakeFrame* f = current_frame_; f != nullptr; f = f->outer) {
      if (f->node == node) {
        f->node_destroyed = true;
        // Forget the address: a new node built at the same place (the next
        // future in the same coroutine frame) is not this call's node.
        f->node = nullptr;
        return false;
      }
    }
    // acquire: pairs with call()'s release store; if the call is already done
    // there is nothing to wait for.
    return !node->call_done.load(mo_acquire);
  }

  static void wait_for_call(WaitNode* node) noexcept {
    // acquire: pairs with call()'s release store of true.
    while (!node->call_done.load(mo_acquire)) {
      MNEMOS_SPIN_WAIT();
    }
  }

 private:
  struct List {
    WaitNode* head = nullptr;
    WaitNode* tail = nullptr;

    void push_back(WaitNode* node) noexcept {
      node->next = nullptr;
      node->prev = tail;
      if (tail != nullptr) {
        tail->next = node;
      } else {
        head = node;
      }
      tail = node;
    }
    void remove(WaitNode* node) noexcept {
      (node->prev != nullptr ? node->prev->next : head) = node->next;
      (node->next != nullptr ? node->next->prev : tail) = node->prev;
      node->prev = node->next = nullptr;
    }
  };

  void remove_waiting(WaitNode* node) noexcept {
    waiting_.remove(node);
    --waiting_count_;
  }

  std::uintptr_t wakes_pending_bit() const noexcept { return to_wake_.head != nullptr ? kWakesPending : 0; }

  void set_wakes_pending(bool pending) noexcept {
    // relaxed: the bit is only a hint for run_wakes' fast path (see wakes_pending);
    // the lists themselves are published by the lock's release.
    if (pending) {
      word_.fetch_or(kWakesPending, mo_relaxed);
    } else {
      word_.fetch_and(~kWakesPending, mo_relaxed);
    }
  }

  Atomic<std::uintptr_t> word_{0};
  List waiting_;
  List to_wake_;
  std::size_t waiting_count_ = 0;

#if MNEMOS_USE_RELACY
  // Relacy runs simulated threads as fibers of one OS thread: one slot each.
  friend struct wait_queue_relacy_access;
  static inline SimulatedThreadLocal<WakeFrame*> current_frame_{};
#else
  static inline MNEMOS_THREAD_LOCAL WakeFrame* current_frame_ = nullptr;
#endif
};

}  // namespace mnemos::detail
