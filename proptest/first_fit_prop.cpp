// Property: the first-fit backend (detail::FirstFit) behaves exactly as its
// reference model (model/first_fit_model.hpp, rules R1-R6).
//
// For every generated arena (random offset into a fixed region, random length,
// sometimes too small to hold a hole) and sequence of allocate / deallocate /
// fits_when_empty with random sizes (mostly 1..600; sometimes 0, sizes derived
// from a current hole to hit the exact-fit and back-padding boundaries, and
// huge ones) and alignments (1..4096, sometimes up to 1 MiB, 2^40, 2^63, or not
// a power of two), after every step:
//   - allocate() returns exactly the model's address, and fails exactly when
//     the model fails; fits_when_empty() agrees;
//   - check() is ok, free_bytes() and hole_count() are equal, and the hole
//     lists are identical (start and size of every hole);
//   - the bytes of every live block are intact (the backend writes only into
//     holes) and every block honours its alignment.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "model/first_fit_model.hpp"
#include "support.hpp"

using namespace mnemos;
using namespace mnemos::proptest;
using model::FirstFitModel;

namespace {

struct FfBlock {
  std::uintptr_t start = 0;
  std::size_t size = 0;    // as requested (deallocate is told the same)
  std::size_t align = 0;   // as requested
  std::uint32_t seed = 0;  // pattern of its bytes
};

struct FfModel {
  FirstFitModel ff;
  std::map<Label, FfBlock> live;
  Label next_label = 0;
  int alloc_percent = 50;  // per case: how many commands allocate (the rest mostly free)
  // For the distribution printed at the end of a run.
  std::size_t allocations = 0;
  std::size_t failed_allocations = 0;
  std::size_t max_holes = 0;
};

struct FfSut {
  detail::FirstFit ff;
  std::map<Label, void*> live;
};

using FfCmd = rc::state::Command<FfModel, FfSut>;

// The bytes a live block may be written with: the whole rounded block.
std::size_t block_bytes(std::size_t requested) { return *FirstFitModel::rounded_size(requested); }

// Everything the property checks after a step, against the model after it.
void verify(const FfModel& m, const FfSut& s, const std::string& step) {
  check_report(s.ff.check(), step);
  check_eq(s.ff.free_bytes(), m.ff.free_bytes(), step + ": free_bytes()");
  check_eq(s.ff.hole_count(), m.ff.hole_count(), step + ": hole_count()");
  const std::vector<model::Span> real = holes_of(s.ff);
  const std::vector<model::Span> expected = m.ff.holes();
  if (real != expected) {
    RC_FAIL(step + ": holes differ\n  actual " + show_holes(real) + "\n  model  " + show_holes(expected));
  }
  for (const auto& [label, b] : m.live) {
    void* p = s.live.at(label);
    const std::size_t bad = pattern_mismatch(p, block_bytes(b.size), b.seed);
    if (bad != block_bytes(b.size)) {
      RC_FAIL(step + ": bytes of live block #" + std::to_string(label) + " at " + at(b.start) + " changed at offset " +
              std::to_string(bad));
    }
  }
}

struct Allocate final : FfCmd {
  Label label;
  std::size_t size;
  std::size_t align;
  std::uint32_t seed;

  Allocate(Label l, std::size_t sz, std::size_t al, std::uint32_t sd) : label(l), size(sz), align(al), seed(sd) {}

  void checkPreconditions(const FfModel& m) const override { RC_PRE(label >= m.next_label); }

  void apply(FfModel& m) const override {
    m.next_label = label + 1;
    ++m.allocations;
    if (std::optional<std::uintptr_t> a = m.ff.allocate(size, align)) {
      m.live[label] = FfBlock{*a, size, align, seed};
    } else {
      ++m.failed_allocations;
    }
    m.max_holes = std::max(m.max_holes, m.ff.hole_count());
  }

  void run(const FfModel& m0, FfSut& s) const override {
    const FfModel m = nextState(m0);
    const std::string step = description();
    void* p = s.ff.allocate(size, align);
    auto it = m.live.find(label);
    if (it == m.live.end()) {
      if (p != nullptr) RC_FAIL(step + ": returned " + at(addr(p)) + ", model fails");
    } else {
      if (p == nullptr) RC_FAIL(step + ": returned nullptr, model gives " + at(it->second.start));
      check_eq(at(addr(p)), at(it->second.start), step + ": address");
      check(addr(p) % FirstFitModel::effective_align(align) == 0, step + ": misaligned block");
      fill_pattern(p, block_bytes(size), seed);
      s.live[label] = p;
    }
    verify(m, s, step);
  }

