/// @file
/// @brief Array<T>: a run-time-length array of T in a mnemos heap, owned uniquely.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

#include "mnemos/detail/deallocate.hpp"
#include "mnemos/layout.hpp"

namespace mnemos {

/// A run-time-length array of T in a mnemos heap, owned uniquely
/// (Heap::try_alloc_array, try_alloc_array_with, alloc_array, alloc_array_with).
///
/// Move-only; the length is fixed at allocation. Destruction runs ~T() once per
/// element (last to first) and frees the block from any thread.
template <class T>
class Array {
 public:
  /// Adopts `size` constructed elements at `data`, a block allocated for
  /// `size` elements of T. Used by the allocation functions.
  Array(detail::Adopt, T* data, std::size_t size) noexcept : data_(data), size_(size) {}
  /// Takes `other`'s elements; `other` is left empty.
  Array(Array&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  /// Destroys and frees the current elements (if any), then takes `other`'s.
  Array& operator=(Array&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  /// Runs ~T() on every element, last to first, and frees the block; from any
  /// thread or interrupt handler (the free never blocks).
  ~Array() { reset(); }

  /// The number of elements (0 only when empty: moved from).
  std::size_t size() const noexcept { return size_; }
  /// True when there are no elements (moved from).
  bool empty() const noexcept { return size_ == 0; }
  /// The first element's address, or nullptr when empty.
  T* data() const noexcept { return data_; }
  /// Element `i`, unchecked. Precondition: i < size().
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  /// Iterator to the first element.
  T* begin() const noexcept { return data_; }
  /// Iterator past the last element.
  T* end() const noexcept { return data_ + size_; }
  /// The elements as a span.
  std::span<T> span() const noexcept { return {data_, size_}; }
  /// The elements as a span, implicitly.
  operator std::span<T>() const noexcept { return span(); }

 private:
  void reset() noexcept {
    if (data_ == nullptr) return;
    for (std::size_t i = size_; i-- > 0;) data_[i].~T();
    // The layout was valid at allocation, so size_ * sizeof(T) cannot overflow.
    detail::deallocate(data_, Layout{size_ * sizeof(T), alignof(T)});
    data_ = nullptr;
    size_ = 0;
  }

  T* data_;
  std::size_t size_;
};

}  // namespace mnemos
