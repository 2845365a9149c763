// Properties of the TLSF backend (detail::Tlsf), bare and under the heap,
// against model/tlsf_model.hpp (no exact addresses: TLSF's choice depends on
// its class lists; the model states what any correct choice must satisfy).
//
// TlsfProp.BackendObeysTheRules: for every generated arena (random offset into
// the fixed region, random length, sometimes too small) and sequence of
// allocate / deallocate / fits_when_empty with random sizes (mostly 1..600;
// sometimes 0, huge, or derived from the largest free block at run time to hit
// the class and padding boundaries) and alignments (1..4096, sometimes up to
// 1 MiB, 2^40, 2^63, or not a power of two), after every step:
//   - a block returned lies inside the arena, in free space (no overlap with
//     a live block), granule-aligned and aligned to its request;
//   - allocate() fails only when the model allows it: no free block of at
//     least search(size, align) granules (T3, see the model);
//   - allocate() and deallocate() stay within kAllocateMaxSteps and
//     kDeallocateMaxSteps (the O(1) bound, counted by the test probe);
//   - fits_when_empty() is exact;
//   - check() is ok, free_bytes() agrees, and the free blocks are exactly the
//     gaps between live blocks (immediate coalescing);
//   - the bytes of every live block are intact.
//
// TlsfProp.HeapOnTlsfKeepsTheInvariants: the same on a Heap bootstrapped with
// Backend::Tlsf, through try_alloc_raw / free_raw, frees deferred under a
// Guard and drained at its release, and poll(): errors exactly as the model
// says (InvalidLayout, TooLarge from fits_when_empty, NoMemory only when T3
// allows), every Stats field, check(), the backend's holes against the live
// blocks (header word and padding included), alignment and contents.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "model/tlsf_model.hpp"
#include "support.hpp"

namespace mnemos::detail {
// The step-counting entry points (the same code as allocate()/deallocate(),
// instantiated with a counting probe in src/tlsf.cpp). This binary's own
// definition of the backend's test friend.
struct tlsf_test_access {
  static void* allocate(Tlsf& t, std::size_t size, std::size_t align, std::size_t& steps) {
    TlsfSteps s;
    void* p = t.allocate_impl(size, align, s);
    steps = s.count;
    return p;
  }
  static void deallocate(Tlsf& t, void* p, std::size_t size, std::size_t& steps) {
    TlsfSteps s;
    t.deallocate_impl(p, size, s);
    steps = s.count;
  }
};
}  // namespace mnemos::detail

using namespace mnemos;
using namespace mnemos::proptest;
using model::TlsfModel;

namespace {

// One generated step. `kind` picks the operation; `pick` a live block (modulo
// their number) or, for NearLargest, how far below the largest free block.
enum class OpKind : std::uint8_t { Allocate, NearLargest, Free, FitsWhenEmpty, DeferredFrees, Poll };

struct Op {
  OpKind kind = OpKind::Allocate;
  std::size_t size = 0;
  std::size_t align = 1;
  std::size_t pick = 0;
  std::uint32_t seed = 0;
};

const char* name(OpKind k) {
  switch (k) {
    case OpKind::Allocate: return "allocate";
    case OpKind::NearLargest: return "allocate(near largest hole)";
    case OpKind::Free: return "free";
    case OpKind::FitsWhenEmpty: return "fits_when_empty";
    case OpKind::DeferredFrees: return "deferred frees under a guard";
    case OpKind::Poll: return "poll";
  }
  return "?";
}

}  // namespace

// RapidCheck prints a counterexample's values through showValue (found by ADL).
namespace {
void showValue(const Op& op, std::ostream& os) {
  os << name(op.kind) << "(size=" << show_size(op.size) << ", align=" << show_size(op.align) << ", pick=" << op.pick
     << ")";
}
}  // namespace

