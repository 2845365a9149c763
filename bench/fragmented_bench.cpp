// Issue 7, benchmark 3: the fragmented worst case. Carve `holes` small free
// holes (allocate hole, keeper, hole, keeper, ...; free every hole: the
// keepers stop them merging), then time one alloc + free of a size that fits
// only in the big free space behind them. First fit walks every hole (its
// O(free blocks) cost must show); TLSF must stay flat. holes:0 is the same
// pair on a fresh arena, the yardstick of the "<= 2x its fresh pair" target.
#include "bench_common.hpp"

namespace mnemos::bench {
namespace {

constexpr std::size_t kHoleSize = 24;    // + the 8-byte header: 32-byte blocks
constexpr std::size_t kProbeSize = 256;  // larger than any hole, fits only at the end

template <class A, class... CtorArgs>
void fragmented(benchmark::State& state, CtorArgs... args) {
  const auto holes = static_cast<std::size_t>(state.range(0));
  A a(args...);
  std::vector<void*> keepers, hole_blocks;
  bool ok = adapter_ok(a);
  for (std::size_t i = 0; ok && i < holes; ++i) {
    void* h = a.alloc(kHoleSize);
    void* k = a.alloc(kHoleSize);
    ok = h != nullptr && k != nullptr;
    hole_blocks.push_back(h);
    keepers.push_back(k);
  }
  for (void* h : hole_blocks) {
    if (h != nullptr) release(a, h, kHoleSize);
  }
  if (!ok) {
    state.SkipWithError("setup failed");
  } else {
    for (auto _ : state) {
      void* p = a.alloc(kProbeSize);
      benchmark::DoNotOptimize(p);  // unused otherwise; keep the call
      if (p == nullptr) {
        state.SkipWithError("probe did not fit");
        break;
      }
      release(a, p, kProbeSize);
    }
  }
  for (void* k : keepers) {
    if (k != nullptr) release(a, k, kHoleSize);
  }
}

int register_all() {
  const auto args = [](benchmark::internal::Benchmark* b) {
    for (long holes : {0L, 1000L, 2000L, 5000L}) b->Arg(holes);
    b->ArgName("holes");
  };
  benchmark::RegisterBenchmark("fragmented/glibc_malloc", [](benchmark::State& s) { fragmented<Malloc>(s); })
      ->Apply(args);
  benchmark::RegisterBenchmark("fragmented/mimalloc", [](benchmark::State& s) { fragmented<Mimalloc>(s); })
      ->Apply(args);
  benchmark::RegisterBenchmark("fragmented/bare_FirstFit", [](benchmark::State& s) { fragmented<BareFirstFit>(s); })
      ->Apply(args);
  benchmark::RegisterBenchmark("fragmented/bare_Tlsf", [](benchmark::State& s) { fragmented<BareTlsf>(s); })
      ->Apply(args);
  for (const auto& [name, backend] : heap_backends()) {
    const Backend b = backend;
    benchmark::RegisterBenchmark(("fragmented/heap_" + name).c_str(),
                                 [b](benchmark::State& s) { fragmented<HeapRaw>(s, b); })
        ->Apply(args);
  }
  return 0;
}

[[maybe_unused]] const int registered = register_all();

}  // namespace
}  // namespace mnemos::bench
