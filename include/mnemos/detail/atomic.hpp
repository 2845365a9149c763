// The one shim every atomic of the core goes through.
//
// The queues, the lock word, the wait queue and the reference counts name
// `detail::Atomic<T>` and the `detail::mo_*` orders instead of std::atomic, so the
// same source can be compiled against Relacy (verify/) for exhaustive
// interleaving tests: Relacy clashes with libstdc++'s std::atomic, so under
// MNEMOS_USE_RELACY the names map to rl::atomic / rl::mo_*.
#pragma once

#include "mnemos/config.hpp"

#if MNEMOS_USE_RELACY
// Relacy's core only. relacy.hpp itself ends by redefining new, delete, malloc,
// free, assert, errno and the pthread/Win32 names (EINVAL, pthread_mutex_t, ...)
// as macros, which breaks placement new here and every standard header
// included after this one. The list below is relacy.hpp's without those (the
// stdlib/ primitives are needed: the simulation context instantiates them).
#include <relacy/base.hpp>
#include <relacy/context.hpp>
#include <relacy/context_base_impl.hpp>
#include <relacy/backoff.hpp>
#include <relacy/atomic_fence.hpp>
#include <relacy/atomic.hpp>
#include <relacy/var.hpp>
#include <relacy/thread_local.hpp>
#include <relacy/test_suite.hpp>
#include <relacy/dyn_thread.hpp>
#include <relacy/stdlib/mutex.hpp>
#include <relacy/stdlib/condition_variable.hpp>
#include <relacy/stdlib/semaphore.hpp>
#include <relacy/stdlib/event.hpp>

#include <cstdlib>
#else
#include <atomic>
#endif

namespace mnemos::detail {

#if MNEMOS_USE_RELACY
inline constexpr auto mo_relaxed = rl::mo_relaxed;
inline constexpr auto mo_acquire = rl::mo_acquire;
inline constexpr auto mo_release = rl::mo_release;
inline constexpr auto mo_acq_rel = rl::mo_acq_rel;
inline constexpr auto mo_seq_cst = rl::mo_seq_cst;

// Where an atomic access is written, for Relacy's traces. Relacy wants it with
// every access (its `$` macro); the builtins, as default arguments, are
// evaluated at the caller's call site, so the core keeps std::atomic's spelling.
struct RelacySite {
  rl::debug_info info;
  RelacySite(const char* func = __builtin_FUNCTION(), const char* file = __builtin_FILE(),
             unsigned line = __builtin_LINE()) noexcept
      : info(func, file, line) {}
};

// std::atomic's interface (the subset the core uses) over rl::atomic. The
// value-initialising default constructor mirrors C++20's std::atomic (Relacy
// reports a load of a never-stored rl::atomic as an error).
template <class T>
class Atomic {
 public:
  Atomic() : a_(T{}) {}
  Atomic(T value) : a_(value) {}  // NOLINT(google-explicit-constructor): as std::atomic
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T load(rl::memory_order mo, RelacySite at = RelacySite()) const { return a_.load(mo, at.info); }
  void store(T value, rl::memory_order mo, RelacySite at = RelacySite()) { a_.store(value, mo, at.info); }
  T exchange(T value, rl::memory_order mo, RelacySite at = RelacySite()) { return a_.exchange(value, mo, at.info); }
  bool compare_exchange_weak(T& expected, T desired, rl::memory_order success, rl::memory_order failure,
                             RelacySite at = RelacySite()) {
    return a_.compare_exchange_weak(expected, desired, success, at.info, failure, at.info);
  }
  bool compare_exchange_strong(T& expected, T desired, rl::memory_order success, rl::memory_order failure,
                               RelacySite at = RelacySite()) {
    return a_.compare_exchange_strong(expected, desired, success, at.info, failure, at.info);
  }
  template <class U>
  T fetch_add(U value, rl::memory_order mo, RelacySite at = RelacySite()) {
    return a_.fetch_add(value, mo, at.info);
  }
  template <class U>
  T fetch_sub(U value, rl::memory_order mo, RelacySite at = RelacySite()) {
    return a_.fetch_sub(value, mo, at.info);
  }
  T fetch_or(T value, rl::memory_order mo, RelacySite at = RelacySite()) { return a_.fetch_or(value, mo, at.info); }
  T fetch_and(T value, rl::memory_order mo, RelacySite at = RelacySite()) { return a_.fetch_and(value, mo, at.info); }

