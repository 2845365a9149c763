// The non-template half of an allocation future: its wait node and the
// subscribe / retry / park / cancel protocol with the heap. AllocFuture<R>
// adds the typed construction and the awaitable interface on top.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <optional>
#include <stop_token>
#include <utility>

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

  // Before the first poll only. Defined here, not in src/: see StopOps.
  void set_stop_token(std::stop_token token) noexcept;

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

  // Cancellation by std::stop_token is a hosted convenience: libstdc++ frees a
  // stop state with operator delete and its stop_callback may throw
  // system_error from a futex wait, so the core's object files must never
  // instantiate them (ci/freestanding checks with nm). The token and its
  // callback therefore live in raw storage inside the future, and src/ reaches
  // them only through this table, whose functions are defined in this header
  // and so compiled in the caller's translation unit, which named the token.
  // Null table: no token (the freestanding case), nothing to do.
  struct StopState {
    std::stop_token token;
    std::optional<std::stop_callback<OnStop>> callback;
  };
  struct StopOps {
    bool (*requested)(const AllocWait&) noexcept;
    void (*arm)(AllocWait&) noexcept;     // after subscribing; may run on_stop() at once
    void (*disarm)(AllocWait&) noexcept;  // returns once no callback runs or will run
    void (*move)(AllocWait& to, AllocWait& from) noexcept;  // before the first poll
    void (*destroy)(AllocWait&) noexcept;
  };
  static const StopOps std_stop_ops;

  // The storage holds a StopState exactly while stop_ops_ is non-null.
  // std::launder: the object was created by placement new in these bytes.
  StopState& stop_state() noexcept { return *std::launder(reinterpret_cast<StopState*>(stop_storage_)); }
  const StopState& stop_state() const noexcept {
    return *std::launder(reinterpret_cast<const StopState*>(stop_storage_));
  }
  bool stop_requested() const noexcept { return stop_ops_ != nullptr && stop_ops_->requested(*this); }

  std::optional<Result<void*>> first_poll() noexcept;
  // Queue lock held: turns the node's outcome into the future's value.
  Result<void*> take_outcome() noexcept;
  void on_stop() noexcept;

  Heap* heap_;
  WaitNode node_;
  const StopOps* stop_ops_ = nullptr;
  alignas(StopState) std::byte stop_storage_[sizeof(StopState)];
  bool polled_ = false;      // pinned from the first poll on
  bool subscribed_ = false;  // the node has been in the queue
  bool finished_ = false;    // a value was returned
};

// Header-only on purpose (see StopOps): only a translation unit that calls
// AllocFuture::with(token) odr-uses std_stop_ops and so the std::stop_token code.
inline const AllocWait::StopOps AllocWait::std_stop_ops = {
    [](const AllocWait& w) noexcept { return w.stop_state().token.stop_requested(); },
    [](AllocWait& w) noexcept {
      StopState& s = w.stop_state();
      if (s.token.stop_possible()) s.callback.emplace(s.token, OnStop{&w});
    },
    [](AllocWait& w) noexcept { w.stop_state().callback.reset(); },
    [](AllocWait& to, AllocWait& from) noexcept {
      // Placement into `to`'s storage, which holds no object yet (its table is null).
      ::new (static_cast<void*>(to.stop_storage_)) StopState{std::move(from.stop_state().token), std::nullopt};
    },
    [](AllocWait& w) noexcept { w.stop_state().~StopState(); },
};

inline void AllocWait::set_stop_token(std::stop_token token) noexcept {
  if (polled_) std::abort();  // a callback may be armed on the current token
  if (stop_ops_ != nullptr) {
    stop_state().token = std::move(token);  // a second with(): the newest token wins
    return;
  }
  // Placement into storage that holds no object while the table is null.
  ::new (static_cast<void*>(stop_storage_)) StopState{std::move(token), std::nullopt};
  stop_ops_ = &std_stop_ops;
}

}  // namespace mnemos::detail
