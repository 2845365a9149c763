/// @file
/// @brief Heap: an arena placed inside a caller's region, a try-lock that never blocks,
/// and a deferred-free queue so that frees never block either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "mnemos/alloc_future.hpp"
#include "mnemos/backend.hpp"
#include "mnemos/check.hpp"
#include "mnemos/detail/alloc_wait.hpp"
#include "mnemos/detail/atomic.hpp"
#include "mnemos/detail/block_header.hpp"
#include "mnemos/detail/deallocate.hpp"
#include "mnemos/detail/any_backend.hpp"
#include "mnemos/detail/heap_lock.hpp"
#include "mnemos/detail/typed_alloc.hpp"
#include "mnemos/detail/wait_queue.hpp"
#include "mnemos/error.hpp"
#include "mnemos/layout.hpp"
#include "mnemos/result.hpp"
#include "mnemos/stats.hpp"

namespace mnemos {

struct heap_test_access;

/// The options of Heap::bootstrap, chosen once per heap. (At namespace scope so
/// it can be a default argument of Heap's own members; spelled Heap::Options.)
struct HeapOptions {
  /// First fit (O(free blocks) per call, no metadata) or TLSF (O(1) per call
  /// with a bounded worst case; about 1.6% of the region for its marks and
  /// class heads). Both give the same block sizes, so the same one-pointer
  /// overhead per allocation and the same Stats; see mnemos/backend.hpp.
  Backend backend = Backend::FirstFit;
};

/// An allocator over an arena inside a caller's region, created by bootstrap().
///
/// A try-lock that never blocks guards it, and a deferred-free queue makes
/// frees never block either.
///
/// Thread safety: every member may be called from any thread. free_raw and the
/// owners' destructors may also be called from interrupt handlers: they never
/// block and never fail. Allocation never blocks either: it fails with Locked
/// when another context holds the lock.
///
/// Besides try_alloc_raw, the synchronous typed family (inherited; Heap::Guard
/// has the same one) fails with try_alloc_raw's errors and costs the same:
///   - `try_alloc<T>(args...)` gives a `Result<Box<T>>`: one T from args
///     (T(args...), or aggregate T{args...});
///   - `try_alloc_arc<T>(args...)` gives a `Result<Arc<T>>`;
///   - `try_alloc_array<T>(n)` gives a `Result<Array<T>>`: n value-initialised
///     elements; n == 0 or an overflowing n is InvalidLayout;
///   - `try_alloc_array_with<T>(n, make)` gives a `Result<Array<T>>`: n
///     elements, each T(make()), make called n times in index order;
///   - `try_alloc_fixed_vec<T>(capacity)` gives a `Result<FixedVec<T>>`: room
///     for `capacity` elements, none constructed yet.
///
/// Each has a waiting twin (alloc, alloc_arc, ...) that returns an AllocFuture.
class Heap : public detail::TypedAllocators<Heap> {
 public:
  /// The options of bootstrap(): the backend.
  using Options = HeapOptions;

  class Guard;

  /// Places the heap's state at the start of `region` and manages the rest as the
  /// arena. No hosted allocation; the region must outlive every block. Fails with
  /// RegionMisaligned if region.data() is not aligned to alignof(Heap) (or, under
  /// MNEMOS_HARDENING, lies at or above 2^48, which headers cannot encode), and with
  /// RegionTooSmall if no block fits after the state (first fit needs 16 bytes
  /// after it, TLSF about 170 plus 1/64 of the region for its metadata), and
  /// with InvalidLayout if options.backend is not a Backend enumerator.
  /// O(1) for first fit; O(region / 64) for TLSF (its mark bitmap is zeroed).
  /// @param region  the memory the heap lives in (a static arena, say)
  /// @param options the backend (Backend::FirstFit by default)
  /// @return the heap, whose state starts at region.data(); or RegionMisaligned,
  ///         RegionTooSmall, InvalidLayout
  static Result<Heap*> bootstrap(std::span<std::byte> region, Options options = {}) noexcept;

  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  /// Takes the lock if free (never waits): a Guard, or nullopt when another
  /// context holds it. While the Guard lives, frees of this
  /// heap's blocks from other contexts are deferred; they are returned when it is
  /// released (before it releases the lock), or before the guard's next
  /// allocation. Cost: one atomic RMW.
  std::optional<Guard> try_lock() noexcept;

