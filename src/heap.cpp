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
#include "mnemos/detail/hardening.hpp"
#include "mnemos/fault.hpp"

namespace mnemos {

Result<Heap*> Heap::bootstrap(std::span<std::byte> region, Options options) noexcept {
  if (detail::addr(region.data()) % alignof(Heap) != 0) return Error::RegionMisaligned;
  if (!detail::AnyBackend::valid(options.backend)) return Error::InvalidLayout;
  // Hardening stores the heap's address bits 47..3 in every header
  // (hardening.hpp): a heap above 2^48 (no mainstream 64-bit ABI places user
  // memory there by default) cannot be encoded.
  if (detail::kHardening && (detail::addr(region.data()) & ~detail::kHeapMask) != 0) return Error::RegionMisaligned;
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
  // outside its blocks (TLSF's marks, list heads and scratch granules, all
  // below arena_begin()); the few bytes init() aligned away at the end (less
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
  // valid() bounds size by PTRDIFF_MAX - (align - 1), so header + payload
  // cannot overflow: block_request() has a value.
  const detail::BlockRequest request = *detail::block_request(layout);
  if (!backend_.fits_when_empty(request.size, request.align)) return Error::TooLarge;
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
  // nullptr: no room (or a failure scheduled by the fault-injection wrapper,
  // detail/any_backend.hpp, which looks exactly the same).
  void* block = backend_.allocate(request.size, request.align);
  if (block == nullptr) return nullptr;
  void* payload = detail::payload_of(block, layout.align);
  // ASan: the block comes out of the backend poisoned; only the payload becomes
  // addressable (padding and the header word stay poisoned). Every allocation,
  // the waiters' hand-overs in serve_head() included, passes here.
  detail::asan_unpoison(payload, layout.size);
  // The header word lies inside the block, before the payload (block_header.hpp).
  // asan_store: a plain store, opening the poisoned word just for it under ASan.
  // Encoded and bound to this block under MNEMOS_HARDENING (hardening.hpp).
  detail::asan_store<std::uintptr_t>(
      detail::header_slot(payload),
      detail::live_header(this, payload, detail::header_size_class(request), layout.align));
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

// Hardening: overwrites the header of a block being freed with the freed
// scrub, so a second free of it is a recognised double free (hardening.hpp).
// The block is the caller's until it is pushed or returned.
static void scrub_header(const Heap* heap, void* payload, const detail::BlockRequest& request,
                         std::size_t align) noexcept {
  if constexpr (detail::kHardening) {
    // Alignment >= 32: the freed encoding, naming the heap; below, the word is
    // (usually) overwritten by a node at once, so a constant "freed" word is
    // enough and costs no CRC (hardening.hpp).
    const std::uintptr_t scrub = align >= 32
                                     ? detail::freed_header(heap, payload, detail::header_size_class(request), align)
                                     : static_cast<std::uintptr_t>(detail::kFreeWordTag);
    detail::asan_store<std::uintptr_t>(detail::header_slot(payload), scrub);
  }
}

void Heap::free_locked(void* payload, Layout layout) noexcept {
  const detail::BlockRequest request = *detail::block_request(layout);
  scrub_header(this, payload, request, layout.align);
  return_block(detail::block_start(payload, layout.align), block_size(request));
}

void Heap::free_raw(void* payload, Layout layout) noexcept { detail::deallocate(payload, layout); }

void Heap::free_any_context(void* payload, Layout layout) noexcept {
  const detail::BlockRequest request = *detail::block_request(layout);
  void* block = detail::block_start(payload, layout.align);
  const std::size_t size = block_size(request);
  // Before anything else: the header word is scrubbed, so a second free of this
  // block is a recognised double free (for alignment <= 16 the DeferredNode or
  // the backend's node may overwrite it again; see hardening.hpp).
  scrub_header(this, payload, request, layout.align);
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
  // The size the node carries is tagged under hardening (tag_free_size): for
  // alignment <= 8 it lands on the header word (deferred_node.hpp).
  if (lock_.lock_or_push(block, detail::tag_free_size(size)) == detail::HeapLock::FreeRoute::TookLock) {
    return_block(block, size);
    unlock();
    return;
  }
  // Deferred. relaxed: a statistic; the push itself carries the ordering.
  deferred_pending_.fetch_add(1, detail::mo_relaxed);
}

bool Heap::deferred_node_intact(const detail::DeferredNode* at, const detail::DeferredNode& node) const noexcept {
  const std::size_t size = detail::untag_free_size(node.block_size);
  // A free word has its low three bits clear (is_free_word): size is a multiple of 8.
  if (!detail::is_free_word(node.block_size) || size < sizeof(detail::DeferredNode)) return false;
  if (!arena_holds(at, size)) return false;
  if (node.next == nullptr) return true;
  return detail::addr(node.next) % alignof(detail::DeferredNode) == 0 &&
         arena_holds(node.next, sizeof(detail::DeferredNode));
}

std::size_t Heap::drain(detail::DeferredNode* list) noexcept {
  std::size_t n = 0;
  // A chain longer than the arena has blocks would be a cycle (a corrupted link).
  const std::size_t most = backend_.capacity() / sizeof(detail::DeferredNode);
  while (list != nullptr) {
    // Copy the node before the backend reuses its bytes (it is addressable
    // under ASan: free_any_context left its 16 bytes open).
    const detail::DeferredNode node = *list;
    if constexpr (detail::kHardening) {
      if (n == most || !deferred_node_intact(list, node)) {
        // Neither this block's size nor the rest of the chain can be trusted:
        // they stay counted as allocated (so check() still balances) and are
        // never reused. The lock is held: the handler must not use this heap.
        detail::report_fault(FaultKind::CorruptArena, list, this);
        break;
      }
      // The link is copied: put the freed scrub back over it (for alignment
      // 16 it is the block's header word), so the block reaches the backend
      // as a direct free would leave it (hardening.hpp). Sound: the node's 16
      // bytes are still the queue's (addressable under ASan), and the word
      // becomes a plain integer, never read as a link again.
      detail::asan_store<std::uintptr_t>(static_cast<void*>(&list->next),
                                         static_cast<std::uintptr_t>(detail::kFreeWordTag));
    }
    return_block(list, detail::untag_free_size(node.block_size));
    list = node.next;
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
  std::size_t deferred = 0;
  report = check_deferred(deferred);
  if (!report.ok()) return report;
  // Invariant 2: a queued block still counts as allocated until it is
  // drained, so free + live + deferred = allocated + free = capacity, and the
  // queued bytes are part of the allocated ones.
  if (allocated_bytes_.get() + backend_.free_bytes() != backend_.capacity() || deferred > allocated_bytes_.get()) {
    return CheckReport{CheckFailure::StatsMismatch, this};
  }
  return report;
}

namespace {
bool overlap(const void* a, std::size_t a_size, const void* b, std::size_t b_size) noexcept {
  return detail::addr(a) < detail::addr(b) + b_size && detail::addr(b) < detail::addr(a) + a_size;
}
}  // namespace

// Walks the queue from the lock word's head. The lock is held, so no node is
// taken or drained meanwhile; other contexts may push in front of the head
// read here, which leaves the chain from it unchanged (a push writes only its
// own node). Each link is validated (in the arena, aligned) before the node it
// names is read, and each node is compared with those before it, so a cycle
// is found when it closes and the walk never reads outside the arena nor runs
// longer than the arena has room for nodes. O(nodes^2 + nodes * free blocks).
CheckReport Heap::check_deferred(std::size_t& bytes) const noexcept {
  bytes = 0;
  // An acquire load of the lock word (HeapLock::peek_deferred): pairs with
  // the pushes' release, so the nodes read below are as their pushers wrote them.
  const detail::DeferredNode* const head = lock_.peek_deferred();
  const void* from = this;  // whoever holds the link being followed
  std::size_t count = 0;
  for (const detail::DeferredNode* node = head; node != nullptr;) {
    if (!arena_holds(node, sizeof(detail::DeferredNode))) return {CheckFailure::DeferredOutOfBounds, from};
    if (detail::addr(node) % alignof(detail::DeferredNode) != 0) return {CheckFailure::DeferredMisaligned, from};
    // The nodes before this one, already validated: a repeat closes a cycle.
    const detail::DeferredNode* earlier = head;
    for (std::size_t i = 0; i < count; ++i, earlier = earlier->next) {
      if (earlier == node) return {CheckFailure::DeferredCycle, node};
    }
    // Sound: in the arena and aligned (above); its 16 bytes are the queue's
    // (addressable under ASan until drained, see the top of this file).
    const detail::DeferredNode copy = *node;
    const std::size_t size = detail::untag_free_size(copy.block_size);
    const bool tagged = !detail::kHardening || detail::is_free_word(copy.block_size);
    if (!tagged || size < sizeof(detail::DeferredNode) || size % 8 != 0 || !arena_holds(node, size)) {
      return {CheckFailure::DeferredBadSize, node};
    }
    earlier = head;
    for (std::size_t i = 0; i < count; ++i, earlier = earlier->next) {
      if (overlap(node, size, earlier, detail::untag_free_size(earlier->block_size))) {
        return {CheckFailure::DeferredOverlap, node};
      }
    }
    bool on_free_space = false;
    backend_.for_each_hole([&](const std::byte* start, std::size_t length) {
      on_free_space = on_free_space || overlap(node, size, start, length);
    });
    if (on_free_space) return {CheckFailure::DeferredOverlap, node};
    bytes += size;  // no overflow: the blocks are disjoint and in the arena
    ++count;
    from = node;
    node = copy.next;
  }
  return {};
}

Result<void*> Heap::Guard::try_alloc_raw(Layout layout) noexcept {
  // Same checks and inhibit as Heap::try_alloc_raw, without the lock's atomics.
  if (std::optional<Error> error = heap_->reject(layout)) return *error;
  return heap_->alloc_locked(layout);
}

void Heap::Guard::free_raw(void* payload, Layout layout) noexcept {
  if (payload == nullptr) return;
  Heap* const owner = Heap::owner_of(payload, layout);
  if (owner == nullptr) return;  // reported (hardening) or an impossible layout: ignored
  if (owner != heap_) {
    owner->free_any_context(payload, layout);  // another heap's block: its own free path
    return;
  }
  heap_->free_locked(payload, layout);
}

bool Heap::arena_holds(const void* block, std::size_t size) const noexcept {
  const std::uintptr_t begin = detail::addr(backend_.arena_begin());
  const std::uintptr_t end = detail::addr(backend_.arena_end());
  const std::uintptr_t b = detail::addr(block);
  return b >= begin && b <= end && size <= end - b;
}

Heap* Heap::owner_of(void* payload, Layout layout) noexcept {
  if constexpr (!detail::kHardening) {
    // An impossible layout cannot name a block: ignoring it loses nothing that
    // was ever allocated. asan_load: a plain load; under ASan it opens the
    // poisoned header word for the read and poisons it again.
    if (!layout.valid()) return nullptr;
    return detail::header_heap_unchecked(detail::asan_load(detail::header_slot(payload)));
  } else {
    // Each test before the header is read: the word before a misaligned pointer
    // cannot be read soundly, and an impossible layout names no block.
    if (detail::addr(payload) % detail::kHeaderSize != 0) {
      detail::report_fault(FaultKind::Misaligned, payload, nullptr);
      return nullptr;
    }
    const std::optional<detail::BlockRequest> request =
        layout.valid() ? detail::block_request(layout) : std::nullopt;
    if (!request) {
      detail::report_fault(FaultKind::BadLayout, payload, nullptr);
      return nullptr;
    }
    if (detail::addr(payload) % layout.align != 0) {
      detail::report_fault(FaultKind::Misaligned, payload, nullptr);
      return nullptr;
    }
    // asan_load: see above. The word is a header, a scrub, a node's size, or
    // whatever precedes a pointer we never handed out.
    const std::uint64_t word = detail::asan_load(detail::header_slot(payload));
    const detail::HeaderKey key{detail::addr(payload), detail::header_size_class(*request),
                                detail::header_offset(layout.align)};
    if (detail::header_matches(word, key, detail::kLiveTag)) {
      Heap* const heap = detail::header_heap_unchecked(word);
      // The check binds heap, address and size; a block outside the heap's
      // arena means a collision of the 16-bit check (or a forgery).
      if (heap->arena_holds(detail::block_start(payload, layout.align), heap->block_size(*request))) return heap;
      detail::report_fault(FaultKind::ForeignPointer, payload, nullptr);
      return nullptr;
    }
    if (detail::header_matches(word, key, detail::kFreedTag)) {
      detail::report_fault(FaultKind::DoubleFree, payload, detail::header_heap_unchecked(word));
      return nullptr;
    }
    // A freed word: the scrub, or what the queue or a backend wrote over it
    // (hardening.hpp). Else, for alignment <= 16, a node's link may lie on the
    // header word (first fit's or the queue's next pointer): the node's first
    // word, just before it, is then its tagged size, and the node spans the
    // whole block (it starts at the block for alignment 16, 8 bytes before it
    // for alignment <= 8). Only a word shaped like a link leads to that second
    // read, and no single changed byte turns a live header into one (its tag
    // and check bits would both have to go), so a smashed header is never
    // taken for a double free this way. The word before lies in the same
    // 16-byte block for alignment 16; for alignment <= 8 it is the word before
    // the header word (see README, Limits).
    const auto node_before = [&]() {
      // asan_load: see above (the word may be poisoned free space).
      const std::uint64_t before = detail::asan_load(detail::header_slot(payload) - 1);
      const std::size_t spans = key.block_size + (layout.align <= detail::kHeaderSize ? detail::kHeaderSize : 0);
      return detail::is_free_word(before) && detail::untag_free_size(static_cast<std::size_t>(before)) >= spans;
    };
    // The second read stays on the header word's own 4 KiB page (no MMU page
    // is smaller), so a foreign pointer just past a page boundary is reported,
    // not a fault on the page before; a double free whose header word starts
    // a page is then named ForeignPointer (README, Limits).
    const bool before_on_same_page = (detail::addr(detail::header_slot(payload)) % 4096) != 0;
    if (detail::is_freed_word(word) ||
        (layout.align <= 16 && detail::is_link_word(word) && before_on_same_page && node_before())) {
      detail::report_fault(FaultKind::DoubleFree, payload, nullptr);
      return nullptr;
    }
    // One byte away from a live header: a smashed header. Tried only for words
    // that could be one (a header's tag, or check bits set): a pointer, a size
    // or zero, the usual words before a foreign pointer, is never "repaired"
    // into a header by chance.
    std::uintptr_t named = 0;
    const bool header_like = (word & detail::kTagMask) == detail::kLiveTag || (word >> detail::kCheckShift) != 0;
    if (header_like && detail::repair_single_byte(word, key, named)) {
      // The address the repaired header names, only reported (never
      // dereferenced): the integer came from a heap pointer in live_header().
      detail::report_fault(FaultKind::CorruptHeader, payload, reinterpret_cast<const Heap*>(named));
      return nullptr;
    }
    // A header's tag and check bits but more than one byte off: most likely
    // the block freed with another size class or alignment than it was
    // allocated with (or a header smashed in several bytes). Anything else
    // was never a header (a TLSF node's granule count may end in 0b101, but
    // its top 16 bits are clear).
    const bool tagged = (word & detail::kTagMask) == detail::kLiveTag && (word >> detail::kCheckShift) != 0;
    detail::report_fault(tagged ? FaultKind::BadLayout : FaultKind::ForeignPointer, payload, nullptr);
    return nullptr;
  }
}

namespace detail {
void deallocate(void* payload, Layout layout) noexcept {
  if (payload == nullptr) return;
  Heap* const owner = Heap::owner_of(payload, layout);
  if (owner == nullptr) return;  // reported (hardening) or an impossible layout: ignored
  owner->free_any_context(payload, layout);
}
}  // namespace detail

}  // namespace mnemos