  std::string description() const {
    return "allocate(size=" + show_size(size) + ", align=" + show_size(align) + ") -> #" + std::to_string(label);
  }
  void show(std::ostream& os) const override { os << description(); }
};

struct Deallocate final : FfCmd {
  Label label;
  explicit Deallocate(Label l) : label(l) {}

  void checkPreconditions(const FfModel& m) const override { RC_PRE(m.live.count(label) != 0); }

  void apply(FfModel& m) const override {
    const FfBlock b = m.live.at(label);
    m.live.erase(label);
    if (!m.ff.deallocate(b.start, b.size)) RC_FAIL("model refused the deallocation of a live block");
  }

  void run(const FfModel& m0, FfSut& s) const override {
    const FfModel m = nextState(m0);
    const FfBlock b = m0.live.at(label);
    s.ff.deallocate(s.live.at(label), b.size);
    s.live.erase(label);
    verify(m, s, "deallocate(#" + std::to_string(label) + ")");
  }

  void show(std::ostream& os) const override { os << "deallocate(#" << label << ")"; }
};

struct FitsWhenEmpty final : FfCmd {
  std::size_t size;
  std::size_t align;
  FitsWhenEmpty(std::size_t sz, std::size_t al) : size(sz), align(al) {}

  void run(const FfModel& m, FfSut& s) const override {
    check_eq(s.ff.fits_when_empty(size, align), m.ff.fits_when_empty(size, align),
             "fits_when_empty(size=" + show_size(size) + ", align=" + show_size(align) + ")");
  }

  void show(std::ostream& os) const override {
    os << "fits_when_empty(size=" << show_size(size) << ", align=" << show_size(align) << ")";
  }
};

// Alignments: mostly 1..64, often up to 4096, sometimes up to 1 MiB (the
// region is 1 MiB aligned), huge, or not a power of two.
std::size_t pick_align() {
  static const rc::Gen<std::size_t> gen = rc::gen::weightedOneOf<std::size_t>({
      {70, rc::gen::map(rc::gen::inRange(0, 7), [](int b) { return std::size_t{1} << b; })},
      {15, rc::gen::map(rc::gen::inRange(7, 13), [](int b) { return std::size_t{1} << b; })},
      {8, rc::gen::map(rc::gen::inRange(13, 21), [](int b) { return std::size_t{1} << b; })},
      {3, rc::gen::elementOf(std::vector<std::size_t>{std::size_t{1} << 40, std::size_t{1} << 63})},
      {4, rc::gen::elementOf(std::vector<std::size_t>{0, 3, 12, 24, 4097})},
  });
  return *gen;
}

// Sizes: mostly small, or up to 600; sometimes one at the exact-fit and
// back-padding boundaries of a current hole (`near`), sometimes huge.
std::size_t pick_size(const std::vector<std::size_t>& near, std::size_t capacity, std::size_t free) {
  static const rc::Gen<std::size_t> small = rc::gen::inRange<std::size_t>(1, 65);
  static const rc::Gen<std::size_t> medium = rc::gen::inRange<std::size_t>(1, 601);
  static const rc::Gen<std::size_t> tiny = rc::gen::inRange<std::size_t>(0, 33);
  static const rc::Gen<int> kind = rc::gen::inRange(0, 100);
  const int k = *kind;
  if (k < 35) return *small;
  if (k < 70) return *medium;
  if (k < 80) return *tiny;
  if (k < 97 && !near.empty()) return *rc::gen::elementOf(near);
  return *rc::gen::elementOf(std::vector<std::size_t>{SIZE_MAX, SIZE_MAX - 7, SIZE_MAX / 2, std::size_t{1} << 40,
                                                      capacity, capacity + 1, free, free + 1});
}

// The command generator for a model state. What it needs from the state is
// copied into the generator (it is re-run while shrinking, after the state is gone).
rc::Gen<std::shared_ptr<const FfCmd>> gen_command(const FfModel& m) {
  std::vector<std::size_t> near;  // sizes at the exact-fit / back-padding boundaries of current holes
  for (const model::Span& h : m.ff.holes()) {
    for (std::size_t d : {0, 1, 7, 8, 9, 15, 16, 24}) {
      if (h.size > d) near.push_back(h.size - d);
    }
  }
  std::vector<Label> live;
  for (const auto& [label, b] : m.live) live.push_back(label);
  return rc::gen::exec([next = m.next_label, alloc_percent = m.alloc_percent, live = std::move(live),
                        near = std::move(near), capacity = m.ff.capacity(),
                        free = m.ff.free_bytes()]() -> std::shared_ptr<const FfCmd> {
    static const rc::Gen<int> kind = rc::gen::inRange(0, 100);
    static const rc::Gen<std::uint32_t> seed = rc::gen::arbitrary<std::uint32_t>();
    const int k = *kind;
    if (k < alloc_percent || (k < 96 && live.empty())) {
      const std::size_t size = pick_size(near, capacity, free);
      return std::make_shared<Allocate>(next, size, pick_align(), *seed);
    }
    if (k < 96) return std::make_shared<Deallocate>(*rc::gen::elementOf(live));
    const std::size_t size = pick_size(near, capacity, free);
    return std::make_shared<FitsWhenEmpty>(size, pick_align());
  });
}

// The arena [FixedRegion + offset, + length) and the share of allocations
// among the commands; a struct so that a counterexample prints it by name.
struct FfSetup {
  std::size_t offset = 0;
  std::size_t length = 0;
  int alloc_percent = 50;
};

void showValue(const FfSetup& s, std::ostream& os) {
  os << "init(region+" << s.offset << ", " << s.length << "), " << s.alloc_percent << "% allocations";
}

rc::Gen<FfSetup> gen_setup() {
  // The arena: mostly small and near the region's (1 MiB aligned) start, so
  // that fragmentation and the alignment rules dominate; sometimes large or
  // far in; sometimes too small for one hole.
  static const rc::Gen<std::size_t> offset = rc::gen::weightedOneOf<std::size_t>({
      {8, rc::gen::inRange<std::size_t>(0, 64)},
      {2, rc::gen::inRange<std::size_t>(0, 65536)},
  });
  static const rc::Gen<std::size_t> length = rc::gen::weightedOneOf<std::size_t>({
      {10, rc::gen::inRange<std::size_t>(0, 4097)},
      {8, rc::gen::inRange<std::size_t>(4097, 16385)},
      {2, rc::gen::inRange<std::size_t>(16385, 65537)},
      {1, rc::gen::inRange<std::size_t>(0, 41)},
  });
  // Some cases mostly allocate (the arena fills and fragments), some balance.
  static const rc::Gen<int> alloc_percent = rc::gen::inRange(45, 80);
  return rc::gen::map(rc::gen::tuple(offset, length, alloc_percent),
                      [](const std::tuple<std::size_t, std::size_t, int>& t) {
                        return FfSetup{std::get<0>(t), std::get<1>(t), std::get<2>(t)};
                      });
}

}  // namespace

