// Issue 7, benchmark 1 (alloc + free pair, 1,000 live blocks of 8..512 B) for
// every allocator in one process, the Heap per call and through a held Guard,
// Box<T> against the raw calls it wraps, and the atomic baselines the targets
// are stated against (1 and 4 uncontended exchanges).
#include <atomic>

#include "bench_common.hpp"

namespace mnemos::bench {
namespace {

template <class A, class... CtorArgs>
void pair(benchmark::State& state, CtorArgs... args) {
  A a(args...);
  std::vector<void*> live;
  std::vector<std::uint32_t> live_size;
  if (!adapter_ok(a) || !fill_live(a, live, live_size)) {
    state.SkipWithError("setup failed (bootstrap, lock or the first 1,000 blocks)");
    free_live(a, live, live_size);
    return;
  }
  std::size_t k = 0;
  for (auto _ : state) {
    void* p = pair_step(a, live, live_size, k);
    // DoNotOptimize: the new block is never used, so without it the compiler
    // could drop or reorder work around an inlined allocator.
    benchmark::DoNotOptimize(p);
    if (p == nullptr) {
      state.SkipWithError("ran out of memory");
      break;
    }
    k = (k + 1) & (kSteps - 1);
  }
  free_live(a, live, live_size);
}

// A payload of N bytes. The empty user-provided constructor leaves the bytes
// uninitialised, so try_alloc<Blob>() (which constructs T()) does no memset
// and Box-vs-raw compares the allocation paths only.
template <std::size_t N>
struct Blob {
  Blob() {}  // NOLINT(modernize-use-equals-default): `= default` would zero the bytes on T()
  std::uint64_t words[N / 8];
};

// Benchmark 1's loop with a fixed-size T: Box<T> owners (free = ~Box).
template <std::size_t N>
void box_pair(benchmark::State& state, Backend backend) {
  using T = Blob<N>;
  HeapRaw h(backend);
  std::vector<std::optional<Box<T>>> live(kLive);  // destroyed before h
  bool ok = h.ok();
  for (std::size_t i = 0; ok && i < kLive; ++i) {
    Result<Box<T>> r = h.heap().try_alloc<T>();
    ok = r.has_value();
    if (ok) live[i].emplace(std::move(*r));
  }
  if (!ok) {
    state.SkipWithError("setup failed");
    return;
  }
  const Workload& w = workload();
  std::size_t k = 0;
  for (auto _ : state) {
    std::optional<Box<T>>& slot = live[w.victims[k]];
    slot.reset();  // ~Box: Heap::free_raw through the block's header
    Result<Box<T>> r = h.heap().try_alloc<T>();
    if (!r) {
      state.SkipWithError("ran out of memory");
      break;
    }
    slot.emplace(std::move(*r));
    k = (k + 1) & (kSteps - 1);
  }
}

// The same loop with the raw calls Box<T> makes (Layout::of<T>()).
template <std::size_t N>
void box_raw_pair(benchmark::State& state, Backend backend) {
  using T = Blob<N>;
  HeapRaw h(backend);
  std::vector<void*> live(kLive, nullptr);
  bool ok = h.ok();
  for (std::size_t i = 0; ok && i < kLive; ++i) {
    Result<void*> r = h.heap().try_alloc_raw(Layout::of<T>());
    ok = r.has_value();
    if (ok) live[i] = *r;
  }
  if (!ok) {
    state.SkipWithError("setup failed");
    return;
  }
  const Workload& w = workload();
  std::size_t k = 0;
  for (auto _ : state) {
    void*& slot = live[w.victims[k]];
    Heap::free_raw(slot, Layout::of<T>());
    Result<void*> r = h.heap().try_alloc_raw(Layout::of<T>());
    if (!r) {
      state.SkipWithError("ran out of memory");
      break;
    }
    slot = *r;
    benchmark::DoNotOptimize(slot);  // as in pair()
    k = (k + 1) & (kSteps - 1);
  }
  for (void* p : live) Heap::free_raw(p, Layout::of<T>());
}

// N uncontended atomic exchanges per iteration: the yardstick of the lock
// protocol's cost (an exchange and a CAS on an owned cache line cost the same
// locked RMW on x86). acq_rel, as a lock's RMW would be.
template <int N>
void atomic_exchange(benchmark::State& state) {
  alignas(64) static std::atomic<std::uintptr_t> word{0};  // this thread's only: uncontended
  std::uintptr_t v = 0;
  for (auto _ : state) {
    for (int i = 0; i < N; ++i) v = word.exchange(v + 1, std::memory_order_acq_rel);
    benchmark::DoNotOptimize(v);  // keep the chain observable
  }
}

int register_all() {
  // Where the peers come from, in the JSON context: malloc must be libc's
  // (see MimallocApi), mimalloc the library dlopen'ed.
  benchmark::AddCustomContext("malloc_defined_in", defined_in(reinterpret_cast<void*>(&std::malloc)));
  benchmark::AddCustomContext("MNEMOS_HARDENING", std::to_string(MNEMOS_HARDENING));
  benchmark::AddCustomContext("mimalloc_loaded_from",
                              mimalloc().error.empty()
                                  ? defined_in(reinterpret_cast<void*>(mimalloc().malloc))
                                  : mimalloc().error);
  benchmark::RegisterBenchmark("pair/glibc_malloc", [](benchmark::State& s) { pair<Malloc>(s); });
  benchmark::RegisterBenchmark("pair/mimalloc", [](benchmark::State& s) { pair<Mimalloc>(s); });
  benchmark::RegisterBenchmark("pair/bare_FirstFit", [](benchmark::State& s) { pair<BareFirstFit>(s); });
  benchmark::RegisterBenchmark("pair/bare_Tlsf", [](benchmark::State& s) { pair<BareTlsf>(s); });
  for (const auto& [name, backend] : heap_backends()) {
    const Backend b = backend;
    benchmark::RegisterBenchmark(("pair/heap_" + name).c_str(),
                                 [b](benchmark::State& s) { pair<HeapRaw>(s, b); });
    benchmark::RegisterBenchmark(("pair/guard_" + name).c_str(),
                                 [b](benchmark::State& s) { pair<HeapGuarded>(s, b); });
    benchmark::RegisterBenchmark(("box_pair/heap_" + name + "/bytes:16").c_str(),
                                 [b](benchmark::State& s) { box_pair<16>(s, b); });
    benchmark::RegisterBenchmark(("box_pair/heap_" + name + "/bytes:64").c_str(),
                                 [b](benchmark::State& s) { box_pair<64>(s, b); });
    benchmark::RegisterBenchmark(("box_pair/heap_" + name + "/bytes:256").c_str(),
                                 [b](benchmark::State& s) { box_pair<256>(s, b); });
    benchmark::RegisterBenchmark(("box_raw_pair/heap_" + name + "/bytes:16").c_str(),
                                 [b](benchmark::State& s) { box_raw_pair<16>(s, b); });
    benchmark::RegisterBenchmark(("box_raw_pair/heap_" + name + "/bytes:64").c_str(),
                                 [b](benchmark::State& s) { box_raw_pair<64>(s, b); });
    benchmark::RegisterBenchmark(("box_raw_pair/heap_" + name + "/bytes:256").c_str(),
                                 [b](benchmark::State& s) { box_raw_pair<256>(s, b); });
  }
  benchmark::RegisterBenchmark("atomic_exchange/x1", atomic_exchange<1>);
  benchmark::RegisterBenchmark("atomic_exchange/x4", atomic_exchange<4>);
  return 0;
}

// Registration at static-initialisation time, as BENCHMARK() does, but at run
// time so the Heap variants follow heap_backends().
[[maybe_unused]] const int registered = register_all();

}  // namespace
}  // namespace mnemos::bench
