// Property: poll-driven allocation futures and the heap's FIFO wait queue
// agree with the wait model (model/wait_model.hpp), and keep invariants 4-6
// of DESIGN.md. Deterministic: no threads, every future is polled by hand
// with a counting waker.
//
// Commands: create futures (alloc_raw with random layouts, alloc<Msg>,
// alloc_array<u32>, alloc_arc<Msg>; some .with(stop_token)), poll them, drop
// them (pending, completed-but-not-taken, finished), request_stop, sync
// allocations and frees (also while a Guard is held, and guard.free_raw),
// try_lock / unlock, heap.poll(), heap.check(), close(). After every step:
//   - invariant 4, on the real heap: if it is idle (unlocked, no deferred
//     free) and a request waits, the head's block does not fit in the real
//     free list;
//   - the real wait queue holds the model's requests in the model's order,
//     and every poll result (pending / address / error) is the model's;
//   - FIFO, checked without the model: a future that gets a block has no
//     older waiter still pending (each older one completed or was dropped);
//   - every waker is called exactly when the model says (once per completion
//     of a future that returned pending), in the model's order, never more
//     than once per future and never after its future was destroyed;
//   - every Stats field is the model's (spurious_wake_count stays 0); check()
//     is ok; the backend's holes are the model's; owned blocks are intact;
// and once every future and owner is gone, the arena is one free span again.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "model/wait_model.hpp"
#include "owners.hpp"
#include "support.hpp"

using namespace mnemos;
using namespace mnemos::proptest;
using model::WaitModel;
using FState = model::WaitModel::State;

namespace {

// ---- requests -----------------------------------------------------------------

enum class FKind : std::uint8_t { Raw, BoxMsg, ArrayU32, ArcMsg };

struct FRequest {
  FKind kind = FKind::Raw;
  Layout raw{};       // Raw
  std::size_t n = 0;  // ArrayU32

  Layout layout() const {
    switch (kind) {
      case FKind::Raw: return raw;
      case FKind::BoxMsg: return Layout::of<Msg>();
      case FKind::ArrayU32: return array_layout<std::uint32_t>(n);
      case FKind::ArcMsg: return Arc<Msg>::block_layout();
    }
    return raw;
  }

  std::string show() const {
    switch (kind) {
      case FKind::Raw: return "alloc_raw(" + show_layout(raw) + ")";
      case FKind::BoxMsg: return "alloc<Msg>()";
      case FKind::ArrayU32: return "alloc_array<u32>(n=" + show_size(n) + ")";
      case FKind::ArcMsg: return "alloc_arc<Msg>()";
    }
    return "?";
  }
};

// ---- the model ------------------------------------------------------------------

struct WModel {
  WaitModel w;
  std::map<Label, std::uintptr_t> owned;      // label -> payload of a block the test owns
  std::map<std::uintptr_t, std::uint32_t> seeds;  // payload -> pattern seed
  std::map<Label, bool> is_raw;               // owned label -> a raw block (guard.free_raw applies)
  std::map<Label, FRequest> requests;         // future label -> its request
  std::map<Label, std::uint32_t> future_seeds;
  Label next_label = 0;
  bool may_close = false;  // per case: close() ends the interesting part, so only some cases close
};

// ---- the system under test --------------------------------------------------------

// A waker that counts its calls and logs them in call order.
struct WakeCounter {
  Label id = 0;
  std::size_t calls = 0;
  bool destroyed = false;          // its future is gone
  bool called_after_destroy = false;
  std::vector<Label>* log = nullptr;

