// Callgrind driver: benchmark 1's loop (the same workload and adapters as
// pair_bench.cpp) for one allocator and a given number of steps, with no
// timing. ci/bench runs it as
//   valgrind --tool=callgrind --toggle-collect='*measured_loop*' ...
// so only the steps are counted (not the set-up: process start, the
// workload, filling the 1,000 live blocks): total instructions / steps is the
// instructions per pair, plus the loop's own ~15 (reading the workload,
// DoNotOptimize), the same for every allocator. Repeatable from run to run,
// unlike timings on a shared machine.
//
//   mnemos_callgrind_pair <allocator> <steps>
//   allocators: glibc_malloc mimalloc bare_FirstFit bare_Tlsf heap_<Backend> guard_<Backend>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_common.hpp"

namespace mnemos::bench {
namespace {

// noinline: callgrind's --toggle-collect needs this function to exist by name.
template <class A>
[[gnu::noinline]] bool measured_loop(A& a, std::vector<void*>& live, std::vector<std::uint32_t>& live_size,
                                     std::size_t steps) {
  for (std::size_t i = 0; i < steps; ++i) {
    void* p = pair_step(a, live, live_size, i & (kSteps - 1));
    benchmark::DoNotOptimize(p);  // as in pair_bench.cpp: the block is otherwise unused
    if (p == nullptr) return false;
  }
  return true;
}

// Not named like the measured loop, so the toggle pattern does not match it.
template <class A>
[[gnu::noinline]] bool warm_up(A& a, std::vector<void*>& live, std::vector<std::uint32_t>& live_size) {
  for (std::size_t i = 0; i < kSteps; ++i) {
    void* p = pair_step(a, live, live_size, i);
    benchmark::DoNotOptimize(p);
    if (p == nullptr) return false;
  }
  return true;
}

template <class A>
int run(A& a, std::size_t steps) {
  std::vector<void*> live;
  std::vector<std::uint32_t> live_size;
  if (!adapter_ok(a) || !fill_live(a, live, live_size)) return 2;
  // A first pass outside the measurement, so the measured one starts from the
  // steady state the timed benchmark reaches (its calibration runs first).
  if (!warm_up(a, live, live_size)) return 3;
  if (!measured_loop(a, live, live_size, steps)) return 3;
  free_live(a, live, live_size);
  return 0;
}

int main_impl(const std::string& which, std::size_t steps) {
  (void)workload();  // build the workload before anything else, in both runs alike
  if (which == "glibc_malloc") {
    Malloc a;
    return run(a, steps);
  }
  if (which == "mimalloc") {
    Mimalloc a;
    return run(a, steps);
  }
  if (which == "bare_FirstFit") {
    BareFirstFit a;
    return run(a, steps);
  }
  if (which == "bare_Tlsf") {
    BareTlsf a;
    return run(a, steps);
  }
  for (const auto& [name, backend] : heap_backends()) {
    if (which == "heap_" + name) {
      HeapRaw a(backend);
      return run(a, steps);
    }
    if (which == "guard_" + name) {
      HeapGuarded a(backend);
      return run(a, steps);
    }
  }
  std::fprintf(stderr, "unknown allocator %s\n", which.c_str());
  return 1;
}

}  // namespace
}  // namespace mnemos::bench

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--list") {
    std::printf("glibc_malloc\nmimalloc\nbare_FirstFit\nbare_Tlsf\n");
    for (const auto& entry : mnemos::bench::heap_backends()) {
      std::printf("heap_%s\nguard_%s\n", entry.first.c_str(), entry.first.c_str());
    }
    return 0;
  }
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <allocator> <steps> | --list\n", argv[0]);
    return 1;
  }
  return mnemos::bench::main_impl(argv[1], std::strtoull(argv[2], nullptr, 10));
}
