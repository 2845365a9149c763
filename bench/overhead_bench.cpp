// Issue 7, benchmark 7: memory overhead, bytes per Box<T> for several T, next
// to what glibc malloc and mimalloc spend on a block of sizeof(T). Not a
// timing: the counters are the result (one iteration, one repetition).
//
//   Heap: the arena bytes one Box<T> takes, from stats() (allocated_bytes
//     counts whole blocks: header word, padding and rounding included),
//     averaged over kBoxes boxes;
//   glibc: malloc_usable_size(p) + 8 (the chunk's size word before p);
//   mimalloc: mi_usable_size(p), its size class (page metadata not counted).
#include <malloc.h>

#include <array>

#include "bench_common.hpp"

namespace mnemos::bench {
namespace {

constexpr std::size_t kBoxes = 64;

// A T of a given size and alignment; sizeof is Size rounded to Align.
template <std::size_t Size, std::size_t Align>
struct Obj {
  alignas(Align) std::byte bytes[Size];
};

void report(benchmark::State& state, double bytes_per_block, std::size_t size, std::size_t align) {
  state.counters["bytes_per_block"] = bytes_per_block;
  state.counters["overhead_bytes"] = bytes_per_block - static_cast<double>(size);
  state.counters["sizeof_T"] = static_cast<double>(size);
  state.counters["alignof_T"] = static_cast<double>(align);
}

template <class T>
void box_overhead(benchmark::State& state, Backend backend) {
  for (auto _ : state) {
    Arena arena(kArenaBytes);
    Result<Heap*> made = Heap::bootstrap(arena.span(), Heap::Options{.backend = backend});
    if (!made) {
      state.SkipWithError("bootstrap failed");
      return;
    }
    Heap& heap = **made;
    const std::size_t before = heap.stats().allocated_bytes;
    std::vector<Box<T>> boxes;
    boxes.reserve(kBoxes);
    for (std::size_t i = 0; i < kBoxes; ++i) {
      Result<Box<T>> r = heap.try_alloc<T>();
      if (!r) {
        state.SkipWithError("allocation failed");
        return;
      }
      boxes.push_back(std::move(*r));
    }
    const std::size_t used = heap.stats().allocated_bytes - before;
    report(state, static_cast<double>(used) / kBoxes, sizeof(T), alignof(T));
  }
}

template <class T>
void malloc_overhead(benchmark::State& state) {
  for (auto _ : state) {
    void* p = std::malloc(sizeof(T));
    // glibc's chunk: the usable bytes plus the size word in front of them.
    report(state, static_cast<double>(malloc_usable_size(p) + sizeof(std::size_t)), sizeof(T), alignof(T));
    std::free(p);
  }
}

template <class T>
void mimalloc_overhead(benchmark::State& state) {
  for (auto _ : state) {
    if (!mimalloc().error.empty()) {
      state.SkipWithError(mimalloc().error.c_str());
      return;
    }
    void* p = mimalloc().malloc_aligned(sizeof(T), alignof(T));
    report(state, static_cast<double>(mimalloc().usable_size(p)), sizeof(T), alignof(T));
    mimalloc().free(p);
  }
}

template <class T>
void register_type(const std::string& label) {
  benchmark::RegisterBenchmark(("overhead/glibc_malloc/" + label).c_str(), malloc_overhead<T>)
      ->Iterations(1)->Repetitions(1);
  benchmark::RegisterBenchmark(("overhead/mimalloc/" + label).c_str(), mimalloc_overhead<T>)
      ->Iterations(1)->Repetitions(1);
  for (const auto& [name, backend] : heap_backends()) {
    const Backend b = backend;
    benchmark::RegisterBenchmark(("overhead/box_" + name + "/" + label).c_str(),
                                 [b](benchmark::State& s) { box_overhead<T>(s, b); })
        ->Iterations(1)->Repetitions(1);
  }
}

int register_all() {
  // Labels are "T:<size>a<align>". Sizes below 16 show the minimum block;
  // 100 shows the 8-byte granule's rounding; align 16/64 the header placed
  // one alignment before the payload (block_header.hpp).
  register_type<std::uint64_t>("T:8a8");
  register_type<Obj<16, 8>>("T:16a8");
  register_type<Obj<24, 8>>("T:24a8");
  register_type<Obj<32, 8>>("T:32a8");
  register_type<Obj<48, 8>>("T:48a8");
  register_type<Obj<64, 8>>("T:64a8");
  register_type<Obj<100, 4>>("T:100a4");
  register_type<Obj<128, 8>>("T:128a8");
  register_type<Obj<256, 8>>("T:256a8");
  register_type<Obj<32, 16>>("T:32a16");
  register_type<Obj<64, 64>>("T:64a64");
  return 0;
}

[[maybe_unused]] const int registered = register_all();

}  // namespace
}  // namespace mnemos::bench
