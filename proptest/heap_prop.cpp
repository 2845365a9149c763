// Property: the heap's synchronous API agrees with the heap model
// (model/heap_model.hpp) over random command sequences.
//
// Commands: try_alloc through the Heap or a held Guard of every owner kind
// (Box<u64>, Box<Big64> (64-aligned), Arc<Msg> and its copies, Array<u16>,
// array_with<u32>, FixedVec<u64> with pushes and pops, raw blocks with random
// layouts, invalid and huge ones included), drops (deferred while a Guard is
// held), guard.free_raw, try_lock / unlock, poll(), close(), and content
// rewrites. After every step:
//   - every result (address or error) is the model's, every Stats field is
//     the model's, check() is ok (Busy while the Guard is held, and the
//     Guard's own check() ok), and the backend's holes are the model's;
//   - every live block is aligned, inside the arena, disjoint from the others
//     and from the holes, and its contents are exactly what was written
//     (invariants 1-3 and 6 of DESIGN.md);
// and once every owner is dropped and the Guard released, the backend is one
// free span over the whole arena again.
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
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "model/heap_model.hpp"
#include "owners.hpp"
#include "support.hpp"

using namespace mnemos;
using namespace mnemos::proptest;

namespace {

enum class Kind : std::uint8_t { Raw, BoxU64, BoxBig, Arc, Array16, ArrayWith32, Vec64 };

const char* kind_call(Kind k) {
  switch (k) {
    case Kind::Raw: return "try_alloc_raw";
    case Kind::BoxU64: return "try_alloc<u64>";
    case Kind::BoxBig: return "try_alloc<Big64>";
    case Kind::Arc: return "try_alloc_arc<Msg>";
    case Kind::Array16: return "try_alloc_array<u16>";
    case Kind::ArrayWith32: return "try_alloc_array_with<u32>";
    case Kind::Vec64: return "try_alloc_fixed_vec<u64>";
  }
  return "?";
}

// What an allocation command asks for: `n` is the element count or capacity
// of the array kinds; `raw` the layout of a raw block.
struct Request {
  Kind kind = Kind::Raw;
  std::size_t n = 0;
  Layout raw{};

  Layout layout() const {
    switch (kind) {
      case Kind::Raw: return raw;
      case Kind::BoxU64: return Layout::of<std::uint64_t>();
      case Kind::BoxBig: return Layout::of<Big64>();
      case Kind::Arc: return Arc<Msg>::block_layout();
      case Kind::Array16: return array_layout<std::uint16_t>(n);
      case Kind::ArrayWith32: return array_layout<std::uint32_t>(n);
      case Kind::Vec64: return array_layout<std::uint64_t>(n);
    }
    return raw;
  }

  std::string show() const {
    std::string args;
    switch (kind) {
      case Kind::Raw: args = show_layout(raw); break;
      case Kind::Array16:
      case Kind::ArrayWith32: args = "n=" + show_size(n); break;
      case Kind::Vec64: args = "capacity=" + show_size(n); break;
      case Kind::BoxU64:
      case Kind::BoxBig:
      case Kind::Arc: break;
    }
    return std::string(kind_call(kind)) + "(" + args + ")";
  }
};

// ---- the model ------------------------------------------------------------------

// A block's contents as the model knows them.
struct Content {
  Kind kind = Kind::Raw;
  Layout layout{};
  std::size_t n = 0;         // elements (arrays) or capacity (FixedVec)
  std::uint32_t seed = 0;    // the pattern last written
  std::size_t vec_size = 0;  // FixedVec: elements pushed
  std::size_t arc_refs = 0;  // Arc: owners alive
};

struct HModel {
  model::HeapModel heap;
  std::map<Label, std::uintptr_t> handles;   // label -> payload (Arc copies share one)
  std::map<std::uintptr_t, Content> blocks;  // payload -> contents, for live blocks with an owner
  Label next_label = 0;
  // For the distribution printed at the end of a run.
  std::size_t refused = 0;
  std::size_t deferred = 0;
};

// ---- the system under test --------------------------------------------------------

struct HSut {
  Heap* heap = nullptr;
  std::optional<Heap::Guard> guard;
  std::map<Label, std::unique_ptr<Owner>> owners;  // destroyed first (declared last)

