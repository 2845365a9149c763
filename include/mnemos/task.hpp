/// @file
/// @brief Task<T>: a lazily started, move-only coroutine that owns its frame.
///
/// @code
/// Task<int> child() { co_return 42; }
/// Task<void> parent() { int v = co_await child(); ... }
/// executor.spawn(parent());  executor.run();
/// @endcode
///
/// `co_await task` starts the child by symmetric transfer and the child's
/// final_suspend transfers back to the awaiter, so chains of any length, and
/// loops of children that complete at once, run in constant stack. (Clang makes
/// each transfer a tail call at every -O level; GCC only when optimizing: at
/// -O0 every transfer still costs a stack frame, ~130 bytes on x86-64.)
///
/// Every promise knows the Executor it runs on (promise.executor()): set by
/// Executor::spawn for a root, copied from the awaiting coroutine's promise when
/// a child is awaited, nullptr otherwise. Awaitables use it to resume on the
/// executor instead of inline on the waking thread, either with a node of their
/// own:
///
/// @code
/// if constexpr (requires { h.promise().executor(); })
///   if (Executor* ex = h.promise().executor()) waker = ex->waker_for(&node);
/// @endcode
///
/// or with the node the promise holds (one per task: a suspended task waits on
/// one thing at a time), empty when there is no executor:
///
/// @code
/// if constexpr (requires { h.promise().resume_waker(); })
///   if (Waker w = h.promise().resume_waker()) waker = w;
/// @endcode
///
/// An awaitable inside a task on an Executor should resume it through that
/// executor (waker_for / schedule). One that resumes it inline on another thread
/// runs the task there, and a root that then completes would retire itself off
/// the executor's thread: a data race on the executor's root list.
///
/// No exceptions: unhandled_exception() aborts (the core builds with
/// -fno-exceptions).
#pragma once

#include <cassert>
#include <concepts>
#include <coroutine>
#include <cstdlib>
#include <optional>
#include <type_traits>
#include <utility>

#include "mnemos/executor.hpp"
#include "mnemos/waker.hpp"

namespace mnemos {

namespace detail {

/// What every Task promise shares: where to go on completion, the executor it
/// runs on, and its own run-queue node and root links (TaskHook).
class TaskPromiseBase {
 public:
  std::suspend_always initial_suspend() const noexcept { return {}; }  // lazy start
  TaskFinalAwaiter final_suspend() const noexcept;
  [[noreturn]] void unhandled_exception() const noexcept { std::abort(); }

  /// The executor this task runs on, or nullptr (not spawned, and awaited by a
  /// coroutine that has none).
  Executor* executor() const noexcept { return executor_; }

 protected:
  // See TaskPromise<T>::resume_waker.
  Waker resume_waker_for(std::coroutine_handle<> self) noexcept {
    if (executor_ == nullptr) return Waker{};
    hook_.node.handle = self;
    return executor_->waker_for(&hook_.node);
  }

 private:
  friend class mnemos::Executor;
  friend struct TaskFinalAwaiter;
  template <class T>
  friend struct TaskAwaiter;

  std::coroutine_handle<> continuation_;  // the awaiting coroutine; null for a root
  Executor* executor_ = nullptr;
  bool root_ = false;
  TaskHook hook_;
};

/// Suspends at the end and transfers to the awaiting coroutine (symmetric
/// transfer: no stack growth). A spawned root has none: it is retired instead.
/// A task run by block_on() has neither: it stays suspended here for block_on
/// to take its result.
struct TaskFinalAwaiter {
  bool await_ready() const noexcept { return false; }

  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> frame) noexcept {
    TaskPromiseBase& promise = frame.promise();
    if (promise.continuation_) return promise.continuation_;
    // Destroys the frame, and this awaiter with it (legal: the coroutine is
    // suspended). Nothing of either is touched afterwards.
    if (promise.root_) promise.executor_->retire_root(promise.hook_);
    return std::noop_coroutine();
  }

  void await_resume() const noexcept {}
};

inline TaskFinalAwaiter TaskPromiseBase::final_suspend() const noexcept { return {}; }

template <class T>
class TaskPromise final : public TaskPromiseBase {
 public:
  static_assert(!std::is_reference_v<T>, "Task<T&> is not supported: return a pointer");

  Task<T> get_return_object() noexcept;

  /// A Waker that makes this task runnable on its executor through the
  /// promise's own ScheduleNode (no allocation), or an empty Waker when the task
  /// has no executor. Call from an await_suspend of this task; wake at most
  /// once per suspension, from any thread or interrupt handler.
  Waker resume_waker() noexcept {
    return resume_waker_for(std::coroutine_handle<TaskPromise>::from_promise(*this));
  }

