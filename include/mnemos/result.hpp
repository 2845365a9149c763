/// @file
/// @brief Result<T>: a value or an Error, shaped like C++23 std::expected<T, Error>
/// (has_value(), explicit operator bool, value(), error(), *, ->), without exceptions.
#pragma once

#include <cstdlib>
#include <new>
#include <type_traits>
#include <utility>

#include "mnemos/error.hpp"

namespace mnemos {

/// A value of type T or an Error, shaped like C++23 `std::expected<T, Error>`.
///
/// What every fallible call returns: has_value(), explicit operator bool,
/// value(), error(), `*` and `->`, without exceptions (a precondition violated
/// aborts). `[[nodiscard]]`: an ignored Result is a compiler warning.
/// @tparam T the value; not a reference.
template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result holds values");

 public:
  /// Holds `value`. Implicit, as is the one from an Error, so
  /// `return box;` and `return Error::NoMemory;` both read naturally in
  /// functions returning Result<T>.
  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>) : has_value_(true) {
    ::new (static_cast<void*>(&value_)) T(std::move(value));
  }
  /// Holds `error`. Implicit (see the constructor from a value).
  Result(Error error) noexcept : error_(error), has_value_(false) {}

  /// Moves the value (or copies the error) of `other`, which keeps a moved-from value.
  Result(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : has_value_(other.has_value_) {
    if (has_value_) {
      ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
    } else {
      error_ = other.error_;
    }
  }
  /// Copies the value or the error; only for a copyable T.
  Result(const Result& other) requires std::is_copy_constructible_v<T>
      : has_value_(other.has_value_) {
    if (has_value_) {
      ::new (static_cast<void*>(&value_)) T(other.value_);
    } else {
      error_ = other.error_;
    }
  }
  /// Replaces the contents (the old value is destroyed); T need not be assignable.
  Result& operator=(Result other) noexcept(std::is_nothrow_move_constructible_v<T>) {
    // Copy-and-swap by destroy + reconstruct: T need not be assignable.
    this->~Result();
    ::new (static_cast<void*>(this)) Result(std::move(other));
    return *this;
  }
  /// Destroys the value, if there is one.
  ~Result() {
    if (has_value_) value_.~T();
  }

  /// True when this holds a value, false when it holds an Error.
  bool has_value() const noexcept { return has_value_; }
  /// As has_value(): `if (!r) return r.error();`.
  explicit operator bool() const noexcept { return has_value_; }

  /// The value. Precondition: has_value(). Calling it on an error is a
  /// programming error and aborts (there are no exceptions to throw).
  T& value() & noexcept { return checked(), value_; }
  /// The value, as the non-const overload: aborts on an error.
  const T& value() const& noexcept { return checked(), value_; }
  /// The value, moved out of an rvalue Result: aborts on an error.
  T&& value() && noexcept { return checked(), std::move(value_); }
  /// The value, as value(): aborts on an error.
  T& operator*() & noexcept { return value(); }
  /// The value, as value(): aborts on an error.
  const T& operator*() const& noexcept { return value(); }
  /// The value, moved out, as value(): aborts on an error.
  T&& operator*() && noexcept { return std::move(*this).value(); }
  /// The value's address, as &value(): aborts on an error.
  T* operator->() noexcept { return &value(); }
  /// The value's address, as &value(): aborts on an error.
  const T* operator->() const noexcept { return &value(); }

  /// The error. Precondition: !has_value() (aborts otherwise).
  Error error() const noexcept {
    if (has_value_) std::abort();
    return error_;
  }

 private:
  void checked() const noexcept {
    if (!has_value_) std::abort();
  }

  union {
    T value_;
    Error error_;
  };
  bool has_value_;
};

}  // namespace mnemos
