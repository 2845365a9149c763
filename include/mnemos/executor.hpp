/// @file
/// @brief Executor: a small single-threaded run loop for Task<T> coroutines.
///
/// For tests, examples and simple firmware main loops. One thread (the
/// executor's thread) spawns tasks and runs the loop; any thread or interrupt
/// handler may make a parked coroutine runnable again through schedule() or a
/// Waker from waker_for(). Resumption then happens on the executor's thread,
/// from its run loop, never inline on the waking thread.
///
/// The run queue is intrusive and allocation-free: a ScheduleNode lives inside
/// whatever is waiting (an awaiter in a coroutine frame, or a root task's
/// promise), and schedule() pushes it onto a Treiber stack whose head is one
/// atomic word. The run loop detaches the whole stack at once and reverses it,
/// so coroutines resume in the order schedule() was called (FIFO). With a
/// single consumer that always takes everything there is no ABA problem.
///
/// Roots: spawn() takes ownership of a Task<void>. When a root completes, its
/// frame is destroyed at once; ~Executor destroys (never resumes) the frames of
/// roots that have not completed.
///
/// Blocking: run() sleeps when nothing is runnable but roots are pending, using
/// C++20 atomic wait/notify on the head word through the atomics shim (when the
/// shim's Atomic has no wait(), as under Relacy, it spins with
/// std::this_thread::yield instead). To make "notify only when someone sleeps"
/// exact without a StoreLoad fence, the sleeping run loop parks a sentinel in
/// the head word: both the sleep and every push are RMWs on that one word, so
/// they are totally ordered (see sleep_until_scheduled). On bare metal without
/// threads, call run_until_idle() from the main loop and sleep (WFI) yourself.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <thread>
#include <utility>

#include "mnemos/config.hpp"
#include "mnemos/detail/atomic.hpp"
#include "mnemos/waker.hpp"

namespace mnemos {

template <class T>
class Task;
class Executor;

/// Intrusive run-queue node of an Executor.
///
/// Lives inside whatever is waiting (an awaiter in a coroutine frame):
/// scheduling never allocates. Set `handle` before passing the node to
/// schedule() or waker_for(); the node must stay alive, and be scheduled at most
/// once, until its coroutine has been resumed (it may then be reused for the
/// next suspension).
struct ScheduleNode {
  ScheduleNode* next = nullptr;     ///< link in the executor's stack; owned by it while queued
  std::coroutine_handle<> handle;   ///< what the run loop resumes
  Executor* executor = nullptr;     ///< set by waker_for(): a Waker has one context pointer, the node
};

#if !MNEMOS_USE_RELACY
// schedule() may run in an interrupt handler: the head word must not hide a lock.
static_assert(detail::Atomic<ScheduleNode*>::is_always_lock_free);
#endif

namespace detail {

/// Embedded in every Task promise (40 of its 64 bytes on a 64-bit target, plus
/// the result): the task's own run-queue node, whose `handle` is the task's
/// frame (used by spawn(), block_on() and the promise's resume_waker()), and,
/// for a spawned root, its links in the executor's list of pending roots.
struct TaskHook {
  ScheduleNode node;
  TaskHook* prev = nullptr;
  TaskHook* next = nullptr;
};

struct TaskFinalAwaiter;

/// Blocks while `a` holds `old`. C++20 atomic wait when the shim provides it,
/// otherwise a yield loop. Relaxed: the caller acquires what was published with
/// its own acquire RMW right after (Executor::take_all).
template <class A, class T>
void wait_while_equal(A& a, T old) noexcept {
  if constexpr (requires { a.wait(old, mo_relaxed); }) {
    a.wait(old, mo_relaxed);
  } else {
    while (a.load(mo_relaxed) == old) std::this_thread::yield();
  }
}

template <class A>
void notify_waiter(A& a) noexcept {
  if constexpr (requires { a.notify_one(); }) a.notify_one();
}

}  // namespace detail

/// A small single-threaded run loop for Task<T> coroutines.
///
/// One thread spawns and runs; any thread or interrupt handler makes a parked
/// coroutine runnable through schedule() or a waker_for() Waker, and it resumes
/// on the executor's thread, never inline on the waking one. More in the file
/// comment of mnemos/executor.hpp.
class Executor {
 public:
  /// An executor with no task; no allocation.
  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// Destroys the frames of root tasks that have not completed, never resuming
  /// them (their locals, and the child tasks they await, are destroyed too).
  /// Coroutines that are not roots and were scheduled but not run are dropped.
  /// No thread may call schedule() on this executor during or after this.
  ~Executor() {
    while (roots_ != nullptr) retire_root(*roots_);
  }