  HSut() = default;
  HSut(const HSut&) = delete;
  HSut& operator=(const HSut&) = delete;
  ~HSut() {
    owners.clear();  // frees (deferred if the guard is held), then the guard's release drains
    guard.reset();
  }
};

using HCmd = rc::state::Command<HModel, HSut>;

// ---- checks after every step ---------------------------------------------------------

void verify(const HModel& m, HSut& s, const std::string& step) {
  Heap& heap = *s.heap;
  check_stats(heap.stats(), m.heap.stats(), step);
  if (!m.heap.consistent()) RC_FAIL(step + ": the model is inconsistent (a bug of the model)");
  if (s.guard) {
    check_eq(to_string(heap.check().failure), to_string(CheckFailure::Busy), step + ": check() under the Guard");
    check_report(s.guard->check(), step + ": guard.check()");
  } else {
    check_report(heap.check(), step);
  }
  const detail::HeapLock& lock = heap_test_access::lock(heap);
  check_eq(lock.is_locked(), m.heap.locked(), step + ": lock held");
  check_eq(lock.has_deferred(), !m.heap.deferred().empty(), step + ": deferred queue non-empty");
  check_eq(lock.has_waiters(), false, step + ": WAITERS bit");

  const detail::FirstFit& backend = heap_test_access::backend(heap);
  const std::vector<model::Span> holes = holes_of(backend);
  if (holes != m.heap.backend().holes()) {
    RC_FAIL(step + ": holes differ\n  actual " + show_holes(holes) + "\n  model  " +
            show_holes(m.heap.backend().holes()));
  }

  // The real owners: one payload per block, the model's live blocks exactly.
  std::map<std::uintptr_t, Label> payloads;
  for (const auto& [label, owner] : s.owners) payloads.emplace(addr(owner->payload()), label);
  check_eq(payloads.size(), m.heap.live().size(), step + ": live blocks");
  std::vector<model::Span> used;
  for (const auto& [payload, b] : m.heap.live()) {
    auto it = payloads.find(payload);
    if (it == payloads.end()) RC_FAIL(step + ": no owner holds the model's live block at " + at(payload));
    const Label label = it->second;
    if (payload % b.layout.align != 0) RC_FAIL(step + ": #" + std::to_string(label) + " misaligned");
    const std::string bad = s.owners.at(label)->mismatch(m.blocks.at(payload).seed);
    if (!bad.empty()) RC_FAIL(step + ": contents of #" + std::to_string(label) + " changed (" + bad + ")");
    used.push_back(model::Span{payload - model::header_offset(b.layout.align), b.size});
  }
  for (const model::Block& b : m.heap.deferred()) used.push_back(model::Span{b.start, b.size});
  // Invariant 1 on the real addresses: inside the arena, disjoint, not free.
  std::sort(used.begin(), used.end(), [](const model::Span& x, const model::Span& y) { return x.start < y.start; });
  std::size_t sum = 0;
  for (std::size_t i = 0; i < used.size(); ++i) {
    if (used[i].start < addr(backend.arena_begin()) || used[i].end() > addr(backend.arena_end())) {
      RC_FAIL(step + ": block at " + at(used[i].start) + " outside the arena");
    }
    if (i > 0 && used[i - 1].end() > used[i].start) RC_FAIL(step + ": blocks overlap at " + at(used[i].start));
    sum += used[i].size;
  }
  const model::FirstFitModel real_free =
      model::FirstFitModel::from_holes(addr(backend.arena_begin()), addr(backend.arena_end()), holes);
  for (const model::Span& u : used) {
    if (real_free.overlaps_hole(u.start, u.size)) RC_FAIL(step + ": block at " + at(u.start) + " overlaps a hole");
  }
  // Invariant 2: live + deferred + free = arena.
  check_eq(sum + backend.free_bytes(), backend.capacity(), step + ": live + deferred + free bytes");
}

// ---- commands -------------------------------------------------------------------------

struct Alloc final : HCmd {
  Label label;
  Request req;
  bool via_guard;
  std::uint32_t seed;

