// The non-template core of Heap: bootstrap, the allocation and free paths, the
// drain of deferred frees, stats and check.
//
// Under AddressSanitizer (detail/asan.hpp) the heap keeps the arena poisoned
// except for what a user may touch, so ASan reports a use-after-free, or an
// overflow into a neighbour, a header or free space, even though the arena is
// one object to it:
//   never allocated, free (in the backend)  poisoned, the backend's nodes too
//                                           (opened only inside its calls)
//   live block   alignment padding          poisoned
//                header word                poisoned (opened only for the
//                                           heap's own read or write)
//                payload (layout.size)      addressable; the rounding tail is
//                                           poisoned as far as the 8-byte
//                                           granule allows
//   deferred     first 16 bytes             addressable: the DeferredNode the
//   block                                   lock word links, until drained
//                the rest                   poisoned
// Transitions: bootstrap poisons the arena; carve() unpoisons a payload (every
// allocation, waiters' hand-overs included, goes through it); a free from any
// context poisons the block but its first 16 bytes before it may be deferred;
// return_block() poisons the whole block. Without ASan all of it compiles to
// nothing.
#include "mnemos/heap.hpp"

#include <new>

#include "mnemos/detail/asan.hpp"

namespace mnemos {

Result<Heap*> Heap::bootstrap(std::span<std::byte> region, Options options) noexcept {
  if (detail::addr(region.data()) % alignof(Heap) != 0) return Error::RegionMisaligned;
  if (region.size() < sizeof(Heap)) return Error::RegionTooSmall;
  // The region is handed over whole: it may still carry the poisoning of a heap
  // bootstrapped in it before (ASan only; a no-op otherwise).
  detail::asan_unpoison(region.data(), region.size());
  // Placement of the heap state at the region's start: aligned (checked above),
  // large enough (checked above), and the region is the caller's raw storage.
  Heap* heap = ::new (static_cast<void*>(region.data())) Heap(options);
  if (!heap->backend_.init(region.data() + sizeof(Heap), region.size() - sizeof(Heap))) {
    heap->~Heap();
    return Error::RegionTooSmall;
  }
  // The backend's blocks are all never-allocated now: poisoned, its first node
  // included. Only that range: the Heap object (the backend's head_ sentinel
  // included) is never poisoned, nor is metadata a backend keeps in the region
  // outside its blocks; the few bytes init() aligned away at the end (less
  // than a granule) are left alone.
  detail::asan_poison(heap->backend_.arena_begin(),
                      static_cast<std::size_t>(heap->backend_.arena_end() - heap->backend_.arena_begin()));
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
  // acquire: pairs with close()'s release store.
  if (closed_.load(detail::mo_acquire)) return Error::Closed;
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
  // Inhibit: older waiting requests come first (invariant 4); the release of
  // this lock serves them.
  void* payload = lock_.has_waiters() ? nullptr : carve(layout);
  if (payload == nullptr) {
    alloc_no_memory_count_.add(1);
    return Error::NoMemory;
  }
  return payload;
}

void* Heap::carve(Layout layout) noexcept {
  const detail::BlockRequest request = *detail::block_request(layout);  // reject() passed
  void* block = backend_.allocate(request.size, request.align);
  if (block == nullptr) return nullptr;
  void* payload = detail::payload_of(block, layout.align);
  // ASan: the block comes out of the backend poisoned; only the payload becomes
  // addressable (padding and the header word stay poisoned). Every allocation,
  // the waiters' hand-overs in serve_head() included, passes here.
  detail::asan_unpoison(payload, layout.size);
  // The header word lies inside the block, before the payload (block_header.hpp).
  // asan_store: a plain store, opening the poisoned word just for it under ASan.
  detail::asan_store<Heap*>(detail::header_slot(payload), this);
  alloc_count_.add(1);
  allocated_bytes_.add(block_size(request));
  if (allocated_bytes_.get() > peak_allocated_bytes_.get()) peak_allocated_bytes_.set(allocated_bytes_.get());
  return payload;
}

void Heap::return_block(void* block, std::size_t size) noexcept {
  // ASan: the whole block becomes free bytes (payload, header, padding, or the
  // DeferredNode of a drained free); the backend opens its node just to write it.
  detail::asan_poison(block, size);
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
  // ASan: the block is freed, so it is poisoned now (a use-after-free while it
  // waits in the deferred queue is reported too), except its first 16 bytes:
  // lock_or_push may write a DeferredNode there (over the header word and the
  // payload's first word, or the alignment padding) and the drain reads it
  // back. They stay addressable until return_block() poisons the whole block.
  // This thread owns the block, so no other thread writes the shadow of these
  // granules meanwhile; the push's release (and the drain's acquire) order
  // these shadow writes before the drainer's.
  detail::asan_poison(block, size);
  detail::asan_unpoison(block, sizeof(detail::DeferredNode));
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
  const std::size_t drained = release_lock();
  run_wakes();
  return drained;
}

// The release handshake. Every CAS here is on the lock word, so a push, a
// WAITERS change or a SERVE request that lands after `w` was read makes
// try_release fail, and the loop handles it before releasing:
//   deferred head  -> drain it (the "no stranded frees" guarantee);
//   SERVE          -> serve the waiters again (one left or arrived meanwhile);
//   WAITERS        -> serve them once per reading of the word (frees may have
//                     made room for the head).
std::size_t Heap::release_lock() noexcept {
  std::size_t drained = 0;
  std::uintptr_t w = lock_.load();
  for (;;) {
    if (detail::HeapLock::head_of(w) != nullptr) {
      drained += drain_pending();
    } else if ((w & detail::HeapLock::kServe) != 0) {
      lock_.clear_serve();
      serve_waiters();
    } else {
      if ((w & detail::HeapLock::kWaiters) != 0) serve_waiters();
      if (lock_.try_release(w)) return drained;
      continue;  // try_release reloaded w
    }
    w = lock_.load();
  }
}

void Heap::serve_waiters() noexcept {
  // Never spins: this may be an interrupt handler's free. If the queue lock is
  // busy, its holder finds the request when it releases and kicks the heap.
  if (!waiters_.try_lock_or_request_service()) return;
  do {
    serve_head();
  } while (!waiters_.release_unless_service_requested());
}

void Heap::serve_head() noexcept {
  // FIFO: only the head may be served; if it does not fit, younger waiters wait
  // behind it even when they would fit (invariant 4). The block is handed over
  // before the wake, so a wake always finds its block (no spurious wakes).
  while (detail::WaitNode* node = waiters_.front()) {
    void* payload = carve(node->layout);
    if (payload == nullptr) break;
    node->block = payload;
    complete_waiter(node, detail::WaitNode::Outcome::Ready);
  }
}

void Heap::kick() noexcept {
  if (lock_.lock_or_request_serve()) unlock();
}

void Heap::release_wait_queue() noexcept {
  if (waiters_.release()) kick();
  run_wakes();
}

void Heap::run_wakes() noexcept {
  while (waiters_.wakes_pending()) {
    // Whoever holds the queue lock now runs the wakes after releasing it.
    if (!waiters_.try_lock()) return;
    Waker waker;
    detail::WaitNode* node = waiters_.pop_wake(waker);
    const bool service_requested = waiters_.release();
    if (service_requested && lock_.lock_or_request_serve()) release_lock();
    if (node != nullptr) detail::WaitQueue::call(node, waker);
  }
}

void Heap::enqueue_waiter(detail::WaitNode* node) noexcept {
  if (waiters_.empty()) lock_.set_waiters(true);
  waiters_.push_back(node);
  waiter_count_.add(1);
  wait_count_.add(1);
}

void Heap::dequeue_waiter(detail::WaitNode* node) noexcept {
  waiters_.unlink(node);
  waiter_count_.sub(1);
  if (waiters_.empty()) lock_.set_waiters(false);
}

void Heap::complete_waiter(detail::WaitNode* node, detail::WaitNode::Outcome outcome) noexcept {
  waiters_.complete(node, outcome);
  waiter_count_.sub(1);
  if (waiters_.empty()) lock_.set_waiters(false);
}

void Heap::close() noexcept {
  waiters_.lock();
  // release: pairs with the acquire loads in reject() and the subscription.
  closed_.store(true, detail::mo_release);
  while (detail::WaitNode* node = waiters_.front()) complete_waiter(node, detail::WaitNode::Outcome::Closed);
  release_wait_queue();
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
  s.waiters = waiter_count_.get();
  s.wait_count = wait_count_.get();
  s.spurious_wake_count = spurious_wake_count_.get();
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
  // Same checks and inhibit as Heap::try_alloc_raw, without the lock's atomics.
  if (std::optional<Error> error = heap_->reject(layout)) return *error;
  return heap_->alloc_locked(layout);
}

void Heap::Guard::free_raw(void* payload, Layout layout) noexcept {
  // An impossible layout cannot name a block: ignoring it loses nothing that was
  // ever allocated (the fault report comes with hardening).
  if (payload == nullptr || !layout.valid()) return;
  if (detail::asan_load(detail::header_slot(payload)) != heap_) {
    Heap::free_raw(payload, layout);
    return;
  }
  heap_->free_locked(payload, layout);
}

namespace detail {
void deallocate(void* payload, Layout layout) noexcept {
  if (payload == nullptr || !layout.valid()) return;  // as in Guard::free_raw
  // asan_load: a plain load; under ASan it opens the poisoned header word for
  // the read and poisons it again.
  asan_load(header_slot(payload))->free_any_context(payload, layout);
}
}  // namespace detail

}  // namespace mnemos
