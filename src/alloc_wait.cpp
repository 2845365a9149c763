// The wait protocol of an allocation future: subscribe before retrying, park,
// take the handed-over block, cancel. The lost-wakeup argument and the node
// states are in include/mnemos/detail/wait_queue.hpp.
#include "mnemos/detail/alloc_wait.hpp"

#include <cstdlib>

#include "mnemos/heap.hpp"

namespace mnemos::detail {

AllocWait::AllocWait(AllocWait&& other) noexcept
    : heap_(other.heap_) {
  if (other.polled_) std::abort();  // a polled future is pinned: its node may be linked
  node_.layout = other.node_.layout;
  if (other.stop_ops_ != nullptr) {  // not polled, so no callback is armed: just the token
    other.stop_ops_->move(*this, other);
    stop_ops_ = other.stop_ops_;
  }
}

std::optional<Result<void*>> AllocWait::poll_raw(const Waker& waker) noexcept {
  if (finished_) std::abort();  // the value was already taken
  if (!polled_) {
    polled_ = true;
    if (std::optional<Result<void*>> done = first_poll()) {
      finished_ = true;
      return done;
    }
  }
  Heap* const heap = heap_;  // `this` may be gone once the queue lock is released
  WaitQueue& queue = heap->waiters_;
  queue.lock();
  if (node_.outcome != WaitNode::Outcome::None) {
    Result<void*> out = take_outcome();
    heap->release_wait_queue();
    return out;
  }
  if (node_.woken) heap->spurious_wake_count_.add(1);  // woken, yet nothing to take
  node_.woken = false;
  node_.waker = waker;
  // From here the node may be completed and its waker called (on this thread,
  // inside the release below, or on another): touch nothing of `this` again.
  heap->release_wait_queue();
  return std::nullopt;
}

std::optional<Result<void*>> AllocWait::first_poll() noexcept {
  if (std::optional<Error> error = heap_->reject(node_.layout)) return Result<void*>(*error);
  if (stop_requested()) return Result<void*>(Error::Cancelled);

  // Fast path: no older waiter and the lock is free.
  if (!heap_->lock_.has_waiters() && heap_->lock_.try_lock()) {
    Result<void*> r = heap_->alloc_locked(node_.layout);
    heap_->unlock();
    if (r) return r;  // reject() passed, so alloc_locked() fails only with NoMemory
  }

  // Subscribe (with no waker yet), then retry: a free after the failed attempt
  // either lands before the subscription (the retry sees its room) or after it
  // (its unlock sees WAITERS and serves the queue).
  WaitQueue& queue = heap_->waiters_;
  queue.lock();
  if (heap_->closed_.load(mo_acquire)) {  // acquire: pairs with close()'s release store
    heap_->release_wait_queue();
    return Result<void*>(Error::Closed);
  }
  heap_->enqueue_waiter(&node_);
  subscribed_ = true;
  heap_->release_wait_queue();
  if (stop_ops_ != nullptr) stop_ops_->arm(*this);  // may run on_stop now
  heap_->kick();  // the retry: serves the head (maybe us) now, or asks the holder to
  return std::nullopt;
}

Result<void*> AllocWait::take_outcome() noexcept {
  heap_->waiters_.unlink(&node_);  // from to_wake, if its waker was not called yet
  finished_ = true;
  // Called only with an outcome (not None): Ready, Closed or Cancelled.
  if (node_.outcome == WaitNode::Outcome::Ready) {
    void* block = node_.block;
    node_.block = nullptr;
    return block;
  }
  return node_.outcome == WaitNode::Outcome::Closed ? Error::Closed : Error::Cancelled;
}

void AllocWait::on_stop() noexcept {
  Heap* const heap = heap_;
  heap->waiters_.lock();
  const bool was_waiting = node_.where == WaitNode::Where::Waiting;
  if (was_waiting) heap->complete_waiter(&node_, WaitNode::Outcome::Cancelled);
  heap->release_wait_queue();  // calls our waker (outside the lock)
  if (was_waiting) heap->kick();  // the next waiter may fit now that this one left
}

AllocWait::~AllocWait() {
  // First: after this, no stop callback runs or will run (std::stop_callback's
  // destructor waits for one running on another thread).
  if (stop_ops_ != nullptr) {
    stop_ops_->disarm(*this);
    stop_ops_->destroy(*this);  // the token goes too: nothing below reads it
    stop_ops_ = nullptr;
  }
  if (!subscribed_) return;
  Heap* const heap = heap_;
  heap->waiters_.lock();
  const bool was_waiting = node_.where == WaitNode::Where::Waiting;
  if (was_waiting) {
    heap->dequeue_waiter(&node_);
  } else {
    heap->waiters_.unlink(&node_);  // from to_wake: its waker will not be called
  }
  const bool wait_for_call = WaitQueue::must_wait_for_call(&node_);
  // A block handed over but never taken goes back, which serves the next waiter.
  void* orphan = node_.outcome == WaitNode::Outcome::Ready ? node_.block : nullptr;
  const Layout layout = node_.layout;
  heap->release_wait_queue();
  if (was_waiting) heap->kick();
  if (orphan != nullptr) Heap::free_raw(orphan, layout);
  if (wait_for_call) WaitQueue::wait_for_call(&node_);
}

}  // namespace mnemos::detail