  /// Takes ownership of a root task that has not started and makes it runnable
  /// (after whatever is already queued). O(1), no allocation.
  /// Thread: the executor's thread (also from inside a running task).
  /// Defined in task.hpp, which needs Task complete.
  void spawn(Task<void> task);

  /// Makes node->handle runnable on this executor. Lock-free push onto the
  /// intrusive stack: never allocates, never blocks; a CAS retries only when
  /// another push (or the run loop) changed the head meanwhile. Wakes run() if it
  /// sleeps. Thread: any thread or interrupt handler; this executor must outlive
  /// the call (including its return).
  void schedule(ScheduleNode* node) noexcept {
    // relaxed: only the CAS's expected value; the CAS re-validates it.
    ScheduleNode* old = head_.load(detail::mo_relaxed);
    assert(node != nullptr && node->handle);
    do {
      // The sentinel is not a node: replace it, never link to it.
      node->next = (old == &asleep_) ? nullptr : old;
      // release: pairs with take_all's acquire exchange, so the run loop sees
      // node->next and node->handle, and the resumed coroutine sees everything
      // this thread wrote before waking it. Failure relaxed: we read nothing
      // through a head we failed to replace.
    } while (!head_.compare_exchange_weak(old, node, detail::mo_release, detail::mo_relaxed));
    // Only the push that replaced the sentinel can find run() asleep, so only
    // it pays for a notify; a notify that lands before the sleeper reaches
    // wait() is not lost, since wait() first rechecks the word.
    if (old == &asleep_) detail::notify_waiter(head_);
  }

  /// A Waker whose wake() calls schedule(node), from any thread or interrupt
  /// handler. Set node->handle first; the node must stay alive until its
  /// coroutine has been resumed. Hand the Waker to the waking thread through
  /// something that synchronizes (a lock, a release store): this writes
  /// node->executor on the calling thread. Thread: any (normally the executor's,
  /// inside await_suspend).
  Waker waker_for(ScheduleNode* node) noexcept {
    node->executor = this;
    return Waker{&wake_node, node};
  }

  /// Resumes runnable coroutines in FIFO order of schedule() calls (spawned
  /// roots in spawn order) until none is runnable, including those made
  /// runnable meanwhile. Returns the number of resumptions. Never blocks.
  /// Thread: the executor's thread; not from inside a task of this executor.
  std::size_t run_until_idle() {
    std::size_t resumed = 0;
    Executor* const outer = std::exchange(current_, this);
    assert(outer != this && "run loops of one executor must not nest");
    while (ScheduleNode* node = take_all()) {
      do {
        // Read both before resuming: the node lives in the coroutine's frame
        // and may be reused (rescheduled) or destroyed once it runs.
        ScheduleNode* const next = node->next;
        const std::coroutine_handle<> handle = node->handle;
        handle.resume();
        ++resumed;
        node = next;
      } while (node != nullptr);
    }
    current_ = outer;
    return resumed;
  }

  /// Runs until every spawned root has completed, sleeping whenever nothing is
  /// runnable (until schedule() is called from another thread). Returns the
  /// number of resumptions. Blocks forever if a pending root is never woken.
  /// Thread: the executor's thread.
  std::size_t run() {
    return run_while([this] { return pending_roots_ != 0; });
  }

