// StdAllocator<T>: a standard Allocator whose memory comes from a Heap, for
// std::vector<T, StdAllocator<T>>, std::list, std::map and the rest.
//
//   mnemos::StdAllocator<int> alloc(heap);
//   std::vector<int, mnemos::StdAllocator<int>> v(alloc);   // every byte from the heap
//
// Hosted and header-only, like MemoryResource (mnemos/memory_resource.hpp),
// whose failure policy it shares: a failed allocation throws std::bad_alloc
// (std::bad_array_new_length when n * sizeof(T) overflows) when exceptions are
// enabled; with them disabled it calls the allocation-failure handler and
// aborts if that returns. Never a null pointer. Locked is a failure unless the
// allocator was given locked retries.
//
// Versus std::pmr::polymorphic_allocator over a MemoryResource: no virtual call
// and no resource object, and the heap travels with the container's contents
// (see the propagate_on_container_* choices below), where a pmr container
// stays on the resource it was built with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

#include "mnemos/heap.hpp"
#include "mnemos/memory_resource.hpp"

namespace mnemos {
inline namespace MNEMOS_DETAIL_STD_ABI {

/// An Allocator (the standard's named requirement) over a Heap: a heap
/// pointer and a retry count, copied freely; copies and rebinds allocate from
/// the same heap. Not default-constructible: a container must be given one.
/// Every member may be called from any thread (the heap synchronizes);
/// deallocate also from an interrupt handler.
template <class T>
class StdAllocator {
 public:
  using value_type = T;                     ///< the element type
  using size_type = std::size_t;            ///< as std::allocator's
  using difference_type = std::ptrdiff_t;   ///< as std::allocator's

  /// The heap follows the contents. Copy assignment, move assignment and swap
  /// hand the source's heap to the destination along with its elements, so:
  /// a move assignment is O(1) and noexcept whatever the heaps, and swapping
  /// two containers on different heaps is defined (with non-propagating,
  /// unequal allocators it is undefined behaviour). A container that must stay
  /// on one arena whatever is assigned to it wants std::pmr instead.
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;  ///< true: see propagate_on_container_copy_assignment
  using propagate_on_container_swap = std::true_type;             ///< true: see propagate_on_container_copy_assignment
  /// Two allocators are equal only on the same heap.
  using is_always_equal = std::false_type;

  /// Allocates from `heap` (which must outlive every block). `locked_retries`:
  /// extra immediate attempts while the heap is Locked (MemoryResource::Options).
  explicit StdAllocator(Heap& heap, unsigned locked_retries = 0) noexcept
      : heap_(&heap), locked_retries_(locked_retries) {}

  /// Rebinding (a list's allocator for its nodes): the same heap and retries.
  template <class U>
  StdAllocator(const StdAllocator<U>& other) noexcept  // NOLINT: implicit by the Allocator requirements
      : heap_(&other.heap()), locked_retries_(other.locked_retries()) {}

  /// Storage for n objects of T, aligned to alignof(T) (over-aligned T too),
  /// uninitialised; n == 0 still returns a unique block. Fails (by the policy
  /// above) when n * sizeof(T) overflows or the heap refuses: NoMemory,
  /// Locked, TooLarge, Closed. Cost: one try_alloc_raw per attempt.
  [[nodiscard]] T* allocate(std::size_t n) {
    if (n > SIZE_MAX / sizeof(T)) {
#if MNEMOS_DETAIL_STD_EXCEPTIONS
      throw std::bad_array_new_length();
#else
      std_detail::std_alloc_failed(AllocFailure{Error::InvalidLayout, Layout{SIZE_MAX, alignof(T)}, heap_});
#endif
    }
    // The heap aligns the block; the bytes become T objects only when the
    // container constructs them (allocate returns storage, as std::allocator).
    return static_cast<T*>(std_detail::std_allocate(*heap_, layout_for(n), locked_retries_));
  }

  /// Returns storage from allocate(n) with the same n: Heap::free_raw, which
  /// never blocks or fails (misuse goes to the fault handler).
  void deallocate(T* p, std::size_t n) noexcept { Heap::free_raw(p, layout_for(n)); }

  /// The heap it allocates from.
  Heap& heap() const noexcept { return *heap_; }
  /// Extra immediate attempts while the heap is Locked (see the constructor).
  unsigned locked_retries() const noexcept { return locked_retries_; }

 private:
  // Precondition: n * sizeof(T) does not overflow (allocate checked it, and
  // deallocate receives an n that allocate accepted).
  static constexpr Layout layout_for(std::size_t n) noexcept {
    return std_detail::std_layout(n * sizeof(T), alignof(T));
  }

  Heap* heap_;
  unsigned locked_retries_;
};

/// Equal when on the same heap: memory from one may be freed through the other
/// (the retry count is a policy of the allocating side only).
template <class T, class U>
bool operator==(const StdAllocator<T>& a, const StdAllocator<U>& b) noexcept {
  return &a.heap() == &b.heap();
}

}  // namespace MNEMOS_DETAIL_STD_ABI
}  // namespace mnemos