  static void wake(void* self) {
    auto* c = static_cast<WakeCounter*>(self);
    ++c->calls;
    if (c->destroyed) c->called_after_destroy = true;
    c->log->push_back(c->id);
  }
  Waker waker() { return Waker{&WakeCounter::wake, this}; }
};

struct PollOut {
  bool pending = true;
  std::optional<Error> error;
  std::unique_ptr<Owner> owner;
};

class FutureBase {
 public:
  virtual ~FutureBase() = default;
  virtual PollOut poll(const Waker& waker) = 0;
};

// An AllocFuture and how to turn its value into an Owner.
template <class Fut, class ToOwner>
class FutureOf final : public FutureBase {
 public:
  FutureOf(Fut&& fut, ToOwner to_owner) : fut_(std::move(fut)), to_owner_(std::move(to_owner)) {}
  PollOut poll(const Waker& waker) override {
    auto r = fut_.poll(waker);
    PollOut out;
    if (!r) return out;
    out.pending = false;
    if (*r) {
      out.owner = to_owner_(std::move(**r));
    } else {
      out.error = r->error();
    }
    return out;
  }

 private:
  Fut fut_;
  ToOwner to_owner_;
};

template <class Fut, class ToOwner>
std::unique_ptr<FutureBase> wrap(Fut&& fut, const std::stop_source* source, ToOwner to_owner) {
  using F = std::remove_cvref_t<Fut>;
  if (source != nullptr) {
    return std::make_unique<FutureOf<F, ToOwner>>(std::move(fut).with(source->get_token()), std::move(to_owner));
  }
  return std::make_unique<FutureOf<F, ToOwner>>(std::move(fut), std::move(to_owner));
}

std::unique_ptr<FutureBase> make_future(Heap& heap, const FRequest& req, std::uint32_t seed,
                                        const std::stop_source* source) {
  const auto a = static_cast<std::uint32_t>(value_of(seed, 0));
  const auto b = static_cast<std::uint32_t>(value_of(seed, 1));
  switch (req.kind) {
    case FKind::Raw: {
      const Layout l = req.raw;
      return wrap(heap.alloc_raw(l), source, [l](void* p) -> std::unique_ptr<Owner> {
        return std::make_unique<RawOwner>(p, l);
      });
    }
    case FKind::BoxMsg:
      return wrap(heap.alloc<Msg>(a, b), source, [](Box<Msg> box) -> std::unique_ptr<Owner> {
        return std::make_unique<BoxMsgOwner>(std::move(box));
      });
    case FKind::ArrayU32:
      return wrap(heap.alloc_array<std::uint32_t>(req.n), source,
                  [](Array<std::uint32_t> arr) -> std::unique_ptr<Owner> {
                    return std::make_unique<ArrayOwner<std::uint32_t>>(std::move(arr));
                  });
    case FKind::ArcMsg:
      return wrap(heap.alloc_arc<Msg>(a, b), source, [](Arc<Msg> arc) -> std::unique_ptr<Owner> {
        return std::make_unique<ArcOwner>(std::move(arc));
      });
  }
  return nullptr;
}

struct WSut {
  Heap* heap = nullptr;
  std::vector<Label> wake_log;
  std::map<Label, std::unique_ptr<WakeCounter>> counters;  // outlive the futures
  std::map<Label, std::stop_source> sources;
  std::vector<Label> subscribed;  // futures that returned pending, in that order
  std::map<Label, bool> finished; // a poll returned a value or error
  std::optional<Heap::Guard> guard;
  std::map<Label, std::unique_ptr<Owner>> owners;
  std::map<Label, std::unique_ptr<FutureBase>> futures;

  WSut() = default;
  WSut(const WSut&) = delete;
  WSut& operator=(const WSut&) = delete;
  ~WSut() {
    futures.clear();  // their wakers (the counters) may be called meanwhile
    owners.clear();
    guard.reset();
  }
};

using WCmd = rc::state::Command<WModel, WSut>;

// ---- checks after every step ---------------------------------------------------------

std::string show_layouts(const std::vector<Layout>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i != 0 ? "; " : "") + show_layout(v[i]);
  return s + "]";
}

