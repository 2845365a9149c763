// The heap's wait protocol end to end, compiled against Relacy: the real
// src/heap.cpp and src/alloc_wait.cpp (linked in with MNEMOS_USE_RELACY=1),
// real allocation futures, frees, Guards, cancellation by destruction,
// close(), and a foreign coroutine resumed inline by the freeing thread.
//
// The arena holds exactly one block of the test layout, so every waiter needs
// a free to proceed. Checked in every explored execution:
//   - no lost wakeup: a waiter that parked is woken (a waiter spins, with
//     Relacy's yield, until its waker ran; a lost wake leaves it spinning and
//     Relacy reports a livelock), and the wake is never spurious (the poll
//     after it is ready);
//   - the waker is called at most once per wait and never once the future's
//     destructor returned (an rl::var the owner clears after the destruction
//     is read by the waker: unordered, a data race; ordered, an assertion);
//   - nothing stranded and nothing lost when all threads are done, without
//     calling poll(): no bytes allocated, no deferred block pending, no
//     waiter, no spurious wake, the lock word clear, check() ok;
//   - the core's own data (the arena, the lists, the counters as rl::var:
//     see detail/atomic.hpp) is only touched in ways its locks order.
// std::stop_token cancellation is not modelled here: libstdc++'s stop_callback
// synchronises with real atomics and thread ids, which Relacy's fibers share;
// stress/waiters_stress covers it under TSan.
#include <coroutine>
#include <cstddef>
#include <cstdlib>
#include <optional>

#include "mnemos/heap.hpp"
#include "relacy_support.hpp"

using mnemos::Heap;
using mnemos::Layout;
using mnemos::Waker;

namespace mnemos {
struct heap_test_access {
  static const detail::HeapLock& lock(const Heap& heap) { return heap.lock_; }
};
}  // namespace mnemos

namespace mnemos::detail {
struct wait_queue_relacy_access {
  static void reset_frames() { WaitQueue::current_frame_.reset(); }
};
}  // namespace mnemos::detail

namespace {

constexpr Layout kLayout{48, 8};
// The block the first-fit backend carves for kLayout: header word + payload,
// on its 8-byte granule.
constexpr std::size_t kBlock = 56;

// A heap whose arena holds exactly one kLayout block, bootstrapped in a region
// inside the test object (Relacy builds a fresh one per iteration).
struct OneBlockHeap {
  alignas(64) std::byte region[sizeof(Heap) + kBlock];
  Heap* heap = nullptr;

  Heap& make() {
    mnemos::Result<Heap*> made = Heap::bootstrap(region);
    RL_ASSERT(made.has_value());
    heap = *made;
    RL_ASSERT(heap->capacity() == kBlock);
    return *heap;
  }
  void check_and_destroy();
};

// When every thread is done: everything returned without a poll(), nothing
// waiting, no spurious wake; then the heap's atomics are retired (Relacy
// reports an atomic that outlives its iteration).
void check_quiescent_and_destroy(Heap* heap) {
  const mnemos::Stats s = heap->stats();
  RL_ASSERT(s.allocated_bytes == 0);
  RL_ASSERT(s.free_bytes == s.capacity_bytes);
  RL_ASSERT(s.deferred_pending == 0);
  RL_ASSERT(s.waiters == 0);
  RL_ASSERT(s.spurious_wake_count == 0);
  RL_ASSERT(mnemos::heap_test_access::lock(*heap).load() == 0);
  RL_ASSERT(heap->check().ok());
  heap->~Heap();
}

void OneBlockHeap::check_and_destroy() { check_quiescent_and_destroy(heap); }

// The waker of one future, and what it may touch of its owner.
struct Probe {
  rl::atomic<int> woken{0};
  rl::var<int> alive{1};
  rl::var<int> calls{0};

