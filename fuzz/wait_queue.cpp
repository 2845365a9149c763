// Fuzz target: the intrusive wait queue alone (include/mnemos/detail/wait_queue.hpp).
//
// The input is a sequence of operations on one WaitQueue and a pool of
// WaitNodes: the lock (try_lock, try_lock_or_request_service, release,
// release_unless_service_requested), the lists (push_back, complete, unlink,
// pop_wake, a waker update) and the calls (call, must_wait_for_call, the
// run_wakes loop of Heap), with nodes destroyed and rebuilt in between. Wakers
// count their calls; some of them, inside their call, destroy their own node,
// run a nested run_wakes, or ask must_wait_for_call about another node. A model
// (two FIFO lists, each node's state, the lock and request bits) predicts every
// return value. Checked throughout:
//   - both lists are FIFO, doubly linked consistently, and match the model;
//   - empty/front/size/wakes_pending agree with the model;
//   - a waker is called exactly once per pop, with the waker the node held at
//     the pop, never for a node that was unlinked, never after its node died;
//   - call() never writes a node destroyed inside the call (the storage is
//     poisoned under ASan, so a write is reported);
//   - must_wait_for_call is true exactly for a node popped and not yet called.
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <new>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MNEMOS_FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MNEMOS_FUZZ_ASAN 1
#endif
#ifdef MNEMOS_FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include "fuzz_input.hpp"
#include "mnemos/detail/wait_queue.hpp"