void verify(const WModel& m, WSut& s, const std::string& step) {
  Heap& heap = *s.heap;
  const model::HeapModel& hm = m.w.heap();
  const detail::HeapLock& lock = heap_test_access::lock(heap);
  const detail::WaitQueue& queue = heap_test_access::waiters(heap);
  const detail::FirstFit& backend = heap_test_access::backend(heap);
  const std::vector<model::Span> holes = holes_of(backend);

  // Invariant 4 on the real heap, before anything below takes the lock.
  if (!lock.is_locked() && !lock.has_deferred() && queue.front() != nullptr) {
    const Layout head = queue.front()->layout;
    const model::BlockRequest r = *model::block_request(head);
    const model::FirstFitModel real_free =
        model::FirstFitModel::from_holes(addr(backend.arena_begin()), addr(backend.arena_end()), holes);
    if (real_free.fits(r.size, r.align)) {
      RC_FAIL(step + ": invariant 4: the heap is idle and the head waiter (" + show_layout(head) +
              ") is pending although its block fits in " + show_holes(holes));
    }
  }

  // The real queue: the model's requests, in the model's order.
  std::vector<Layout> real_queue;
  for (const detail::WaitNode* n = queue.front(); n != nullptr; n = n->next) real_queue.push_back(n->layout);
  std::vector<Layout> model_queue;
  for (const model::WaitingRequest& w : hm.waiting()) model_queue.push_back(w.layout);
  if (real_queue != model_queue) {
    RC_FAIL(step + ": wait queue\n  actual " + show_layouts(real_queue) + "\n  model  " + show_layouts(model_queue));
  }
  check_eq(lock.has_waiters(), !model_queue.empty(), step + ": WAITERS bit");
  check_eq(lock.is_locked(), hm.locked(), step + ": lock held");
  check_eq(lock.has_deferred(), !hm.deferred().empty(), step + ": deferred queue non-empty");

  check_stats(heap.stats(), hm.stats(), step);

  // Wakers: the model's calls, in its order; at most one per future; none
  // after a future's destruction.
  if (s.wake_log != m.w.wake_log()) {
    std::string a, b;
    for (Label l : s.wake_log) a += " #" + std::to_string(l);
    for (Label l : m.w.wake_log()) b += " #" + std::to_string(l);
    RC_FAIL(step + ": waker calls\n  actual" + a + "\n  model " + b);
  }
  for (const auto& [label, c] : s.counters) {
    const std::string who = "#" + std::to_string(label);
    if (c->called_after_destroy) RC_FAIL(step + ": the waker of destroyed future " + who + " was called");
    if (c->calls > 1) RC_FAIL(step + ": the waker of " + who + " was called " + std::to_string(c->calls) + " times");
    check_eq(c->calls, m.w.future(label).wakes, step + ": waker calls of #" + std::to_string(label));
  }

  // The backend and the blocks.
  if (holes != hm.backend().holes()) {
    RC_FAIL(step + ": holes differ\n  actual " + show_holes(holes) + "\n  model  " + show_holes(hm.backend().holes()));
  }
  for (const auto& [label, owner] : s.owners) {
    const std::uintptr_t p = addr(owner->payload());
    check_eq(at(p), at(m.owned.at(label)), step + ": payload of #" + std::to_string(label));
    const std::string bad = owner->mismatch(m.seeds.at(p));
    if (!bad.empty()) RC_FAIL(step + ": contents of #" + std::to_string(label) + " changed (" + bad + ")");
  }
  if (!hm.consistent()) RC_FAIL(step + ": the model is inconsistent (a bug of the model)");

  if (s.guard) {
    check_eq(to_string(heap.check().failure), to_string(CheckFailure::Busy), step + ": check() under the Guard");
    check_report(s.guard->check(), step + ": guard.check()");
  } else {
    // Locks and releases: serves nobody, since invariant 4 held above.
    check_report(heap.check(), step);
  }
}

// ---- commands -------------------------------------------------------------------------

// heap.alloc*(...) [.with(token)]: the future is created, not polled.
struct NewFuture final : WCmd {
  Label label;
  FRequest req;
  bool with_token;
  std::uint32_t seed;
  NewFuture(Label l, FRequest r, bool t, std::uint32_t sd) : label(l), req(r), with_token(t), seed(sd) {}

