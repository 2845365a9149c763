/// @file
/// @brief Waker: how a pending operation says "poll me again".
#pragma once

#include <type_traits>

namespace mnemos {

/// How a pending operation says "poll me again": a trivially copyable
/// {function, context} pair.
///
/// No allocation, no ownership, so it can be copied out of a wait node under a
/// lock and called after the lock is released. The allocator never calls a
/// waker while holding any internal lock. A waker may be called from any thread
/// or interrupt handler (the one whose free made room), so `fn` must be safe
/// there: typically it resumes a coroutine, pushes a task onto a run queue, or
/// sets a flag.
struct Waker {
  void (*fn)(void* context) = nullptr;  ///< called by wake() with `context`; nullptr: an empty waker
  void* context = nullptr;              ///< the argument of `fn`

  /// Calls fn(context); does nothing for an empty waker. Runs on the caller's thread.
  void wake() const {
    if (fn != nullptr) fn(context);
  }
  /// True unless empty (`fn` is nullptr).
  explicit operator bool() const noexcept { return fn != nullptr; }
  /// Equal when both the function and the context are.
  friend bool operator==(const Waker&, const Waker&) = default;
};

static_assert(std::is_trivially_copyable_v<Waker>);

}  // namespace mnemos
