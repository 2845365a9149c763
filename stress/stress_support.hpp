// Shared plumbing of the multi-thread stress harnesses (run under TSan).
//
// Hosted test code: it may allocate, lock and print; the allocator under test
// never does. Every harness is a plain executable: it prints what it did and
// exits 0, or prints the first failed check and exits non-zero (TSan, with
// halt_on_error=1, exits non-zero on the first race it sees).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <span>
#include <string>
#include <thread>

#include "mnemos/alloc.hpp"

namespace mnemos::stress {

using Clock = std::chrono::steady_clock;

// Reports a failed check and ends the process with a non-zero status. Used
// from any thread: the first failure is the one that matters.
[[noreturn]] inline void fail(const char* what, const char* file, int line) {
  std::fprintf(stderr, "FAILED: %s (%s:%d)\n", what, file, line);
  std::fflush(stderr);
  std::_Exit(1);
}

#define STRESS_CHECK(cond)                                                   \
  do {                                                                       \
    if (!(cond)) ::mnemos::stress::fail("check `" #cond "`", __FILE__, __LINE__); \
  } while (0)

// A region on the hosted heap, aligned for any request the harnesses make.
class Region {
 public:
  explicit Region(std::size_t size)
      : bytes_(static_cast<std::byte*>(::operator new(size, std::align_val_t{4096}))), size_(size) {}
  ~Region() { ::operator delete(bytes_, std::align_val_t{4096}); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  std::span<std::byte> span() const { return {bytes_, size_}; }

 private:
  std::byte* bytes_;
  std::size_t size_;
};

inline Heap& make_heap(const Region& region) {
  Result<Heap*> made = Heap::bootstrap(region.span());
  STRESS_CHECK(made.has_value());
  return *made.value();
}

// Every owner gone: every byte back, nothing deferred or waiting, the arena
// consistent. Checked *before* any poll(): a free stranded in the deferred
// queue (which only a poll would return) shows up as allocated bytes.
inline void check_pristine(Heap& heap, bool expect_no_waiters = true) {
  const Stats s = heap.stats();
  if (s.allocated_bytes != 0 || s.free_bytes != s.capacity_bytes || s.deferred_pending != 0 ||
      (expect_no_waiters && s.waiters != 0)) {
    std::fprintf(stderr, "not pristine: allocated=%zu free=%zu capacity=%zu deferred_pending=%zu waiters=%zu\n",
                 s.allocated_bytes, s.free_bytes, s.capacity_bytes, s.deferred_pending, s.waiters);
    fail("every byte back, deferred queue empty", __FILE__, __LINE__);
  }
  const CheckReport report = heap.check();
  if (!report.ok()) {
    std::fprintf(stderr, "check(): %s at %p\n", to_string(report.failure), report.address);
    fail("heap.check().ok()", __FILE__, __LINE__);
  }
}

// Payload pattern: the first word is a per-block cookie, the second the layout,
// the rest bytes derived from the cookie. Written by the allocating thread and
// verified by whichever thread frees the block: a block handed out twice, an
// overlap, or a write by the allocator into a live payload breaks it.
struct Cookie {
  static Layout layout_of(const void* payload) {
    const auto* w = static_cast<const std::uint64_t*>(payload);
    return Layout{static_cast<std::size_t>(w[1] & 0xffffffffu), static_cast<std::size_t>(w[1] >> 32)};
  }
  static void fill(void* payload, Layout layout, std::uint64_t cookie) {
    auto* w = static_cast<std::uint64_t*>(payload);
    w[0] = cookie;
    w[1] = static_cast<std::uint64_t>(layout.size) | (static_cast<std::uint64_t>(layout.align) << 32);
    auto* bytes = static_cast<unsigned char*>(payload);
    for (std::size_t i = 16; i < layout.size; ++i) bytes[i] = static_cast<unsigned char>(cookie * 31 + i);
  }
  // Returns the layout the block was allocated with (needed to free it).
  static Layout verify(const void* payload) {
    const auto* w = static_cast<const std::uint64_t*>(payload);
    const Layout layout = layout_of(payload);
    STRESS_CHECK(layout.size >= 16 && layout.size <= (1u << 20) && layout.align >= 1 && layout.align <= 4096);
    STRESS_CHECK(reinterpret_cast<std::uintptr_t>(payload) % layout.align == 0);
    const auto* bytes = static_cast<const unsigned char*>(payload);
    for (std::size_t i = 16; i < layout.size; ++i) {
      if (bytes[i] != static_cast<unsigned char>(w[0] * 31 + i)) fail("cookie pattern intact at free", __FILE__, __LINE__);
    }
    return layout;
  }
};

// A random layout: 16..max_size bytes, alignment 8, 16, 32 or 64.
inline Layout random_layout(std::mt19937_64& rng, std::size_t max_size) {
  const std::size_t size = 16 + rng() % (max_size - 15);
  const std::size_t align = std::size_t{8} << (rng() % 4);
  return Layout{size, align};
}

// Ends the process if no progress is seen for `stall` (a stuck waiter, a
// stranded free, a deadlock): bounded waiting turned into a failure. The
// harness bumps `progress` on every completed operation.
class Watchdog {
 public:
  Watchdog(std::atomic<std::uint64_t>& progress, std::chrono::milliseconds stall, std::string what)
      : progress_(progress), stall_(stall), what_(std::move(what)), thread_([this] { watch(); }) {}
  ~Watchdog() {
    done_.store(true);
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  void watch() {
    std::uint64_t last = progress_.load();
    auto since = Clock::now();
    while (!done_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const std::uint64_t now = progress_.load();
      if (now != last) {
        last = now;
        since = Clock::now();
      } else if (Clock::now() - since > stall_) {
        std::fprintf(stderr, "STUCK: no progress for %lld ms in %s\n",
                     static_cast<long long>(stall_.count()), what_.c_str());
        fail("progress (watchdog)", __FILE__, __LINE__);
      }
    }
  }

  std::atomic<std::uint64_t>& progress_;
  std::chrono::milliseconds stall_;
  std::string what_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// `--name value` from argv, or the default.
inline std::uint64_t arg(int argc, char** argv, const char* name, std::uint64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::strtoull(argv[i + 1], nullptr, 10);
  }
  return fallback;
}

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace mnemos::stress