  void checkPreconditions(const WModel& m) const override { RC_PRE(label >= m.next_label); }

  void apply(WModel& m) const override {
    m.next_label = label + 1;
    m.w.create(label, req.layout(), with_token);
    m.requests[label] = req;
    m.future_seeds[label] = seed;
  }

  void run(const WModel& m0, WSut& s) const override {
    auto counter = std::make_unique<WakeCounter>();
    counter->id = label;
    counter->log = &s.wake_log;
    s.counters[label] = std::move(counter);
    const std::stop_source* source = nullptr;
    if (with_token) source = &(s.sources[label] = std::stop_source());
    s.futures[label] = make_future(*s.heap, req, seed, source);
    verify(nextState(m0), s, description());
  }

  std::string description() const {
    return "#" + std::to_string(label) + " = " + req.show() + (with_token ? ".with(token)" : "");
  }
  void show(std::ostream& os) const override { os << description(); }
};

struct PollFuture final : WCmd {
  Label label;
  explicit PollFuture(Label l) : label(l) {}

  void checkPreconditions(const WModel& m) const override {
    RC_PRE(m.w.exists(label));
    const FState st = m.w.future(label).state;
    RC_PRE(st == FState::Unpolled || st == FState::Pending || st == FState::Completed);
  }

  void apply(WModel& m) const override {
    const WaitModel::PollResult r = m.w.poll(label);
    if (r.pending || r.error) return;
    m.owned[label] = r.payload;
    m.seeds[r.payload] = m.future_seeds.at(label);
    m.is_raw[label] = m.requests.at(label).kind == FKind::Raw;
  }

  void run(const WModel& m0, WSut& s) const override {
    const std::string step = "poll(#" + std::to_string(label) + ")";
    WModel m = m0;
    const WaitModel::PollResult expected = m.w.poll(label);
    PollOut out = s.futures.at(label)->poll(s.counters.at(label)->waker());
    if (out.pending) {
      if (!expected.pending) {
        RC_FAIL(step + ": pending, model: " +
                (expected.error ? to_string(*expected.error) : "block at " + at(expected.payload)));
      }
      if (m0.w.future(label).state == FState::Unpolled) s.subscribed.push_back(label);
    } else {
      s.finished[label] = true;
      if (expected.pending) RC_FAIL(step + ": ready (" + show_error(out.error) + "), model: pending");
      if (out.owner) {
        const std::uintptr_t p = addr(out.owner->payload());
        if (expected.error) RC_FAIL(step + ": got a block at " + at(p) + ", model: " + to_string(*expected.error));
        check_eq(at(p), at(expected.payload), step + ": address");
        check(p % m0.requests.at(label).layout().align == 0, step + ": misaligned block");
        check_fifo(s, step);
        const std::uint32_t seed = m0.future_seeds.at(label);
        const FKind kind = m0.requests.at(label).kind;
        if (kind == FKind::BoxMsg || kind == FKind::ArcMsg) {
          const std::string bad = out.owner->mismatch(seed);
          if (!bad.empty()) RC_FAIL(step + ": value not constructed from the stored arguments");
        } else {
          out.owner->write(seed);
        }
        s.owners[label] = std::move(out.owner);
      } else {
        if (!expected.error) {
          RC_FAIL(step + ": failed with " + show_error(out.error) + ", model: block at " + at(expected.payload));
        }
        check_eq(show_error(out.error), show_error(expected.error), step + ": error");
      }
    }
    verify(nextState(m0), s, step);
  }

  // FIFO without the model: every future that returned pending before this
  // one did has completed (its waker was called) or was destroyed.
  void check_fifo(const WSut& s, const std::string& step) const {
    for (Label older : s.subscribed) {
      if (older == label) return;
      const bool gone = s.futures.count(older) == 0 || s.counters.at(older)->calls != 0 || s.finished.count(older) != 0;
      if (!gone) RC_FAIL(step + ": got a block while the older waiter #" + std::to_string(older) + " is still pending");
    }
  }

  void show(std::ostream& os) const override { os << "poll(#" << label << ")"; }
};

