// Fault injection for tests: a schedule that makes backend allocations fail,
// so the paths that handle "no room" (sync NoMemory, waiters parking, a
// hand-over that does not happen) can be driven at will while the arena has
// room, and the heap, its waiters and owners can be checked to stay
// consistent (proptest/fault_injection_prop.cpp).
//
// It wraps the backend, not the heap: the heap's backend dispatch
// (detail/any_backend.hpp, AnyBackend::attach_fail_schedule) forwards every
// allocate() through the attached schedule, and a "fail" answer returns
// nullptr before the backend is reached, exactly as a full backend would.
// Every allocation the heap makes goes through that one call (try_alloc_raw,
// a guard's allocation, the hand-over to a waiter); frees and queries never
// consult it. The heap has no knowledge of it. Tests attach it with
// heap_test_access::inject(heap, &schedule).
//
// Cost: detached (the default), one load and a never-taken branch per
// backend allocation; MNEMOS_FAULT_INJECTION=0 (default 1) compiles the hook
// out entirely.
//
// Threads: consulted only by the heap's lock holder, so it needs no atomics;
// attach and detach only while no other thread uses the heap.
#pragma once

#include <cstddef>
#include <cstdint>

#ifndef MNEMOS_FAULT_INJECTION
#define MNEMOS_FAULT_INJECTION 1
#endif

namespace mnemos::detail {

class AllocFailSchedule {
 public:
  // Allocation k (counted from 0 while attached) fails iff bit (k % period)
  // of `pattern` is set. period in [1, 64].
  explicit AllocFailSchedule(std::uint64_t pattern, unsigned period = 64) noexcept
      : pattern_(pattern), period_(period == 0 || period > 64 ? 64 : period) {}

  // The answer for the next allocation, counted.
  bool fail_next() noexcept {
    const bool fail = ((pattern_ >> (calls_ % period_)) & 1u) != 0;
    ++calls_;
    if (fail) ++failed_;
    return fail;
  }

  std::size_t calls() const noexcept { return calls_; }
  std::size_t failed() const noexcept { return failed_; }

 private:
  std::uint64_t pattern_;
  unsigned period_;
  std::size_t calls_ = 0;
  std::size_t failed_ = 0;
};

}  // namespace mnemos::detail
