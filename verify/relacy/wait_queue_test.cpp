// The wait queue (detail/wait_queue.hpp) compiled against Relacy: the
// waker-lifetime handshake (pop_wake / call / call_done on the waking side
// against unlink / must_wait_for_call / wait_for_call on the destroying side),
// and the subscribe-before-retry handshake with the heap's lock word (at the
// end: a waiter racing a free is never left waiting, its wake never lost).
//
// Checked in every explored execution:
//   - a node is never touched after its owner destroyed it: the owner runs
//     ~WaitNode() (which retires its rl::atomic) and poisons the bytes, so a
//     later access by call() is reported by Relacy ("access to freed memory");
//   - the waker is never running, and never starts, once the destruction
//     returned: the waker reads its context's `alive` rl::var, which the owner
//     clears right after the destruction; an unordered read is a data race, an
//     ordered one sees 0 and fails an assertion;
//   - the waker is called at most once per completion;
//   - a node destroyed from inside its own waker call (a coroutine resumed
//     inline that drops its future) is recognised through this thread's
//     WakeFrame, with no wait (waiting would deadlock), on each simulated
//     thread separately.
#include <cstddef>
#include <cstring>
#include <new>

#include "mnemos/detail/heap_lock.hpp"
#include "mnemos/detail/wait_queue.hpp"
#include "relacy_support.hpp"

using mnemos::Waker;
using mnemos::detail::WaitNode;
using mnemos::detail::WaitQueue;

namespace mnemos::detail {
// White-box access (friend of WaitQueue under MNEMOS_USE_RELACY).
struct wait_queue_relacy_access {
  static void reset_frames() { WaitQueue::current_frame_.reset(); }
};
}  // namespace mnemos::detail

namespace {

using mnemos::detail::wait_queue_relacy_access;

// What a waker touches of its future's owner, and the owner clears once the
// future is gone.
struct Owner {
  rl::var<int> alive{1};
  rl::var<int> calls{0};

  void on_wake() {
    RL_ASSERT(alive(RL_INFO) == 1);  // never after the destruction returned
    calls(RL_INFO) = calls(RL_INFO) + 1;
    RL_ASSERT(calls(RL_INFO) == 1);  // once per completion
  }
  void destroyed() { alive(RL_INFO) = 0; }
};

// A WaitNode in raw storage, so the test decides when it dies and can poison it.
struct NodeSlot {
  alignas(WaitNode) unsigned char bytes[sizeof(WaitNode)];
  bool live = false;

  WaitNode* get() { return std::launder(reinterpret_cast<WaitNode*>(bytes)); }
  WaitNode* make() {
    live = true;
    return ::new (static_cast<void*>(bytes)) WaitNode();
  }
  // ~WaitNode() retires its rl::atomic (Relacy then reports any access to it),
  // and the poison makes any plain field read visibly wrong.
  void destroy() {
    get()->~WaitNode();
    std::memset(bytes, 0xdd, sizeof bytes);
    live = false;
  }
};

// run_wakes as Heap::run_wakes does it, without the service request (this test
// has no heap lock): pop one node under the lock, release, call outside it.
void run_wakes(WaitQueue& q) {
  while (q.wakes_pending()) {
    if (!q.try_lock()) return;  // the holder runs the wakes after its release
    Waker waker;
    WaitNode* node = q.pop_wake(waker);
    RL_ASSERT(!q.release());
    if (node != nullptr) WaitQueue::call(node, waker);
  }
}

// The destroying side as ~AllocWait does it (a future that was completed and
// may be in to_wake, or in Calling on another thread). `take_first`: the
// owner polls and takes the outcome before dropping the future.
void destroy_future(WaitQueue& q, NodeSlot& slot, Owner& owner, bool take_first) {
  WaitNode* node = slot.get();
  q.lock();
  if (take_first && node->outcome != WaitNode::Outcome::None) q.unlink(node);  // take_outcome()
  RL_ASSERT(node->where != WaitNode::Where::Waiting);  // completed in before()
  q.unlink(node);  // from to_wake: its waker will not be called
  const bool wait = WaitQueue::must_wait_for_call(node);
  RL_ASSERT(!q.release());
  run_wakes(q);  // a releaser runs the wakes (Heap::release_wait_queue)
  if (wait) WaitQueue::wait_for_call(node);
  slot.destroy();
  owner.destroyed();
}

// Subscribes and completes a node (both under the lock), as a waiter that was
// served: it is then in to_wake with its waker set.
WaitNode* completed_node(WaitQueue& q, NodeSlot& slot, Waker waker) {
  WaitNode* node = slot.make();
  node->waker = waker;
  q.lock();
  q.push_back(node);
  q.complete(node, WaitNode::Outcome::Ready);
  RL_ASSERT(!q.release());
  return node;
}

void wake_owner(void* p) { static_cast<Owner*>(p)->on_wake(); }

// One completed node; a waking thread runs the wakes while its owner destroys
// the future (without polling first, or after polling).
template <bool kTakeFirst>
struct DestroyRacesCall : rl::test_suite<DestroyRacesCall<kTakeFirst>, 2> {
  WaitQueue q;
  NodeSlot slot;
  Owner owner;

