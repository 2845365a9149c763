// Reference model of the heap's bookkeeping (include/mnemos/heap.hpp, src/heap.cpp).
//
// What it models: the blocks out of the backend (live ones, by payload address,
// and deferred ones), the heap's counters (every Stats field), the lock as held
// by one Guard, close(), and the FIFO of waiting allocation requests together
// with the rule that serves them. Rule it follows: a single-threaded replay of
// the heap's contract with the first-fit backend modelled exactly by
// FirstFitModel (so every address is predicted, not observed):
//   - errors in this order: InvalidLayout (Layout::valid), TooLarge (the block
//     request, header included, does not fit the empty arena), Closed, then
//     Locked (Heap::try_alloc_raw while a Guard is held), then NoMemory (no
//     room, or any request waiting: "inhibit"); every NoMemory is counted;
//   - a block of `layout` is block_request(layout) = {header_offset + size,
//     max(align, word)} carved from the backend, the payload header_offset
//     bytes in; allocated_bytes counts FirstFit::rounded_size(request.size);
//   - a free while the Guard is held is deferred (deferred_pending); the
//     holder drains every deferred block before its next allocation and when
//     it releases the lock; otherwise a free returns the block at once;
//   - every release of the lock (a Guard's, or the one inside a per-call
//     try_alloc, free, poll(), check() or kick) serves the waiting requests
//     from the head while the head's block fits; the first that does not fit
//     stops the service (strict FIFO).
// It does not model threads: every call is one complete operation.
//
// Used by proptest/heap_prop.cpp, by WaitModel (wait_model.hpp) and by the
// fuzz targets. Plain C++20, header-only; it uses the library's plain types
// (Layout, Error, Stats, CheckFailure) but none of its logic.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "mnemos/check.hpp"
#include "mnemos/error.hpp"
#include "mnemos/layout.hpp"
#include "mnemos/stats.hpp"
#include "first_fit_model.hpp"

namespace mnemos::model {

// --- the block formula (include/mnemos/detail/block_header.hpp), restated ---

inline constexpr std::size_t kHeaderSize = sizeof(void*);

// Layout::valid: non-zero size, power-of-two alignment, size + (align - 1)
// representable as a ptrdiff_t.
constexpr bool layout_valid(Layout l) {
  return l.size != 0 && FirstFitModel::is_power_of_two(l.align) &&
         l.size <= static_cast<std::size_t>(PTRDIFF_MAX) - (l.align - 1);
}

// Bytes from the block start to the payload.
constexpr std::size_t header_offset(std::size_t align) { return align > kHeaderSize ? align : kHeaderSize; }

struct BlockRequest {
  std::size_t size;   // header offset + payload size (before the backend's rounding)
  std::size_t align;  // max(align, word)
};

// nullopt when the header plus the payload overflows.
constexpr std::optional<BlockRequest> block_request(Layout l) {
  const std::size_t offset = header_offset(l.align);
  if (l.size > SIZE_MAX - offset) return std::nullopt;
  return BlockRequest{offset + l.size, l.align > kHeaderSize ? l.align : kHeaderSize};
}

// The bytes a block of `l` takes out of the backend: what allocated_bytes counts.
constexpr std::optional<std::size_t> block_size(Layout l) {
  const std::optional<BlockRequest> r = block_request(l);
  if (!r) return std::nullopt;
  return FirstFitModel::rounded_size(r->size);
}

// --- the model ----------------------------------------------------------------

using WaiterId = std::uint64_t;

// How a waiting request ended.
enum class Outcome : std::uint8_t { Ready, Closed, Cancelled };

struct Completion {
  WaiterId waiter = 0;
  Outcome outcome = Outcome::Ready;
  std::uintptr_t payload = 0;  // Ready only: the block handed over
};

// A block out of the backend.
struct Block {
  std::uintptr_t payload = 0;
  Layout layout{};
  std::uintptr_t start = 0;  // payload - header_offset(layout.align)
  std::size_t size = 0;      // block_size(layout)
};

struct AllocOutcome {
  std::optional<Error> error;  // nullopt: success
  std::uintptr_t payload = 0;  // on success
  bool ok() const { return !error.has_value(); }
};

struct WaitingRequest {
  WaiterId id = 0;
  Layout layout{};
};

class HeapModel {
 public:
  // No arena: every valid request is TooLarge.
  HeapModel() = default;

  // The heap bootstrapped in a region: arena_start is the first byte after the
  // Heap object (region.data() + sizeof(Heap)), arena_size the bytes after it.
  // The backend's init (R6) aligns both ends.
  HeapModel(std::uintptr_t arena_start, std::size_t arena_size) { backend_.init(arena_start, arena_size); }

  // ---- the synchronous API ----------------------------------------------------

  // The errors that neither the lock nor waiting can change (Heap::reject).
  std::optional<Error> reject(Layout l) const {
    if (!layout_valid(l)) return Error::InvalidLayout;
    const std::optional<BlockRequest> r = block_request(l);
    if (!r || !backend_.fits_when_empty(r->size, r->align)) return Error::TooLarge;
    if (closed_) return Error::Closed;
    return std::nullopt;
  }