  Alloc(Label l, Request r, bool g, std::uint32_t s) : label(l), req(r), via_guard(g), seed(s) {}

  void checkPreconditions(const HModel& m) const override {
    RC_PRE(label >= m.next_label);
    RC_PRE(!via_guard || m.heap.locked());
  }

  void apply(HModel& m) const override {
    m.next_label = label + 1;
    const model::AllocOutcome r = via_guard ? m.heap.guard_try_alloc(req.layout()) : m.heap.try_alloc(req.layout());
    if (!r.ok()) {
      ++m.refused;
      return;
    }
    m.handles[label] = r.payload;
    Content c;
    c.kind = req.kind;
    c.layout = req.layout();
    c.n = req.n;
    c.seed = seed;
    c.arc_refs = 1;
    m.blocks[r.payload] = c;
  }

  // Runs the allocation on a Heap or a Guard and checks it against the
  // model's outcome; the new owner joins the SUT.
  template <class Source>
  void run_on(Source& src, const model::AllocOutcome& expected, HSut& s) const {
    const std::string step = description();
    std::unique_ptr<Owner> owner;
    std::optional<Error> error;
    std::string initial;  // what was wrong with the initial contents, if anything
    switch (req.kind) {
      case Kind::Raw: {
        Result<void*> r = src.try_alloc_raw(req.raw);
        if (r) {
          owner = std::make_unique<RawOwner>(*r, req.raw);
        } else {
          error = r.error();
        }
        break;
      }
      case Kind::BoxU64: {
        Result<Box<std::uint64_t>> r = src.template try_alloc<std::uint64_t>(value_of(seed, 0));
        if (r) {
          owner = std::make_unique<BoxU64Owner>(std::move(*r));
        } else {
          error = r.error();
        }
        break;
      }
      case Kind::BoxBig: {
        Result<Box<Big64>> r = src.template try_alloc<Big64>();
        if (r) {
          for (std::uint8_t byte : (*r)->bytes) {
            if (byte != 0) initial = "Big64 not value-initialised";
          }
          owner = std::make_unique<BoxBigOwner>(std::move(*r));
        } else {
          error = r.error();
        }
        break;
      }
      case Kind::Arc: {
        Result<Arc<Msg>> r = src.template try_alloc_arc<Msg>(static_cast<std::uint32_t>(value_of(seed, 0)),
                                                             static_cast<std::uint32_t>(value_of(seed, 1)));
        if (r) {
          if (r->use_count() != 1) initial = "use_count() != 1";
          owner = std::make_unique<ArcOwner>(std::move(*r));
        } else {
          error = r.error();
        }
        break;
      }
      case Kind::Array16: {
        Result<Array<std::uint16_t>> r = src.template try_alloc_array<std::uint16_t>(req.n);
        if (r) {
          if (r->size() != req.n) initial = "size() != n";
          for (std::uint16_t x : *r) {
            if (x != 0) initial = "not value-initialised";
          }
          owner = std::make_unique<ArrayOwner<std::uint16_t>>(std::move(*r));
        } else {
          error = r.error();
        }
        break;
      }
      case Kind::ArrayWith32: {
        std::size_t i = 0;
        const std::uint32_t sd = seed;
        Result<Array<std::uint32_t>> r = src.template try_alloc_array_with<std::uint32_t>(
            req.n, [&i, sd] { return static_cast<std::uint32_t>(value_of(sd, i++)); });
        if (r) {
          if (i != req.n) initial = "make() called " + std::to_string(i) + " times";
          owner = std::make_unique<ArrayOwner<std::uint32_t>>(std::move(*r));
        } else {
          error = r.error();
          if (i != 0) initial = "make() called on a failed allocation";
        }
        break;
      }
      case Kind::Vec64: {
        Result<FixedVec<std::uint64_t>> r = src.template try_alloc_fixed_vec<std::uint64_t>(req.n);
        if (r) {
          if (r->size() != 0 || r->capacity() != req.n) initial = "size() or capacity() wrong";
          owner = std::make_unique<VecOwner>(std::move(*r));
        } else {
          error = r.error();
        }
        break;
      }
    }
    if (!initial.empty()) RC_FAIL(step + ": " + initial);
    if (owner) {
      if (!expected.ok()) {
        RC_FAIL(step + ": succeeded at " + at(addr(owner->payload())) + ", model: " + show_error(expected.error));
      }
      check_eq(at(addr(owner->payload())), at(expected.payload), step + ": address");
      // Raw blocks, Big64 and plain arrays get their pattern now; the others
      // were constructed with it.
      if (req.kind == Kind::Raw || req.kind == Kind::BoxBig || req.kind == Kind::Array16) owner->write(seed);
      s.owners[label] = std::move(owner);
    } else if (expected.ok()) {
      RC_FAIL(step + ": failed with " + show_error(error) + ", model gives " + at(expected.payload));
    } else {
      check_eq(show_error(error), show_error(expected.error), step + ": error");
    }
  }

