// Shared helpers of the property tests: a region at a fixed address (so that
// the models, which work on absolute addresses, can be built before the system
// under test), white-box access to the heap, printing, and assertion helpers
// that name what disagreed with the model.
//
// Each property binary includes this header from exactly one source file and
// links no file of tests/ (which defines its own mnemos::heap_test_access).
#pragma once

#include <rapidcheck.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "mnemos/alloc.hpp"
#include "model/first_fit_model.hpp"
#include "model/heap_model.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define MNEMOS_PROPTEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MNEMOS_PROPTEST_ASAN 1
#endif
#endif
#ifndef MNEMOS_PROPTEST_ASAN
#define MNEMOS_PROPTEST_ASAN 0
#endif
#if MNEMOS_PROPTEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace mnemos {

// The heap's internals, for white-box assertions only (one definition per
// binary: the property binaries do not link tests/test_support.hpp users).
struct heap_test_access {
  // The first-fit backend (the exact-address models replicate it); only for
  // a heap bootstrapped with Backend::FirstFit.
  static const detail::FirstFit& backend(const Heap& heap) { return *heap.backend_.first_fit(); }
  // The active backend, whichever it is.
  static const detail::AnyBackend& any_backend(const Heap& heap) { return heap.backend_; }
  static const detail::HeapLock& lock(const Heap& heap) { return heap.lock_; }
  static const detail::WaitQueue& waiters(const Heap& heap) { return heap.waiters_; }
  // Attaches (nullptr: detaches) a fault-injection schedule
  // (detail/fault_injection.hpp). Only while no other thread uses the heap.
  static void inject(Heap& heap, detail::AllocFailSchedule* schedule) { heap.backend_.attach_fail_schedule(schedule); }
};

namespace proptest {

// Labels of the objects a command sequence creates ("#3").
using Label = std::uint64_t;

// A region allocated once per process and reused by every test case, so its
// address, and therefore every address the models predict, is the same in the
// generation of a case and in its (re)runs. Aligned to 1 MiB so that large
// alignments are exercised at known offsets.
struct FixedRegion {
  static constexpr std::size_t kAlign = std::size_t{1} << 20;
  static constexpr std::size_t kSize = std::size_t{128} << 10;

  static std::byte* data() {
    static std::byte* const bytes = static_cast<std::byte*>(::operator new(kSize, std::align_val_t{kAlign}));
    return bytes;
  }
  static std::uintptr_t address() { return reinterpret_cast<std::uintptr_t>(data()); }