  void before() {
    wait_queue_relacy_access::reset_frames();
    completed_node(q, slot, Waker{&wake_owner, &owner});
  }
  void thread(unsigned id) {
    if (id == 0) {
      destroy_future(q, slot, owner, kTakeFirst);
    } else {
      run_wakes(q);
    }
  }
  void after() { RL_ASSERT(!slot.live); }
};

// Two waking threads race to pop the one node; the owner destroys it.
struct DestroyRacesTwoRunners : rl::test_suite<DestroyRacesTwoRunners, 3> {
  WaitQueue q;
  NodeSlot slot;
  Owner owner;

  void before() {
    wait_queue_relacy_access::reset_frames();
    completed_node(q, slot, Waker{&wake_owner, &owner});
  }
  void thread(unsigned id) {
    if (id == 0) {
      destroy_future(q, slot, owner, false);
    } else {
      run_wakes(q);
    }
  }
  void after() { RL_ASSERT(!slot.live); }
};

// Inline resumption: each waker does what a coroutine resumed by it does when
// it takes its value and drops the future, on the waking thread, inside the
// call. must_wait_for_call must find the call in *this* thread's WakeFrame
// (never wait: that would wait for itself), and call() must then leave the
// node alone. Two nodes and two waking threads, so each simulated thread's
// frames are distinct (a thread_local shared by Relacy's fibers would mix
// them); a waker's own release runs the remaining wakes, nesting frames.
struct InlineDestroyOnTwoThreads : rl::test_suite<InlineDestroyOnTwoThreads, 2> {
  struct Inline {
    InlineDestroyOnTwoThreads* test;
    int index;
  };
  WaitQueue q;
  NodeSlot slots[2];
  Owner owners[2];
  Inline inl[2];

  static void wake_inline(void* p) {
    Inline& self = *static_cast<Inline*>(p);
    InlineDestroyOnTwoThreads& t = *self.test;
    t.owners[self.index].on_wake();
    WaitNode* node = t.slots[self.index].get();
    t.q.lock();
    RL_ASSERT(node->where == WaitNode::Where::Calling);
    t.q.unlink(node);  // no-op for Calling: the value is taken directly
    const bool wait = WaitQueue::must_wait_for_call(node);
    RL_ASSERT(!t.q.release());
    RL_ASSERT(!wait);  // the call is on this thread's own stack
    t.slots[self.index].destroy();
    t.owners[self.index].destroyed();
    run_wakes(t.q);  // the releaser runs the wakes: nested frames on this thread
  }