  void run(const HModel& m0, HSut& s) const override {
    // The model's outcome, from a copy of the state before the step.
    HModel m = m0;
    const model::AllocOutcome expected =
        via_guard ? m.heap.guard_try_alloc(req.layout()) : m.heap.try_alloc(req.layout());
    if (via_guard) {
      run_on(*s.guard, expected, s);
    } else {
      run_on(*s.heap, expected, s);
    }
    verify(nextState(m0), s, description());
  }

  std::string description() const {
    return std::string(via_guard ? "guard." : "") + req.show() + " -> #" + std::to_string(label);
  }
  void show(std::ostream& os) const override { os << description(); }
};

// The label's block: its payload and contents (preconditions: the label exists).
const Content& content_of(const HModel& m, Label l) { return m.blocks.at(m.handles.at(l)); }

// Drops an owner: frees its block (the last Arc owner only); deferred while
// the Guard is held.
struct Drop final : HCmd {
  Label label;
  explicit Drop(Label l) : label(l) {}

  void checkPreconditions(const HModel& m) const override { RC_PRE(m.handles.count(label) != 0); }

  void apply(HModel& m) const override {
    const std::uintptr_t payload = m.handles.at(label);
    m.handles.erase(label);
    Content& c = m.blocks.at(payload);
    if (--c.arc_refs != 0) return;
    m.blocks.erase(payload);
    if (m.heap.locked()) ++m.deferred;
    m.heap.free(payload);
  }

  void run(const HModel& m0, HSut& s) const override {
    const std::string step = "drop(#" + std::to_string(label) + ")";
    const std::string bad = s.owners.at(label)->mismatch(content_of(m0, label).seed);
    if (!bad.empty()) RC_FAIL(step + ": contents changed before the drop (" + bad + ")");
    s.owners.erase(label);
    verify(nextState(m0), s, step);
  }

  void show(std::ostream& os) const override { os << "drop(#" << label << ")"; }
};

// guard.free_raw of a raw block.
struct GuardFree final : HCmd {
  Label label;
  explicit GuardFree(Label l) : label(l) {}

  void checkPreconditions(const HModel& m) const override {
    RC_PRE(m.heap.locked());
    RC_PRE(m.handles.count(label) != 0);
    RC_PRE(content_of(m, label).kind == Kind::Raw);
  }

  void apply(HModel& m) const override {
    const std::uintptr_t payload = m.handles.at(label);
    m.handles.erase(label);
    m.blocks.erase(payload);
    m.heap.guard_free(payload);
  }

  void run(const HModel& m0, HSut& s) const override {
    const std::string step = "guard.free_raw(#" + std::to_string(label) + ")";
    auto& owner = static_cast<RawOwner&>(*s.owners.at(label));
    const std::string bad = owner.mismatch(content_of(m0, label).seed);
    if (!bad.empty()) RC_FAIL(step + ": contents changed before the free (" + bad + ")");
    owner.free_with(*s.guard);
    s.owners.erase(label);
    verify(nextState(m0), s, step);
  }