namespace {

// Alignments: mostly 1..64, often up to 4096, sometimes up to 1 MiB (the
// region is 1 MiB aligned), huge, or not a power of two.
rc::Gen<std::size_t> gen_align() {
  return rc::gen::weightedOneOf<std::size_t>({
      {70, rc::gen::map(rc::gen::inRange(0, 7), [](int b) { return std::size_t{1} << b; })},
      {15, rc::gen::map(rc::gen::inRange(7, 13), [](int b) { return std::size_t{1} << b; })},
      {6, rc::gen::map(rc::gen::inRange(13, 21), [](int b) { return std::size_t{1} << b; })},
      {3, rc::gen::elementOf(std::vector<std::size_t>{std::size_t{1} << 40, std::size_t{1} << 63})},
      {4, rc::gen::elementOf(std::vector<std::size_t>{0, 3, 12, 24, 4097})},
  });
}

// Sizes: mostly small or up to 600, sometimes tiny (0 included), large, huge.
rc::Gen<std::size_t> gen_size() {
  return rc::gen::weightedOneOf<std::size_t>({
      {35, rc::gen::inRange<std::size_t>(1, 65)},
      {35, rc::gen::inRange<std::size_t>(1, 601)},
      {10, rc::gen::inRange<std::size_t>(0, 33)},
      {8, rc::gen::inRange<std::size_t>(601, 8193)},
      {2, rc::gen::elementOf(std::vector<std::size_t>{SIZE_MAX, SIZE_MAX - 7, SIZE_MAX / 2, std::size_t{1} << 40})},
  });
}

rc::Gen<Op> gen_op(bool heap) {
  const rc::Gen<OpKind> kind =
      heap ? rc::gen::weightedOneOf<OpKind>({{45, rc::gen::just(OpKind::Allocate)},
                                             {8, rc::gen::just(OpKind::NearLargest)},
                                             {35, rc::gen::just(OpKind::Free)},
                                             {8, rc::gen::just(OpKind::DeferredFrees)},
                                             {4, rc::gen::just(OpKind::Poll)}})
           : rc::gen::weightedOneOf<OpKind>({{50, rc::gen::just(OpKind::Allocate)},
                                             {8, rc::gen::just(OpKind::NearLargest)},
                                             {37, rc::gen::just(OpKind::Free)},
                                             {5, rc::gen::just(OpKind::FitsWhenEmpty)}});
  return rc::gen::map(rc::gen::tuple(kind, gen_size(), gen_align(), rc::gen::inRange<std::size_t>(0, 64),
                                     rc::gen::arbitrary<std::uint32_t>()),
                      [](const std::tuple<OpKind, std::size_t, std::size_t, std::size_t, std::uint32_t>& t) {
                        return Op{std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t), std::get<4>(t)};
                      });
}

// A size just below the largest free block (or just above), so requests land
// on the class and padding boundaries of the block that is there now.
std::size_t near_largest(const TlsfModel& m, std::size_t pick) {
  static constexpr std::size_t kDelta[] = {0, 1, 7, 8, 9, 15, 16, 24, 64, 128, 255};
  const std::size_t largest = m.largest_hole();
  const std::size_t d = kDelta[pick % std::size(kDelta)];
  if (pick % 5 == 0) return largest + d;  // just too large for a good fit
  return largest > d ? largest - d : 1;
}

// The free blocks of a real backend, in the model's terms.
template <class Backend>
std::vector<model::Span> holes_of_backend(const Backend& b) {
  std::vector<model::Span> v;
  b.for_each_hole([&v](std::byte* start, std::size_t size) { v.push_back(model::Span{addr(start), size}); });
  return v;
}

std::string describe(std::size_t i, const Op& op) { return "step " + std::to_string(i) + " " + rc::toString(op); }

// ---- the bare backend ------------------------------------------------------------

struct BareBlock {
  void* p;
  std::size_t size;
  std::uint32_t seed;
};

void verify_bare(const detail::Tlsf& t, const TlsfModel& m, const std::vector<BareBlock>& live,
                 const std::string& step) {
  check_report(t.check(), step);
  check_eq(t.free_bytes(), m.free_bytes(), step + ": free_bytes()");
  const std::vector<model::Span> real = holes_of_backend(t);
  const std::vector<model::Span> expected = m.holes();
  if (real != expected) {
    RC_FAIL(step + ": holes differ from the gaps between live blocks\n  actual " + show_holes(real) +
            "\n  model  " + show_holes(expected));
  }
  for (const BareBlock& b : live) {
    const std::size_t n = detail::Tlsf::rounded_size(b.size);
    if (pattern_mismatch(b.p, n, b.seed) != n) RC_FAIL(step + ": a live block at " + at(addr(b.p)) + " changed");
  }
}

struct BareSetup {
  std::size_t offset = 0;
  std::size_t length = 0;
};