struct DropFuture final : WCmd {
  Label label;
  explicit DropFuture(Label l) : label(l) {}

  void checkPreconditions(const WModel& m) const override {
    RC_PRE(m.w.exists(label));
    RC_PRE(m.w.future(label).state != FState::Destroyed);
  }

  void apply(WModel& m) const override { m.w.destroy(label); }

  void run(const WModel& m0, WSut& s) const override {
    s.counters.at(label)->destroyed = true;  // from here on, a call of its waker is a failure
    std::unique_ptr<FutureBase> f = std::move(s.futures.at(label));
    s.futures.erase(label);
    f.reset();  // outside the map: the destructor may run other futures' wakers
    verify(nextState(m0), s, "drop_future(#" + std::to_string(label) + ")");
  }

  void show(std::ostream& os) const override { os << "drop_future(#" << label << ")"; }
};

struct RequestStop final : WCmd {
  Label label;
  explicit RequestStop(Label l) : label(l) {}

  void checkPreconditions(const WModel& m) const override {
    RC_PRE(m.w.exists(label));
    RC_PRE(m.w.future(label).has_token);
  }

  void apply(WModel& m) const override { m.w.request_stop(label); }

  void run(const WModel& m0, WSut& s) const override {
    s.sources.at(label).request_stop();
    verify(nextState(m0), s, "request_stop(#" + std::to_string(label) + ")");
  }

  void show(std::ostream& os) const override { os << "request_stop(#" << label << ")"; }
};

// A synchronous raw allocation through the Heap or the held Guard.
struct SyncAlloc final : WCmd {
  Label label;
  Layout layout;
  bool via_guard;
  std::uint32_t seed;
  SyncAlloc(Label l, Layout ly, bool g, std::uint32_t sd) : label(l), layout(ly), via_guard(g), seed(sd) {}

  void checkPreconditions(const WModel& m) const override {
    RC_PRE(label >= m.next_label);
    RC_PRE(!via_guard || m.w.heap().locked());
  }

  void apply(WModel& m) const override {
    m.next_label = label + 1;
    const model::AllocOutcome r = via_guard ? m.w.guard_try_alloc(layout) : m.w.try_alloc(layout);
    if (!r.ok()) return;
    m.owned[label] = r.payload;
    m.seeds[r.payload] = seed;
    m.is_raw[label] = true;
  }

  void run(const WModel& m0, WSut& s) const override {
    const std::string step = description();
    WModel m = m0;
    const model::AllocOutcome expected = via_guard ? m.w.guard_try_alloc(layout) : m.w.try_alloc(layout);
    Result<void*> r = via_guard ? s.guard->try_alloc_raw(layout) : s.heap->try_alloc_raw(layout);
    if (r) {
      if (!expected.ok()) RC_FAIL(step + ": succeeded at " + at(addr(*r)) + ", model: " + show_error(expected.error));
      check_eq(at(addr(*r)), at(expected.payload), step + ": address");
      fill_pattern(*r, layout.size, seed);
      s.owners[label] = std::make_unique<RawOwner>(*r, layout);
    } else {
      if (expected.ok()) {
        RC_FAIL(step + ": failed with " + to_string(r.error()) + ", model gives " + at(expected.payload));
      }
      check_eq(show_error(r.error()), show_error(expected.error), step + ": error");
    }
    verify(nextState(m0), s, step);
  }

  std::string description() const {
    return std::string(via_guard ? "guard." : "") + "try_alloc_raw(" + show_layout(layout) + ") -> #" +
           std::to_string(label);
  }
  void show(std::ostream& os) const override { os << description(); }
};

// Drops a block the test owns (deferred while the Guard is held).
struct Free final : WCmd {
  Label label;
  explicit Free(Label l) : label(l) {}

  void checkPreconditions(const WModel& m) const override { RC_PRE(m.owned.count(label) != 0); }

  void apply(WModel& m) const override {
    const std::uintptr_t p = m.owned.at(label);
    m.owned.erase(label);
    m.seeds.erase(p);
    m.is_raw.erase(label);
    m.w.free(p);
  }

