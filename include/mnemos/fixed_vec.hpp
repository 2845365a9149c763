// FixedVec<T>: a vector whose capacity is fixed at allocation and whose length varies.
#pragma once

#include <cstddef>
#include <new>
#include <optional>
#include <span>
#include <utility>

#include "mnemos/detail/deallocate.hpp"
#include "mnemos/layout.hpp"

namespace mnemos {

// Move-only. Never reallocates: push_back/emplace_back return false when full.
// Each element is destroyed exactly once (by pop_back, retain, clear or the
// destructor); the block is freed from any thread.
template <class T>
class FixedVec {
 public:
  FixedVec(detail::Adopt, T* data, std::size_t capacity) noexcept
      : data_(data), size_(0), capacity_(capacity) {}
  FixedVec(FixedVec&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
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
  ~FixedVec() { reset(); }

  // Constructs in place; false (and no construction) when full.
  template <class... Args>
  bool emplace_back(Args&&... args) {
    if (size_ == capacity_) return false;
    // Placement in slot size_: inside the block (size_ < capacity_), aligned for T,
    // and holding no live object (slots at and past size_ are raw storage).
    ::new (static_cast<void*>(data_ + size_)) T(std::forward<Args>(args)...);
    ++size_;
    return true;
  }
  bool push_back(const T& value) { return emplace_back(value); }
  bool push_back(T&& value) { return emplace_back(std::move(value)); }

  // Removes and returns the last element; nullopt when empty.
  std::optional<T> pop_back() {
    if (size_ == 0) return std::nullopt;
    --size_;
    std::optional<T> out(std::move(data_[size_]));
    data_[size_].~T();
    return out;
  }

  // Keeps the elements for which pred(element) is true, in order; destroys the
  // others exactly once. O(size).
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

  void clear() noexcept {
    while (size_ > 0) data_[--size_].~T();
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  bool full() const noexcept { return size_ == capacity_; }
  T* data() const noexcept { return data_; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* begin() const noexcept { return data_; }
  T* end() const noexcept { return data_ + size_; }
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