  /// One block of `layout`, uninitialised. Errors: InvalidLayout (size 0,
  /// alignment not a power of two, size overflow), TooLarge (would not fit in the
  /// empty arena), Closed (after close()), Locked (lock held elsewhere), NoMemory
  /// (no room now, or older waiting allocations come first).
  /// Cost: lock + unlock (two atomic RMWs) plus the backend (first fit: O(free
  /// blocks); TLSF: O(1), no loop). Free it with free_raw and the same layout.
  Result<void*> try_alloc_raw(Layout layout) noexcept;
  using detail::TypedAllocators<Heap>::try_alloc;

  /// Frees a block from try_alloc_raw (of any heap: the header names it) with the
  /// same layout. From any thread or interrupt; never blocks: if the owning heap
  /// is locked the block is queued and returned by the holder. Null is ignored.
  /// Under MNEMOS_HARDENING a bad pointer or layout is reported through the
  /// fault handler (mnemos/fault.hpp) and the call is ignored.
  /// Cost: when the lock is free, lock + unlock (two atomic RMWs) plus the
  /// backend's free (first fit: O(free blocks); TLSF: O(1)); when it is held, a
  /// lock-free push onto the deferred queue and no backend work.
  static void free_raw(void* payload, Layout layout) noexcept;

  // --- waiting allocations (see AllocFuture) ---------------------------------
  /// One T from args, waiting for room: an AllocFuture of `Box<T>`, the waiting
  /// twin of try_alloc<T>; `co_await` it or poll() it.
  ///
  /// Each of this family returns a future that completes when the heap hands it
  /// a block: never NoMemory or Locked, but InvalidLayout, TooLarge (at the
  /// first poll), Closed or Cancelled. Requests are served in FIFO order; while
  /// any is waiting, new allocations (sync ones too, which then fail with
  /// NoMemory) wait behind it. The arguments are stored (decayed) in the
  /// future; nothing happens before the first poll. Any thread; see AllocFuture
  /// for who may poll it and where its waker runs.
  template <class T, class... Args>
  auto alloc(Args&&... args) {
    using Make = detail::MakeBox<T, std::decay_t<Args>...>;
    return AllocFuture<Box<T>, Make>(this, Layout::of<T>(), Make{{std::forward<Args>(args)...}});
  }
  /// As alloc, for an `Arc<T>`: the waiting twin of try_alloc_arc<T>.
  template <class T, class... Args>
  auto alloc_arc(Args&&... args) {
    using Make = detail::MakeArc<T, std::decay_t<Args>...>;
    return AllocFuture<Arc<T>, Make>(this, Arc<T>::block_layout(), Make{{std::forward<Args>(args)...}});
  }
  /// As alloc, for an `Array<T>` of n value-initialised elements (n == 0 or an
  /// overflowing n: InvalidLayout at the first poll).
  template <class T>
  auto alloc_array(std::size_t n) {
    return AllocFuture<Array<T>, detail::MakeArray<T>>(this, detail::array_layout<T>(n), {n});
  }
  /// As alloc, for an `Array<T>` of n elements, each T(make()): make() is
  /// called n times, with no arguments, once the block is handed over.
  template <class T, class Make>
  auto alloc_array_with(std::size_t n, Make make) {
    using Maker = detail::MakeArrayWith<T, Make>;
    return AllocFuture<Array<T>, Maker>(this, detail::array_layout<T>(n), Maker{n, std::move(make)});
  }
  /// As alloc, for a `FixedVec<T>` with room for `capacity` elements.
  template <class T>
  auto alloc_fixed_vec(std::size_t capacity) {
    return AllocFuture<FixedVec<T>, detail::MakeFixedVec<T>>(this, detail::array_layout<T>(capacity), {capacity});
  }
  /// As alloc, for one uninitialised block of `layout` (a `void*`; free it with
  /// free_raw and the same layout).
  auto alloc_raw(Layout layout) { return AllocFuture<void*, detail::MakeRaw>(this, layout, {}); }

  /// Completes every waiting future with Closed and makes every later
  /// allocation (waiting or not) fail with Closed; frees keep working. From a
  /// thread context (it takes the wait-queue lock). O(waiters).
  void close() noexcept;