  /// Runs `task` to completion on this executor and returns its result. The
  /// task is not a root (pending_roots() does not count it); spawned roots run
  /// too, and may still be pending afterwards. Sleeps like run(). No allocation.
  /// For tests and examples. Thread: the executor's thread, not from inside a
  /// task. Defined in task.hpp.
  template <class T>
  T block_on(Task<T> task);

  /// Spawned roots that have not completed. Thread: the executor's thread.
  std::size_t pending_roots() const noexcept { return pending_roots_; }

  /// The executor whose run loop is resuming a coroutine on this thread, or
  /// nullptr.
  static Executor* current() noexcept { return current_; }

 private:
  friend struct detail::TaskFinalAwaiter;

  template <class KeepGoing>
  std::size_t run_while(KeepGoing keep_going) {
    std::size_t resumed = 0;
    for (;;) {
      resumed += run_until_idle();
      if (!keep_going()) return resumed;
      sleep_until_scheduled();
    }
  }

  // Detaches every queued node and returns them oldest first, or nullptr
  // without an RMW when the queue is empty.
  ScheduleNode* take_all() noexcept {
    // relaxed: a hint; the exchange below is what reads the nodes.
    if (head_.load(detail::mo_relaxed) == nullptr) return nullptr;
    ScheduleNode* fifo = nullptr;
    // acquire: pairs with each schedule()'s release CAS (later pushes are RMWs,
    // so they continue the release sequence of earlier ones).
    ScheduleNode* lifo = head_.exchange(nullptr, detail::mo_acquire);
    assert(lifo != &asleep_ && "only a sleeping run loop parks the sentinel");
    while (lifo != nullptr) {  // reverse: the stack holds the newest first
      ScheduleNode* const next = lifo->next;
      lifo->next = fifo;
      fifo = lifo;
      lifo = next;
    }
    return fifo;
  }

  // Called when nothing is runnable. Parks the sentinel in the empty head and
  // waits until a push replaces it. Both are RMWs on head_, so they are totally
  // ordered: a push that comes first makes the CAS fail (we return and run it);
  // a push that comes second sees the sentinel and notifies.
  void sleep_until_scheduled() noexcept {
    ScheduleNode* expected = nullptr;
    // relaxed: the sentinel publishes no data, and the ordering argument above
    // needs only the single modification order of head_.
    if (head_.compare_exchange_strong(expected, &asleep_, detail::mo_relaxed, detail::mo_relaxed)) {
      detail::wait_while_equal(head_, &asleep_);
    }
  }

  static void wake_node(void* context) noexcept {
    // Sound: waker_for stored a ScheduleNode* as the context. Read the
    // executor before schedule(): the node may be gone once it is pushed.
    auto* const node = static_cast<ScheduleNode*>(context);
    node->executor->schedule(node);
  }

  // Executor's thread only (plain list, no atomics).
  void link_root(detail::TaskHook& root) noexcept {
    root.prev = nullptr;
    root.next = roots_;
    if (roots_ != nullptr) roots_->prev = &root;
    roots_ = &root;
    ++pending_roots_;
  }

  // Unlinks a root and destroys its frame, which holds `root`: touches nothing
  // of it afterwards. Called when the root completes and by ~Executor.
  void retire_root(detail::TaskHook& root) noexcept {
    if (root.prev != nullptr) {
      root.prev->next = root.next;
    } else {
      roots_ = root.next;
    }
    if (root.next != nullptr) root.next->prev = root.prev;
    --pending_roots_;
    const std::coroutine_handle<> frame = root.node.handle;
    frame.destroy();
  }

  // Top of the Treiber stack of runnable nodes (newest first), nullptr when
  // empty, or &asleep_ while run() sleeps.
  detail::Atomic<ScheduleNode*> head_{nullptr};
  ScheduleNode asleep_;  // the sentinel: only its address is used
  detail::TaskHook* roots_ = nullptr;
  std::size_t pending_roots_ = 0;
  static inline MNEMOS_THREAD_LOCAL Executor* current_ = nullptr;
};

}  // namespace mnemos

// Task is needed to define spawn() and block_on(); task.hpp includes this
// header first, so either include order yields both complete.
#include "mnemos/task.hpp"
