// Issue 7, benchmark 2: latency percentiles (p50, p99, p99.9) of single alloc
// and free calls in benchmark 1's workload. Each call is timed on its own with
// the time-stamp counter, so the result is a distribution, not a mean. One
// iteration and one repetition: the counters are the result.
//
// Method: after a warm-up of kSteps pairs, kSamples pairs are timed, the free
// and the alloc separately; the median cost of an empty timed region is
// subtracted (clamped at 0), and ticks are converted to ns with a rate
// calibrated against steady_clock. Timer resolution and interrupts on a
// shared machine dominate the tail: compare p99.9 between allocators of the
// same run, not across runs.
#include <algorithm>

#include "bench_common.hpp"

namespace mnemos::bench {
namespace {

constexpr std::size_t kSamples = 200'000;

std::uint64_t timer_overhead() {
  std::vector<std::uint64_t> empty(10'000);
  for (std::uint64_t& e : empty) {
    const std::uint64_t t0 = ticks();
    e = ticks() - t0;
  }
  std::nth_element(empty.begin(), empty.begin() + empty.size() / 2, empty.end());
  return empty[empty.size() / 2];
}

double percentile_ns(std::vector<std::uint64_t>& t, double q, std::uint64_t overhead) {
  const auto i = static_cast<std::size_t>(q * static_cast<double>(t.size() - 1));
  std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(i), t.end());
  const std::uint64_t v = t[i] > overhead ? t[i] - overhead : 0;
  return static_cast<double>(v) / ticks_per_ns();
}

template <class A, class... CtorArgs>
void latency(benchmark::State& state, CtorArgs... args) {
  for (auto _ : state) {
    A a(args...);
    std::vector<void*> live;
    std::vector<std::uint32_t> live_size;
    if (!adapter_ok(a) || !fill_live(a, live, live_size)) {
      state.SkipWithError("setup failed");
      free_live(a, live, live_size);
      return;
    }
    const Workload& w = workload();
    bool ok = true;
    for (std::size_t k = 0; k < kSteps && ok; ++k) ok = pair_step(a, live, live_size, k) != nullptr;
    std::vector<std::uint64_t> free_t(kSamples), alloc_t(kSamples);
    for (std::size_t i = 0; i < kSamples && ok; ++i) {
      const std::size_t k = i & (kSteps - 1);
      const std::uint32_t slot = w.victims[k];
      const std::uint32_t size = w.sizes[k];
      const std::uint64_t t0 = ticks();
      release(a, live[slot], live_size[slot]);
      const std::uint64_t t1 = ticks();
      void* p = a.alloc(size);
      const std::uint64_t t2 = ticks();
      live[slot] = p;
      live_size[slot] = size;
      ok = p != nullptr;
      free_t[i] = t1 - t0;
      alloc_t[i] = t2 - t1;
    }
    free_live(a, live, live_size);
    if (!ok) {
      state.SkipWithError("ran out of memory");
      return;
    }
    const std::uint64_t overhead = timer_overhead();
    state.counters["alloc_p50_ns"] = percentile_ns(alloc_t, 0.50, overhead);
    state.counters["alloc_p99_ns"] = percentile_ns(alloc_t, 0.99, overhead);
    state.counters["alloc_p999_ns"] = percentile_ns(alloc_t, 0.999, overhead);
    state.counters["free_p50_ns"] = percentile_ns(free_t, 0.50, overhead);
    state.counters["free_p99_ns"] = percentile_ns(free_t, 0.99, overhead);
    state.counters["free_p999_ns"] = percentile_ns(free_t, 0.999, overhead);
    state.counters["timer_overhead_ns"] = static_cast<double>(overhead) / ticks_per_ns();
  }
}

int register_all() {
  benchmark::RegisterBenchmark("latency/glibc_malloc", [](benchmark::State& s) { latency<Malloc>(s); })
      ->Iterations(1)->Repetitions(1);
  benchmark::RegisterBenchmark("latency/mimalloc", [](benchmark::State& s) { latency<Mimalloc>(s); })
      ->Iterations(1)->Repetitions(1);
  benchmark::RegisterBenchmark("latency/bare_FirstFit", [](benchmark::State& s) { latency<BareFirstFit>(s); })
      ->Iterations(1)->Repetitions(1);
  benchmark::RegisterBenchmark("latency/bare_Tlsf", [](benchmark::State& s) { latency<BareTlsf>(s); })
      ->Iterations(1)->Repetitions(1);
  for (const auto& [name, backend] : heap_backends()) {
    const Backend b = backend;
    benchmark::RegisterBenchmark(("latency/heap_" + name).c_str(),
                                 [b](benchmark::State& s) { latency<HeapRaw>(s, b); })
        ->Iterations(1)->Repetitions(1);
  }
  return 0;
}

[[maybe_unused]] const int registered = register_all();

}  // namespace
}  // namespace mnemos::bench
