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
#include <relacy/relacy.hpp>
#else
#include <atomic>
#endif

namespace mnemos::detail {

#if MNEMOS_USE_RELACY
template <class T>
using Atomic = rl::atomic<T>;
inline constexpr auto mo_relaxed = rl::mo_relaxed;
inline constexpr auto mo_acquire = rl::mo_acquire;
inline constexpr auto mo_release = rl::mo_release;
inline constexpr auto mo_acq_rel = rl::mo_acq_rel;
inline constexpr auto mo_seq_cst = rl::mo_seq_cst;
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

}  // namespace mnemos::detail