 private:
  rl::atomic<T> a_;
};

// A variable with one instance per *simulated* thread, for the core's
// thread_locals: Relacy runs its threads as fibers of one OS thread, so a real
// thread_local would be shared by all of them. Indexed by rl::thread_index().
template <class T>
class SimulatedThreadLocal {
 public:
  static constexpr unsigned kMaxThreads = 16;

  operator T() const noexcept { return slots_[index()]; }  // NOLINT(google-explicit-constructor)
  SimulatedThreadLocal& operator=(T value) noexcept {
    slots_[index()] = value;
    return *this;
  }
  // Every slot back to T{}; a test calls it at the start of each iteration (a
  // failed iteration may leave a slot set, and Relacy replays it).
  void reset() noexcept {
    for (T& slot : slots_) slot = T{};
  }

 private:
  static unsigned index() noexcept {
    const unsigned i = rl::thread_index();
    if (i >= kMaxThreads) std::abort();  // raise kMaxThreads for a bigger test
    return i;
  }
  T slots_[kMaxThreads]{};
};
#else
template <class T>
using Atomic = std::atomic<T>;
inline constexpr auto mo_relaxed = std::memory_order_relaxed;
inline constexpr auto mo_acquire = std::memory_order_acquire;
inline constexpr auto mo_release = std::memory_order_release;
inline constexpr auto mo_acq_rel = std::memory_order_acq_rel;
inline constexpr auto mo_seq_cst = std::memory_order_seq_cst;
#endif

// A counter with exactly one writer at a time (the heap-lock holder) and readers
// anywhere (Heap::stats()). An increment is a relaxed load and a relaxed store,
// not a read-modify-write: the lock's acquire/release already orders successive
// writers, and readers only need an untorn value, not a snapshot. This keeps the
// lock-held paths free of extra RMWs (the cost model in DESIGN.md).
#if MNEMOS_USE_RELACY
// Under Relacy the counter is an rl::var: its relaxed accesses order nothing, so
// as rl::atomics they would only multiply the interleavings explored; as an
// rl::var they add none, and Relacy checks the single-writer claim itself (two
// writes not ordered by the writer's lock are reported as a data race). The
// price: a test may read stats() only when its threads are quiescent.
template <class T>
class SingleWriterCounter {
 public:
  void add(T n, RelacySite at = RelacySite()) noexcept { value_(at.info) = value_(at.info) + n; }
  void sub(T n, RelacySite at = RelacySite()) noexcept { value_(at.info) = value_(at.info) - n; }
  void set(T n, RelacySite at = RelacySite()) noexcept { value_(at.info) = n; }
  T get(RelacySite at = RelacySite()) const noexcept { return value_(at.info); }

 private:
  rl::var<T> value_{T{}};
};
#else
template <class T>
class SingleWriterCounter {
 public:
  void add(T n) noexcept { value_.store(value_.load(mo_relaxed) + n, mo_relaxed); }
  void sub(T n) noexcept { value_.store(value_.load(mo_relaxed) - n, mo_relaxed); }
  void set(T n) noexcept { value_.store(n, mo_relaxed); }
  T get() const noexcept { return value_.load(mo_relaxed); }

 private:
  Atomic<T> value_{0};
};
#endif

}  // namespace mnemos::detail

// One turn of a spin-wait loop (a context waiting for another to act). It
// leaves nothing in a normal build. Under Relacy it is rl::yield, which tells
// the scheduler the thread cannot progress by itself; without it Relacy reports
// every spin-wait as a livelock.
#if MNEMOS_USE_RELACY
#define MNEMOS_SPIN_WAIT() ::rl::yield(1, RL_INFO)
#else
#define MNEMOS_SPIN_WAIT() static_cast<void>(0)
#endif