  // Heap::try_alloc_raw, and every typed try_alloc* of the Heap.
  AllocOutcome try_alloc(Layout l) {
    if (std::optional<Error> e = reject(l)) return {e};
    if (locked_) return {Error::Locked};
    AllocOutcome r = alloc_locked(l);
    release_lock();
    return r;
  }

  // Heap::Guard::try_alloc_raw, and every typed try_alloc* of a Guard.
  // Precondition: locked().
  AllocOutcome guard_try_alloc(Layout l) {
    require(locked_);
    if (std::optional<Error> e = reject(l)) return {e};
    return alloc_locked(l);
  }

  // Heap::free_raw, or an owner's destruction: returned at once when the lock
  // is free, deferred while the Guard is held. Precondition: payload is live.
  void free(std::uintptr_t payload) {
    const Block b = take_live(payload);
    if (locked_) {
      deferred_.push_back(b);
      return;
    }
    return_block(b);
    release_lock();
  }

  // Heap::Guard::free_raw of a block of this heap: returned at once.
  // Preconditions: locked(), payload is live.
  void guard_free(std::uintptr_t payload) {
    require(locked_);
    return_block(take_live(payload));
  }

  // Heap::try_lock: false while the Guard is held.
  bool try_lock() {
    if (locked_) return false;
    locked_ = true;
    return true;
  }

  // The Guard's release: drains, serves the waiters. Returns blocks drained.
  // Precondition: locked().
  std::size_t unlock() {
    require(locked_);
    locked_ = false;
    return release_lock();
  }

  // Heap::poll: 0 and nothing else while the Guard is held; otherwise a lock
  // and release (which serves the waiters).
  std::size_t poll() {
    if (locked_) return 0;
    return release_lock();
  }

  // Heap::check: Busy while the Guard is held; otherwise a lock and release.
  // (The Guard's own check() has no side effect: use consistent().)
  CheckFailure check() {
    if (locked_) return CheckFailure::Busy;
    const CheckFailure f = consistent() ? CheckFailure::None : CheckFailure::StatsMismatch;
    release_lock();
    return f;
  }

  // Heap::close: every waiting request completes with Closed, oldest first;
  // later allocations fail with Closed.
  void close() {
    closed_ = true;
    while (!waiting_.empty()) complete_front(Outcome::Closed, 0);
  }

  // ---- the wait protocol's steps (AllocWait, src/alloc_wait.cpp) ----------------

  // The first poll's fast path: taken only with no request waiting and the
  // lock free; then a NoMemory is counted like any other. nullopt: skipped.
  // Precondition: reject(l) is nullopt.
  std::optional<AllocOutcome> fast_path(Layout l) {
    if (!waiting_.empty() || locked_) return std::nullopt;
    AllocOutcome r = alloc_locked(l);
    release_lock();
    return r;
  }

  // Queues a request (counts a wait).
  void subscribe(WaiterId id, Layout l) {
    require(!is_waiting(id));
    waiting_.push_back(WaitingRequest{id, l});
    ++wait_count_;
  }

  // Heap::kick: serve now if the lock is free; while the Guard is held its
  // release serves instead.
  void kick() {
    if (!locked_) release_lock();
  }

  // A pending future destroyed: leaves the queue, then a kick.
  void leave(WaiterId id) {
    erase_waiting(id);
    kick();
  }

  // A stop request: a waiting request completes with Cancelled, then a kick.
  // Returns whether it was waiting (otherwise nothing happens).
  bool cancel(WaiterId id) {
    if (!is_waiting(id)) return false;
    erase_waiting(id);
    completions_.push_back(Completion{id, Outcome::Cancelled, 0});
    kick();
    return true;
  }

  // Completions since the last call, in the order the heap made them (which is
  // the order the wakers are called in).
  std::vector<Completion> take_completions() { return std::exchange(completions_, {}); }

  // ---- queries ----------------------------------------------------------------

  Stats stats() const {
    Stats s;
    s.capacity_bytes = backend_.capacity();
    s.allocated_bytes = allocated_;
    s.free_bytes = s.capacity_bytes - allocated_;
    s.peak_allocated_bytes = peak_;
    s.alloc_count = alloc_count_;
    s.alloc_no_memory_count = no_memory_count_;
    s.free_count = free_count_;
    s.deferred_free_count = deferred_free_count_;
    s.deferred_pending = deferred_.size();
    s.waiters = waiting_.size();
    s.wait_count = wait_count_;
    s.spurious_wake_count = 0;  // a wake always finds its block
    return s;
  }