  // A new case starts from plain, addressable bytes: a heap of the previous
  // case may have left parts of the region poisoned (ASan builds only).
  static void reset() {
#if MNEMOS_PROPTEST_ASAN
    ASAN_UNPOISON_MEMORY_REGION(data(), kSize);
#endif
  }
};

inline std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

inline std::string hex(std::uintptr_t a) {
  std::ostringstream os;
  os << "0x" << std::hex << a;
  return os.str();
}

// An address as an offset into the fixed region, which reads better in a
// counterexample than an absolute address.
inline std::string at(std::uintptr_t a) {
  const std::uintptr_t base = FixedRegion::address();
  if (a >= base && a - base <= FixedRegion::kSize) return "region+" + std::to_string(a - base);
  return hex(a);
}

inline std::string show_size(std::size_t n) {
  if (n == SIZE_MAX) return "SIZE_MAX";
  if (n == static_cast<std::size_t>(PTRDIFF_MAX)) return "PTRDIFF_MAX";
  if (n >= (std::size_t{1} << 32) && (n & (n - 1)) == 0) {
    int bit = 0;
    while ((std::size_t{1} << bit) != n) ++bit;
    return "1<<" + std::to_string(bit);
  }
  return std::to_string(n);
}

inline std::string show_layout(Layout l) {
  return "size=" + show_size(l.size) + ", align=" + show_size(l.align);
}

inline std::string show_error(std::optional<Error> e) { return e ? to_string(*e) : "ok"; }

inline std::string show_holes(const std::vector<model::Span>& holes) {
  std::string s = "[";
  for (std::size_t i = 0; i < holes.size(); ++i) {
    if (i != 0) s += ", ";
    s += at(holes[i].start) + "+" + std::to_string(holes[i].size);
  }
  return s + "]";
}

// The holes of a real backend, in the model's terms.
inline std::vector<model::Span> holes_of(const detail::FirstFit& ff) {
  std::vector<model::Span> v;
  ff.for_each_hole([&v](std::byte* start, std::size_t size) { v.push_back(model::Span{addr(start), size}); });
  return v;
}

// A weighted choice among generators whose set depends on the state (RapidCheck's
// weightedOneOf takes only an initializer_list). Shrinks towards the first one.
template <class T>
rc::Gen<T> weighted(std::vector<std::pair<std::size_t, rc::Gen<T>>> choices) {
  std::size_t total = 0;
  for (const auto& c : choices) total += c.first;
  return rc::gen::mapcat(rc::gen::inRange<std::size_t>(0, total), [choices](std::size_t x) {
    for (const auto& c : choices) {
      if (x < c.first) return c.second;
      x -= c.first;
    }
    return choices.back().second;
  });
}

// Fails the case with a message naming what disagreed; `what` says where.
template <class A, class B>
void check_eq(const A& actual, const B& expected, const std::string& what) {
  if (actual == expected) return;
  std::ostringstream os;
  os << what << ": actual " << actual << ", model " << expected;
  RC_FAIL(os.str());
}

inline void check(bool ok, const std::string& what) {
  if (!ok) RC_FAIL(what);
}

inline void check_report(CheckReport r, const std::string& what) {
  if (r.ok()) return;
  RC_FAIL(what + ": check() failed with " + to_string(r.failure) + " at " + at(addr(r.address)));
}

// Every Stats field against the model's prediction.
inline void check_stats(const Stats& a, const Stats& m, const std::string& what) {
  // A new Stats field must be added here (and to the model).
  static_assert(sizeof(Stats) == 12 * sizeof(std::size_t), "Stats changed: update check_stats and the model");
  check_eq(a.capacity_bytes, m.capacity_bytes, what + ": stats.capacity_bytes");
  check_eq(a.allocated_bytes, m.allocated_bytes, what + ": stats.allocated_bytes");
  check_eq(a.free_bytes, m.free_bytes, what + ": stats.free_bytes");
  check_eq(a.peak_allocated_bytes, m.peak_allocated_bytes, what + ": stats.peak_allocated_bytes");
  check_eq(a.alloc_count, m.alloc_count, what + ": stats.alloc_count");
  check_eq(a.alloc_no_memory_count, m.alloc_no_memory_count, what + ": stats.alloc_no_memory_count");
  check_eq(a.free_count, m.free_count, what + ": stats.free_count");
  check_eq(a.deferred_free_count, m.deferred_free_count, what + ": stats.deferred_free_count");
  check_eq(a.deferred_pending, m.deferred_pending, what + ": stats.deferred_pending");
  check_eq(a.waiters, m.waiters, what + ": stats.waiters");
  check_eq(a.wait_count, m.wait_count, what + ": stats.wait_count");
  check_eq(a.spurious_wake_count, m.spurious_wake_count, what + ": stats.spurious_wake_count");
}

// The payload pattern of a block: byte i of a block with seed s.
inline std::uint8_t pattern_byte(std::uint32_t seed, std::size_t i) {
  const auto x = static_cast<std::uint32_t>(i);
  return static_cast<std::uint8_t>(seed * 31u + x * 7u + (x >> 8));
}

inline void fill_pattern(void* p, std::size_t n, std::uint32_t seed) {
  auto* b = static_cast<std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i) b[i] = pattern_byte(seed, i);
}

// The index of the first byte that differs from the pattern, or n.
inline std::size_t pattern_mismatch(const void* p, std::size_t n, std::uint32_t seed) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (b[i] != pattern_byte(seed, i)) return i;
  }
  return n;
}

// Where a heap is bootstrapped: the region [FixedRegion + offset, + sizeof(Heap)
// + arena). A struct so that a counterexample prints it by name.
struct HeapSetup {
  std::size_t offset = 0;
  std::size_t arena = 0;
};

inline void showValue(const HeapSetup& h, std::ostream& os) {
  os << "bootstrap(region+" << h.offset << ", sizeof(Heap) + " << h.arena << ")";
}

// A setup at a random offset (a multiple of alignof(Heap) below 4096).
inline rc::Gen<HeapSetup> gen_heap_setup(rc::Gen<std::size_t> arena) {
  return rc::gen::map(rc::gen::pair(rc::gen::inRange<std::size_t>(0, 4096 / alignof(Heap)), std::move(arena)),
                      [](const std::pair<std::size_t, std::size_t>& p) {
                        return HeapSetup{p.first * alignof(Heap), p.second};
                      });
}

// A heap over [FixedRegion + offset, + size): the region is reset first.
inline Heap* bootstrap_heap(std::size_t offset, std::size_t size) {
  FixedRegion::reset();
  Result<Heap*> made = Heap::bootstrap(std::span<std::byte>(FixedRegion::data() + offset, size));
  if (!made) RC_FAIL(std::string("bootstrap failed: ") + to_string(made.error()));
  return *made;
}

inline Heap* bootstrap_heap(const HeapSetup& h) { return bootstrap_heap(h.offset, sizeof(Heap) + h.arena); }

// The model of that heap: the arena is what follows the Heap object.
inline model::HeapModel heap_model_for(const HeapSetup& h) {
  return model::HeapModel(FixedRegion::address() + h.offset + sizeof(Heap), h.arena);
}

}  // namespace proptest
}  // namespace mnemos

namespace mnemos::model {
// For RapidCheck's printing of values that contain spans.
inline std::ostream& operator<<(std::ostream& os, const Span& s) {
  return os << proptest::at(s.start) << "+" << s.size;
}
}  // namespace mnemos::model
