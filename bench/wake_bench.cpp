// Issue 7, benchmark 6: async wake latency. With the arena full and W waiters
// parked (allocation futures polled by hand, W = 1..64), each free of one
// block hands it to the head waiter and calls that waiter's waker. Measured:
//   time from the start of the free to the waker's call (per wake: the
//   benchmark's time divided by the `waiters` counter), and
//   spurious wakes per completed wait (counter, from stats()).
// Single-threaded on purpose: the free runs the waker inline, after every
// internal lock is released, so this is the protocol's own cost (serve the
// head, hand over the block, wake) without a scheduler's; a waiter resumed on
// another thread adds that thread's wake-up (futex, executor) on top.
#include <deque>

#include "bench_common.hpp"

namespace mnemos::bench {
namespace {

constexpr Layout kBlock{64, 8};
// Room for ~100 blocks of 72 bytes: enough for 64 waiters, small enough that
// each iteration's set-up (bootstrap, filling the arena) stays cheap.
constexpr std::size_t kWakeArena = 8 * 1024;

struct WakeRecord {
  std::uint64_t at = 0;
  bool woken = false;
};

void record_wake(void* context) {
  auto* r = static_cast<WakeRecord*>(context);
  r->at = ticks();
  r->woken = true;
}

void wake(benchmark::State& state, Backend backend) {
  const auto waiters = static_cast<std::size_t>(state.range(0));
  std::size_t waits = 0, spurious = 0;
  for (auto _ : state) {
    Arena arena(kWakeArena);
    Result<Heap*> made = Heap::bootstrap(arena.span(), Heap::Options{.backend = backend});
    if (!made) {
      state.SkipWithError("bootstrap failed");
      return;
    }
    Heap& heap = **made;
    std::vector<void*> full;  // fill the arena: the next request must wait
    for (Result<void*> r = heap.try_alloc_raw(kBlock); r; r = heap.try_alloc_raw(kBlock)) full.push_back(*r);
    if (full.size() < waiters) {
      state.SkipWithError("arena too small");
      return;
    }
    const Stats before = heap.stats();
    // A deque: futures must not move once polled (their wait node is inside).
    std::deque<decltype(heap.alloc_raw(kBlock))> futures;
    std::vector<WakeRecord> records(waiters);
    bool ok = true;
    for (std::size_t i = 0; i < waiters; ++i) {
      futures.push_back(heap.alloc_raw(kBlock));
      ok = ok && !futures.back().poll(Waker{&record_wake, &records[i]}).has_value();  // must park
    }
    double total_ns = 0;
    std::vector<void*> served;
    for (std::size_t i = 0; i < waiters && ok; ++i) {
      const std::uint64_t t0 = ticks();
      Heap::free_raw(full.back(), kBlock);  // room for exactly one waiter, the head
      full.pop_back();
      ok = records[i].woken;
      total_ns += static_cast<double>(records[i].at - t0) / ticks_per_ns();
      std::optional<Result<void*>> r = futures[i].poll(Waker{&record_wake, &records[i]});
      ok = ok && r.has_value() && r->has_value();
      if (ok) served.push_back(**r);
    }
    if (!ok) {
      state.SkipWithError("a waiter was not woken in FIFO order by the free that made room");
      return;
    }
    state.SetIterationTime(total_ns * 1e-9);
    const Stats after = heap.stats();
    waits += after.wait_count - before.wait_count;
    spurious += after.spurious_wake_count - before.spurious_wake_count;
    for (void* p : served) Heap::free_raw(p, kBlock);
    for (void* p : full) Heap::free_raw(p, kBlock);
  }
  state.counters["waiters"] = static_cast<double>(waiters);
  state.counters["spurious_per_wait"] = waits == 0 ? 0.0 : static_cast<double>(spurious) / static_cast<double>(waits);
}

int register_all() {
  for (const auto& [name, backend] : heap_backends()) {
    const Backend b = backend;
    benchmark::RegisterBenchmark(("wake/heap_" + name).c_str(), [b](benchmark::State& s) { wake(s, b); })
        ->ArgName("waiters")->Arg(1)->Arg(4)->Arg(16)->Arg(64)->UseManualTime()->Iterations(20'000);  // fixed: the untimed set-up dominates each iteration
  }
  return 0;
}

[[maybe_unused]] const int registered = register_all();

}  // namespace
}  // namespace mnemos::bench