namespace {

using mnemos::Layout;
using mnemos::Waker;
using mnemos::detail::WaitNode;
using mnemos::detail::WaitQueue;
using mnemos::fuzz::FuzzInput;
using Outcome = WaitNode::Outcome;
using Where = WaitNode::Where;

constexpr std::size_t kNodes = 12;
constexpr std::size_t kMaxOps = 400;
constexpr int kMaxDepth = 3;  // nested waker calls

// The model's view of a node; finer than WaitNode::Where (which has one
// Calling state for "popped", "being called" and "called").
enum class State : std::uint8_t { Detached, Waiting, ToWake, CallPending, InCall, Called, Destroyed };

// What a node's waker does inside its call, besides counting.
enum class Behaviour : std::uint8_t { Count, DestroySelf, NestedRunWakes, DestroySelfThenNested, AskAbout, Kinds };

struct WakerCtx;

struct Slot {
  State state = State::Detached;
  Outcome outcome = Outcome::None;
  unsigned generation = 0;          // bumped when the node is rebuilt
  const WakerCtx* waker = nullptr;  // the waker the node holds now (nullptr: empty waker)
  Behaviour behaviour = Behaviour::Count;
  std::size_t about = 0;  // AskAbout's other node
};

// One registered waker: which node generation it belongs to and its calls.
struct WakerCtx {
  class Harness* harness;
  std::size_t slot;
  unsigned generation;
  unsigned expected_calls = 0;
  unsigned calls = 0;
};

// A pop whose call has not been made yet: the copy of the waker run_wakes holds.
struct PendingCall {
  std::size_t slot;
  Waker waker;
  const WakerCtx* ctx;
};

class Harness {
 public:
  Harness() {
    for (std::size_t i = 0; i < kNodes; ++i) ::new (storage(i)) WaitNode;
  }
  ~Harness() {
    for (std::size_t i = 0; i < kNodes; ++i) {
      if (slots_[i].state == State::Destroyed) {
        unpoison(i);
      } else {
        node(i)->~WaitNode();
      }
    }
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void run(FuzzInput& in) {
    for (std::size_t ops = 0; ops < kMaxOps && !in.done(); ++ops) {
      step(in);
      check();
    }
    // Quiesce: every popped call is made, the rest of to_wake is run, and
    // every waker has been called exactly as often as its node was popped.
    while (!pending_.empty()) do_call(0);
    if (!locked_) run_wakes(0);
    check();
    for (const WakerCtx& c : wakers_) FUZZ_CHECK_MSG(c.calls == c.expected_calls, "a waker call was lost");
  }

  // Called from a node's waker, inside WaitQueue::call.
  void on_wake(WakerCtx& ctx) {
    Slot& s = slots_[ctx.slot];
    FUZZ_CHECK_MSG(s.state == State::InCall && s.generation == ctx.generation,
                   "a waker was called for a node that is not being called");
    ++ctx.calls;
    FUZZ_CHECK_MSG(ctx.calls <= ctx.expected_calls, "a waker was called more often than its node was popped");
    switch (s.behaviour) {
      case Behaviour::Count:
      case Behaviour::Kinds:
        break;
      case Behaviour::DestroySelf:
        destroy_in_call(ctx.slot);
        break;
      case Behaviour::NestedRunWakes:
        if (!locked_) run_wakes(depth_);
        break;
      case Behaviour::DestroySelfThenNested:
        destroy_in_call(ctx.slot);
        if (!locked_) run_wakes(depth_);
        break;
      case Behaviour::AskAbout:
        ask_about(s.about);
        break;
    }
  }

 private:
  void* storage(std::size_t i) { return &storage_[i]; }
  WaitNode* node(std::size_t i) { return std::launder(reinterpret_cast<WaitNode*>(&storage_[i])); }
  std::size_t index_of(const WaitNode* n) const {
    const auto offset = reinterpret_cast<std::uintptr_t>(n) - reinterpret_cast<std::uintptr_t>(storage_.data());
    FUZZ_CHECK(offset % sizeof(Storage) == 0 && offset / sizeof(Storage) < kNodes);
    return offset / sizeof(Storage);
  }

  void poison(std::size_t i) {
#ifdef MNEMOS_FUZZ_ASAN
    ASAN_POISON_MEMORY_REGION(storage(i), sizeof(Storage));
#else
    (void)i;
#endif
  }
  void unpoison(std::size_t i) {
#ifdef MNEMOS_FUZZ_ASAN
    ASAN_UNPOISON_MEMORY_REGION(storage(i), sizeof(Storage));
#else
    (void)i;
#endif
  }

  void step(FuzzInput& in) {
    const std::size_t i = in.pick(kNodes);
    switch (in.pick(14)) {
      case 0: {
        if (!locked_ && i % 2 == 1) {
          queue_.lock();  // free: takes it without spinning
          locked_ = true;
          break;
        }
        const bool took = queue_.try_lock();
        FUZZ_CHECK(took == !locked_);
        locked_ = true;
        break;
      }
      case 1: {
        const bool took = queue_.try_lock_or_request_service();
        FUZZ_CHECK(took == !locked_);
        if (took) {
          locked_ = true;
        } else {
          requested_ = true;
        }
        break;
      }
      case 2:
        if (locked_) {
          FUZZ_CHECK(queue_.release() == requested_);
          locked_ = requested_ = false;
        }
        break;
      case 3:
        if (locked_) {
          const bool released = queue_.release_unless_service_requested();
          FUZZ_CHECK(released == !requested_);
          if (released) locked_ = false;
          requested_ = false;
        }
        break;
      case 4:
        if (locked_ && slots_[i].state == State::Detached) push_back(in, i);
        break;
      case 5:
        if (locked_ && slots_[i].state == State::Waiting) {
          const Outcome o = static_cast<Outcome>(1 + in.pick(3));  // Ready, Closed, Cancelled
          queue_.complete(node(i), o);
          erase(waiting_, i);
          to_wake_.push_back(i);
          slots_[i].state = State::ToWake;
          slots_[i].outcome = o;
        }
        break;
      case 6:
        if (locked_ && slots_[i].state != State::Destroyed) unlink(i);
        break;
      case 7:
        if (locked_) pop_wake();
        break;
      case 8: {
        if (pending_.empty()) break;
        do_call(in.pick(pending_.size()));
        break;
      }
      case 9:
        if (slots_[i].state != State::Destroyed) ask_about(i);
        // A node whose call is over: waiting for the call returns at once.
        if (slots_[i].state == State::Called) WaitQueue::wait_for_call(node(i));
        break;
      case 10:
        // The owner destroys its node: allowed when nothing links it and no
        // call of its waker is pending (otherwise it would wait_for_call).
        if (slots_[i].state == State::Detached || slots_[i].state == State::Called) {
          node(i)->~WaitNode();
          slots_[i].state = State::Destroyed;
          poison(i);
        }
        break;
      case 11:
        if (slots_[i].state == State::Destroyed) rebuild(i);
        break;
      case 12:
        if (!locked_) run_wakes(0);
        break;
      case 13:
        // The owner polls again with a new waker while it waits (under the lock).
        if (locked_ && (slots_[i].state == State::Waiting || slots_[i].state == State::ToWake)) {
          node(i)->waker = make_waker(in, i);
        }
        break;
    }
  }

  Waker make_waker(FuzzInput& in, std::size_t i) {
    Slot& s = slots_[i];
    if (in.pick(8) == 0) {  // sometimes the empty waker: the call does nothing
      s.waker = nullptr;
      return Waker{};
    }
    wakers_.push_back(WakerCtx{this, i, s.generation});
    s.waker = &wakers_.back();
    return Waker{[](void* c) {
                   auto* ctx = static_cast<WakerCtx*>(c);
                   ctx->harness->on_wake(*ctx);
                 },
                 &wakers_.back()};
  }

  void push_back(FuzzInput& in, std::size_t i) {
    Slot& s = slots_[i];
    WaitNode* n = node(i);
    n->layout = Layout{1 + in.pick(255), std::size_t{1} << in.pick(8)};
    n->outcome = Outcome::None;
    n->woken = false;
    n->waker = make_waker(in, i);
    s.behaviour = static_cast<Behaviour>(in.pick(static_cast<std::size_t>(Behaviour::Kinds)));
    s.about = in.pick(kNodes);
    queue_.push_back(n);
    waiting_.push_back(i);
    s.state = State::Waiting;
    s.outcome = Outcome::None;
  }

  void unlink(std::size_t i) {
    Slot& s = slots_[i];
    const bool was_waiting = queue_.unlink(node(i));
    FUZZ_CHECK(was_waiting == (s.state == State::Waiting));
    if (s.state == State::Waiting) {
      erase(waiting_, i);
      s.state = State::Detached;
    } else if (s.state == State::ToWake) {
      erase(to_wake_, i);  // taken by its owner: its waker must never be called
      s.state = State::Detached;
    }
  }

  void pop_wake() {
    Waker copy;
    WaitNode* n = queue_.pop_wake(copy);
    if (to_wake_.empty()) {
      FUZZ_CHECK(n == nullptr);
      return;
    }
    const std::size_t i = to_wake_.front();
    FUZZ_CHECK_MSG(n == node(i), "pop_wake must return the oldest completed node");
    to_wake_.erase(to_wake_.begin());
    Slot& s = slots_[i];
    FUZZ_CHECK(n->where == Where::Calling && n->woken && n->outcome == s.outcome);
    FUZZ_CHECK_MSG(copy == n->waker, "pop_wake must copy the node's latest waker");
    s.state = State::CallPending;
    if (s.waker != nullptr) ++const_cast<WakerCtx*>(s.waker)->expected_calls;
    pending_.push_back(PendingCall{i, copy, s.waker});
  }

  void do_call(std::size_t k) {
    const PendingCall p = pending_[k];
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(k));
    Slot& s = slots_[p.slot];
    FUZZ_CHECK(s.state == State::CallPending);
    s.state = State::InCall;
    frames_.push_back(p.slot);
    ++depth_;
    WaitQueue::call(node(p.slot), p.waker);
    --depth_;
    frames_.pop_back();
    if (s.state == State::InCall) {
      s.state = State::Called;
      FUZZ_CHECK_MSG(node(p.slot)->call_done.load(), "call() must mark a live node's call done");
    }
    // Destroyed inside its call: the storage is poisoned, so a write by call()
    // to the dead node would have been reported by ASan.
  }

