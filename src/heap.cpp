// The non-template core of Heap: bootstrap, the allocation and free paths, the
// drain of deferred frees, stats and check.
#include "mnemos/heap.hpp"

#include <new>

namespace mnemos {

Result<Heap*> Heap::bootstrap(std::span<std::byte> region, Options options) noexcept {
  if (detail::addr(region.data()) % alignof(Heap) != 0) return Error::RegionMisaligned;
  if (region.size() < sizeof(Heap)) return Error::RegionTooSmall;
  // Placement of the heap state at the region's start: aligned (checked above),
  // large enough (checked above), and the region is the caller's raw storage.
  Heap* heap = ::new (static_cast<void*>(region.data())) Heap(options);
  if (!heap->backend_.init(region.data() + sizeof(Heap), region.size() - sizeof(Heap))) {
    heap->~Heap();
    return Error::RegionTooSmall;
  }
  return heap;
}

std::optional<Heap::Guard> Heap::try_lock() noexcept {
  if (!lock_.try_lock()) return std::nullopt;
  return Guard(this);
}

std::optional<Error> Heap::reject(Layout layout) const noexcept {
  if (!layout.valid()) return Error::InvalidLayout;
  const std::optional<detail::BlockRequest> request = detail::block_request(layout);
  if (!request || !backend_.fits_when_empty(request->size, request->align)) return Error::TooLarge;
  return std::nullopt;
}

Result<void*> Heap::try_alloc_raw(Layout layout) noexcept {
  if (std::optional<Error> error = reject(layout)) return *error;
  if (!lock_.try_lock()) return Error::Locked;
  Result<void*> result = alloc_locked(layout);
  unlock();
  return result;
}

Result<void*> Heap::alloc_locked(Layout layout) noexcept {
  // "Returned before the next allocation": a relaxed load when nothing is queued.
  drain_pending();
  const detail::BlockRequest request = *detail::block_request(layout);  // reject() passed
  const std::size_t size = block_size(request);
  void* block = backend_.allocate(request.size, request.align);
  if (block == nullptr) {
    alloc_no_memory_count_.add(1);
    return Error::NoMemory;
  }
  void* payload = detail::payload_of(block, layout.align);
  // The header word lies inside the block, before the payload (block_header.hpp).
  *detail::header_slot(payload) = this;
  alloc_count_.add(1);
  allocated_bytes_.add(size);
  if (allocated_bytes_.get() > peak_allocated_bytes_.get()) peak_allocated_bytes_.set(allocated_bytes_.get());
  return payload;
}

void Heap::return_block(void* block, std::size_t size) noexcept {
  backend_.deallocate(block, size);
  allocated_bytes_.sub(size);
  free_count_.add(1);
}

void Heap::free_locked(void* payload, Layout layout) noexcept {
  const detail::BlockRequest request = *detail::block_request(layout);
  return_block(detail::block_start(payload, layout.align), block_size(request));
}

void Heap::free_raw(void* payload, Layout layout) noexcept { detail::deallocate(payload, layout); }

void Heap::free_any_context(void* payload, Layout layout) noexcept {
  const detail::BlockRequest request = *detail::block_request(layout);
  void* block = detail::block_start(payload, layout.align);
  const std::size_t size = block_size(request);
  switch (lock_.lock_or_push(block, size)) {
    case detail::HeapLock::FreeRoute::TookLock:
      return_block(block, size);
      unlock();
      return;
    case detail::HeapLock::FreeRoute::Deferred:
      // relaxed: a statistic; the push itself carries the ordering.
      deferred_pending_.fetch_add(1, detail::mo_relaxed);
      return;
  }
}

std::size_t Heap::drain(detail::DeferredNode* list) noexcept {
  std::size_t n = 0;
  while (list != nullptr) {
    // Read the link before the backend reuses the node's bytes.
    detail::DeferredNode* next = list->next;
    return_block(list, list->block_size);
    list = next;
    ++n;
  }
  deferred_free_count_.add(n);
  // relaxed: a statistic (see deferred_pending_).
  deferred_pending_.fetch_sub(static_cast<std::ptrdiff_t>(n), detail::mo_relaxed);
  return n;
}

std::size_t Heap::drain_pending() noexcept { return drain(lock_.take_all()); }

std::size_t Heap::unlock() noexcept {
  std::size_t n = 0;
  while (detail::DeferredNode* list = lock_.unlock_or_take()) n += drain(list);
  return n;
}

std::size_t Heap::poll() noexcept {
  if (!lock_.try_lock()) return 0;
  return unlock();
}

Stats Heap::stats() const noexcept {
  Stats s;
  s.capacity_bytes = backend_.capacity();  // constant after bootstrap
  s.allocated_bytes = allocated_bytes_.get();
  s.free_bytes = s.capacity_bytes - s.allocated_bytes;
  s.peak_allocated_bytes = peak_allocated_bytes_.get();
  s.alloc_count = alloc_count_.get();
  s.alloc_no_memory_count = alloc_no_memory_count_.get();
  s.free_count = free_count_.get();
  s.deferred_free_count = deferred_free_count_.get();
  const std::ptrdiff_t pending = deferred_pending_.load(detail::mo_relaxed);
  s.deferred_pending = pending > 0 ? static_cast<std::size_t>(pending) : 0;
  return s;
}

CheckReport Heap::check() noexcept {
  if (!lock_.try_lock()) return CheckReport{CheckFailure::Busy, this};
  CheckReport report = check_locked();
  unlock();
  return report;
}

CheckReport Heap::check_locked() const noexcept {
  CheckReport report = backend_.check();
  if (!report.ok()) return report;
  if (allocated_bytes_.get() + backend_.free_bytes() != backend_.capacity()) {
    return CheckReport{CheckFailure::StatsMismatch, this};
  }
  return report;
}

Result<void*> Heap::Guard::try_alloc_raw(Layout layout) noexcept {
  if (std::optional<Error> error = heap_->reject(layout)) return *error;
  return heap_->alloc_locked(layout);
}

void Heap::Guard::free_raw(void* payload, Layout layout) noexcept {
  // An impossible layout cannot name a block: ignoring it loses nothing that was
  // ever allocated (the fault report comes with hardening).
  if (payload == nullptr || !layout.valid()) return;
  if (*detail::header_slot(payload) != heap_) {
    Heap::free_raw(payload, layout);
    return;
  }
  heap_->free_locked(payload, layout);
}

namespace detail {
void deallocate(void* payload, Layout layout) noexcept {
  if (payload == nullptr || !layout.valid()) return;  // as in Guard::free_raw
  (*header_slot(payload))->free_any_context(payload, layout);
}
}  // namespace detail

}  // namespace mnemos
