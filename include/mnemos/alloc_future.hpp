/// @file
/// @brief AllocFuture<R>: an allocation that waits for room instead of failing.
#pragma once

#include <concepts>
#include <coroutine>
#include <cstdlib>
#include <optional>
#include <stop_token>
#include <tuple>
#include <utility>

#include "mnemos/detail/alloc_wait.hpp"
#include "mnemos/detail/typed_alloc.hpp"
#include "mnemos/result.hpp"
#include "mnemos/waker.hpp"

namespace mnemos {

/// An allocation that waits for room instead of failing.
///
/// Returned by heap.alloc<T>(args...), alloc_arc, alloc_array, alloc_array_with,
/// alloc_fixed_vec and alloc_raw. The arguments are stored (decayed) in the
/// future and used to construct the value once a block is handed over.
///
/// Drive it by hand with poll(waker), or co_await it from any coroutine type:
///   - TooLarge, InvalidLayout and Closed are ready at the first poll (waiting
///     cannot cure them); Cancelled once its stop token is stopped;
///   - otherwise it is ready at the first poll when there is room, no older
///     waiter, and the lock is free; else it parks in the heap's FIFO wait queue
///     and its waker is called, after every internal lock is released, once the
///     heap has *handed it a block* (or closed, or it was cancelled): a wake is
///     never spurious, so co_await never re-suspends.
///
/// It never completes with NoMemory or Locked. Movable only before its first
/// poll (the wait node lives inside it). Destroying a pending future cancels
/// it (see detail::AllocWait): when the destructor returns, no call of its
/// waker is running or will start; a block it had been handed but not taken
/// passes on to the next waiter.
/// @tparam R what it completes with: Box<T>, Arc<T>, Array<T>, FixedVec<T> or void*
/// @tparam Make the maker that builds R in the block, with the stored arguments
template <class R, class Make>
class AllocFuture {
 public:
  /// A request for `layout` on `heap`, not yet polled (nothing happens until
  /// the first poll). Used by Heap::alloc and its siblings.
  AllocFuture(Heap* heap, Layout layout, Make make) noexcept : wait_(heap, layout), make_(std::move(make)) {}
  /// Moves a future that has not been polled yet (a polled one must not move).
  AllocFuture(AllocFuture&&) noexcept = default;
  AllocFuture(const AllocFuture&) = delete;
  AllocFuture& operator=(const AllocFuture&) = delete;
  AllocFuture& operator=(AllocFuture&&) = delete;

  /// Makes the future cancellable: it completes with Error::Cancelled when
  /// `token` is stopped (and wakes the waiter). Call before the first poll:
  /// `heap.alloc<T>(args...).with(token)`.
  AllocFuture with(std::stop_token token) && noexcept {
    wait_.set_stop_token(std::move(token));
    return std::move(*this);
  }

  /// Tries to complete: the result, or nullopt while pending; the waker is then
  /// called once the result is ready (the latest waker given is the one called).
  /// From the thread that owns the future; O(1) besides one allocation attempt.
  /// Once it has returned a result, polling again aborts.
  /// @param waker called, from the freeing thread or interrupt handler and
  ///              after every internal lock is released, once polling again
  ///              returns the result
  /// @return the result, or nullopt while pending
  std::optional<Result<R>> poll(const Waker& waker) {
    std::optional<Result<void*>> raw = wait_.poll_raw(waker);
    if (!raw) return std::nullopt;
    if (!*raw) return Result<R>(raw->error());
    return Result<R>(make_(**raw));
  }

  // --- awaitable from any coroutine type ---------------------------------------
  /// Awaitable: always false, so that await_suspend makes the first attempt.
  bool await_ready() const noexcept { return false; }

  /// Awaitable: polls once and suspends only if the request is pending.
  ///
  /// A promise that offers `Waker resume_waker()` (Task<T> on an Executor does)
  /// chooses how its coroutine is resumed: the Executor schedules it on its own
  /// loop. From any other coroutine type the waker resumes the coroutine inline,
  /// on the thread whose free made room, after every internal lock is released.
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> handle) {
    Waker waker{&resume_inline, handle.address()};
    if constexpr (requires { { handle.promise().resume_waker() } -> std::convertible_to<Waker>; }) {
      if (Waker custom = handle.promise().resume_waker()) waker = custom;
    }
    // If pending, the coroutine may already be running elsewhere when poll
    // returns: touch no member of this awaiter afterwards.
    std::optional<Result<R>> ready = poll(waker);
    if (!ready) return true;
    result_ = std::move(ready);
    return false;  // ready at once: do not suspend
  }

  /// Awaitable: the result of `co_await` (a wake is never spurious, so it is
  /// always there).
  Result<R> await_resume() {
    if (!result_) {
      // Woken: the outcome is there (a wake is never spurious).
      result_ = poll(Waker{});
      if (!result_) std::abort();  // unreachable unless the protocol is broken
    }
    return std::move(*result_);
  }

 private:
  static void resume_inline(void* address) { std::coroutine_handle<>::from_address(address).resume(); }

  detail::AllocWait wait_;
  Make make_;
  std::optional<Result<R>> result_;
};

namespace detail {

/// Makers: turn the handed-over block into the owner, with the stored arguments.
template <class T, class... Args>
struct MakeBox {
  std::tuple<Args...> args;
  Box<T> operator()(void* raw) {
    return std::apply([raw](Args&... a) { return construct_box<T>(raw, std::move(a)...); }, args);
  }
};

template <class T, class... Args>
struct MakeArc {
  std::tuple<Args...> args;
  Arc<T> operator()(void* raw) {
    return std::apply([raw](Args&... a) { return construct_arc<T>(raw, std::move(a)...); }, args);
  }
};

template <class T>
struct MakeArray {
  std::size_t n;
  Array<T> operator()(void* raw) { return construct_array<T>(raw, n); }
};

template <class T, class Make>
struct MakeArrayWith {
  std::size_t n;
  Make make;
  Array<T> operator()(void* raw) { return construct_array_with<T>(raw, n, make); }
};

template <class T>
struct MakeFixedVec {
  std::size_t capacity;
  FixedVec<T> operator()(void* raw) { return construct_fixed_vec<T>(raw, capacity); }
};

struct MakeRaw {
  void* operator()(void* raw) const noexcept { return raw; }
};

}  // namespace detail
}  // namespace mnemos