  void run(const WModel& m0, WSut& s) const override {
    s.owners.erase(label);
    verify(nextState(m0), s, "free(#" + std::to_string(label) + ")");
  }

  void show(std::ostream& os) const override { os << "free(#" << label << ")"; }
};

struct GuardFree final : WCmd {
  Label label;
  explicit GuardFree(Label l) : label(l) {}

  void checkPreconditions(const WModel& m) const override {
    RC_PRE(m.w.heap().locked());
    RC_PRE(m.owned.count(label) != 0 && m.is_raw.at(label));
  }

  void apply(WModel& m) const override {
    const std::uintptr_t p = m.owned.at(label);
    m.owned.erase(label);
    m.seeds.erase(p);
    m.is_raw.erase(label);
    m.w.guard_free(p);
  }

  void run(const WModel& m0, WSut& s) const override {
    static_cast<RawOwner&>(*s.owners.at(label)).free_with(*s.guard);
    s.owners.erase(label);
    verify(nextState(m0), s, "guard.free_raw(#" + std::to_string(label) + ")");
  }

  void show(std::ostream& os) const override { os << "guard.free_raw(#" << label << ")"; }
};

struct Lock final : WCmd {
  void apply(WModel& m) const override { m.w.try_lock(); }

  void run(const WModel& m0, WSut& s) const override {
    std::optional<Heap::Guard> g = s.heap->try_lock();
    check_eq(g.has_value(), !m0.w.heap().locked(), "try_lock(): got the lock");
    if (g) s.guard = std::move(g);
    verify(nextState(m0), s, "try_lock()");
  }

  void show(std::ostream& os) const override { os << "try_lock()"; }
};

struct Unlock final : WCmd {
  void checkPreconditions(const WModel& m) const override { RC_PRE(m.w.heap().locked()); }

  void apply(WModel& m) const override { m.w.unlock(); }

  void run(const WModel& m0, WSut& s) const override {
    s.guard.reset();
    verify(nextState(m0), s, "unlock()");
  }

  void show(std::ostream& os) const override { os << "unlock()"; }
};

struct HeapPoll final : WCmd {
  void apply(WModel& m) const override { m.w.poll_heap(); }

  void run(const WModel& m0, WSut& s) const override {
    WModel m = m0;
    const std::size_t expected = m.w.poll_heap();
    check_eq(s.heap->poll(), expected, "heap.poll(): blocks drained");
    verify(m, s, "heap.poll()");
  }

  void show(std::ostream& os) const override { os << "heap.poll()"; }
};

struct Check final : WCmd {
  void apply(WModel& m) const override { m.w.check(); }

  void run(const WModel& m0, WSut& s) const override {
    WModel m = m0;
    const CheckFailure expected = m.w.check();
    check_eq(to_string(s.heap->check().failure), to_string(expected), "heap.check()");
    verify(m, s, "heap.check()");
  }

  void show(std::ostream& os) const override { os << "heap.check()"; }
};

struct Close final : WCmd {
  void apply(WModel& m) const override { m.w.close(); }

  void run(const WModel& m0, WSut& s) const override {
    s.heap->close();
    verify(nextState(m0), s, "close()");
  }

  void show(std::ostream& os) const override { os << "close()"; }
};

// ---- generation ---------------------------------------------------------------------

