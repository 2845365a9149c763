// Reference model of poll-driven allocation futures and the heap's FIFO wait
// queue (include/mnemos/alloc_future.hpp, src/alloc_wait.cpp, detail/wait_queue.hpp).
//
// What it models: each future's life (unpolled, pending in the queue, completed
// with an outcome not yet taken, taken, destroyed), the queue of pending
// requests oldest first (held by the HeapModel, which also decides when the
// head is served), and every waker call the heap must make, in order. Rule it
// follows, replayed single-threaded:
//   - first poll: InvalidLayout / TooLarge / Closed at once; Cancelled at once
//     if the stop token is already stopped; then the fast path (only with no
//     request waiting and the lock free); else subscribe (wait_count + 1) and
//     kick; still not served: pending, and the waker given is registered;
//   - a pending future completes only when the heap serves it (strict FIFO:
//     every older request has completed or left), is cancelled through its stop
//     token, or the heap closes; at that moment its registered waker is called
//     exactly once (a future completed before it ever returned pending has no
//     waker to call); the next poll takes the outcome;
//   - destroying a pending future unlinks it (then a kick: the next request may
//     fit now); destroying one completed with a block it did not take frees
//     that block (deferred while the Guard is held); its waker is never called
//     after its destruction;
//   - spurious wakes: none.
// Every heap operation that can complete requests goes through this class so
// that the completions are turned into waker calls.
//
// Used by proptest/waiters_prop.cpp and the fuzz targets. Plain C++20,
// header-only, no dependency on RapidCheck or GoogleTest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "heap_model.hpp"

namespace mnemos::model {

class WaitModel {
 public:
  using FutureId = WaiterId;

  enum class State : std::uint8_t {
    Unpolled,   // created, never polled
    Pending,    // in the heap's queue
    Completed,  // outcome known (waker called if it had one), not taken yet
    Taken,      // a poll returned the outcome; polling again is a misuse
    Destroyed,
  };

  struct Future {
    Layout layout{};
    bool has_token = false;
    bool stop_requested = false;
    State state = State::Unpolled;
    bool waker_registered = false;  // it returned pending once: its waker is called at completion
    std::optional<Error> error;     // Completed/Taken: the error, if it did not get a block
    std::uintptr_t payload = 0;     // Completed/Taken with a block
    std::size_t wakes = 0;          // waker calls so far
  };

  // What AllocFuture::poll returns: pending, or a block, or an error.
  struct PollResult {
    bool pending = false;
    std::optional<Error> error;
    std::uintptr_t payload = 0;
  };

  explicit WaitModel(HeapModel heap = {}) : heap_(std::move(heap)) {}

  // ---- futures ------------------------------------------------------------------

  // heap.alloc*(...) [.with(token)]: nothing happens until the first poll.
  void create(FutureId id, Layout layout, bool with_token) {
    require(futures_.count(id) == 0);
    Future f;
    f.layout = layout;
    f.has_token = with_token;
    futures_[id] = f;
  }

  // AllocFuture::poll(waker). Precondition: not Taken, not Destroyed.
  PollResult poll(FutureId id) {
    Future& f = at(id);
    switch (f.state) {
      case State::Unpolled:
        return first_poll(id);
      case State::Pending:
        f.waker_registered = true;  // the latest waker replaces the previous one
        return PollResult{true, std::nullopt, 0};
      case State::Completed:
        f.state = State::Taken;
        return PollResult{false, f.error, f.payload};
      case State::Taken:
      case State::Destroyed:
        break;
    }
    std::abort();  // misuse: the generator must not poll a finished future
  }

  // ~AllocFuture. Precondition: not Destroyed.
  void destroy(FutureId id) {
    Future& f = at(id);
    const State was = f.state;
    require(was != State::Destroyed);
    f.state = State::Destroyed;
    if (was == State::Pending) {
      heap_.leave(id);
    } else if (was == State::Completed && !f.error) {
      heap_.free(f.payload);  // the block it was handed but never took
    }
    absorb();
  }