void showValue(const BareSetup& s, std::ostream& os) { os << "init(region+" << s.offset << ", " << s.length << ")"; }

rc::Gen<BareSetup> gen_bare_setup() {
  const rc::Gen<std::size_t> offset = rc::gen::weightedOneOf<std::size_t>({
      {8, rc::gen::inRange<std::size_t>(0, 64)},
      {2, rc::gen::inRange<std::size_t>(0, 65536)},
  });
  const rc::Gen<std::size_t> length = rc::gen::weightedOneOf<std::size_t>({
      {10, rc::gen::inRange<std::size_t>(0, 4097)},
      {8, rc::gen::inRange<std::size_t>(4097, 16385)},
      {2, rc::gen::inRange<std::size_t>(16385, 65537)},
      {1, rc::gen::inRange<std::size_t>(0, 300)},
  });
  return rc::gen::map(rc::gen::pair(offset, length), [](const std::pair<std::size_t, std::size_t>& p) {
    return BareSetup{p.first, p.second};
  });
}

// ---- the heap on TLSF ------------------------------------------------------------

struct HeapBlock {
  void* payload;
  Layout layout;
  std::uint32_t seed;
};

std::uintptr_t block_of(const HeapBlock& b) { return addr(detail::block_start(b.payload, b.layout.align)); }

void verify_heap(Heap& heap, const TlsfModel& m, const Stats& expected, const std::vector<HeapBlock>& live,
                 const std::string& step) {
  check_report(heap.check(), step);
  check_stats(heap.stats(), expected, step);
  const std::vector<model::Span> real = holes_of_backend(heap_test_access::any_backend(heap));
  const std::vector<model::Span> gaps = m.holes();
  if (real != gaps) {
    RC_FAIL(step + ": holes differ from the gaps between live blocks\n  actual " + show_holes(real) +
            "\n  model  " + show_holes(gaps));
  }
  for (const HeapBlock& b : live) {
    check(addr(b.payload) % b.layout.align == 0, step + ": a live payload is misaligned");
    if (pattern_mismatch(b.payload, b.layout.size, b.seed) != b.layout.size) {
      RC_FAIL(step + ": a live payload at " + at(addr(b.payload)) + " changed");
    }
  }
}

}  // namespace

TEST(TlsfModel, AgreesWithTheBackendsConstants) {
  EXPECT_EQ(TlsfModel::kGranule, detail::Tlsf::kGranule);
  EXPECT_EQ(TlsfModel::kMinBlock, detail::Tlsf::kMinBlock);
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{16}, std::size_t{17}, std::size_t{600}}) {
    EXPECT_EQ(*TlsfModel::rounded_size(n), detail::Tlsf::rounded_size(n));
  }
  // Class floors: exact below 64 granules, then 32 classes per power of two.
  EXPECT_EQ(TlsfModel::class_floor(63), 63u);
  EXPECT_EQ(TlsfModel::class_floor(64), 64u);
  EXPECT_EQ(TlsfModel::class_floor(65), 66u);
  EXPECT_EQ(TlsfModel::class_floor(129), 132u);
}