  static void wake(void* p) {
    Probe& self = *static_cast<Probe*>(p);
    RL_ASSERT(self.alive(RL_INFO) == 1);  // never after the future's destructor returned
    self.calls(RL_INFO) = self.calls(RL_INFO) + 1;
    RL_ASSERT(self.calls(RL_INFO) == 1);  // once per wait
    // release: the owner that sees it also sees the call's effects.
    self.woken.store(1, rl::mo_release, RL_INFO);
  }
  Waker waker() { return Waker{&wake, this}; }
  // The owner parks until woken (a lost wake spins forever: Relacy livelock).
  void park() {
    while (woken.load(rl::mo_acquire, RL_INFO) == 0) MNEMOS_SPIN_WAIT();
  }
  void future_destroyed() { alive(RL_INFO) = 0; }
};

// Allocates kLayout by waiting for it: poll, park until woken, poll again.
// Returns the block, or nullptr when the future completed with `expected_error`.
void* wait_for_block(Heap& heap, Probe& probe, mnemos::Error expected_error = mnemos::Error::NoMemory) {
  void* block = nullptr;
  {
    auto fut = heap.alloc_raw(kLayout);
    std::optional<mnemos::Result<void*>> r = fut.poll(probe.waker());
    if (!r) {
      probe.park();
      r = fut.poll(probe.waker());
      RL_ASSERT(r.has_value());  // a wake is never spurious
    }
    if (r->has_value()) {
      block = **r;
    } else {
      RL_ASSERT(r->error() == expected_error);
    }
  }
  probe.future_destroyed();
  return block;
}

// Lost wakeup: the arena is full; one thread frees the block while another
// allocates, waiting if it must. Subscribe-before-retry and the release
// handshake must get the block to the waiter whatever the interleaving.
struct FreeWakesWaiter : rl::test_suite<FreeWakesWaiter, 2> {
  OneBlockHeap h;
  void* held = nullptr;
  Probe probe;

  void before() {
    mnemos::detail::wait_queue_relacy_access::reset_frames();
    held = *h.make().try_alloc_raw(kLayout);
  }
  void thread(unsigned id) {
    if (id == 0) {
      Heap::free_raw(held, kLayout);
    } else {
      void* b = wait_for_block(*h.heap, probe);
      RL_ASSERT(b != nullptr);
      Heap::free_raw(b, kLayout);
    }
  }
  void after() { h.check_and_destroy(); }
};

// The same with a third thread holding the lock (a Guard) at a random moment,
// allocating under it (refused while a waiter is queued) and freeing: the
// free may be deferred behind the Guard, and the Guard's release must drain
// it and serve the waiter.
struct FreeWakesWaiterWhileGuardHeld : rl::test_suite<FreeWakesWaiterWhileGuardHeld, 3> {
  OneBlockHeap h;
  void* held = nullptr;
  Probe probe;

  void before() {
    mnemos::detail::wait_queue_relacy_access::reset_frames();
    held = *h.make().try_alloc_raw(kLayout);
  }
  void thread(unsigned id) {
    if (id == 0) {
      Heap::free_raw(held, kLayout);
    } else if (id == 1) {
      void* b = wait_for_block(*h.heap, probe);
      RL_ASSERT(b != nullptr);
      Heap::free_raw(b, kLayout);
    } else {
      if (std::optional<Heap::Guard> g = h.heap->try_lock()) {
        mnemos::Result<void*> r = g->try_alloc_raw(kLayout);
        if (r) g->free_raw(*r, kLayout);
      }
    }
  }
  void after() { h.check_and_destroy(); }
};

// Cancellation racing with the wake: the waiter polls once and drops its
// future while the free serves it. A block handed over but never taken goes
// back to the heap; the waker is never called after the destructor returned.
struct CancelRacesWake : rl::test_suite<CancelRacesWake, 2> {
  OneBlockHeap h;
  void* held = nullptr;
  Probe probe;