  /// Returns deferred frees to the backend now, if the lock is free. Liveness
  /// never depends on it (every unlock drains); it exists for callers that want
  /// the queue empty at a known point. Returns the number of blocks returned.
  std::size_t poll() noexcept;

  /// Counters, read without the lock: callable anywhere, even under a Guard.
  /// O(1), relaxed loads (see Stats for what a snapshot guarantees).
  Stats stats() const noexcept;

  /// Walks the arena and verifies the backend's invariants, the deferred queue
  /// (every node in the arena, aligned, with a valid tagged size, no cycle, no
  /// overlap with a free block or another node: the Deferred* failures, with
  /// the node's address) and that the counters agree with both (queued bytes
  /// count as allocated): the first broken invariant and where, or ok(). Busy
  /// if the lock is held elsewhere (a Guard's check() walks under its lock).
  /// O(free blocks) for first fit, O(capacity / 512 + free blocks) for TLSF,
  /// plus O(queued^2 + queued * free blocks) for the queue.
  CheckReport check() noexcept;

  /// Bytes of arena (after the heap's own state) the backend manages.
  std::size_t capacity() const noexcept { return backend_.capacity(); }

 private:
  friend struct heap_test_access;
  friend class Guard;
  friend void detail::deallocate(void*, Layout) noexcept;
  friend class detail::AllocWait;

  explicit Heap(Options options) noexcept : options_(options), backend_(options.backend) {}

  // Errors that neither waiting nor the lock can change (InvalidLayout,
  // TooLarge, Closed); nullopt when valid.
  std::optional<Error> reject(Layout layout) const noexcept;
  // Lock held, layout accepted by reject(). NoMemory while waiters are queued.
  Result<void*> alloc_locked(Layout layout) noexcept;
  // Lock held: a block for `layout` from the backend with its header written,
  // or nullptr. No inhibit, no refusal count.
  void* carve(Layout layout) noexcept;
  void free_locked(void* payload, Layout layout) noexcept;
  void free_any_context(void* payload, Layout layout) noexcept;
  // Every free's validation (MNEMOS_HARDENING, detail/hardening.hpp): the heap
  // owning the live block at `payload` for `layout`, or nullptr after
  // reporting the fault (the caller then ignores the free). Reads only the
  // header word. O(1); a fault costs up to a few thousand check evaluations.
  static Heap* owner_of(void* payload, Layout layout) noexcept;
  // Hardening: whether [block, block + size) lies inside this heap's arena.
  bool arena_holds(const void* block, std::size_t size) const noexcept;
  // Hardening, lock held: whether a deferred node (copied from `at`) still
  // reads as lock_or_push wrote it: tagged size of a block inside the arena,
  // link null or into the arena. A use-after-free of a queued block fails it.
  bool deferred_node_intact(const detail::DeferredNode* at, const detail::DeferredNode& node) const noexcept;
  // Lock held: hands a block back to the backend and counts it.
  void return_block(void* block, std::size_t block_size) noexcept;
  std::size_t drain(detail::DeferredNode* list) noexcept;
  std::size_t drain_pending() noexcept;
  // Releases the lock over an empty deferred queue, serving waiters first, then
  // calls the wakers of completed waiters; returns blocks drained.
  std::size_t unlock() noexcept;
  // The release without the waker calls.
  std::size_t release_lock() noexcept;

  // --- the wait protocol (detail/wait_queue.hpp) -----------------------------
  // Heap lock held: serve the waiters now, or leave the request to the holder
  // of the wait-queue lock.
  void serve_waiters() noexcept;
  // Both locks held: hands blocks to the waiters from the head while they fit.
  void serve_head() noexcept;
  // Any context: serve now if the heap lock is free, else ask its holder to.
  void kick() noexcept;
  // Wait-queue lock held (heap lock not): releases it, honours a service
  // request left meanwhile, then calls pending wakers.
  void release_wait_queue() noexcept;
  // No lock held: calls the wakers of completed waiters, one at a time.
  void run_wakes() noexcept;
  // Wait-queue lock held: queue membership, counters and the WAITERS bit.
  void enqueue_waiter(detail::WaitNode* node) noexcept;
  void dequeue_waiter(detail::WaitNode* node) noexcept;
  void complete_waiter(detail::WaitNode* node, detail::WaitNode::Outcome outcome) noexcept;
  CheckReport check_locked() const noexcept;
  // Lock held: the deferred queue's invariants (check_locked); `bytes` is the
  // sum of the queued blocks' sizes.
  CheckReport check_deferred(std::size_t& bytes) const noexcept;
  std::size_t block_size(const detail::BlockRequest& request) const noexcept {
    return backend_.rounded_size(request.size);
  }