TEST(FirstFitModel, ConstantsMatchTheBackend) {
  EXPECT_EQ(FirstFitModel::kGranule, detail::FirstFit::kGranule);
  EXPECT_EQ(FirstFitModel::kMinBlock, detail::FirstFit::kMinBlock);
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{16}, std::size_t{17}, std::size_t{600}}) {
    EXPECT_EQ(*FirstFitModel::rounded_size(n), detail::FirstFit::rounded_size(n));
  }
}

RC_GTEST_PROP(FirstFitProp, BackendMatchesTheModelStepByStep, ()) {
  const FfSetup setup = *gen_setup();
  FixedRegion::reset();
  std::byte* start = FixedRegion::data() + setup.offset;

  FfModel model;
  model.alloc_percent = setup.alloc_percent;
  const bool model_ok = model.ff.init(addr(start), setup.length);
  FfSut sut;
  const bool real_ok = sut.ff.init(start, setup.length);
  check_eq(real_ok, model_ok, rc::toString(setup) + ": init() succeeded");
  check_eq(sut.ff.capacity(), model.ff.capacity(), "capacity()");
  if (model_ok) {
    check_eq(at(addr(sut.ff.arena_begin())), at(model.ff.begin()), "arena_begin()");
    check_eq(at(addr(sut.ff.arena_end())), at(model.ff.end()), "arena_end()");
  }
  verify(model, sut, "init");

  // Sequences up to ~3x RapidCheck's size (<= 300 commands).
  const auto commands = *rc::gen::scale(3.0, rc::state::gen::commands(model, &gen_command));
  rc::state::runAll(commands, model, sut);

  // Free what is left: one hole again, the whole arena.
  FfModel end = model;
  rc::state::applyAll(commands, end);
  for (const auto& [label, b] : end.live) sut.ff.deallocate(sut.live.at(label), b.size);
  check_report(sut.ff.check(), "after freeing everything");
  RC_CLASSIFY(!model_ok, "arena too small");
  RC_CLASSIFY(end.max_holes >= 10, "10+ holes at once");
  RC_CLASSIFY(end.failed_allocations * 4 > end.allocations, "25%+ allocations fail");
  if (model_ok) {
    const std::vector<model::Span> whole{model::Span{model.ff.begin(), model.ff.capacity()}};
    if (holes_of(sut.ff) != whole) RC_FAIL("after freeing everything: holes " + show_holes(holes_of(sut.ff)));
  }
}