// Layouts of waiting and sync requests: mostly sizes that fill a small arena
// in a few blocks; sometimes large alignments, impossible or invalid ones.
Layout pick_layout(std::size_t capacity) {
  static const rc::Gen<int> kind = rc::gen::inRange(0, 100);
  static const rc::Gen<std::size_t> small = rc::gen::inRange<std::size_t>(1, 65);
  static const rc::Gen<std::size_t> medium = rc::gen::inRange<std::size_t>(1, 400);
  static const rc::Gen<int> align_bits = rc::gen::inRange(0, 7);
  static const rc::Gen<int> big_align_bits = rc::gen::inRange(7, 13);
  const int k = *kind;
  std::size_t size = 0;
  if (k < 35) {
    size = *small;
  } else if (k < 88) {
    size = *medium;
  } else if (k < 94) {
    size = capacity - *rc::gen::inRange<std::size_t>(0, 40);  // alone in the arena, or TooLarge
  } else if (k < 97) {
    size = 0;  // InvalidLayout
  } else {
    size = *rc::gen::elementOf(std::vector<std::size_t>{SIZE_MAX, std::size_t{1} << 40, capacity + 1});
  }
  const int a = *kind;
  std::size_t align = 0;
  if (a < 85) {
    align = std::size_t{1} << *align_bits;
  } else if (a < 97) {
    align = std::size_t{1} << *big_align_bits;
  } else {
    align = *rc::gen::elementOf(std::vector<std::size_t>{3, std::size_t{1} << 40});
  }
  return Layout{size, align};
}

FRequest pick_request(std::size_t capacity) {
  static const rc::Gen<FKind> kind = rc::gen::weightedElement<FKind>({
      {55, FKind::Raw},
      {15, FKind::BoxMsg},
      {20, FKind::ArrayU32},
      {10, FKind::ArcMsg},
  });
  static const rc::Gen<int> nkind = rc::gen::inRange(0, 100);
  FRequest r;
  r.kind = *kind;
  if (r.kind == FKind::Raw) r.raw = pick_layout(capacity);
  if (r.kind == FKind::ArrayU32) {
    const int k = *nkind;
    if (k < 92) {
      r.n = *rc::gen::inRange<std::size_t>(1, 100);
    } else if (k < 96) {
      r.n = 0;
    } else {
      r.n = *rc::gen::elementOf(std::vector<std::size_t>{std::size_t{1} << 30, SIZE_MAX / 2});
    }
  }
  return r;
}

rc::Gen<std::shared_ptr<const WCmd>> gen_command(const WModel& m) {
  std::vector<Label> pollable;
  std::vector<Label> alive;
  std::vector<Label> stoppable;
  for (const auto& [label, f] : m.w.futures()) {
    if (f.state == FState::Unpolled || f.state == FState::Pending || f.state == FState::Completed) {
      pollable.push_back(label);
    }
    if (f.state != FState::Destroyed) alive.push_back(label);
    if (f.has_token && !f.stop_requested && f.state != FState::Destroyed) stoppable.push_back(label);
  }
  std::vector<Label> owned;
  std::vector<Label> raws;
  for (const auto& [label, p] : m.owned) {
    owned.push_back(label);
    if (m.is_raw.at(label)) raws.push_back(label);
  }
  return rc::gen::exec([next = m.next_label, may_close = m.may_close, locked = m.w.heap().locked(),
                        capacity = m.w.heap().backend().capacity(),
                        pollable = std::move(pollable), alive = std::move(alive), stoppable = std::move(stoppable),
                        owned = std::move(owned), raws = std::move(raws)]() -> std::shared_ptr<const WCmd> {
    static const rc::Gen<int> kind = rc::gen::inRange(0, 1000);
    static const rc::Gen<std::uint32_t> seed = rc::gen::arbitrary<std::uint32_t>();
    const int k = *kind;
    if (k < 170) {
      const bool token = *rc::gen::inRange(0, 10) >= 7;  // shrinks to no token
      return std::make_shared<NewFuture>(next, pick_request(capacity), token, *seed);
    }
    if (k < 400 && !pollable.empty()) return std::make_shared<PollFuture>(*rc::gen::elementOf(pollable));
    if (k < 460 && !alive.empty()) return std::make_shared<DropFuture>(*rc::gen::elementOf(alive));
    if (k < 500 && !stoppable.empty()) return std::make_shared<RequestStop>(*rc::gen::elementOf(stoppable));
    if (k < 660) {
      const bool via_guard = locked && *rc::gen::inRange(0, 5) >= 2;  // shrinks to the Heap
      return std::make_shared<SyncAlloc>(next, pick_layout(capacity), via_guard, *seed);
    }
    if (k < 850 && !owned.empty()) return std::make_shared<Free>(*rc::gen::elementOf(owned));
    if (k < 870 && locked && !raws.empty()) return std::make_shared<GuardFree>(*rc::gen::elementOf(raws));
    if (k < 940) {
      if (locked) return std::make_shared<Unlock>();
      return std::make_shared<Lock>();
    }
    if (k < 955) return std::make_shared<Lock>();  // while held: refused
    if (k < 975) return std::make_shared<HeapPoll>();
    if (k < 990) return std::make_shared<Check>();
    if (may_close) return std::make_shared<Close>();
    // Nothing else applies: a new future.
    return std::make_shared<NewFuture>(next, pick_request(capacity), false, *seed);
  });
}