  void show(std::ostream& os) const override { os << "guard.free_raw(#" << label << ")"; }
};

// A copy of an Arc: one more owner of the same block.
struct ArcCopy final : HCmd {
  Label from;
  Label label;
  ArcCopy(Label f, Label l) : from(f), label(l) {}

  void checkPreconditions(const HModel& m) const override {
    RC_PRE(label >= m.next_label);
    RC_PRE(m.handles.count(from) != 0);
    RC_PRE(content_of(m, from).kind == Kind::Arc);
  }

  void apply(HModel& m) const override {
    m.next_label = label + 1;
    const std::uintptr_t payload = m.handles.at(from);
    m.handles[label] = payload;
    ++m.blocks.at(payload).arc_refs;
  }

  void run(const HModel& m0, HSut& s) const override {
    const HModel m = nextState(m0);
    const std::string step = description();
    const auto& source = static_cast<const ArcOwner&>(*s.owners.at(from));
    s.owners[label] = std::make_unique<ArcOwner>(Arc<Msg>(source.arc()));
    check_eq(source.arc().use_count(), content_of(m, label).arc_refs, step + ": use_count()");
    verify(m, s, step);
  }

  std::string description() const { return "copy(#" + std::to_string(from) + ") -> #" + std::to_string(label); }
  void show(std::ostream& os) const override { os << description(); }
};

// FixedVec: push `count` elements (the ones past the capacity are refused), or pop one.
struct VecPush final : HCmd {
  Label label;
  std::size_t count;
  VecPush(Label l, std::size_t c) : label(l), count(c) {}

  void checkPreconditions(const HModel& m) const override {
    RC_PRE(m.handles.count(label) != 0);
    RC_PRE(content_of(m, label).kind == Kind::Vec64);
  }

  void apply(HModel& m) const override {
    Content& c = m.blocks.at(m.handles.at(label));
    c.vec_size = std::min(c.n, c.vec_size + count);
  }

  void run(const HModel& m0, HSut& s) const override {
    const std::string step = description();
    const Content& c = content_of(m0, label);
    FixedVec<std::uint64_t>& vec = static_cast<VecOwner&>(*s.owners.at(label)).vec();
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t index = c.vec_size + i;
      const bool pushed = vec.push_back(value_of(c.seed, index));
      check_eq(pushed, index < c.n, step + ": push_back of element " + std::to_string(index));
    }
    verify(nextState(m0), s, step);
  }

  std::string description() const {
    return "push(#" + std::to_string(label) + ", count=" + std::to_string(count) + ")";
  }
  void show(std::ostream& os) const override { os << description(); }
};

struct VecPop final : HCmd {
  Label label;
  explicit VecPop(Label l) : label(l) {}

  void checkPreconditions(const HModel& m) const override {
    RC_PRE(m.handles.count(label) != 0);
    RC_PRE(content_of(m, label).kind == Kind::Vec64);
  }

  void apply(HModel& m) const override {
    Content& c = m.blocks.at(m.handles.at(label));
    if (c.vec_size != 0) --c.vec_size;
  }

  void run(const HModel& m0, HSut& s) const override {
    const std::string step = "pop(#" + std::to_string(label) + ")";
    const Content& c = content_of(m0, label);
    std::optional<std::uint64_t> popped = static_cast<VecOwner&>(*s.owners.at(label)).vec().pop_back();
    if (c.vec_size == 0) {
      check(!popped.has_value(), step + ": pop_back of an empty FixedVec returned a value");
    } else {
      check(popped.has_value() && *popped == value_of(c.seed, c.vec_size - 1), step + ": wrong element popped");
    }
    verify(nextState(m0), s, step);
  }

  void show(std::ostream& os) const override { os << "pop(#" << label << ")"; }
};

// Rewrites a block's contents with a new pattern.
struct Write final : HCmd {
  Label label;
  std::uint32_t seed;
  Write(Label l, std::uint32_t sd) : label(l), seed(sd) {}

