// Deferred frees under contention: N threads free blocks into the heap while
// the owner thread allocates and holds the lock (a Heap::Guard) at random
// moments, so many frees find the lock held and go through the deferred queue.
//
//   deferred_free_stress --threads N [--ops OWNER_OPS] [--seconds CAP] [--seed S]
//
// Blocks carry a cookie pattern (stress_support.hpp) checked by whichever
// thread frees them. Ownership moves between threads through atomic transfer
// slots: the owner publishes a block into an empty slot (release), a freeing
// thread takes it (acquire exchange) and either frees it or passes it on to
// another slot. Throughout, a sampler thread reads the lock word and checks
// that it never shows a queued free with the lock free (a stranded free: the
// release handshake must drain before unlocking). At the end, before any
// poll(): every byte is back, the deferred queue is empty, check() is ok. A
// watchdog fails the run if nothing progresses for 10 s (a deadlock, a free
// that never comes back).
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <thread>
#include <vector>

#include "stress_support.hpp"

using namespace mnemos;
using namespace mnemos::stress;

namespace mnemos {
// White-box access (the heap's friend for tests): the lock word, read only.
struct heap_test_access {
  static const detail::HeapLock& lock(const Heap& heap) { return heap.lock_; }
};
}  // namespace mnemos

namespace {

constexpr std::size_t kArena = 12 * 1024;  // small: NoMemory happens too
constexpr std::size_t kMaxSize = 384;
constexpr std::size_t kSlots = 64;
constexpr std::size_t kOwnerKeeps = 32;  // blocks the owner holds on to itself, at most

struct Shared {
  Heap* heap = nullptr;
  std::atomic<void*> slots[kSlots] = {};
  std::atomic<bool> owner_done{false};
  std::atomic<std::int64_t> in_flight{0};  // blocks published and not yet freed
  std::atomic<std::uint64_t> progress{0};
  std::atomic<std::uint64_t> frees{0};
  std::atomic<std::uint64_t> passes{0};
};

// Any thread: puts a block into an empty slot; false if none was found.
bool publish(Shared& s, void* block, std::mt19937_64& rng) {
  const std::size_t start = rng() % kSlots;
  for (std::size_t i = 0; i < kSlots; ++i) {
    void* expected = nullptr;
    // release: the taker (acquire exchange) sees the block's contents.
    if (s.slots[(start + i) % kSlots].compare_exchange_strong(expected, block, std::memory_order_release,
                                                              std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

void freeing_thread(Shared& s, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (;;) {
    bool found = false;
    for (std::size_t n = 0; n < kSlots; ++n) {
      // acquire: the publisher's writes to the block (the cookie) are visible.
      void* block = s.slots[rng() % kSlots].exchange(nullptr, std::memory_order_acquire);
      if (block == nullptr) continue;
      found = true;
      const Layout layout = Cookie::verify(block);
      if (rng() % 4 == 0 && publish(s, block, rng)) {
        s.passes.fetch_add(1, std::memory_order_relaxed);  // ownership moves on
      } else {
        Heap::free_raw(block, layout);  // deferred if the owner holds the lock
        s.frees.fetch_add(1, std::memory_order_relaxed);
        s.in_flight.fetch_sub(1, std::memory_order_relaxed);
      }
      s.progress.fetch_add(1, std::memory_order_relaxed);
    }
    // Done once the owner is (it publishes nothing more) and every block it
    // published was freed by some freeing thread.
    if (!found) {
      if (s.owner_done.load(std::memory_order_acquire) && s.in_flight.load(std::memory_order_relaxed) == 0) return;
      std::this_thread::yield();
    }
  }
}

// Reads the lock word until told to stop: in every value of it, a non-empty
// deferred head implies the lock bit (pushes happen only while it is held,
// and the holder drains before it clears the bit).
std::uint64_t sample_lock_word(const Heap& heap, const std::atomic<bool>& stop) {
  const detail::HeapLock& lock = heap_test_access::lock(heap);
  std::uint64_t samples = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const std::uintptr_t w = lock.load();
    if (detail::HeapLock::head_of(w) != nullptr && (w & detail::HeapLock::kLocked) == 0) {
      fail("a deferred free is stranded: queued while the lock is free", __FILE__, __LINE__);
    }
    if (++samples % 64 == 0) std::this_thread::yield();  // 2 cores: leave room for the others
  }
  return samples;
}

struct OwnerCounts {
  std::uint64_t ops = 0, allocs = 0, guards = 0, guard_frees = 0, locked = 0, no_memory = 0;
};

OwnerCounts owner_thread(Shared& s, std::uint64_t ops, double cap_seconds, std::uint64_t seed,
                         Clock::time_point start) {
  std::mt19937_64 rng(seed);
  Heap& heap = *s.heap;
  std::vector<void*> kept;
  OwnerCounts c;
  std::uint64_t cookie = 1;

  // A new block is published for the freeing threads (or kept, if every slot is full).
  auto place = [&](void* block, Layout layout) {
    Cookie::fill(block, layout, cookie++);
    if (kept.size() >= kOwnerKeeps || rng() % 4 != 0) {
      s.in_flight.fetch_add(1, std::memory_order_relaxed);  // before a taker can free it
      if (publish(s, block, rng)) return;
      s.in_flight.fetch_sub(1, std::memory_order_relaxed);
    }
    kept.push_back(block);
  };

  for (; c.ops < ops && seconds_since(start) < cap_seconds; ++c.ops) {
    s.progress.fetch_add(1, std::memory_order_relaxed);
    if (kept.size() > kOwnerKeeps) {  // never hoard: the freeing threads need blocks
      void* block = kept.back();
      kept.pop_back();
      Heap::free_raw(block, Cookie::verify(block));
    }
    const unsigned r = static_cast<unsigned>(rng() % 100);
    if (r < 35) {
      // A batch under the lock: frees from other threads are deferred meanwhile.
      std::optional<Heap::Guard> guard = heap.try_lock();
      if (!guard) {
        ++c.locked;  // a freeing thread holds it briefly to return a block
        continue;
      }
      ++c.guards;
      const unsigned batch = 1 + static_cast<unsigned>(rng() % 8);
      for (unsigned i = 0; i < batch; ++i) {
        if (!kept.empty() && rng() % 3 == 0) {
          void* block = kept.back();
          kept.pop_back();
          guard->free_raw(block, Cookie::verify(block));  // no atomics: the lock is held
          ++c.guard_frees;
          continue;
        }
        const Layout layout = random_layout(rng, kMaxSize);
        Result<void*> r2 = guard->try_alloc_raw(layout);  // returns deferred frees first
        if (r2) {
          ++c.allocs;
          place(*r2, layout);
        } else {
          STRESS_CHECK(r2.error() == Error::NoMemory);
          ++c.no_memory;
        }
        if (rng() % 16 == 0) std::this_thread::yield();  // hold the lock across a preemption
      }
      if (rng() % 32 == 0) STRESS_CHECK(guard->check().ok());
    } else if (r < 85) {
      const Layout layout = random_layout(rng, kMaxSize);
      Result<void*> r2 = heap.try_alloc_raw(layout);
      if (r2) {
        ++c.allocs;
        place(*r2, layout);
      } else if (r2.error() == Error::Locked) {
        ++c.locked;
      } else {
        STRESS_CHECK(r2.error() == Error::NoMemory);
        ++c.no_memory;
      }
    } else if (!kept.empty()) {
      void* block = kept.back();
      kept.pop_back();
      Heap::free_raw(block, Cookie::verify(block));
    }
    if (rng() % 256 == 0) {
      const Stats st = heap.stats();  // never takes the lock: callable any time
      STRESS_CHECK(st.allocated_bytes <= st.capacity_bytes);
    }
    if (rng() % 8 == 0) std::this_thread::yield();  // let freeing threads run with the lock free
  }
  for (void* block : kept) Heap::free_raw(block, Cookie::verify(block));
  s.owner_done.store(true, std::memory_order_release);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const auto threads = static_cast<unsigned>(arg(argc, argv, "--threads", 8));
  const std::uint64_t ops = arg(argc, argv, "--ops", 60000);
  const double cap = static_cast<double>(arg(argc, argv, "--seconds", 10));
  const std::uint64_t seed = arg(argc, argv, "--seed", 0x5eed0000u + threads);
  std::printf("deferred_free_stress: %u freeing threads, owner ops <= %" PRIu64 ", cap %.0fs, seed %" PRIu64 "\n",
              threads, ops, cap, seed);

  Region region(kArena);
  Shared s;
  s.heap = &make_heap(region);
  const auto start = Clock::now();
  OwnerCounts counts;
  std::uint64_t samples = 0;
  {
    Watchdog watchdog(s.progress, std::chrono::milliseconds(10000), "deferred_free_stress");
    std::atomic<bool> stop_sampling{false};
    std::thread sampler([&] { samples = sample_lock_word(*s.heap, stop_sampling); });
    std::vector<std::thread> freers;
    for (unsigned t = 0; t < threads; ++t) freers.emplace_back(freeing_thread, std::ref(s), seed * 1000 + t);
    counts = owner_thread(s, ops, cap, seed, start);
    for (auto& t : freers) t.join();
    stop_sampling.store(true);
    sampler.join();
  }
  const double elapsed = seconds_since(start);

  for (auto& slot : s.slots) STRESS_CHECK(slot.load() == nullptr);
  check_pristine(*s.heap);
  const Stats st = s.heap->stats();
  std::printf("  %.2fs: owner ops %" PRIu64 " (guards %" PRIu64 ", allocs %" PRIu64 ", guard frees %" PRIu64
              ", locked %" PRIu64 ", no memory %" PRIu64 ")\n",
              elapsed, counts.ops, counts.guards, counts.allocs, counts.guard_frees, counts.locked,
              counts.no_memory);
  std::printf("  frees by other threads %" PRIu64 ", passed on %" PRIu64 "; heap: frees %zu, of which deferred %zu;"
              " lock word samples %" PRIu64 "\n",
              s.frees.load(), s.passes.load(), st.free_count, st.deferred_free_count, samples);
  STRESS_CHECK(st.deferred_free_count > 0);  // the deferred path was exercised
  STRESS_CHECK(st.alloc_count == counts.allocs);
  STRESS_CHECK(st.free_count == st.alloc_count);
  STRESS_CHECK(counts.ops > 0);
  std::printf("deferred_free_stress: PASS\n");
  return 0;
}