// Whether close() may appear in a case (one in four): a struct so that a
// counterexample prints it by name.
struct ClosePolicy {
  bool may_close = false;
};

void showValue(const ClosePolicy& p, std::ostream& os) { os << (p.may_close ? "close() allowed" : "no close()"); }

rc::Gen<ClosePolicy> gen_close_policy() {
  return rc::gen::map(rc::gen::inRange(0, 4), [](int x) { return ClosePolicy{x == 3}; });
}

}  // namespace

RC_GTEST_PROP(WaitersProp, FuturesAndTheWaitQueueMatchTheModel, ()) {
  // Small arenas, so that requests wait often.
  const HeapSetup setup = *gen_heap_setup(rc::gen::inRange<std::size_t>(256, 3072));
  WSut sut;
  sut.heap = bootstrap_heap(setup);
  WModel model;
  model.w = WaitModel(heap_model_for(setup));
  model.may_close = (*gen_close_policy()).may_close;
  verify(model, sut, rc::toString(setup));

  const auto commands = *rc::gen::scale(2.0, rc::state::gen::commands(model, &gen_command));
  rc::state::runAll(commands, model, sut);

  WModel end = model;
  std::size_t max_waiting = 0;
  for (const auto& c : commands) {
    c->apply(end);
    max_waiting = std::max(max_waiting, end.w.heap().waiting().size());
  }
  RC_CLASSIFY(max_waiting >= 1, "1+ waiters");
  RC_CLASSIFY(max_waiting >= 3, "3+ waiters");
  RC_CLASSIFY(!end.w.wake_log().empty(), "wakes");
  RC_CLASSIFY(end.w.heap().closed(), "closed");

  // Drop everything: the arena is one free span again, and no waker ran late
  // (a destroyed future's waker) or twice.
  while (!sut.futures.empty()) {
    auto first = sut.futures.begin();
    sut.counters.at(first->first)->destroyed = true;
    std::unique_ptr<FutureBase> f = std::move(first->second);
    sut.futures.erase(first);
    f.reset();  // may serve, and wake, the futures still alive
  }
  sut.owners.clear();
  sut.guard.reset();
  for (const auto& [label, c] : sut.counters) {
    const std::string who = "#" + std::to_string(label);
    if (c->called_after_destroy) {
      RC_FAIL("after dropping everything: the waker of destroyed future " + who + " was called");
    }
    if (c->calls > 1) RC_FAIL("after dropping everything: the waker of " + who + " was called twice");
  }
  const detail::FirstFit& backend = heap_test_access::backend(*sut.heap);
  const Stats st = sut.heap->stats();
  check_eq(st.allocated_bytes, std::size_t{0}, "after dropping everything: allocated_bytes");
  check_eq(st.waiters, std::size_t{0}, "after dropping everything: waiters");
  check_eq(st.spurious_wake_count, std::size_t{0}, "after dropping everything: spurious_wake_count");
  check_report(sut.heap->check(), "after dropping everything");
  const std::vector<model::Span> whole{model::Span{addr(backend.arena_begin()), backend.capacity()}};
  if (holes_of(backend) != whole) RC_FAIL("after dropping everything: holes " + show_holes(holes_of(backend)));
}