  void before() {
    mnemos::detail::wait_queue_relacy_access::reset_frames();
    held = *h.make().try_alloc_raw(kLayout);
  }
  void thread(unsigned id) {
    if (id == 0) {
      Heap::free_raw(held, kLayout);
    } else {
      {
        auto fut = h.heap->alloc_raw(kLayout);
        std::optional<mnemos::Result<void*>> r = fut.poll(probe.waker());
        if (r) {
          RL_ASSERT(r->has_value());
          Heap::free_raw(**r, kLayout);
        }
      }  // pending: cancelled here
      probe.future_destroyed();
    }
  }
  void after() { h.check_and_destroy(); }
};

// close() racing with a free and two waiters on one thread: each future ends
// Ready or Closed (never stuck), the younger is never handed the block while
// the older still waits, and after close() a new allocation fails with Closed.
// (The younger may still get the block once close() completed the older: a
// first poll checks `closed` in reject(), before it takes the heap lock, so a
// poll overlapping close() can allocate after close() completed every waiter.
// close()'s contract covers allocations that happen after it, so this is
// allowed; it does make close() non-linearizable against such a poll.)
struct CloseRacesWakes : rl::test_suite<CloseRacesWakes, 3> {
  OneBlockHeap h;
  void* held = nullptr;
  Probe a, b;

  void before() {
    mnemos::detail::wait_queue_relacy_access::reset_frames();
    held = *h.make().try_alloc_raw(kLayout);
  }
  void thread(unsigned id) {
    Heap& heap = *h.heap;
    if (id == 0) {
      Heap::free_raw(held, kLayout);
    } else if (id == 1) {
      heap.close();
    } else {
      auto fa = heap.alloc_raw(kLayout);
      auto fb = heap.alloc_raw(kLayout);
      std::optional<mnemos::Result<void*>> ra = fa.poll(a.waker());
      std::optional<mnemos::Result<void*>> rb = fb.poll(b.waker());
      if (rb && *rb && !ra) {
        // The younger got the block at its first poll while the older had
        // parked: FIFO allows it only if the older was no longer waiting, i.e.
        // close() had completed it (it cannot hold the one block).
        ra = fa.poll(a.waker());
        RL_ASSERT(ra.has_value() && !*ra && ra->error() == mnemos::Error::Closed);
      }
      if (!ra) {
        a.park();
        ra = fa.poll(a.waker());
        RL_ASSERT(ra.has_value());
      }
      if (*ra) Heap::free_raw(**ra, kLayout);  // which may serve b
      if (!rb) {
        b.park();
        rb = fb.poll(b.waker());
        RL_ASSERT(rb.has_value());
      }
      if (*rb) Heap::free_raw(**rb, kLayout);
      RL_ASSERT(*ra || ra->error() == mnemos::Error::Closed);
      RL_ASSERT(*rb || rb->error() == mnemos::Error::Closed);
    }
  }
  void after() {
    a.future_destroyed();
    b.future_destroyed();
    mnemos::Result<void*> r = h.heap->try_alloc_raw(kLayout);
    RL_ASSERT(!r && r.error() == mnemos::Error::Closed);
    h.check_and_destroy();
  }
};

// Cancelling the head lets the next waiter be served. The arena holds two
// blocks, both live; the head waiter wants both at once, the younger one
// block. One block is freed: the younger would fit but waits behind the head
// (FIFO, invariant 4). The head is then dropped, and with no further free the
// younger must be served (the destructor's kick), or it waits forever.
struct CancelHeadServesNext : rl::test_suite<CancelHeadServesNext, 2> {
  static constexpr Layout kBig{2 * kBlock - 8, 8};  // header + payload = both blocks
  alignas(64) std::byte region[sizeof(Heap) + 2 * kBlock];
  Heap* heap = nullptr;
  void* held[2] = {nullptr, nullptr};
  Probe big, small;

