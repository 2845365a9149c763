// Result<T>: a value or an Error, shaped like C++23 std::expected<T, Error>
// (has_value(), explicit operator bool, value(), error(), *, ->), without exceptions.
#pragma once

#include <cstdlib>
#include <new>
#include <type_traits>
#include <utility>

#include "mnemos/error.hpp"

namespace mnemos {

template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result holds values");

 public:
  // Implicit from a value or an error, so `return Error::NoMemory;` and
  // `return box;` both read naturally in functions returning Result<T>.
  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>) : has_value_(true) {
    ::new (static_cast<void*>(&value_)) T(std::move(value));
  }
  Result(Error error) noexcept : error_(error), has_value_(false) {}

  Result(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : has_value_(other.has_value_) {
    if (has_value_) {
      ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
    } else {
      error_ = other.error_;
    }
  }
  Result(const Result& other) requires std::is_copy_constructible_v<T>
      : has_value_(other.has_value_) {
    if (has_value_) {
      ::new (static_cast<void*>(&value_)) T(other.value_);
    } else {
      error_ = other.error_;
    }
  }
  Result& operator=(Result other) noexcept(std::is_nothrow_move_constructible_v<T>) {
    // Copy-and-swap by destroy + reconstruct: T need not be assignable.
    this->~Result();
    ::new (static_cast<void*>(this)) Result(std::move(other));
    return *this;
  }
  ~Result() {
    if (has_value_) value_.~T();
  }

  bool has_value() const noexcept { return has_value_; }
  explicit operator bool() const noexcept { return has_value_; }

  // Precondition: has_value(). Calling it on an error is a programming error and
  // aborts (there are no exceptions to throw).
  T& value() & noexcept { return checked(), value_; }
  const T& value() const& noexcept { return checked(), value_; }
  T&& value() && noexcept { return checked(), std::move(value_); }
  T& operator*() & noexcept { return value(); }
  const T& operator*() const& noexcept { return value(); }
  T&& operator*() && noexcept { return std::move(*this).value(); }
  T* operator->() noexcept { return &value(); }
  const T* operator->() const noexcept { return &value(); }

  // Precondition: !has_value().
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