  // Heap::run_wakes: pop one under the lock, release, call; until none is left.
  void run_wakes(int depth) {
    if (depth >= kMaxDepth) return;
    while (queue_.wakes_pending()) {
      if (!queue_.try_lock()) return;  // (never here: locked_ is false when we get in)
      locked_ = true;
      const std::size_t before = pending_.size();
      pop_wake();
      FUZZ_CHECK(queue_.release() == requested_);
      locked_ = requested_ = false;
      if (pending_.size() > before) do_call(pending_.size() - 1);
    }
  }

  // must_wait_for_call from this thread: false for a node whose call is on
  // this thread's stack (and then the node must die: the frame forgets it),
  // true for a node popped but not yet called, false otherwise.
  void ask_about(std::size_t j) {
    Slot& s = slots_[j];
    if (s.state == State::Destroyed) return;
    const bool must_wait = WaitQueue::must_wait_for_call(node(j));
    FUZZ_CHECK(must_wait == (s.state == State::CallPending));
    if (s.state == State::InCall) destroy_now(j);  // its frame was told it dies
  }

  void destroy_in_call(std::size_t i) {
    FUZZ_CHECK_MSG(!WaitQueue::must_wait_for_call(node(i)), "a node whose call is on this stack must not wait");
    destroy_now(i);
  }

