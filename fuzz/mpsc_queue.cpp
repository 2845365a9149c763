// Fuzz target: the deferred-free queue folded into the heap's lock word
// (include/mnemos/detail/heap_lock.hpp, class HeapLock).
//
// The input is a sequence of operations on one HeapLock and a pool of fake
// freed blocks: try_lock, lock_or_push, take_all, the holder's release step (a
// snapshot load and try_release, or the whole loop of Heap::release_lock with
// "other contexts" pushing or requesting service between its load and its
// CAS), set_waiters, lock_or_request_serve, clear_serve. A trivial model (lock
// state, the flags, the stack of pushed-not-taken blocks) predicts every return
// value and the exact lock word after every step. Checked throughout:
//   - every pushed node is taken exactly once, never twice, never lost;
//   - a take_all returns the pushed nodes newest first (LIFO) with their sizes;
//   - the lock is never released over a non-empty queue or a SERVE request;
//   - lock_or_push writes only the node's bytes of the block.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "fuzz_input.hpp"
#include "mnemos/detail/heap_lock.hpp"

namespace {

using mnemos::detail::DeferredNode;
using mnemos::detail::HeapLock;
using mnemos::fuzz::FuzzInput;
using Route = HeapLock::FreeRoute;

constexpr std::size_t kBlocks = 16;
constexpr std::size_t kMaxOps = 512;
constexpr std::size_t kMaxInterference = 64;  // per release loop
constexpr std::byte kCanary{0xA5};

// A stand-in for a freed block: the node's bytes, then a tail the queue must
// never write (a block is at least a node, often more).
struct alignas(DeferredNode) FakeBlock {
  std::byte node[sizeof(DeferredNode)];
  std::byte tail[sizeof(DeferredNode)];
};

struct Model {
  bool locked = false;
  bool waiters = false;
  bool serve = false;
  std::vector<std::size_t> stack;  // pushed, not taken; back() is the newest
  std::array<bool, kBlocks> pushed{};
  std::array<std::size_t, kBlocks> size{};
  std::array<std::size_t, kBlocks> push_count{};
  std::array<std::size_t, kBlocks> take_count{};
};

class Harness {
 public:
  Harness() {
    for (FakeBlock& b : blocks_) {
      std::memset(b.node, 0, sizeof b.node);
      std::memset(b.tail, static_cast<int>(kCanary), sizeof b.tail);
    }
  }

  void run(FuzzInput& in) {
    for (std::size_t ops = 0; ops < kMaxOps && !in.done(); ++ops) {
      step(in);
      check_word();
    }
    // Quiesce: the holder releases; nothing may be left behind.
    if (m_.locked) release_full(in);
    check_word();
    FUZZ_CHECK(m_.stack.empty());
    for (std::size_t i = 0; i < kBlocks; ++i) {
      FUZZ_CHECK_MSG(m_.push_count[i] == m_.take_count[i], "a pushed node was never taken");
      for (std::byte t : blocks_[i].tail) FUZZ_CHECK_MSG(t == kCanary, "a push wrote past the node");
    }
  }

 private:
  void step(FuzzInput& in) {
    switch (in.pick(9)) {
      case 0: {
        const bool took = lock_.try_lock();
        FUZZ_CHECK(took == !m_.locked);
        m_.locked = true;
        break;
      }
      case 1:
        push(in);
        break;
      case 2:
        if (m_.locked) drain(lock_.take_all());
        break;
      case 3:
        if (m_.locked) {
          seen_ = lock_.load();
          FUZZ_CHECK(*seen_ == expected_word());
        }
        break;
      case 4:
        // try_release's precondition: the snapshot shows an empty queue and
        // no SERVE request (the holder handles those first).
        if (m_.locked && seen_ && HeapLock::head_of(*seen_) == nullptr && (*seen_ & HeapLock::kServe) == 0) {
          const bool expect = *seen_ == expected_word();
          const bool released = lock_.try_release(*seen_);
          FUZZ_CHECK(released == expect);
          if (released) {
            m_.locked = false;
            seen_.reset();
          } else {
            FUZZ_CHECK_MSG(*seen_ == expected_word(), "a failed try_release must report the current word");
          }
        }
        break;
      case 5:
        if (m_.locked) release_full(in);
        break;
      case 6: {
        const bool present = in.boolean();
        lock_.set_waiters(present);
        m_.waiters = present;
        break;
      }
      case 7:
        request_serve();
        break;
      case 8:
        if (m_.locked) {
          lock_.clear_serve();
          m_.serve = false;
        }
        break;
    }
  }

  // A free from any context: takes the lock when it is free, else pushes.
  void push(FuzzInput& in) {
    const std::size_t first = in.pick(kBlocks);
    const std::size_t size = in.u16();
    std::size_t i = first;
    while (m_.pushed[i]) {  // a block is in the queue at most once (it is freed once)
      i = (i + 1) % kBlocks;
      if (i == first) return;
    }
    const Route route = lock_.lock_or_push(&blocks_[i], size);
    if (!m_.locked) {
      FUZZ_CHECK(route == Route::TookLock);
      m_.locked = true;  // the caller frees the block itself: it never enters the queue
      return;
    }
    FUZZ_CHECK(route == Route::Deferred);
    m_.pushed[i] = true;
    m_.size[i] = size;
    ++m_.push_count[i];
    m_.stack.push_back(i);
  }