  void checkPreconditions(const HModel& m) const override { RC_PRE(m.handles.count(label) != 0); }

  void apply(HModel& m) const override { m.blocks.at(m.handles.at(label)).seed = seed; }

  void run(const HModel& m0, HSut& s) const override {
    s.owners.at(label)->write(seed);
    verify(nextState(m0), s, "write(#" + std::to_string(label) + ")");
  }

  void show(std::ostream& os) const override { os << "write(#" << label << ")"; }
};

struct Lock final : HCmd {
  void apply(HModel& m) const override { m.heap.try_lock(); }

  void run(const HModel& m0, HSut& s) const override {
    std::optional<Heap::Guard> g = s.heap->try_lock();
    check_eq(g.has_value(), !m0.heap.locked(), "try_lock(): got the lock");
    if (g) s.guard = std::move(g);
    verify(nextState(m0), s, "try_lock()");
  }

  void show(std::ostream& os) const override { os << "try_lock()"; }
};

struct Unlock final : HCmd {
  void checkPreconditions(const HModel& m) const override { RC_PRE(m.heap.locked()); }

  void apply(HModel& m) const override { m.heap.unlock(); }

  void run(const HModel& m0, HSut& s) const override {
    s.guard.reset();
    verify(nextState(m0), s, "unlock()");
  }

  void show(std::ostream& os) const override { os << "unlock()"; }
};

struct Poll final : HCmd {
  void apply(HModel& m) const override { m.heap.poll(); }

  void run(const HModel& m0, HSut& s) const override {
    HModel m = m0;
    const std::size_t expected = m.heap.poll();
    check_eq(s.heap->poll(), expected, "poll(): blocks drained");
    verify(m, s, "poll()");
  }

  void show(std::ostream& os) const override { os << "poll()"; }
};

struct Close final : HCmd {
  void apply(HModel& m) const override { m.heap.close(); }

  void run(const HModel& m0, HSut& s) const override {
    s.heap->close();
    verify(nextState(m0), s, "close()");
  }

  void show(std::ostream& os) const override { os << "close()"; }
};

// ---- generation ---------------------------------------------------------------------

Layout pick_raw_layout(std::size_t capacity) {
  static const rc::Gen<int> kind = rc::gen::inRange(0, 100);
  static const rc::Gen<std::size_t> medium = rc::gen::inRange<std::size_t>(1, 601);
  static const rc::Gen<std::size_t> small = rc::gen::inRange<std::size_t>(1, 65);
  static const rc::Gen<int> align_bits = rc::gen::inRange(0, 9);
  static const rc::Gen<int> big_align_bits = rc::gen::inRange(9, 13);
  const int k = *kind;
  std::size_t size = 0;
  if (k < 40) {
    size = *small;
  } else if (k < 85) {
    size = *medium;
  } else if (k < 88) {
    size = 0;  // InvalidLayout
  } else if (k < 94) {
    size = capacity - *rc::gen::inRange<std::size_t>(0, 24);  // at the TooLarge boundary
  } else {
    size = *rc::gen::elementOf(std::vector<std::size_t>{SIZE_MAX, static_cast<std::size_t>(PTRDIFF_MAX),
                                                        static_cast<std::size_t>(PTRDIFF_MAX) - 63,
                                                        std::size_t{1} << 40, capacity + 1});
  }
  const int a = *kind;
  std::size_t align = 0;
  if (a < 80) {
    align = std::size_t{1} << *align_bits;
  } else if (a < 92) {
    align = std::size_t{1} << *big_align_bits;
  } else if (a < 96) {
    align = *rc::gen::elementOf(std::vector<std::size_t>{0, 3, 24});  // InvalidLayout
  } else {
    align = *rc::gen::elementOf(std::vector<std::size_t>{std::size_t{1} << 40, std::size_t{1} << 62});
  }
  return Layout{size, align};
}

