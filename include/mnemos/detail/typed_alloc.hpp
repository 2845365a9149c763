// The typed allocation family (try_alloc<T>, try_alloc_arc, try_alloc_array,
// try_alloc_array_with, try_alloc_fixed_vec), written once over any source of
// raw blocks: Heap (takes the lock per call) and Heap::Guard (lock already held).
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "mnemos/arc.hpp"
#include "mnemos/array.hpp"
#include "mnemos/box.hpp"
#include "mnemos/fixed_vec.hpp"
#include "mnemos/layout.hpp"
#include "mnemos/result.hpp"

namespace mnemos::detail {

// Builders: construct the owned objects in a block that was just allocated for
// their layout. Each placement is sound because the block is fresh (no live
// object), at least layout.size bytes and aligned to layout.align.
// T(args...) when T has such a constructor, else aggregate T{args...} (C++20's
// parenthesised aggregate init is missing from clang 14).
template <class T, class... Args>
T* construct_at(void* raw, Args&&... args) {
  if constexpr (std::is_constructible_v<T, Args...>) {
    return ::new (raw) T(std::forward<Args>(args)...);
  } else {
    return ::new (raw) T{std::forward<Args>(args)...};
  }
}

template <class T, class... Args>
Box<T> construct_box(void* raw, Args&&... args) {
  return Box<T>(Adopt{}, construct_at<T>(raw, std::forward<Args>(args)...));
}

template <class T, class... Args>
Arc<T> construct_arc(void* raw, Args&&... args) {
  return Arc<T>(Adopt{}, ::new (raw) ArcInner<T>(std::forward<Args>(args)...));
}

// make() is called once per element, in index order.
template <class T, class Make>
Array<T> construct_array_with(void* raw, std::size_t n, Make& make) {
  T* data = static_cast<T*>(raw);
  for (std::size_t i = 0; i < n; ++i) ::new (static_cast<void*>(data + i)) T(make());
  return Array<T>(Adopt{}, data, n);
}

template <class T>
Array<T> construct_array(void* raw, std::size_t n) {
  T* data = static_cast<T*>(raw);
  for (std::size_t i = 0; i < n; ++i) ::new (static_cast<void*>(data + i)) T();  // value-initialised
  return Array<T>(Adopt{}, data, n);
}

template <class T>
FixedVec<T> construct_fixed_vec(void* raw, std::size_t capacity) {
  return FixedVec<T>(Adopt{}, static_cast<T*>(raw), capacity);
}

// Layout of n elements; an overflowing count yields an invalid layout, which
// every allocation path rejects with InvalidLayout.
template <class T>
constexpr Layout array_layout(std::size_t n) noexcept {
  return Layout::array_of<T>(n).value_or(Layout{0, alignof(T)});
}

// CRTP mixin: Source provides `Result<void*> try_alloc_raw(Layout)`.
template <class Source>
class TypedAllocators {
 public:
  // One T, constructed from args. Fails with the errors of try_alloc_raw.
  template <class T, class... Args>
  Result<Box<T>> try_alloc(Args&&... args) {
    Result<void*> raw = source().try_alloc_raw(Layout::of<T>());
    if (!raw) return raw.error();
    return construct_box<T>(*raw, std::forward<Args>(args)...);
  }

  template <class T, class... Args>
  Result<Arc<T>> try_alloc_arc(Args&&... args) {
    Result<void*> raw = source().try_alloc_raw(Arc<T>::block_layout());
    if (!raw) return raw.error();
    return construct_arc<T>(*raw, std::forward<Args>(args)...);
  }

  // n value-initialised elements; n == 0 or an overflowing n is InvalidLayout.
  template <class T>
  Result<Array<T>> try_alloc_array(std::size_t n) {
    Result<void*> raw = source().try_alloc_raw(array_layout<T>(n));
    if (!raw) return raw.error();
    return construct_array<T>(*raw, n);
  }

  // n elements, each T(make()); make is called n times with no arguments.
  template <class T, class Make>
  Result<Array<T>> try_alloc_array_with(std::size_t n, Make make) {
    Result<void*> raw = source().try_alloc_raw(array_layout<T>(n));
    if (!raw) return raw.error();
    return construct_array_with<T>(*raw, n, make);
  }

  // Room for `capacity` elements, none constructed yet.
  template <class T>
  Result<FixedVec<T>> try_alloc_fixed_vec(std::size_t capacity) {
    Result<void*> raw = source().try_alloc_raw(array_layout<T>(capacity));
    if (!raw) return raw.error();
    return construct_fixed_vec<T>(*raw, capacity);
  }

 private:
  Source& source() noexcept { return static_cast<Source&>(*this); }
};

}  // namespace mnemos::detail
