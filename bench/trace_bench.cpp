// Issue 7, benchmark 8: a real program. Replays the allocation trace of
// `cmake --help-full` (format: ../shared/traces/README.md) into each backend,
// the Heap and malloc, and reports
//   trace_replay/<allocator>:    time per full replay (counter `ops`: the
//                                operations in it; arena allocators get a
//                                region of kTimingArena x peak live bytes);
//   trace_min_arena/<allocator>: the smallest region, as a multiple of the
//                                trace's peak live bytes, with which the
//                                replay never runs out of room (bisection to
//                                kResolution; counters only).
// The region counts everything the allocator keeps in it (the Heap's state,
// TLSF's marks and heads). Blocks still live when the trace ends (the program
// exited without freeing them) are freed by the replay, after the trace.
#include <cstdio>
#include <memory>

#include "bench_common.hpp"

namespace mnemos::bench {
namespace {

struct Op {
  std::uint32_t id;
  std::uint32_t size;   // for a free: the size its allocation had
  std::uint32_t align;  // likewise
  bool alloc;
};

struct Trace {
  std::vector<Op> ops;
  std::size_t ids = 0;
  std::size_t peak_live = 0;  // bytes, as requested
  std::string error;
};

// Reads the gzip'ed trace through `gzip -dc` (no zlib dependency). Ids are
// dense, so a vector indexed by id maps them back to sizes and blocks.
const Trace& trace() {
  static const Trace t = [] {
    Trace out;
    const char* env = std::getenv("MNEMOS_BENCH_TRACE");
    const std::string path = env != nullptr ? env : MNEMOS_BENCH_TRACE;
    const std::string cmd = "gzip -dc '" + path + "'";
    FILE* f = popen(cmd.c_str(), "r");
    if (f == nullptr) {
      out.error = "cannot run " + cmd;
      return out;
    }
    std::vector<std::pair<std::uint32_t, std::uint32_t>> layout;  // by id: size, align
    std::size_t live = 0;
    char kind = 0;
    unsigned long id = 0, size = 0, align = 0;
    char line[128];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::sscanf(line, "a %lu %lu %lu", &id, &size, &align) == 3) {
        kind = 'a';
      } else if (std::sscanf(line, "f %lu", &id) == 1) {
        kind = 'f';
      } else {
        continue;
      }
      if (id >= layout.size()) layout.resize(id + 1, {0, 0});
      if (kind == 'a') {
        // Size 0 (malloc(0)) is not a valid Layout; the replay asks for 1 byte.
        const auto sz = static_cast<std::uint32_t>(size == 0 ? 1 : size);
        layout[id] = {sz, static_cast<std::uint32_t>(align)};
        out.ops.push_back({static_cast<std::uint32_t>(id), sz, static_cast<std::uint32_t>(align), true});
        live += sz;
        out.peak_live = std::max(out.peak_live, live);
      } else if (layout[id].first != 0) {
        out.ops.push_back({static_cast<std::uint32_t>(id), layout[id].first, layout[id].second, false});
        live -= layout[id].first;
      }
    }
    if (pclose(f) != 0 || out.ops.empty()) out.error = "cannot read the trace " + path;
    out.ids = layout.size();
    return out;
  }();
  return t;
}

// Replays the trace; false at the first allocation that fails. Afterwards
// every block still live is freed, and `blocks` is left empty.
template <class Alloc, class Free>
bool replay(const Trace& t, std::vector<void*>& blocks, Alloc alloc, Free free) {
  blocks.assign(t.ids, nullptr);
  bool ok = true;
  for (const Op& op : t.ops) {
    if (op.alloc) {
      void* p = alloc(op.size, op.align);
      if (p == nullptr) {
        ok = false;
        break;
      }
      blocks[op.id] = p;
    } else {
      free(blocks[op.id], op.size, op.align);
      blocks[op.id] = nullptr;
    }
  }
  for (const Op& op : t.ops) {
    if (op.alloc && blocks[op.id] != nullptr) {
      free(blocks[op.id], op.size, op.align);
      blocks[op.id] = nullptr;
    }
  }
  return ok;
}

// One replay into a fresh instance of allocator `kind` over `region` bytes
// (ignored by malloc and mimalloc).
enum class Kind { Malloc, Mimalloc, BareFirstFit, BareTlsf, Heap };

template <class B>
bool replay_bare(const Trace& t, std::vector<void*>& blocks, Arena& arena) {
  B backend;
  if (!backend.init(arena.data(), arena.size())) return false;
  return replay(
      t, blocks, [&](std::size_t n, std::size_t a) { return backend.allocate(n, a); },
      [&](void* p, std::size_t n, std::size_t) { backend.deallocate(p, n); });
}

bool replay_heap(const Trace& t, std::vector<void*>& blocks, Arena& arena, Backend backend) {
  Result<Heap*> made = Heap::bootstrap(arena.span(), Heap::Options{.backend = backend});
  if (!made) return false;
  Heap& heap = **made;
  return replay(
      t, blocks,
      [&](std::size_t n, std::size_t a) -> void* {
        Result<void*> r = heap.try_alloc_raw(Layout{n, a});
        return r ? *r : nullptr;
      },
      [](void* p, std::size_t n, std::size_t a) { Heap::free_raw(p, Layout{n, a}); });
}