std::size_t pick_count() {
  static const rc::Gen<int> kind = rc::gen::inRange(0, 100);
  static const rc::Gen<std::size_t> n = rc::gen::inRange<std::size_t>(1, 120);
  const int k = *kind;
  if (k < 88) return *n;
  if (k < 93) return 0;  // InvalidLayout
  return *rc::gen::elementOf(std::vector<std::size_t>{std::size_t{1} << 40, SIZE_MAX / 2, SIZE_MAX});
}

Request pick_request(std::size_t capacity) {
  static const rc::Gen<Kind> kind = rc::gen::weightedElement<Kind>({
      {30, Kind::Raw},
      {10, Kind::BoxU64},
      {7, Kind::BoxBig},
      {10, Kind::Arc},
      {10, Kind::Array16},
      {8, Kind::ArrayWith32},
      {10, Kind::Vec64},
  });
  Request r;
  r.kind = *kind;
  if (r.kind == Kind::Raw) r.raw = pick_raw_layout(capacity);
  if (r.kind == Kind::Array16 || r.kind == Kind::ArrayWith32 || r.kind == Kind::Vec64) r.n = pick_count();
  return r;
}

rc::Gen<std::shared_ptr<const HCmd>> gen_command(const HModel& m) {
  std::vector<Label> all;
  std::vector<Label> raws;
  std::vector<Label> arcs;
  std::vector<Label> vecs;
  for (const auto& [label, payload] : m.handles) {
    all.push_back(label);
    const Kind k = m.blocks.at(payload).kind;
    if (k == Kind::Raw) raws.push_back(label);
    if (k == Kind::Arc) arcs.push_back(label);
    if (k == Kind::Vec64) vecs.push_back(label);
  }
  return rc::gen::exec([next = m.next_label, locked = m.heap.locked(), capacity = m.heap.backend().capacity(),
                        all = std::move(all), raws = std::move(raws), arcs = std::move(arcs),
                        vecs = std::move(vecs)]() -> std::shared_ptr<const HCmd> {
    static const rc::Gen<int> kind = rc::gen::inRange(0, 1000);
    static const rc::Gen<std::uint32_t> seed = rc::gen::arbitrary<std::uint32_t>();
    int k = *kind;
    if (all.empty() && k >= 450 && k < 800) k = 0;  // nothing to drop, write or push to: allocate
    if (k < 450) {
      const bool via_guard = locked && *rc::gen::inRange(0, 5) >= 2;  // shrinks to the Heap
      return std::make_shared<Alloc>(next, pick_request(capacity), via_guard, *seed);
    }
    if (k < 700) return std::make_shared<Drop>(*rc::gen::elementOf(all));
    if (k < 740 && locked && !raws.empty()) return std::make_shared<GuardFree>(*rc::gen::elementOf(raws));
    if (k < 770 && !arcs.empty()) return std::make_shared<ArcCopy>(*rc::gen::elementOf(arcs), next);
    if (k < 800 && !vecs.empty()) {
      if (*rc::gen::inRange(0, 4) == 0) return std::make_shared<VecPop>(*rc::gen::elementOf(vecs));
      return std::make_shared<VecPush>(*rc::gen::elementOf(vecs), *rc::gen::inRange<std::size_t>(1, 20));
    }
    if (k < 830 && !all.empty()) return std::make_shared<Write>(*rc::gen::elementOf(all), *seed);
    if (k < 930) {
      if (locked) return std::make_shared<Unlock>();
      return std::make_shared<Lock>();
    }
    if (k < 960) return std::make_shared<Lock>();  // while held: refused
    if (k < 995) return std::make_shared<Poll>();
    return std::make_shared<Close>();
  });
}

}  // namespace