  void before() {
    mnemos::detail::wait_queue_relacy_access::reset_frames();
    heap = *Heap::bootstrap(region);
    RL_ASSERT(heap->capacity() == 2 * kBlock);
    held[0] = *heap->try_alloc_raw(kLayout);
    held[1] = *heap->try_alloc_raw(kLayout);
  }
  void thread(unsigned id) {
    if (id == 0) {
      Heap::free_raw(held[0], kLayout);
    } else {
      auto fs = heap->alloc_raw(kLayout);
      {
        auto fb = heap->alloc_raw(kBig);
        RL_ASSERT(!fb.poll(big.waker()));  // one block at most is free: it waits
        std::optional<mnemos::Result<void*>> r = fs.poll(small.waker());
        RL_ASSERT(!r);  // behind the head, even when a block is free
      }  // the head leaves
      big.future_destroyed();
      small.park();
      std::optional<mnemos::Result<void*>> r = fs.poll(small.waker());
      RL_ASSERT(r && r->has_value());
      Heap::free_raw(**r, kLayout);
      Heap::free_raw(held[1], kLayout);
    }
  }
  void after() {
    small.future_destroyed();
    check_quiescent_and_destroy(heap);
  }
};

// A coroutine type that is not the library's: eager, detached, no executor, so
// `co_await heap.alloc_raw(...)` is resumed inline by the waker, on the thread
// whose free made room; the future dies in the coroutine frame inside that
// call (the WakeFrame path of the waker-lifetime handshake).
struct Detached {
  struct promise_type {
    Detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::abort(); }
  };
};

Detached allocate_and_free(Heap& heap, rl::atomic<int>& done) {
  mnemos::Result<void*> r = co_await heap.alloc_raw(kLayout);
  RL_ASSERT(r.has_value());
  Heap::free_raw(*r, kLayout);
  done.store(1, rl::mo_release, RL_INFO);
}

struct InlineCoroutineResumedByFree : rl::test_suite<InlineCoroutineResumedByFree, 2> {
  OneBlockHeap h;
  void* held = nullptr;
  rl::atomic<int> done{0};

  void before() {
    mnemos::detail::wait_queue_relacy_access::reset_frames();
    held = *h.make().try_alloc_raw(kLayout);
  }
  void thread(unsigned id) {
    if (id == 0) {
      Heap::free_raw(held, kLayout);
    } else {
      allocate_and_free(*h.heap, done);  // suspends if the arena is still full
    }
  }
  void after() {
    RL_ASSERT(done.load(rl::mo_acquire, RL_INFO) == 1);  // resumed and finished
    h.check_and_destroy();
  }
};

}  // namespace

// Each scenario twice: every interleaving with one preemption (exhaustive at
// that depth), then random interleavings with any number of preemptions. The
// real heap paths are long (every atomic step is a scheduling point), so a
// deeper exhaustive search does not fit the CI budget; MNEMOS_RELACY_SEARCH
// (see relacy_support.hpp) runs one for as long as it takes.
int main(int argc, char** argv) {
  using mnemos::verify::run;
  const mnemos::verify::Filter only(argc, argv);
  constexpr rl::iteration_t kRandom = 300000;
  bool ok = true;
  if (only("wake")) {
    ok &= run<FreeWakesWaiter>("heap: free wakes waiter (lost wakeup)", rl::sched_bound, 1);
    ok &= run<FreeWakesWaiter>("heap: free wakes waiter (lost wakeup)", rl::sched_random, 0, kRandom);
  }
  if (only("cancel")) {
    ok &= run<CancelRacesWake>("heap: cancel (destroy) races wake", rl::sched_bound, 1);
    ok &= run<CancelRacesWake>("heap: cancel (destroy) races wake", rl::sched_random, 0, kRandom);
  }
  if (only("inline")) {
    ok &= run<InlineCoroutineResumedByFree>("heap: coroutine resumed inline by free", rl::sched_bound, 1);
    ok &= run<InlineCoroutineResumedByFree>("heap: coroutine resumed inline by free", rl::sched_random, 0, kRandom);
  }
  if (only("head")) {
    ok &= run<CancelHeadServesNext>("heap: cancelled head lets next be served", rl::sched_bound, 1);
    ok &= run<CancelHeadServesNext>("heap: cancelled head lets next be served", rl::sched_random, 0, kRandom);
  }
  if (only("guard")) {
    ok &= run<FreeWakesWaiterWhileGuardHeld>("heap: free wakes waiter, Guard held", rl::sched_random, 0, kRandom);
  }
  if (only("close")) {
    ok &= run<CloseRacesWakes>("heap: close races free + 2 waiters", rl::sched_random, 0, kRandom);
  }
  return ok ? 0 : 1;
}
