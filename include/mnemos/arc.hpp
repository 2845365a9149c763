/// @file
/// @brief Arc<T>: a shared, atomically counted owner of one T in a mnemos heap.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "mnemos/detail/atomic.hpp"
#include "mnemos/detail/deallocate.hpp"
#include "mnemos/layout.hpp"

namespace mnemos {

namespace detail {
/// The one block an Arc lives in: the count beside the value (one allocation).
template <class T>
struct ArcInner {
  // T(args...) when T has such a constructor, else aggregate T{args...} (C++20's
  // parenthesised aggregate init is missing from clang 14).
  template <class... Args>
    requires std::is_constructible_v<T, Args...>
  explicit ArcInner(Args&&... args) : value(std::forward<Args>(args)...) {}
  template <class... Args>
    requires(!std::is_constructible_v<T, Args...>)
  explicit ArcInner(Args&&... args) : value{std::forward<Args>(args)...} {}
  Atomic<std::size_t> strong{1};
  T value;
};
}  // namespace detail

/// A shared, atomically counted owner of one T in a mnemos heap
/// (Heap::try_alloc_arc<T>, Heap::alloc_arc<T>).
///
/// Copies share the T; the last one destroyed runs ~T() once and frees the block
/// through its header, from any thread. Copy and destruction are one atomic RMW.
/// The count lives in the same block as the T (one allocation).
template <class T>
class Arc {
  using Inner = detail::ArcInner<T>;

 public:
  /// Adopts `inner`, constructed (count 1) in a block allocated for
  /// block_layout(). Used by the allocation functions.
  Arc(detail::Adopt, Inner* inner) noexcept : inner_(inner) {}
  /// Shares `other`'s T: one relaxed atomic increment (none when empty).
  Arc(const Arc& other) noexcept : inner_(other.inner_) {
    // relaxed: a new reference is made from an existing one, which keeps the
    // count above zero; no other memory is published by the increment.
    if (inner_ != nullptr) inner_->strong.fetch_add(1, detail::mo_relaxed);
  }
  /// Takes `other`'s reference (no atomic); `other` is left empty.
  Arc(Arc&& other) noexcept : inner_(std::exchange(other.inner_, nullptr)) {}
  /// Replaces this reference with `other` (copy or move); the old one is
  /// released as by the destructor.
  Arc& operator=(Arc other) noexcept {
    std::swap(inner_, other.inner_);
    return *this;
  }
  /// Drops this reference (one acq_rel atomic decrement); the last one runs
  /// ~T() and frees the block, from any thread or interrupt handler.
  ~Arc() { release(); }

  /// The shared T. Precondition: not empty.
  T& operator*() const noexcept { return inner_->value; }
  /// The shared T's address. Precondition: not empty.
  T* operator->() const noexcept { return &inner_->value; }
  /// The shared T's address, or nullptr when empty.
  T* get() const noexcept { return inner_ != nullptr ? &inner_->value : nullptr; }
  /// True unless empty (moved from).
  explicit operator bool() const noexcept { return inner_ != nullptr; }

  /// A racy snapshot of the number of owners (0 for an empty Arc).
  std::size_t use_count() const noexcept {
    return inner_ != nullptr ? inner_->strong.load(detail::mo_relaxed) : 0;
  }

  /// The layout of the one block an Arc<T> lives in: the count beside the T.
  static constexpr Layout block_layout() noexcept { return Layout::of<Inner>(); }

 private:
  void release() noexcept {
    if (inner_ == nullptr) return;
    // acq_rel: the release half orders this owner's uses of the T before the
    // decrement; the acquire half, taken by the last owner, pairs with every
    // other owner's release so ~T() runs after all their uses.
    if (inner_->strong.fetch_sub(1, detail::mo_acq_rel) == 1) {
      inner_->~Inner();
      detail::deallocate(inner_, block_layout());
    }
    inner_ = nullptr;
  }

  Inner* inner_;
};

}  // namespace mnemos