  detail::HeapLock lock_;
  Options options_;
  // The backend chosen at bootstrap (a tagged union: no virtual call, no
  // indirection); its metadata other than this object lives in the arena.
  detail::AnyBackend backend_;
  detail::WaitQueue waiters_;
  // Set once, under the wait-queue lock. release store / acquire loads: a
  // context that sees it also sees that every waiter was completed.
  detail::Atomic<bool> closed_{false};

  // Written only by the lock holder (no RMW), read anywhere by stats().
  detail::SingleWriterCounter<std::size_t> allocated_bytes_;
  detail::SingleWriterCounter<std::size_t> peak_allocated_bytes_;
  detail::SingleWriterCounter<std::size_t> alloc_count_;
  detail::SingleWriterCounter<std::size_t> alloc_no_memory_count_;
  detail::SingleWriterCounter<std::size_t> free_count_;
  detail::SingleWriterCounter<std::size_t> deferred_free_count_;
  // Written only by the wait-queue lock holder.
  detail::SingleWriterCounter<std::size_t> waiter_count_;
  detail::SingleWriterCounter<std::size_t> wait_count_;
  detail::SingleWriterCounter<std::size_t> spurious_wake_count_;
  // Incremented by producers after their push, decremented by the drainer, so it
  // can dip below zero for a moment; stats() clamps it.
  detail::Atomic<std::ptrdiff_t> deferred_pending_{0};
};

/// The heap's lock, held (Heap::try_lock): the same synchronous family with no
/// atomics per call, for batches.
///
/// Move-only; releasing it drains the deferred queue, then unlocks (serving
/// waiters first, then calling the wakers of those it completed). It has the
/// typed family of Heap (try_alloc<T>, try_alloc_arc, try_alloc_array,
/// try_alloc_array_with, try_alloc_fixed_vec) over its own try_alloc_raw. Use it
/// on one thread at a time; other contexts' frees meanwhile are deferred.
class Heap::Guard : public detail::TypedAllocators<Guard> {
 public:
  /// Takes over `other`'s hold of the lock; `other` is left empty.
  Guard(Guard&& other) noexcept : heap_(other.heap_) { other.heap_ = nullptr; }
  /// Releases the lock this Guard holds (if any), then takes over `other`'s.
  Guard& operator=(Guard&& other) noexcept {
    if (this != &other) {
      if (heap_ != nullptr) heap_->unlock();
      heap_ = other.heap_;
      other.heap_ = nullptr;
    }
    return *this;
  }
  Guard(const Guard&) = delete;
  /// Releases the lock: returns the deferred frees, serves the waiters, then
  /// calls the wakers of those it completed (after the lock is released).
  ~Guard() {
    if (heap_ != nullptr) heap_->unlock();
  }

  /// As Heap::try_alloc_raw, but never Locked and with no atomics. Returns
  /// deferred frees first. NoMemory while waiters are queued: they are served
  /// when the guard is released.
  Result<void*> try_alloc_raw(Layout layout) noexcept;
  using detail::TypedAllocators<Guard>::try_alloc;

  /// A block of this heap is freed at once, with no atomics; a block of another
  /// heap goes through Heap::free_raw. Same validation as Heap::free_raw.
  void free_raw(void* payload, Layout layout) noexcept;

  /// As Heap::check, under the lock already held (never Busy).
  CheckReport check() const noexcept { return heap_->check_locked(); }
  /// The heap whose lock this Guard holds.
  Heap& heap() const noexcept { return *heap_; }

 private:
  friend class Heap;
  explicit Guard(Heap* heap) noexcept : heap_(heap) {}
  Heap* heap_;
};

}  // namespace mnemos
