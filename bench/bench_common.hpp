// Shared pieces of the benchmark suite: the fixed-seed workload of issue 7, an
// arena owned by a benchmark, and one small adapter per allocator so every
// benchmark body is written once and instantiated for each allocator.
//
// Adapters expose `void* alloc(std::size_t n)` and `void free(void* p,
// std::size_t n)` (n: the size given to alloc, since our backends and the heap
// are told the size again, as C++'s sized delete is). What each is fed:
//   - glibc malloc and mimalloc: n bytes. Both keep their own per-block
//     metadata (glibc: an 8-byte chunk header; mimalloc: none in the block).
//   - our bare backends: n + 8 bytes, align 8: exactly the block the Heap asks
//     its backend for (payload + the one-word header, detail/block_header.hpp),
//     so "Heap vs bare" isolates the lock protocol and the heap's bookkeeping,
//     and "bare vs malloc" compares the same user payloads.
//   - the Heap: Layout{n, 8} through try_alloc_raw / free_raw (the lock taken
//     per call), or through a Guard held for the whole benchmark (no atomics).
#pragma once

#include <benchmark/benchmark.h>
#include <dlfcn.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mnemos/alloc.hpp"
#include "mnemos/detail/block_header.hpp"
#include "mnemos/detail/first_fit.hpp"
#include "mnemos/detail/tlsf.hpp"

namespace mnemos::bench {

// --- the workload -------------------------------------------------------------

// Issue 7, benchmark 1: 1,000 live blocks of 8..512 B, one free + one alloc per
// step. Sizes and victims are drawn up front from a fixed seed, so every
// allocator (and every run, and the callgrind driver) sees the same sequence
// and no random number generation lands in a timed loop.
inline constexpr std::size_t kLive = 1000;
inline constexpr std::size_t kMinSize = 8;
inline constexpr std::size_t kMaxSize = 512;
inline constexpr std::size_t kSteps = std::size_t{1} << 16;  // the sequence repeats after this
inline constexpr std::uint64_t kSeed = 0x6d6e656d6f73ULL;     // "mnemos": any fixed value will do

struct Workload {
  std::vector<std::uint32_t> initial_sizes;  // kLive sizes of the blocks live at the start
  std::vector<std::uint32_t> sizes;          // kSteps sizes of the new blocks
  std::vector<std::uint32_t> victims;        // kSteps slots in [0, kLive) to free first
};

inline const Workload& workload() {
  static const Workload w = [] {
    Workload out;
    std::mt19937_64 rng(kSeed);
    std::uniform_int_distribution<std::uint32_t> size(kMinSize, kMaxSize);
    std::uniform_int_distribution<std::uint32_t> slot(0, kLive - 1);
    for (std::size_t i = 0; i < kLive; ++i) out.initial_sizes.push_back(size(rng));
    for (std::size_t i = 0; i < kSteps; ++i) {
      out.sizes.push_back(size(rng));
      out.victims.push_back(slot(rng));
    }
    return out;
  }();
  return w;
}

// --- memory for the arena-based allocators --------------------------------------

// Heap memory (the benchmark harness is hosted; only the core must not be),
// 64-byte aligned so Heap::bootstrap accepts it, and written once so no page
// fault lands in a timed loop (malloc's pages are likewise touched by the setup
// before timing starts).
class Arena {
 public:
  explicit Arena(std::size_t bytes)
      : bytes_(bytes), data_(static_cast<std::byte*>(::operator new(bytes, std::align_val_t{64}))) {
    std::memset(data_, 0, bytes_);
  }
  ~Arena() { ::operator delete(data_, std::align_val_t{64}); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return bytes_; }
  std::span<std::byte> span() const noexcept { return {data_, bytes_}; }