  void before() {
    wait_queue_relacy_access::reset_frames();
    for (int i = 0; i < 2; ++i) {
      inl[i] = Inline{this, i};
      completed_node(q, slots[i], Waker{&wake_inline, &inl[i]});
    }
  }
  void thread(unsigned) { run_wakes(q); }
  void after() {
    // Both were called (nobody else takes them), once, and destroyed.
    for (int i = 0; i < 2; ++i) {
      RL_ASSERT(!slots[i].live);
      RL_ASSERT(owners[i].calls(RL_INFO) == 1);
    }
  }
};

// --- subscribe before retry: the lost-wakeup handshake, searched in full ---------
//
// The heap's wait protocol reduced to its skeleton, on the real HeapLock and
// WaitQueue: a backend of one unit of "room" (rl::var, lock holders only), one
// waiter and one free. Each member mirrors the function of src/heap.cpp (or
// src/alloc_wait.cpp) named in its comment, minus counters and layouts;
// heap_protocol_test.cpp runs the real ones (with a bounded search: they are
// too long for a full one). The waiter links its node, then retries (kick);
// the free returns the unit, then tries the lock or requests service. Whatever
// the interleaving, the waiter ends with the unit and its wake is not lost.
struct ProtocolModel {
  mnemos::detail::HeapLock lock;
  WaitQueue q;
  rl::var<int> room{0};  // the arena is full
  alignas(mnemos::detail::DeferredNode) unsigned char freed[sizeof(mnemos::detail::DeferredNode)];

  bool carve() {  // Heap::carve
    if (room(RL_INFO) == 0) return false;
    room(RL_INFO) = room(RL_INFO) - 1;
    return true;
  }
  void return_block() { room(RL_INFO) = room(RL_INFO) + 1; }  // Heap::return_block
  void drain_pending() {                                         // Heap::drain_pending
    for (mnemos::detail::DeferredNode* n = lock.take_all(); n != nullptr;) {
      mnemos::detail::DeferredNode* next = n->next;
      return_block();
      n = next;
    }
  }
  void enqueue_waiter(WaitNode* node) {  // Heap::enqueue_waiter
    if (q.empty()) lock.set_waiters(true);
    q.push_back(node);
  }
  void complete_waiter(WaitNode* node) {  // Heap::complete_waiter
    q.complete(node, WaitNode::Outcome::Ready);
    if (q.empty()) lock.set_waiters(false);
  }
  void serve_head() {  // Heap::serve_head
    while (WaitNode* node = q.front()) {
      if (!carve()) break;
      node->block = freed;
      complete_waiter(node);
    }
  }
  void serve_waiters() {  // Heap::serve_waiters
    if (!q.try_lock_or_request_service()) return;
    do {
      serve_head();
    } while (!q.release_unless_service_requested());
  }
  void release_lock() {  // Heap::release_lock
    std::uintptr_t w = lock.load();
    for (;;) {
      if (mnemos::detail::HeapLock::head_of(w) != nullptr) {
        drain_pending();
      } else if ((w & mnemos::detail::HeapLock::kServe) != 0) {
        lock.clear_serve();
        serve_waiters();
      } else {
        if ((w & mnemos::detail::HeapLock::kWaiters) != 0) serve_waiters();
        if (lock.try_release(w)) return;
        continue;
      }
      w = lock.load();
    }
  }
  void run_wakes() {  // Heap::run_wakes
    while (q.wakes_pending()) {
      if (!q.try_lock()) return;
      Waker waker;
      WaitNode* node = q.pop_wake(waker);
      const bool service_requested = q.release();
      if (service_requested && lock.lock_or_request_serve()) release_lock();
      if (node != nullptr) WaitQueue::call(node, waker);
    }
  }
  void unlock() {  // Heap::unlock
    release_lock();
    run_wakes();
  }
  void kick() {  // Heap::kick
    if (lock.lock_or_request_serve()) unlock();
  }
  void release_wait_queue() {  // Heap::release_wait_queue
    if (q.release()) kick();
    run_wakes();
  }
  void free_block() {  // Heap::free_any_context
    switch (lock.lock_or_push(freed, 1)) {
      case mnemos::detail::HeapLock::FreeRoute::TookLock:
        return_block();
        unlock();
        return;
      case mnemos::detail::HeapLock::FreeRoute::Deferred:
        return;
    }
  }
  // The waiter after a failed attempt (AllocWait::first_poll from the
  // subscription on, then one poll_raw). Returns whether it took the unit.
  bool subscribe_retry_poll(WaitNode* node, Waker waker) {
    q.lock();
    enqueue_waiter(node);  // subscribe (no waker yet) ...
    release_wait_queue();
    kick();  // ... then retry
    q.lock();
    bool taken = false;
    if (node->outcome != WaitNode::Outcome::None) {
      q.unlink(node);  // take_outcome
      taken = true;
    } else {
      node->waker = waker;  // park
    }
    release_wait_queue();
    return taken;
  }
  // Lock holder elsewhere (a Guard): returns what is queued, then releases.
  void guard_step() {
    if (!lock.try_lock()) return;
    drain_pending();
    unlock();
  }
};

template <bool kGuard>
struct SubscribeBeforeRetry : rl::test_suite<SubscribeBeforeRetry<kGuard>, kGuard ? 3 : 2> {
  ProtocolModel m;
  NodeSlot slot;
  Owner owner;
  bool taken = false;

