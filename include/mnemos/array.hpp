// Array<T>: a run-time-length array of T in a mnemos heap, owned uniquely.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

#include "mnemos/detail/deallocate.hpp"
#include "mnemos/layout.hpp"

namespace mnemos {

// Move-only; the length is fixed at allocation. Destruction runs ~T() once per
// element (last to first) and frees the block from any thread.
template <class T>
class Array {
 public:
  Array(detail::Adopt, T* data, std::size_t size) noexcept : data_(data), size_(size) {}
  Array(Array&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
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
  ~Array() { reset(); }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T* data() const noexcept { return data_; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* begin() const noexcept { return data_; }
  T* end() const noexcept { return data_ + size_; }
  std::span<T> span() const noexcept { return {data_, size_}; }
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