bool replay_once(const Trace& t, std::vector<void*>& blocks, Kind kind, Backend backend, Arena* arena) {
  switch (kind) {
    case Kind::Malloc:
      return replay(
          t, blocks, [](std::size_t n, std::size_t) { return std::malloc(n); },  // glibc: 16-aligned
          [](void* p, std::size_t, std::size_t) { std::free(p); });
    case Kind::Mimalloc:
      return replay(
          t, blocks, [](std::size_t n, std::size_t a) { return mimalloc().malloc_aligned(n, a); },
          [](void* p, std::size_t, std::size_t) { mimalloc().free(p); });
    case Kind::BareFirstFit:
      return replay_bare<detail::FirstFit>(t, blocks, *arena);
    case Kind::BareTlsf:
      return replay_bare<detail::Tlsf>(t, blocks, *arena);
    case Kind::Heap:
      return replay_heap(t, blocks, *arena, backend);
  }
  return false;
}

constexpr double kTimingArena = 4.0;
constexpr double kResolution = 0.005;

std::size_t region_for(const Trace& t, double multiple) {
  // Rounded up to the 64-byte alignment Arena gives anyway.
  const auto bytes = static_cast<std::size_t>(multiple * static_cast<double>(t.peak_live));
  return (bytes + 63) & ~std::size_t{63};
}

void trace_replay(benchmark::State& state, Kind kind, Backend backend) {
  const Trace& t = trace();
  if (!t.error.empty()) {
    state.SkipWithError(t.error.c_str());
    return;
  }
  if (kind == Kind::Mimalloc && !mimalloc().error.empty()) {
    state.SkipWithError(mimalloc().error.c_str());
    return;
  }
  std::unique_ptr<Arena> arena;
  if (kind != Kind::Malloc && kind != Kind::Mimalloc) arena = std::make_unique<Arena>(region_for(t, kTimingArena));
  std::vector<void*> blocks;
  for (auto _ : state) {
    if (!replay_once(t, blocks, kind, backend, arena.get())) {
      state.SkipWithError("ran out of room");
      break;
    }
  }
  state.counters["ops"] = static_cast<double>(t.ops.size());
  state.counters["peak_live_bytes"] = static_cast<double>(t.peak_live);
}

void trace_min_arena(benchmark::State& state, Kind kind, Backend backend) {
  const Trace& t = trace();
  if (!t.error.empty()) {
    state.SkipWithError(t.error.c_str());
    return;
  }
  std::vector<void*> blocks;
  const auto fits = [&](double multiple) {
    Arena arena(region_for(t, multiple));
    return replay_once(t, blocks, kind, backend, &arena);
  };
  for (auto _ : state) {
    // Bisection between a failing and a fitting multiple. It assumes that a
    // larger region never fails where a smaller one fits: exact for first
    // fit (the extra room only lengthens the last hole); for TLSF the class
    // of that last block changes with its size, so the answer is the
    // smallest fitting multiple found, within kResolution of a failure.
    double lo = 1.0, hi = 1.5;
    while (!fits(hi)) {
      lo = hi;
      hi *= 1.5;
      if (hi > 64) {
        state.SkipWithError("does not fit in 64x the peak");
        return;
      }
    }
    while (hi - lo > kResolution) {
      const double mid = (lo + hi) / 2;
      (fits(mid) ? hi : lo) = mid;
    }
    state.counters["min_arena_x_peak"] = hi;
    state.counters["peak_live_bytes"] = static_cast<double>(t.peak_live);
  }
}

int register_all() {
  struct Entry {
    std::string name;
    Kind kind;
    Backend backend;
  };
  std::vector<Entry> entries{{"glibc_malloc", Kind::Malloc, Backend::FirstFit},
                             {"mimalloc", Kind::Mimalloc, Backend::FirstFit},
                             {"bare_FirstFit", Kind::BareFirstFit, Backend::FirstFit},
                             {"bare_Tlsf", Kind::BareTlsf, Backend::FirstFit}};
  for (const auto& [name, backend] : heap_backends()) entries.push_back({"heap_" + name, Kind::Heap, backend});
  for (const Entry& e : entries) {
    const Kind kind = e.kind;
    const Backend backend = e.backend;
    benchmark::RegisterBenchmark(("trace_replay/" + e.name).c_str(),
                                 [kind, backend](benchmark::State& s) { trace_replay(s, kind, backend); })
        ->Unit(benchmark::kMillisecond)->MinTime(0.2);
    if (kind != Kind::Malloc && kind != Kind::Mimalloc) {
      benchmark::RegisterBenchmark(("trace_min_arena/" + e.name).c_str(),
                                   [kind, backend](benchmark::State& s) { trace_min_arena(s, kind, backend); })
          ->Iterations(1)->Repetitions(1)->Unit(benchmark::kMillisecond);
    }
  }
  return 0;
}

[[maybe_unused]] const int registered = register_all();

}  // namespace
}  // namespace mnemos::bench