 private:
  std::size_t bytes_;
  std::byte* data_;
};

inline constexpr std::size_t kArenaBytes = std::size_t{1} << 20;  // 1 MiB, as in the issue

// --- Heap backends as a parameter ---------------------------------------------------

// Backend::Tlsf is being added to heap.hpp by a parallel change. A requires-
// expression on a dependent name detects the enumerator, so this suite builds
// before that lands (FirstFit only) and benchmarks the TLSF heap as soon as it
// exists, with no edit here.
template <class B = Backend>
std::vector<std::pair<std::string, Backend>> heap_backends() {
  std::vector<std::pair<std::string, Backend>> out{{"FirstFit", B::FirstFit}};
  if constexpr (requires { B::Tlsf; }) out.emplace_back("Tlsf", B::Tlsf);
  return out;
}

// --- adapters -------------------------------------------------------------------------

struct Malloc {
  static constexpr const char* kName = "glibc_malloc";
  void* alloc(std::size_t n) noexcept { return std::malloc(n); }
  void free(void* p, std::size_t) noexcept { std::free(p); }
};

// mimalloc is loaded with dlopen(RTLD_LOCAL), not linked. Debian's
// libmimalloc.so is built to override: it exports malloc and free, so linking
// it would silently replace glibc malloc in this whole process and the
// "glibc" numbers would be mimalloc's. Loaded locally, its malloc stays out of
// the global symbol scope and only the mi_* entry points below reach it.
// (The JSON context records where malloc and mimalloc came from.)
struct MimallocApi {
  void* (*malloc)(std::size_t) = nullptr;
  void* (*malloc_aligned)(std::size_t, std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
  std::size_t (*usable_size)(const void*) = nullptr;
  std::string error;
};

inline const MimallocApi& mimalloc() {
  static const MimallocApi api = [] {
    MimallocApi a;
    void* lib = dlopen(MNEMOS_BENCH_MIMALLOC, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      a.error = std::string("dlopen: ") + dlerror();
      return a;
    }
    // dlsym returns an object pointer; converting it to the function's type
    // is the documented POSIX use (conditionally-supported in C++, supported
    // by every compiler this builds with).
    a.malloc = reinterpret_cast<void* (*)(std::size_t)>(dlsym(lib, "mi_malloc"));
    a.malloc_aligned = reinterpret_cast<void* (*)(std::size_t, std::size_t)>(dlsym(lib, "mi_malloc_aligned"));
    a.free = reinterpret_cast<void (*)(void*)>(dlsym(lib, "mi_free"));
    a.usable_size = reinterpret_cast<std::size_t (*)(const void*)>(dlsym(lib, "mi_usable_size"));
    if (!a.malloc || !a.malloc_aligned || !a.free || !a.usable_size) a.error = "mi_* symbols missing";
    return a;
  }();
  return api;
}

// The file that defines the function at `f` (dladdr), e.g. to show that
// malloc still comes from libc.
inline std::string defined_in(void* f) {
  Dl_info info{};
  return dladdr(f, &info) != 0 && info.dli_fname != nullptr ? info.dli_fname : "unknown";
}

struct Mimalloc {
  static constexpr const char* kName = "mimalloc";
  bool ok() const noexcept { return mimalloc().error.empty(); }
  void* alloc(std::size_t n) noexcept { return mimalloc().malloc(n); }
  void free(void* p, std::size_t) noexcept { mimalloc().free(p); }
};

// A bare backend over its own arena (see the header comment for why n + 8).
template <class B>
class Bare {
 public:
  explicit Bare(std::size_t arena_bytes = kArenaBytes) : arena_(arena_bytes) {
    ok_ = backend_.init(arena_.data(), arena_.size());
  }
  bool ok() const noexcept { return ok_; }
  void* alloc(std::size_t n) noexcept { return backend_.allocate(n + detail::kHeaderSize, detail::kHeaderSize); }
  void free(void* p, std::size_t n) noexcept { backend_.deallocate(p, n + detail::kHeaderSize); }
  B& backend() noexcept { return backend_; }