  void request_serve() {
    const bool took = lock_.lock_or_request_serve();
    FUZZ_CHECK(took == !m_.locked);
    if (took) {
      m_.locked = true;
    } else {
      m_.serve = true;
    }
  }

  // Verifies a detached list against the model (newest first, each node once)
  // and hands the blocks back to the pool, as Heap::drain does.
  void drain(DeferredNode* list) {
    FUZZ_CHECK_MSG((list == nullptr) == m_.stack.empty(), "take_all must return exactly the pushed nodes");
    std::size_t walked = 0;
    while (list != nullptr) {
      FUZZ_CHECK_MSG(walked < kBlocks, "the taken list is longer than the pool: a cycle");
      const auto offset = reinterpret_cast<std::uintptr_t>(list) - reinterpret_cast<std::uintptr_t>(blocks_.data());
      FUZZ_CHECK(offset % sizeof(FakeBlock) == 0 && offset / sizeof(FakeBlock) < kBlocks);
      const std::size_t i = offset / sizeof(FakeBlock);
      FUZZ_CHECK_MSG(!m_.stack.empty() && m_.stack.back() == i, "take_all must be LIFO");
      FUZZ_CHECK_MSG(m_.pushed[i], "a node was taken twice");
      FUZZ_CHECK(list->block_size == m_.size[i]);
      DeferredNode* next = list->next;  // read before the block is reused
      m_.stack.pop_back();
      m_.pushed[i] = false;
      ++m_.take_count[i];
      list = next;
      ++walked;
    }
    FUZZ_CHECK_MSG(m_.stack.empty(), "take_all left nodes behind");
    FUZZ_CHECK(!lock_.has_deferred());
  }

  // Heap::release_lock, with other contexts acting between its load and its
  // CAS (the input says when and how), so every reason for the CAS to fail is
  // exercised. At most kMaxInterference interferences; without interference
  // the loop must end within three rounds (drain, clear SERVE, release).
  void release_full(FuzzInput& in) {
    std::uintptr_t w = lock_.load();
    FUZZ_CHECK(w == expected_word());
    std::size_t interferences = 0;
    for (std::size_t rounds = 0;; ++rounds) {
      FUZZ_CHECK_MSG(rounds < 3 * (kMaxInterference + 2), "the release loop does not terminate");
      if (HeapLock::head_of(w) != nullptr) {
        drain(lock_.take_all());
      } else if ((w & HeapLock::kServe) != 0) {
        lock_.clear_serve();
        m_.serve = false;
      } else {
        if (interferences++ < kMaxInterference) interfere(in);
        const bool expect = w == expected_word();
        if (lock_.try_release(w)) {
          FUZZ_CHECK(expect);
          m_.locked = false;
          seen_.reset();
          FUZZ_CHECK_MSG(m_.stack.empty() && !m_.serve, "released over a queued free or a SERVE request");
          return;
        }
        FUZZ_CHECK(!expect);
        FUZZ_CHECK(w == expected_word());
        continue;  // try_release reloaded w
      }
      w = lock_.load();
      FUZZ_CHECK(w == expected_word());
    }
  }

  // What another context may do while the holder is between load and CAS.
  void interfere(FuzzInput& in) {
    if (in.done()) return;
    switch (in.pick(4)) {
      case 0:
        break;
      case 1:
        push(in);
        break;
      case 2:
        request_serve();
        break;
      case 3: {
        const bool present = in.boolean();
        lock_.set_waiters(present);
        m_.waiters = present;
        break;
      }
    }
  }

  std::uintptr_t expected_word() const {
    std::uintptr_t w = 0;
    if (!m_.stack.empty()) w = reinterpret_cast<std::uintptr_t>(&blocks_[m_.stack.back()]);
    if (m_.locked) w |= HeapLock::kLocked;
    if (m_.waiters) w |= HeapLock::kWaiters;
    if (m_.serve) w |= HeapLock::kServe;
    return w;
  }

  void check_word() const {
    FUZZ_CHECK(lock_.load() == expected_word());
    FUZZ_CHECK(lock_.is_locked() == m_.locked);
    FUZZ_CHECK(lock_.has_deferred() == !m_.stack.empty());
    FUZZ_CHECK(lock_.has_waiters() == m_.waiters);
    // Unlocked means nothing queued and nothing requested: a free on an
    // unlocked heap takes the lock, and a release clears both first.
    if (!m_.locked) FUZZ_CHECK(m_.stack.empty() && !m_.serve);
  }

  HeapLock lock_;
  std::array<FakeBlock, kBlocks> blocks_{};
  Model m_;
  std::optional<std::uintptr_t> seen_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  Harness harness;
  harness.run(in);
  return 0;
}
