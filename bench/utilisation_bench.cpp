// Issue 7, benchmark 4: utilisation. From a fresh 1 MiB region, allocate the
// workload's sizes (8..512 B, fixed seed) until the first failure, and report
// the bytes handed out as a share of the region. Not a timing: the counters
// are the result (one iteration, one repetition: the outcome is deterministic).
//
//   bare backends: the backend gets the whole region (its metadata, e.g.
//     TLSF's marks and list heads, included) and the user sizes as they are:
//     "how much of the arena is usable";
//   Heap: bootstrapped in the region (its own state included), Layout{n, 8}
//     per request: payload_pct counts the user's bytes only, with_header_pct
//     adds the one-word header each block carries.
#include "bench_common.hpp"

namespace mnemos::bench {
namespace {

void report(benchmark::State& state, std::size_t payload, std::size_t blocks, std::size_t region) {
  state.counters["payload_pct"] = 100.0 * static_cast<double>(payload) / static_cast<double>(region);
  state.counters["with_header_pct"] =
      100.0 * static_cast<double>(payload + blocks * detail::kHeaderSize) / static_cast<double>(region);
  state.counters["blocks"] = static_cast<double>(blocks);
}

template <class B>
void bare_utilisation(benchmark::State& state) {
  for (auto _ : state) {
    Arena arena(kArenaBytes);
    B backend;
    if (!backend.init(arena.data(), arena.size())) {
      state.SkipWithError("init failed");
      return;
    }
    const Workload& w = workload();
    std::size_t payload = 0, blocks = 0;
    for (std::uint32_t n : w.sizes) {
      void* p = backend.allocate(n, 8);
      benchmark::DoNotOptimize(p);  // the loop's only effect is the count
      if (p == nullptr) break;
      payload += n;
      ++blocks;
    }
    if (blocks == w.sizes.size()) state.SkipWithError("the workload never filled the arena");
    // Bare backends have no header: with_header_pct here is what the heap's
    // header would add on top, for comparison.
    report(state, payload, blocks, arena.size());
  }
}

void heap_utilisation(benchmark::State& state, Backend backend) {
  for (auto _ : state) {
    Arena arena(kArenaBytes);
    Result<Heap*> made = Heap::bootstrap(arena.span(), Heap::Options{.backend = backend});
    if (!made) {
      state.SkipWithError("bootstrap failed");
      return;
    }
    const Workload& w = workload();
    std::size_t payload = 0, blocks = 0;
    for (std::uint32_t n : w.sizes) {
      Result<void*> r = (*made)->try_alloc_raw(Layout{n, 8});
      if (!r) break;  // NoMemory: the first failure
      payload += n;
      ++blocks;
    }
    report(state, payload, blocks, arena.size());
    // The arena is dropped with its blocks: nothing outlives it.
  }
}

int register_all() {
  benchmark::RegisterBenchmark("utilisation/bare_FirstFit", bare_utilisation<detail::FirstFit>)
      ->Iterations(1)->Repetitions(1);
  benchmark::RegisterBenchmark("utilisation/bare_Tlsf", bare_utilisation<detail::Tlsf>)
      ->Iterations(1)->Repetitions(1);
  for (const auto& [name, backend] : heap_backends()) {
    const Backend b = backend;
    benchmark::RegisterBenchmark(("utilisation/heap_" + name).c_str(),
                                 [b](benchmark::State& s) { heap_utilisation(s, b); })
        ->Iterations(1)->Repetitions(1);
  }
  return 0;
}

[[maybe_unused]] const int registered = register_all();

}  // namespace
}  // namespace mnemos::bench
