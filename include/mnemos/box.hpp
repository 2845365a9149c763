/// @file
/// @brief Box<T>: the unique owner of one T in a mnemos heap.
#pragma once

#include <cstddef>
#include <utility>

#include "mnemos/detail/deallocate.hpp"
#include "mnemos/layout.hpp"

namespace mnemos {

/// The unique owner of one T in a mnemos heap (Heap::try_alloc<T>, Heap::alloc<T>).
///
/// Move-only. Destroying a Box runs ~T() once and frees the block through its
/// header, from any thread or interrupt (the free never blocks). A moved-from Box
/// is empty and destroys nothing. Memory cost: sizeof(T) plus one pointer,
/// rounded to the block granule (or to alignof(T) when that is larger).
template <class T>
class Box {
 public:
  /// Adopts `value`, a T constructed in a block of a mnemos heap allocated for
  /// Layout::of<T>(). Used by the allocation functions; users get a Box from
  /// them, or from from_raw().
  Box(detail::Adopt, T* value) noexcept : value_(value) {}
  /// Takes `other`'s T; `other` is left empty.
  Box(Box&& other) noexcept : value_(std::exchange(other.value_, nullptr)) {}
  /// Destroys and frees the current T (if any), then takes `other`'s.
  Box& operator=(Box&& other) noexcept {
    if (this != &other) {
      reset();
      value_ = std::exchange(other.value_, nullptr);
    }
    return *this;
  }
  Box(const Box&) = delete;
  Box& operator=(const Box&) = delete;
  /// Runs ~T() and frees the block; from any thread or interrupt handler (the
  /// free never blocks: a locked heap gets it through its deferred queue).
  ~Box() { reset(); }

  /// The T. Precondition: not empty.
  T& operator*() const noexcept { return *value_; }
  /// The T's address. Precondition: not empty.
  T* operator->() const noexcept { return value_; }
  /// The T's address, or nullptr when empty.
  T* get() const noexcept { return value_; }
  /// True unless empty (moved from or leaked).
  explicit operator bool() const noexcept { return value_ != nullptr; }

  /// Gives up ownership: the T stays alive and its block allocated until
  /// Box<T>::from_raw(p) takes it back (or Heap::free_raw after ~T()).
  [[nodiscard]] T* leak() && noexcept { return std::exchange(value_, nullptr); }

  /// Takes back a T given up by leak(). Precondition: `value` came from leak()
  /// of a Box<T> and is not owned elsewhere.
  static Box from_raw(T* value) noexcept { return Box(detail::Adopt{}, value); }

 private:
  void reset() noexcept {
    if (value_ != nullptr) {
      value_->~T();
      detail::deallocate(value_, Layout::of<T>());
      value_ = nullptr;
    }
  }

  T* value_;
};

}  // namespace mnemos