  void return_value(T value) noexcept(std::is_nothrow_move_constructible_v<T>) {
    value_.emplace(std::move(value));
  }
  /// The result, moved out; once, after completion.
  T take() noexcept(std::is_nothrow_move_constructible_v<T>) {
    return assert(value_.has_value()), std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class TaskPromise<void> final : public TaskPromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  /// As TaskPromise<T>::resume_waker.
  Waker resume_waker() noexcept {
    return resume_waker_for(std::coroutine_handle<TaskPromise>::from_promise(*this));
  }
  void return_void() const noexcept {}
  void take() const noexcept {}
};

/// `co_await task`: hands the child the awaiting coroutine (and its executor)
/// and starts it by symmetric transfer.
template <class T>
struct TaskAwaiter {
  std::coroutine_handle<TaskPromise<T>> child;

  bool await_ready() const noexcept { return child.done(); }

  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
    TaskPromise<T>& promise = child.promise();
    promise.continuation_ = awaiting;
    if constexpr (requires {
                    { awaiting.promise().executor() } -> std::convertible_to<Executor*>;
                  }) {
      promise.executor_ = awaiting.promise().executor();
    }
    return child;
  }

  T await_resume() { return child.promise().take(); }
};

}  // namespace detail

/// A lazily started, move-only coroutine that owns its frame (see the file
/// comment): `co_await` it from another Task, Executor::spawn a Task<void>, or
/// Executor::block_on it.
///
/// Created suspended; destroying a Task that owns a frame destroys the frame
/// (never resumes it). No allocation besides the coroutine frame itself.
/// @tparam T the result (`co_return value;`), or void; not a reference
template <class T>
class [[nodiscard]] Task {
 public:
  /// The coroutine's promise (the compiler's hook).
  using promise_type = detail::TaskPromise<T>;
  /// The handle of the frame a Task owns.
  using handle_type = std::coroutine_handle<promise_type>;

  /// An empty Task: owns no frame.
  Task() noexcept = default;
  /// Takes `other`'s frame; `other` is left empty.
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  /// Destroys the frame this Task owns (if any), then takes `other`'s.
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  /// Destroys the frame, if this Task owns one, without resuming it.
  ~Task() { reset(); }

  /// True when this Task owns a frame (not moved from, not spawned).
  explicit operator bool() const noexcept { return static_cast<bool>(handle_); }

  /// True once the coroutine has run to completion (its result, if any, is
  /// ready to be taken by co_await). False when empty.
  bool done() const noexcept { return handle_ && handle_.done(); }

  /// `co_await std::move(task)` or `co_await child()`: starts the task (or, if
  /// it already completed, does not suspend) and returns its result, moved out:
  /// await a task once. The awaiting coroutine resumes on the thread where the
  /// task completes.
  detail::TaskAwaiter<T> operator co_await() && noexcept {
    return assert(handle_ && "co_await of an empty Task"), detail::TaskAwaiter<T>{handle_};
  }
  /// `co_await task` on an lvalue: as the rvalue overload (the result is moved
  /// out all the same; the Task keeps owning the frame).
  detail::TaskAwaiter<T> operator co_await() & noexcept {
    return assert(handle_ && "co_await of an empty Task"), detail::TaskAwaiter<T>{handle_};
  }

 private:
  friend promise_type;
  friend class Executor;

  explicit Task(handle_type handle) noexcept : handle_(handle) {}

  handle_type release() noexcept { return std::exchange(handle_, nullptr); }

  // Destroying a frame that is not running is always sound; an awaited child
  // is owned by its parent's Task and suspended whenever the parent can run.
  void reset() noexcept {
    if (handle_) std::exchange(handle_, nullptr).destroy();
  }

  handle_type handle_;
};

namespace detail {

template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>{std::coroutine_handle<TaskPromise<T>>::from_promise(*this)};
}

inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>{std::coroutine_handle<TaskPromise<void>>::from_promise(*this)};
}

}  // namespace detail

inline void Executor::spawn(Task<void> task) {
  const Task<void>::handle_type frame = task.release();
  assert(frame && !frame.done() && "spawn a Task that has not started");
  detail::TaskPromise<void>& promise = frame.promise();
  promise.executor_ = this;
  promise.root_ = true;
  detail::TaskHook& root = promise.hook_;
  root.node.handle = frame;
  link_root(root);
  schedule(&root.node);
}

// No wrapper coroutine: the task runs on this executor but is not a root, so at
// completion it has no continuation and is not retired. It stays suspended at
// its final point, and `task` still owns the frame and the result.
template <class T>
T Executor::block_on(Task<T> task) {
  assert(task.handle_ && !task.handle_.done() && "block_on a Task that has not started");
  detail::TaskPromise<T>& promise = task.handle_.promise();
  promise.executor_ = this;
  ScheduleNode& start = promise.hook_.node;
  start.handle = task.handle_;
  schedule(&start);
  run_while([&task] { return !task.done(); });
  return promise.take();
}

}  // namespace mnemos