  // stop_source::request_stop() of the future's own source.
  // Precondition: the future was created with a token.
  void request_stop(FutureId id) {
    Future& f = at(id);
    require(f.has_token);
    if (f.stop_requested) return;  // a source stops once
    f.stop_requested = true;
    if (f.state == State::Pending) {
      heap_.cancel(id);
      absorb();
    }
  }

  // ---- heap operations (they may complete waiting requests) ------------------------

  AllocOutcome try_alloc(Layout l) { return absorbing(heap_.try_alloc(l)); }
  AllocOutcome guard_try_alloc(Layout l) { return absorbing(heap_.guard_try_alloc(l)); }
  void free(std::uintptr_t payload) {
    heap_.free(payload);
    absorb();
  }
  void guard_free(std::uintptr_t payload) {
    heap_.guard_free(payload);
    absorb();
  }
  bool try_lock() { return heap_.try_lock(); }
  std::size_t unlock() { return absorbing(heap_.unlock()); }
  std::size_t poll_heap() { return absorbing(heap_.poll()); }
  CheckFailure check() { return absorbing(heap_.check()); }
  void close() {
    heap_.close();
    absorb();
  }

  // ---- queries ------------------------------------------------------------------

  const HeapModel& heap() const { return heap_; }
  const std::map<FutureId, Future>& futures() const { return futures_; }
  const Future& future(FutureId id) const { return futures_.at(id); }
  bool exists(FutureId id) const { return futures_.count(id) != 0; }

  // Pending futures, oldest first.
  std::vector<FutureId> waiting() const {
    std::vector<FutureId> v;
    for (const WaitingRequest& w : heap_.waiting()) v.push_back(w.id);
    return v;
  }
  std::optional<FutureId> head() const {
    if (heap_.waiting().empty()) return std::nullopt;
    return heap_.waiting().front().id;
  }
  // Invariant 4 says this is false after every operation: the heap is idle and
  // the head's request fits now.
  bool head_servable_now() const { return heap_.idle() && heap_.head_fits(); }

  // Every waker call so far, in call order (by future).
  const std::vector<FutureId>& wake_log() const { return wake_log_; }

 private:
  static void require(bool condition) {
    if (!condition) std::abort();  // a precondition of the model's API was broken by its caller
  }

  Future& at(FutureId id) {
    auto it = futures_.find(id);
    require(it != futures_.end());
    return it->second;
  }

  PollResult first_poll(FutureId id) {
    Future& f = at(id);
    const auto finish = [&f](std::optional<Error> error, std::uintptr_t payload) {
      f.state = State::Taken;
      f.error = error;
      f.payload = payload;
      return PollResult{false, error, payload};
    };
    if (std::optional<Error> e = heap_.reject(f.layout)) return finish(e, 0);
    if (f.stop_requested) return finish(Error::Cancelled, 0);
    if (std::optional<AllocOutcome> fast = heap_.fast_path(f.layout)) {
      absorb();
      if (fast->ok()) return finish(std::nullopt, fast->payload);
    }
    heap_.subscribe(id, f.layout);
    f.state = State::Pending;
    heap_.kick();  // the retry after subscribing
    absorb();      // completes f with no waker call if it was served
    if (f.state == State::Completed) {
      f.state = State::Taken;
      return PollResult{false, f.error, f.payload};
    }
    f.waker_registered = true;
    return PollResult{true, std::nullopt, 0};
  }

  // Turns the heap's completions into future states and waker calls.
  void absorb() {
    for (const Completion& c : heap_.take_completions()) {
      Future& f = at(c.waiter);
      require(f.state == State::Pending);
      f.state = State::Completed;
      f.payload = c.payload;
      switch (c.outcome) {
        case Outcome::Ready:
          f.error = std::nullopt;
          break;
        case Outcome::Closed:
          f.error = Error::Closed;
          break;
        case Outcome::Cancelled:
          f.error = Error::Cancelled;
          break;
      }
      if (f.waker_registered) {
        ++f.wakes;
        wake_log_.push_back(c.waiter);
      }
    }
  }

  template <class T>
  T absorbing(T value) {
    absorb();
    return value;
  }

  HeapModel heap_;
  std::map<FutureId, Future> futures_;
  std::vector<FutureId> wake_log_;
};

}  // namespace mnemos::model
