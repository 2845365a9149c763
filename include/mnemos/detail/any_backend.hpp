// The heap's backend: first fit or TLSF, chosen at bootstrap, dispatched
// without virtual calls.
//
// A tagged union of the two backend objects. It lives inside the Heap object,
// so in the caller's bootstrap region: no hosted allocation, no pointer to
// chase. Every call is one predictable branch on the tag (fixed after
// bootstrap) followed by the backend's own, inlinable code. The union costs
// the larger of the two objects (Tlsf, about 170 bytes on LP64, its bitmaps;
// its marks and list heads live in the arena) whichever backend is chosen.
//
// Fault injection (tests; detail/fault_injection.hpp): a schedule attached
// with attach_fail_schedule() wraps the backend's allocate(): while it is
// attached, every allocation asks it first and a "fail" answer returns
// nullptr without reaching the backend, exactly what a full backend returns;
// frees and every query pass through untouched. So the heap above cannot tell
// a scheduled failure from a real one: every path that handles "no room"
// (sync NoMemory, a waiter parking, a hand-over that does not happen) runs as
// it would on a full arena. Detached (nullptr, the default) it costs one load
// and a never-taken branch per allocate(); MNEMOS_FAULT_INJECTION=0 compiles
// it out.
//
// Threads and guarantees: those of the backend chosen (first_fit.hpp,
// tlsf.hpp): no synchronisation (the heap's lock serialises every call), no
// allocation, no exception, no RTTI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "mnemos/backend.hpp"
#include "mnemos/check.hpp"
#include "mnemos/detail/fault_injection.hpp"
#include "mnemos/detail/first_fit.hpp"
#include "mnemos/detail/tlsf.hpp"

namespace mnemos::detail {

class AnyBackend {
  // Declared before rounded_size(), whose default template argument uses it.
  static constexpr bool kSameRounding =
      FirstFit::kGranule == Tlsf::kGranule && FirstFit::kMinBlock == Tlsf::kMinBlock;

 public:
  // Whether `kind` names a backend (an enum may hold any value of its
  // underlying type).
  static constexpr bool valid(Backend kind) noexcept { return kind == Backend::FirstFit || kind == Backend::Tlsf; }

  // Constructs the chosen backend, empty (init() gives it its range). An
  // invalid kind constructs first fit; Heap::bootstrap rejects it before.
  explicit AnyBackend(Backend kind) noexcept : kind_(kind == Backend::Tlsf ? Backend::Tlsf : Backend::FirstFit) {
    // Placement begins the lifetime of the one union member that kind_
    // names; every access below goes through the same tag.
    if (kind_ == Backend::Tlsf) {
      ::new (static_cast<void*>(&u_.tlsf)) Tlsf();
    } else {
      ::new (static_cast<void*>(&u_.first_fit)) FirstFit();
    }
  }
  ~AnyBackend() {
    if (kind_ == Backend::Tlsf) {
      u_.tlsf.~Tlsf();
    } else {
      u_.first_fit.~FirstFit();
    }
  }
  AnyBackend(const AnyBackend&) = delete;
  AnyBackend& operator=(const AnyBackend&) = delete;

  Backend kind() const noexcept { return kind_; }

  // f(backend&) on the active backend; both calls must return the same type.
  template <class F>
  decltype(auto) visit(F&& f) {
    if (kind_ == Backend::Tlsf) return f(u_.tlsf);
    return f(u_.first_fit);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    if (kind_ == Backend::Tlsf) return f(u_.tlsf);
    return f(u_.first_fit);
  }

  // --- the backend interface (see first_fit.hpp and tlsf.hpp) ---------------
  bool init(std::byte* start, std::size_t size) noexcept {
    return visit([&](auto& b) { return b.init(start, size); });
  }
  // The bytes a block of `size` occupies. The same function for both backends
  // on LP64 (checked below), so then no branch at all.
  // (A template so that the branch not taken is never instantiated.)
  template <bool Same = kSameRounding>
  std::size_t rounded_size(std::size_t size) const noexcept {
    if constexpr (Same) {
      return FirstFit::rounded_size(size);
    } else {
      return kind_ == Backend::Tlsf ? Tlsf::rounded_size(size) : FirstFit::rounded_size(size);
    }
  }
  // Hot path: first fit O(free blocks), TLSF O(1). Through the fault
  // injection schedule when one is attached (see the top of this file).
  void* allocate(std::size_t size, std::size_t align) noexcept {
#if MNEMOS_FAULT_INJECTION
    if (fail_schedule_ != nullptr && fail_schedule_->fail_next()) [[unlikely]] {
      return nullptr;  // a scheduled failure: the backend is not asked
    }
#endif
    return kind_ == Backend::Tlsf ? u_.tlsf.allocate(size, align) : u_.first_fit.allocate(size, align);
  }

#if MNEMOS_FAULT_INJECTION
  // Tests only: wraps allocate() with `schedule` (nullptr detaches). Only
  // while no other thread uses the backend; the schedule must outlive the
  // attachment. The caller (the heap's lock holder) serialises allocate(),
  // so the schedule needs no synchronisation.
  void attach_fail_schedule(AllocFailSchedule* schedule) noexcept { fail_schedule_ = schedule; }
  AllocFailSchedule* fail_schedule() const noexcept { return fail_schedule_; }
#endif
  void deallocate(void* p, std::size_t size) noexcept {
    if (kind_ == Backend::Tlsf) {
      u_.tlsf.deallocate(p, size);
    } else {
      u_.first_fit.deallocate(p, size);
    }
  }
  bool fits_when_empty(std::size_t size, std::size_t align) const noexcept {
    return visit([&](const auto& b) { return b.fits_when_empty(size, align); });
  }
  std::size_t capacity() const noexcept {
    return visit([](const auto& b) { return b.capacity(); });
  }
  std::size_t free_bytes() const noexcept {
    return visit([](const auto& b) { return b.free_bytes(); });
  }
  std::size_t hole_count() const noexcept {
    return visit([](const auto& b) { return b.hole_count(); });
  }
  std::byte* arena_begin() const noexcept {
    return visit([](const auto& b) { return b.arena_begin(); });
  }
  std::byte* arena_end() const noexcept {
    return visit([](const auto& b) { return b.arena_end(); });
  }
  template <class F>
  void for_each_hole(F&& f) const {
    visit([&](const auto& b) { b.for_each_hole(f); });
  }
  CheckReport check() const noexcept {
    return visit([](const auto& b) { return b.check(); });
  }

  // The active backend, or nullptr if the other one is (white-box tests).
  const FirstFit* first_fit() const noexcept { return kind_ == Backend::FirstFit ? &u_.first_fit : nullptr; }
  const Tlsf* tlsf() const noexcept { return kind_ == Backend::Tlsf ? &u_.tlsf : nullptr; }

 private:
#if UINTPTR_MAX > 0xFFFFFFFFu
  static_assert(kSameRounding, "on LP64 both backends round alike: Box<T> costs one pointer with either");
#endif

  // Storage for exactly one backend; which one is kind_. The empty
  // constructor and destructor start and end no member's lifetime:
  // AnyBackend's do, by the tag.
  union Storage {
    Storage() noexcept {}
    ~Storage() {}
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    FirstFit first_fit;
    Tlsf tlsf;
  };

  Backend kind_;
  Storage u_;
#if MNEMOS_FAULT_INJECTION
  AllocFailSchedule* fail_schedule_ = nullptr;  // tests only; see attach_fail_schedule()
#endif
};

}  // namespace mnemos::detail
