/// @file
/// @brief FixedVec<T>: a vector whose capacity is fixed at allocation and whose length varies.
#pragma once

#include <cstddef>
#include <new>
#include <optional>
#include <span>
#include <utility>

#include "mnemos/detail/deallocate.hpp"
#include "mnemos/layout.hpp"

namespace mnemos {

/// A vector in a mnemos heap whose capacity is fixed at allocation and whose
/// length varies (Heap::try_alloc_fixed_vec, Heap::alloc_fixed_vec).
///
/// Move-only. Never reallocates: push_back/emplace_back return false when full.
/// Each element is destroyed exactly once (by pop_back, retain, clear or the
/// destructor); the block is freed from any thread. Element operations are not
/// synchronised: one thread at a time, as for std::vector.
template <class T>
class FixedVec {
 public:
  /// Adopts `data`, a block allocated for `capacity` elements of T, with no
  /// element constructed yet. Used by the allocation functions.
  FixedVec(detail::Adopt, T* data, std::size_t capacity) noexcept
      : data_(data), size_(0), capacity_(capacity) {}
  /// Takes `other`'s block and elements; `other` is left empty (capacity 0).
  FixedVec(FixedVec&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  /// Destroys the current elements and frees the block (if any), then takes `other`'s.
  FixedVec& operator=(FixedVec&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  FixedVec(const FixedVec&) = delete;
  FixedVec& operator=(const FixedVec&) = delete;
  /// Destroys the elements and frees the block; from any thread or interrupt
  /// handler (the free never blocks).
  ~FixedVec() { reset(); }

  /// Constructs an element at the end in place from `args`; false (and no
  /// construction) when full. O(1).
  template <class... Args>
  bool emplace_back(Args&&... args) {
    if (size_ == capacity_) return false;
    // Placement in slot size_: inside the block (size_ < capacity_), aligned for T,
    // and holding no live object (slots at and past size_ are raw storage).
    ::new (static_cast<void*>(data_ + size_)) T(std::forward<Args>(args)...);
    ++size_;
    return true;
  }
  /// Appends a copy of `value`; false (and no construction) when full. O(1).
  bool push_back(const T& value) { return emplace_back(value); }
  /// Appends `value`, moved; false (and `value` untouched) when full. O(1).
  bool push_back(T&& value) { return emplace_back(std::move(value)); }

  /// Removes and returns the last element; nullopt when empty.
  std::optional<T> pop_back() {
    if (size_ == 0) return std::nullopt;
    --size_;
    std::optional<T> out(std::move(data_[size_]));
    data_[size_].~T();
    return out;
  }

  /// Keeps the elements for which pred(element) is true, in order; destroys the
  /// others exactly once. O(size).
  template <class Pred>
  void retain(Pred pred) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < size_; ++i) {
      if (pred(static_cast<const T&>(data_[i]))) {
        if (kept != i) {
          // Move into slot `kept`, which is raw storage: its element was either
          // moved-from-and-destroyed below or destroyed as rejected.
          ::new (static_cast<void*>(data_ + kept)) T(std::move(data_[i]));
          data_[i].~T();
        }
        ++kept;
      } else {
        data_[i].~T();
      }
    }
    size_ = kept;
  }

  /// Destroys every element, last to first; the capacity stays. O(size).
  void clear() noexcept {
    while (size_ > 0) data_[--size_].~T();
  }

  /// The number of elements.
  std::size_t size() const noexcept { return size_; }
  /// The number of elements the block holds, fixed at allocation.
  std::size_t capacity() const noexcept { return capacity_; }
  /// True when there are no elements.
  bool empty() const noexcept { return size_ == 0; }
  /// True when size() == capacity(): push_back and emplace_back return false.
  bool full() const noexcept { return size_ == capacity_; }
  /// The first element's address (the block), or nullptr when moved from.
  T* data() const noexcept { return data_; }
  /// Element `i`, unchecked. Precondition: i < size().
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  /// Iterator to the first element.
  T* begin() const noexcept { return data_; }
  /// Iterator past the last element.
  T* end() const noexcept { return data_ + size_; }
  /// The elements (not the spare capacity) as a span.
  std::span<T> span() const noexcept { return {data_, size_}; }

 private:
  void reset() noexcept {
    if (data_ == nullptr) return;
    clear();
    detail::deallocate(data_, Layout{capacity_ * sizeof(T), alignof(T)});
    data_ = nullptr;
    capacity_ = 0;
  }

  T* data_;
  std::size_t size_;
  std::size_t capacity_;
};

}  // namespace mnemos
