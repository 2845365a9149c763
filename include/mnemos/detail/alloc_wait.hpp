// The non-template half of an allocation future: its wait node and the
// subscribe / retry / park / cancel protocol with the heap. AllocFuture<R>
// adds the typed construction and the awaitable interface on top.
#pragma once

#include <optional>
#include <stop_token>

#include "mnemos/detail/wait_queue.hpp"
#include "mnemos/layout.hpp"
#include "mnemos/result.hpp"
#include "mnemos/waker.hpp"

namespace mnemos {
class Heap;
}

namespace mnemos::detail {

class AllocWait {
 public:
  AllocWait(Heap* heap, Layout layout) noexcept : heap_(heap) { node_.layout = layout; }
  // Only before the first poll: the node is intrusive, so a polled future is
  // pinned (moving one is a programming error and aborts).
  AllocWait(AllocWait&& other) noexcept;
  AllocWait(const AllocWait&) = delete;
  AllocWait& operator=(const AllocWait&) = delete;
  AllocWait& operator=(AllocWait&&) = delete;
  // Cancels a pending request: unlinks the node, passes a block it was handed
  // but did not consume on to the next waiter, and returns only when no call of
  // its waker is running on another thread (and none will start).
  ~AllocWait();

  void set_stop_token(std::stop_token token) noexcept { stop_ = std::move(token); }

  // nullopt: pending, and `waker` will be called when the outcome is known.
  // Otherwise the raw block (to be constructed into) or the error. Polling
  // again after a value was returned is a programming error and aborts.
  std::optional<Result<void*>> poll_raw(const Waker& waker) noexcept;

  Layout layout() const noexcept { return node_.layout; }

 private:
  struct OnStop {
    AllocWait* self;
    void operator()() const noexcept { self->on_stop(); }
  };

  std::optional<Result<void*>> first_poll() noexcept;
  // Queue lock held: turns the node's outcome into the future's value.
  Result<void*> take_outcome() noexcept;
  void on_stop() noexcept;

  Heap* heap_;
  WaitNode node_;
  std::stop_token stop_;
  std::optional<std::stop_callback<OnStop>> on_stop_;
  bool polled_ = false;      // pinned from the first poll on
  bool subscribed_ = false;  // the node has been in the queue
  bool finished_ = false;    // a value was returned
};

}  // namespace mnemos::detail