  void before() {
    wait_queue_relacy_access::reset_frames();
    slot.make();
  }
  void thread(unsigned id) {
    if (id == 0) {
      m.free_block();
    } else if (id == 1) {
      taken = m.subscribe_retry_poll(slot.get(), Waker{&wake_owner, &owner});
    } else {
      m.guard_step();
    }
  }
  void after() {
    WaitNode* node = slot.get();
    RL_ASSERT(node->outcome == WaitNode::Outcome::Ready);  // served: not stuck
    RL_ASSERT(node->block == m.freed);
    RL_ASSERT(m.room(RL_INFO) == 0);  // the unit went to the waiter, once
    // Either it took the unit at its poll, or its waker was called: never neither.
    RL_ASSERT(taken || owner.calls(RL_INFO) == 1);
    RL_ASSERT(m.lock.load() == 0);
    RL_ASSERT(m.q.empty() && !m.q.wakes_pending());
    slot.destroy();
  }
};

}  // namespace

// Budget: see deferred_queue_test.cpp. A full search of these spins (the
// owner waiting for call_done, the queue lock) runs for minutes; the
// preemption bounds below cover every interleaving with that many switches,
// and the random runs add deeper ones.
int main(int argc, char** argv) {
  using mnemos::verify::run;
  const mnemos::verify::Filter only(argc, argv);
  bool ok = true;
  if (only("destroy")) ok &= run<DestroyRacesCall<false>>("waker lifetime: destroy races call", rl::sched_bound, 6);
  if (only("poll")) ok &= run<DestroyRacesCall<true>>("waker lifetime: poll+destroy races call", rl::sched_bound, 6);
  if (only("runners")) ok &= run<DestroyRacesTwoRunners>("waker lifetime: destroy races 2 runners", rl::sched_bound, 3);
  if (only("inline")) ok &= run<InlineDestroyOnTwoThreads>("waker lifetime: inline destroy, 2 threads", rl::sched_bound, 3);
  if (only("retry")) {
    ok &= run<SubscribeBeforeRetry<false>>("wait protocol: subscribe-before-retry vs free", rl::sched_bound, 2);
    ok &= run<SubscribeBeforeRetry<false>>("wait protocol: subscribe-before-retry vs free", rl::sched_random, 0,
                                           300000);
  }
  if (only("retry3")) {
    ok &= run<SubscribeBeforeRetry<true>>("wait protocol: ... and a Guard holder", rl::sched_bound, 1);
    ok &= run<SubscribeBeforeRetry<true>>("wait protocol: ... and a Guard holder", rl::sched_random, 0, 300000);
  }
  return ok ? 0 : 1;
}