  const FirstFitModel& backend() const { return backend_; }
  bool locked() const { return locked_; }
  bool closed() const { return closed_; }
  // Live blocks (owned by the user, or handed to a waiter not yet polled), by payload.
  const std::map<std::uintptr_t, Block>& live() const { return live_; }
  bool is_live(std::uintptr_t payload) const { return live_.count(payload) != 0; }
  // Deferred blocks, oldest push first.
  const std::vector<Block>& deferred() const { return deferred_; }
  // Waiting requests, oldest first.
  const std::deque<WaitingRequest>& waiting() const { return waiting_; }
  bool is_waiting(WaiterId id) const {
    return std::any_of(waiting_.begin(), waiting_.end(), [id](const WaitingRequest& w) { return w.id == id; });
  }
  // Nobody holds the lock and no free is deferred.
  bool idle() const { return !locked_ && deferred_.empty(); }
  // Whether the oldest waiting request's block would fit now.
  bool head_fits() const {
    if (waiting_.empty()) return false;
    const BlockRequest r = *block_request(waiting_.front().layout);
    return backend_.fits(r.size, r.align);
  }

  // Invariants 1 and 2 on the model itself: blocks inside the arena, disjoint
  // from each other and from the holes; live + deferred + free = capacity.
  bool consistent() const {
    std::vector<Span> used;
    std::size_t sum = 0;
    for (const auto& [payload, b] : live_) used.push_back(Span{b.start, b.size});
    for (const Block& b : deferred_) used.push_back(Span{b.start, b.size});
    std::sort(used.begin(), used.end(), [](const Span& x, const Span& y) { return x.start < y.start; });
    for (std::size_t i = 0; i < used.size(); ++i) {
      if (used[i].start < backend_.begin() || used[i].end() > backend_.end()) return false;
      if (i > 0 && used[i - 1].end() > used[i].start) return false;
      if (backend_.overlaps_hole(used[i].start, used[i].size)) return false;
      sum += used[i].size;
    }
    return sum == allocated_ && sum + backend_.free_bytes() == backend_.capacity();
  }

 private:
  static void require(bool condition) {
    if (!condition) std::abort();  // a precondition of the model's API was broken by its caller
  }

  // Heap::alloc_locked: drain, inhibit, carve.
  AllocOutcome alloc_locked(Layout l) {
    drain();
    if (!waiting_.empty()) {
      ++no_memory_count_;
      return {Error::NoMemory};
    }
    const std::optional<std::uintptr_t> p = carve(l);
    if (!p) {
      ++no_memory_count_;
      return {Error::NoMemory};
    }
    return {std::nullopt, *p};
  }

  // Heap::carve: the block from the backend, counted; nullopt if none fits.
  std::optional<std::uintptr_t> carve(Layout l) {
    const BlockRequest r = *block_request(l);
    const std::optional<std::uintptr_t> start = backend_.allocate(r.size, r.align);
    if (!start) return std::nullopt;
    Block b;
    b.layout = l;
    b.start = *start;
    b.payload = *start + header_offset(l.align);
    b.size = *FirstFitModel::rounded_size(r.size);
    live_[b.payload] = b;
    ++alloc_count_;
    allocated_ += b.size;
    peak_ = std::max(peak_, allocated_);
    return b.payload;
  }

  void return_block(const Block& b) {
    require(backend_.deallocate(b.start, b.size));
    allocated_ -= b.size;
    ++free_count_;
  }

  std::size_t drain() {
    const std::size_t n = deferred_.size();
    for (const Block& b : deferred_) return_block(b);
    deferred_.clear();
    deferred_free_count_ += n;
    return n;
  }

  // Heap::release_lock: drain, then serve while the head fits.
  std::size_t release_lock() {
    const std::size_t drained = drain();
    while (!waiting_.empty()) {
      const std::optional<std::uintptr_t> p = carve(waiting_.front().layout);
      if (!p) break;
      complete_front(Outcome::Ready, *p);
    }
    return drained;
  }

  void complete_front(Outcome outcome, std::uintptr_t payload) {
    completions_.push_back(Completion{waiting_.front().id, outcome, payload});
    waiting_.pop_front();
  }

  void erase_waiting(WaiterId id) {
    auto it = std::find_if(waiting_.begin(), waiting_.end(), [id](const WaitingRequest& w) { return w.id == id; });
    require(it != waiting_.end());
    waiting_.erase(it);
  }

  Block take_live(std::uintptr_t payload) {
    auto it = live_.find(payload);
    require(it != live_.end());
    const Block b = it->second;
    live_.erase(it);
    return b;
  }

  FirstFitModel backend_;
  bool locked_ = false;
  bool closed_ = false;
  std::map<std::uintptr_t, Block> live_;
  std::vector<Block> deferred_;
  std::deque<WaitingRequest> waiting_;
  std::vector<Completion> completions_;
  std::size_t allocated_ = 0;
  std::size_t peak_ = 0;
  std::size_t alloc_count_ = 0;
  std::size_t no_memory_count_ = 0;
  std::size_t free_count_ = 0;
  std::size_t deferred_free_count_ = 0;
  std::size_t wait_count_ = 0;
};

}  // namespace mnemos::model