  void destroy_now(std::size_t i) {
    node(i)->~WaitNode();
    slots_[i].state = State::Destroyed;
    poison(i);
  }

  void rebuild(std::size_t i) {
    unpoison(i);
    ::new (storage(i)) WaitNode;
    Slot& s = slots_[i];
    s.state = State::Detached;
    s.outcome = Outcome::None;
    s.waker = nullptr;
    ++s.generation;
  }

  static void erase(std::vector<std::size_t>& list, std::size_t i) {
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (*it == i) {
        list.erase(it);
        return;
      }
    }
    FUZZ_CHECK_MSG(false, "model: node not in list");
  }

  // A list's links against the model's order: next forward, prev backward.
  void check_links(const std::vector<std::size_t>& list) {
    for (std::size_t k = 0; k < list.size(); ++k) {
      WaitNode* n = node(list[k]);
      WaitNode* want_prev = k == 0 ? nullptr : node(list[k - 1]);
      WaitNode* want_next = k + 1 == list.size() ? nullptr : node(list[k + 1]);
      FUZZ_CHECK_MSG(n->prev == want_prev && n->next == want_next, "list links disagree with FIFO order");
    }
  }

  void check() {
    FUZZ_CHECK(queue_.empty() == waiting_.empty());
    FUZZ_CHECK(queue_.size() == waiting_.size());
    FUZZ_CHECK(queue_.front() == (waiting_.empty() ? nullptr : node(waiting_.front())));
    FUZZ_CHECK(queue_.wakes_pending() == !to_wake_.empty());
    check_links(waiting_);
    check_links(to_wake_);
    for (std::size_t i = 0; i < kNodes; ++i) {
      const Slot& s = slots_[i];
      if (s.state == State::Destroyed) continue;
      const WaitNode* n = node(i);
      switch (s.state) {
        case State::Detached:
          FUZZ_CHECK(n->where == Where::Detached);
          break;
        case State::Waiting:
          FUZZ_CHECK(n->where == Where::Waiting && n->outcome == Outcome::None);
          break;
        case State::ToWake:
          FUZZ_CHECK(n->where == Where::ToWake && n->outcome == s.outcome);
          break;
        case State::CallPending:
          FUZZ_CHECK(n->where == Where::Calling && !n->call_done.load());
          break;
        case State::InCall:
        case State::Called:
          FUZZ_CHECK(n->where == Where::Calling);
          break;
        case State::Destroyed:
          break;
      }
    }
  }

  using Storage = std::aligned_storage_t<sizeof(WaitNode), alignof(WaitNode)>;
  WaitQueue queue_;
  std::array<Storage, kNodes> storage_;
  std::array<Slot, kNodes> slots_{};
  std::vector<std::size_t> waiting_;  // model of the waiting list, oldest first
  std::vector<std::size_t> to_wake_;  // model of the to_wake list, oldest first
  std::vector<PendingCall> pending_;  // popped, not called yet
  std::vector<std::size_t> frames_;   // calls in progress on this stack, outermost first
  std::deque<WakerCtx> wakers_;       // stable addresses: wakers point at them
  bool locked_ = false;
  bool requested_ = false;
  int depth_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  Harness harness;
  harness.run(in);
  return 0;
}