RC_GTEST_PROP(TlsfProp, BackendObeysTheRules, ()) {
  const BareSetup setup = *gen_bare_setup();
  FixedRegion::reset();
  std::byte* const start = FixedRegion::data() + setup.offset;
  detail::Tlsf t;
  const bool ok = t.init(start, setup.length);
  RC_CLASSIFY(!ok, "arena too small");
  if (!ok) {
    check(setup.length < 512, rc::toString(setup) + ": init failed on a region that can hold blocks");
    check_eq(t.capacity(), std::size_t{0}, "capacity() after a failed init");
    check(t.allocate(1, 1) == nullptr, "allocate() on an empty backend");
    return;
  }
  // The metadata (marks, class heads, scratch) precedes the blocks.
  check(t.arena_begin() >= start && t.arena_end() <= start + setup.length, "the arena lies in the region");
  TlsfModel m;
  m.reset(addr(t.arena_begin()), addr(t.arena_end()));
  std::vector<BareBlock> live;
  verify_bare(t, m, live, "init");

  const std::vector<Op> ops = *rc::gen::scale(3.0, rc::gen::container<std::vector<Op>>(gen_op(false)));
  std::size_t failures = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    Op op = ops[i];
    if (op.kind == OpKind::NearLargest) op.size = near_largest(m, op.pick);
    const std::string step = describe(i, op);
    std::size_t steps = 0;
    switch (op.kind) {
      case OpKind::Allocate:
      case OpKind::NearLargest: {
        const bool may_fail = m.may_fail(op.size, op.align);
        void* p = detail::tlsf_test_access::allocate(t, op.size, op.align, steps);
        check(steps <= detail::Tlsf::kAllocateMaxSteps, step + ": more than kAllocateMaxSteps");
        if (p == nullptr) {
          ++failures;
          if (!may_fail) {
            RC_FAIL(step + ": failed although a free block of the search size exists (largest " +
                    std::to_string(m.largest_hole()) + " B)");
          }
        } else {
          const std::string wrong = m.allocated(addr(p), op.size, op.align);
          if (!wrong.empty()) RC_FAIL(step + ": " + wrong + " at " + at(addr(p)));
          fill_pattern(p, detail::Tlsf::rounded_size(op.size), op.seed);  // the whole block is the caller's
          live.push_back(BareBlock{p, op.size, op.seed});
        }
        break;
      }
      case OpKind::Free: {
        if (live.empty()) continue;
        const std::size_t k = op.pick % live.size();
        const BareBlock b = live[k];
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
        // deallocate() accepts the request or its rounding (T1).
        const std::size_t told = op.seed % 2 == 0 ? b.size : detail::Tlsf::rounded_size(b.size);
        detail::tlsf_test_access::deallocate(t, b.p, told, steps);
        check(steps <= detail::Tlsf::kDeallocateMaxSteps, step + ": more than kDeallocateMaxSteps");
        check(m.freed(addr(b.p)), step + ": the model had no such block");
        break;
      }
      case OpKind::FitsWhenEmpty:
        check_eq(t.fits_when_empty(op.size, op.align), m.fits_when_empty(op.size, op.align), step);
        break;
      case OpKind::DeferredFrees:
      case OpKind::Poll:
        break;  // heap-only
    }
    verify_bare(t, m, live, step);
  }
  RC_CLASSIFY(failures != 0, "some allocation failed");
  RC_CLASSIFY(m.holes().size() >= 10, "10+ free blocks at the end");
  for (const BareBlock& b : live) t.deallocate(b.p, b.size);
  check_report(t.check(), "after freeing everything");
  const std::vector<model::Span> whole{model::Span{addr(t.arena_begin()), t.capacity()}};
  if (holes_of_backend(t) != whole) RC_FAIL("after freeing everything: holes " + show_holes(holes_of_backend(t)));
}