TEST(HeapModel, BlockFormulaMatchesTheHeader) {
  for (std::size_t align = 1; align <= 4096; align *= 2) {
    EXPECT_EQ(model::header_offset(align), detail::header_offset(align));
    for (std::size_t size : {std::size_t{1}, std::size_t{8}, std::size_t{100}}) {
      const Layout l{size, align};
      EXPECT_EQ(model::layout_valid(l), l.valid());
      EXPECT_EQ(model::block_request(l)->size, detail::block_request(l)->size);
      EXPECT_EQ(model::block_request(l)->align, detail::block_request(l)->align);
    }
  }
  EXPECT_EQ(model::layout_valid(Layout{SIZE_MAX, 1}), (Layout{SIZE_MAX, 1}.valid()));
  EXPECT_EQ(model::layout_valid(Layout{static_cast<std::size_t>(PTRDIFF_MAX), 2}),
            (Layout{static_cast<std::size_t>(PTRDIFF_MAX), 2}.valid()));
}

// bootstrap() over any region: RegionMisaligned, RegionTooSmall, or a heap
// whose arena is the model's (R6 applied to the bytes after the Heap object).
RC_GTEST_PROP(HeapProp, BootstrapMatchesTheModel, ()) {
  const std::size_t offset = *rc::gen::inRange<std::size_t>(0, 2 * alignof(Heap) + 1);
  const std::size_t size = *rc::gen::inRange<std::size_t>(0, sizeof(Heap) + 64);
  FixedRegion::reset();
  const std::string step = "bootstrap(region+" + std::to_string(offset) + ", " + std::to_string(size) + ")";
  const Result<Heap*> made = Heap::bootstrap(std::span<std::byte>(FixedRegion::data() + offset, size));
  model::FirstFitModel arena;
  std::optional<Error> expected;
  if (offset % alignof(Heap) != 0) {
    expected = Error::RegionMisaligned;
  } else if (size < sizeof(Heap) || !arena.init(FixedRegion::address() + offset + sizeof(Heap), size - sizeof(Heap))) {
    expected = Error::RegionTooSmall;
  }
  if (!made) {
    check_eq(show_error(made.error()), show_error(expected), step);
    return;
  }
  check_eq(show_error(std::nullopt), show_error(expected), step);
  Heap& heap = **made;
  check_eq(heap.capacity(), arena.capacity(), step + ": capacity()");
  check(holes_of(heap_test_access::backend(heap)) == arena.holes(), step + ": one hole over the arena");
  const model::HeapModel fresh(FixedRegion::address() + offset + sizeof(Heap), size - sizeof(Heap));
  check_stats(heap.stats(), fresh.stats(), step);
}

RC_GTEST_PROP(HeapProp, SyncApiMatchesTheModel, ()) {
  // The region: at a random (aligned) offset in the fixed region, large enough
  // for the heap's state and some blocks; small arenas make NoMemory common.
  const HeapSetup setup = *gen_heap_setup(rc::gen::weightedOneOf<std::size_t>({
      {6, rc::gen::inRange<std::size_t>(32, 2048)},
      {4, rc::gen::inRange<std::size_t>(2048, 12288)},
  }));
  HSut sut;
  sut.heap = bootstrap_heap(setup);
  HModel model;
  model.heap = heap_model_for(setup);
  verify(model, sut, rc::toString(setup));

  const auto commands = *rc::gen::scale(2.0, rc::state::gen::commands(model, &gen_command));
  rc::state::runAll(commands, model, sut);

  HModel end = model;
  rc::state::applyAll(commands, end);
  RC_CLASSIFY(end.refused * 3 > commands.size(), "many refusals");
  RC_CLASSIFY(end.deferred != 0, "deferred frees");
  RC_CLASSIFY(end.heap.closed(), "closed");

  // Drop everything: the arena is one free span again.
  sut.owners.clear();
  sut.guard.reset();
  const detail::FirstFit& backend = heap_test_access::backend(*sut.heap);
  const Stats st = sut.heap->stats();
  check_eq(st.allocated_bytes, std::size_t{0}, "after dropping everything: allocated_bytes");
  check_eq(st.deferred_pending, std::size_t{0}, "after dropping everything: deferred_pending");
  check_report(sut.heap->check(), "after dropping everything");
  const std::vector<model::Span> whole{model::Span{addr(backend.arena_begin()), backend.capacity()}};
  if (holes_of(backend) != whole) RC_FAIL("after dropping everything: holes " + show_holes(holes_of(backend)));
}