 private:
  Arena arena_;
  B backend_;
  bool ok_ = false;
};

struct BareFirstFit : Bare<detail::FirstFit> {
  static constexpr const char* kName = "bare_FirstFit";
  using Bare::Bare;
};
struct BareTlsf : Bare<detail::Tlsf> {
  static constexpr const char* kName = "bare_Tlsf";
  using Bare::Bare;
};

// A Heap bootstrapped in its own arena; calls take the try-lock per call.
class HeapRaw {
 public:
  explicit HeapRaw(Backend backend, std::size_t arena_bytes = kArenaBytes) : arena_(arena_bytes) {
    Result<Heap*> made = Heap::bootstrap(arena_.span(), Heap::Options{.backend = backend});
    heap_ = made ? *made : nullptr;
  }
  bool ok() const noexcept { return heap_ != nullptr; }
  Heap& heap() noexcept { return *heap_; }
  void* alloc(std::size_t n) noexcept {
    Result<void*> r = heap_->try_alloc_raw(Layout{n, 8});
    return r ? *r : nullptr;
  }
  void free_block(void* p, std::size_t n) noexcept { Heap::free_raw(p, Layout{n, 8}); }

 private:
  Arena arena_;
  Heap* heap_ = nullptr;
};

// The same heap through a Guard held for the adapter's whole life: the sync
// family with the lock already held (no atomics per call).
class HeapGuarded {
 public:
  explicit HeapGuarded(Backend backend, std::size_t arena_bytes = kArenaBytes) : raw_(backend, arena_bytes) {
    if (raw_.ok()) guard_ = raw_.heap().try_lock();
  }
  bool ok() const noexcept { return guard_.has_value(); }
  void* alloc(std::size_t n) noexcept {
    Result<void*> r = guard_->try_alloc_raw(Layout{n, 8});
    return r ? *r : nullptr;
  }
  void free_block(void* p, std::size_t n) noexcept { guard_->free_raw(p, Layout{n, 8}); }

 private:
  HeapRaw raw_;  // declared first: the guard must be released before the arena goes
  std::optional<Heap::Guard> guard_;
};

// Uniform free for the benchmark bodies.
template <class A>
void release(A& a, void* p, std::size_t n) noexcept {
  if constexpr (requires { a.free_block(p, n); }) {
    a.free_block(p, n);
  } else {
    a.free(p, n);
  }
}

template <class A>
bool adapter_ok(const A& a) noexcept {
  if constexpr (requires { a.ok(); }) {
    return a.ok();
  } else {
    return true;
  }
}

// --- the pair loop (benchmark 1), shared with the callgrind driver -----------------------

// Fills kLive slots from the workload. Returns false if any allocation failed.
template <class A>
bool fill_live(A& a, std::vector<void*>& live, std::vector<std::uint32_t>& live_size) {
  const Workload& w = workload();
  live.assign(kLive, nullptr);
  live_size.assign(w.initial_sizes.begin(), w.initial_sizes.end());
  for (std::size_t i = 0; i < kLive; ++i) {
    live[i] = a.alloc(live_size[i]);
    if (live[i] == nullptr) return false;
  }
  return true;
}

template <class A>
void free_live(A& a, std::vector<void*>& live, const std::vector<std::uint32_t>& live_size) {
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (live[i] != nullptr) release(a, live[i], live_size[i]);
    live[i] = nullptr;
  }
}

// One step: free the victim slot, allocate the next size into it. Returns the
// new block (nullptr: the allocator ran out, which the benchmarks report).
template <class A>
inline void* pair_step(A& a, std::vector<void*>& live, std::vector<std::uint32_t>& live_size, std::size_t k) {
  const Workload& w = workload();
  const std::uint32_t slot = w.victims[k];
  const std::uint32_t size = w.sizes[k];
  release(a, live[slot], live_size[slot]);
  void* p = a.alloc(size);
  live[slot] = p;
  live_size[slot] = size;
  return p;
}

// --- a cheap timer for single calls ------------------------------------------------

// lfence on both sides keeps the timed call from drifting out of the window
// (rdtsc alone is not ordered with the surrounding instructions).
inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_lfence();
  const std::uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
#else
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

inline double ticks_per_ns() {
  static const double rate = [] {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point c0 = Clock::now();
    const std::uint64_t t0 = ticks();
    while (Clock::now() - c0 < std::chrono::milliseconds(50)) {
    }
    const std::uint64_t t1 = ticks();
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - c0).count();
    return static_cast<double>(t1 - t0) / ns;
  }();
  return rate;
}

}  // namespace mnemos::bench