RC_GTEST_PROP(TlsfProp, HeapOnTlsfKeepsTheInvariants, ()) {
  // Regions from just above the smallest TLSF heap to 64 KiB.
  const std::size_t arena = *rc::gen::weightedOneOf<std::size_t>({
      {3, rc::gen::inRange<std::size_t>(160, 1025)},
      {6, rc::gen::inRange<std::size_t>(1025, 8193)},
      {2, rc::gen::inRange<std::size_t>(8193, 65537)},
  });
  const std::size_t offset = *rc::gen::inRange<std::size_t>(0, 4096 / alignof(Heap)) * alignof(Heap);
  FixedRegion::reset();
  Result<Heap*> made = Heap::bootstrap(std::span<std::byte>(FixedRegion::data() + offset, sizeof(Heap) + arena),
                                       Heap::Options{.backend = Backend::Tlsf});
  RC_CLASSIFY(!made, "region too small");
  if (!made) {
    check_eq(show_error(made.error()), show_error(Error::RegionTooSmall), "bootstrap error");
    check(arena < 512, "bootstrap failed on a region that can hold blocks");
    return;
  }
  Heap& heap = **made;
  const detail::AnyBackend& backend = heap_test_access::any_backend(heap);
  check(backend.kind() == Backend::Tlsf, "the heap's backend is TLSF");
  TlsfModel m;
  m.reset(addr(backend.arena_begin()), addr(backend.arena_end()));
  Stats expected{};
  expected.capacity_bytes = m.capacity();
  expected.free_bytes = m.capacity();
  std::vector<HeapBlock> live;
  verify_heap(heap, m, expected, live, "bootstrap");

  const auto forget = [&](std::size_t k) {
    const HeapBlock b = live[k];
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    check(m.freed(block_of(b)), "the model had no such block");
    const std::size_t n = *TlsfModel::rounded_size(detail::block_request(b.layout)->size);
    expected.allocated_bytes -= n;
    expected.free_bytes += n;
    expected.free_count += 1;
    return b;
  };

  const std::vector<Op> ops = *rc::gen::scale(3.0, rc::gen::container<std::vector<Op>>(gen_op(true)));
  std::size_t no_memory = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    Op op = ops[i];
    if (op.kind == OpKind::NearLargest) {
      const std::size_t block = near_largest(m, op.pick);
      op.size = block > detail::kHeaderSize ? block - detail::kHeaderSize : 1;  // the header takes a word
    }
    const std::string step = describe(i, op);
    switch (op.kind) {
      case OpKind::Allocate:
      case OpKind::NearLargest: {
        const Layout layout{op.size, op.align};
        const std::optional<detail::BlockRequest> request = detail::block_request(layout);
        std::optional<Error> want;  // nullopt: must succeed unless NoMemory is allowed
        if (!layout.valid()) {
          want = Error::InvalidLayout;
        } else if (!request || !m.fits_when_empty(request->size, request->align)) {
          want = Error::TooLarge;
        }
        Result<void*> r = heap.try_alloc_raw(layout);
        if (want) {
          check_eq(show_error(r ? std::nullopt : std::optional<Error>(r.error())), show_error(want), step);
          break;
        }
        if (!r) {
          check_eq(show_error(r.error()), show_error(Error::NoMemory), step);
          if (!m.may_fail(request->size, request->align)) {
            RC_FAIL(step + ": NoMemory although a free block of the search size exists (largest " +
                    std::to_string(m.largest_hole()) + " B)");
          }
          ++no_memory;
          expected.alloc_no_memory_count += 1;
          break;
        }
        void* block = detail::block_start(*r, layout.align);
        const std::string wrong = m.allocated(addr(block), request->size, request->align);
        if (!wrong.empty()) RC_FAIL(step + ": " + wrong + " at " + at(addr(block)));
        fill_pattern(*r, layout.size, op.seed);
        live.push_back(HeapBlock{*r, layout, op.seed});
        const std::size_t n = *TlsfModel::rounded_size(request->size);
        expected.allocated_bytes += n;
        expected.free_bytes -= n;
        expected.peak_allocated_bytes = std::max(expected.peak_allocated_bytes, expected.allocated_bytes);
        expected.alloc_count += 1;
        break;
      }
      case OpKind::Free: {
        if (live.empty()) continue;
        const HeapBlock b = forget(op.pick % live.size());
        Heap::free_raw(b.payload, b.layout);
        break;
      }
      case OpKind::DeferredFrees: {
        // Under a Guard, frees from "another context" are deferred; the
        // release drains them before it unlocks.
        const std::size_t count = std::min<std::size_t>(live.size(), 1 + op.pick % 4);
        {
          auto guard = heap.try_lock();
          if (!guard) RC_FAIL(step + ": try_lock failed on an idle heap");
          for (std::size_t j = 0; j < count; ++j) {
            const HeapBlock b = forget((op.seed + j) % live.size());
            Heap::free_raw(b.payload, b.layout);
          }
          check_eq(heap.stats().deferred_pending, count, step + ": deferred_pending under the guard");
          check_report(guard->check(), step + ": under the guard");
        }  // the release drains the deferred frees, then unlocks
        expected.deferred_free_count += count;
        break;
      }
      case OpKind::Poll:
        check_eq(heap.poll(), std::size_t{0}, step + ": poll() of an empty queue");
        break;
      case OpKind::FitsWhenEmpty:
        check_eq(heap_test_access::any_backend(heap).fits_when_empty(op.size, op.align),
                 m.fits_when_empty(op.size, op.align), step);
        break;
    }
    verify_heap(heap, m, expected, live, step);
  }
  RC_CLASSIFY(no_memory != 0, "NoMemory reached");
  for (const HeapBlock& b : live) Heap::free_raw(b.payload, b.layout);
  heap.poll();
  check_report(heap.check(), "after freeing everything");
  const std::vector<model::Span> whole{model::Span{m.begin(), m.capacity()}};
  if (holes_of_backend(backend) != whole) {
    RC_FAIL("after freeing everything: holes " + show_holes(holes_of_backend(backend)));
  }
}
