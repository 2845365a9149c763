// Waiting allocations under contention: waiters on several threads are woken by
// frees from other threads, while some cancel (dropping a pending future, or a
// std::stop_source::request_stop from another thread). Rounds alternate two
// endings: close() racing the wakes (every waiter ends Ready or Closed), and a
// quiet drain (no new requests, no cancels: every waiter still waiting must be
// served by the frees alone, which catches a free that fails to wake).
//
//   waiters_stress [--rounds R] [--seconds CAP] [--ops OPS_PER_ROUND] [--seed S]
//
// Waiters of two kinds share a small arena, so most requests wait:
//   - poll-driven futures on 3 threads: the waker sets an atomic and notifies
//     it; the owner waits on it and polls again, which must then be ready (a
//     wake is never spurious);
//   - coroutines of a minimal foreign type, resumed inline by whichever thread's
//     free (or close, or cancel) completed them; half with the library's
//     default inline waker, half with a tracked waker (the promise offers
//     resume_waker()).
// Every wait has its own tracking record (never reused during a round):
//   - the waker is called at most once per wait;
//   - no call of the waker is running or starts once the future's destructor
//     returned (a seq_cst Dekker pair: the waker counts itself in and reads the
//     phase; the owner sets the phase and reads the count);
//   - no waiter is stuck: a watchdog fails the run when nothing completes for
//     5 s (in a drain, a waiter left waiting while its room was freed).
// At the end of each round, before any poll(): every byte back, no waiter, no
// deferred free, no spurious wake, check() ok; a new allocation fails Closed.
#include <atomic>
#include <cinttypes>
#include <coroutine>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

#include "stress_support.hpp"

using namespace mnemos;
using namespace mnemos::stress;

namespace {

constexpr std::size_t kArena = 4096;
constexpr std::size_t kMaxSize = 512;
constexpr int kPollWaiters = 3;
constexpr int kCoroutines = 4;  // half tracked, half with the default waker
constexpr int kFreers = 2;

// One wait: created before the future, kept until the round ends.
struct WaitTrack {
  enum Phase : int { Alive, Destroyed };
  std::atomic<int> phase{Alive};
  std::atomic<int> in_call{0};
  std::atomic<int> calls{0};
  std::atomic<std::uint32_t> flag{0};
  std::coroutine_handle<> resume{};  // coroutine waits: resumed inline by the waker

  // seq_cst on in_call and phase: with the owner's store-then-load in
  // destroyed(), one of the two sides always sees the other (Dekker).
  static void wake(void* p) {
    auto& t = *static_cast<WaitTrack*>(p);
    t.in_call.fetch_add(1, std::memory_order_seq_cst);
    if (t.phase.load(std::memory_order_seq_cst) != Alive) {
      fail("waker called after its future's destructor returned", __FILE__, __LINE__);
    }
    if (t.calls.fetch_add(1, std::memory_order_relaxed) != 0) fail("waker called twice for one wait", __FILE__, __LINE__);
    if (t.resume) {
      // A coroutine, resumed inline on this thread: it drops the future inside
      // this call (allowed: the call is on its own stack). Counted out first,
      // so its own check after the co_await sees no other call running.
      t.in_call.fetch_sub(1, std::memory_order_seq_cst);
      t.resume.resume();
      return;
    }
    t.flag.store(1, std::memory_order_release);
    t.flag.notify_one();
    // A slow waker (every fourth record): the owner may see the flag, poll and
    // drop the future meanwhile; its destructor must wait for this call.
    if ((reinterpret_cast<std::uintptr_t>(&t) / sizeof(WaitTrack)) % 4 == 0) std::this_thread::yield();
    t.in_call.fetch_sub(1, std::memory_order_seq_cst);
  }
  Waker waker() { return Waker{&wake, this}; }

  // Poll-driven owner: blocks until the waker ran (the watchdog bounds it).
  void park() {
    while (flag.load(std::memory_order_acquire) == 0) flag.wait(0, std::memory_order_acquire);
  }
  // The future's destructor returned: no call may be running or start now.
  void destroyed() {
    phase.store(Destroyed, std::memory_order_seq_cst);
    if (in_call.load(std::memory_order_seq_cst) != 0) {
      fail("waker still running after its future's destructor returned", __FILE__, __LINE__);
    }
  }
};

// Stop sources of pending futures, for the canceller thread (test plumbing).
class CancelBoard {
 public:
  void add(const std::stop_source& s) {
    std::lock_guard<std::mutex> lock(mutex_);
    sources_.push_back(s);
  }
  void remove(const std::stop_source& s) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& e : sources_) {
      if (e == s) {
        e = sources_.back();
        sources_.pop_back();
        return;
      }
    }
  }
  std::optional<std::stop_source> pick(std::mt19937_64& rng) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (sources_.empty()) return std::nullopt;
    return sources_[rng() % sources_.size()];
  }

 private:
  std::mutex mutex_;
  std::vector<std::stop_source> sources_;
};

// Blocks on their way to the freeing threads (test plumbing).
class Channel {
 public:
  void send(void* block) {
    std::lock_guard<std::mutex> lock(mutex_);
    items_.push_back(block);
  }
  void* receive() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (items_.empty()) return nullptr;
    void* b = items_.front();
    items_.pop_front();
    return b;
  }

 private:
  std::mutex mutex_;
  std::deque<void*> items_;
};

struct Round {
  Heap* heap = nullptr;
  Channel channel;
  CancelBoard board;
  std::atomic<std::uint64_t>* progress = nullptr;
  std::atomic<std::uint64_t> cookie{1};
  std::atomic<bool> stop_freeing{false};
  std::atomic<bool> round_over{false};     // the canceller stops
  std::atomic<bool> draining{false};       // no new requests: finish the current one
  std::atomic<int> coroutines_done{0};
  // One record per wait of the poll-driven waiters (stable addresses), kept
  // until the round ends: a late waker call would still find its record.
  std::deque<WaitTrack> poll_tracks[kPollWaiters];
  // Outcome counts.
  std::atomic<std::uint64_t> ready{0}, ready_polled{0}, waited{0}, closed{0}, cancelled_stop{0}, cancelled_drop{0};

  void deliver(void* block, Layout layout) {
    Cookie::fill(block, layout, cookie.fetch_add(1, std::memory_order_relaxed));
    channel.send(block);
    ready.fetch_add(1, std::memory_order_relaxed);
    progress->fetch_add(1, std::memory_order_relaxed);
  }
};

// --- poll-driven waiters --------------------------------------------------------

void poll_waiter(Round& r, int index, std::uint64_t seed, std::uint64_t max_waits) {
  std::mt19937_64 rng(seed);
  std::deque<WaitTrack>& tracks = r.poll_tracks[index];
  for (std::uint64_t n = 0; n < max_waits && !r.draining.load(std::memory_order_acquire); ++n) {
    const Layout layout = random_layout(rng, kMaxSize);
    WaitTrack& t = tracks.emplace_back();
    const unsigned mode = static_cast<unsigned>(rng() % 10);  // 0-1 stop token, 2 drop when pending
    std::stop_source source;
    bool finished = false;
    {
      auto fut = mode <= 1 ? r.heap->alloc_raw(layout).with(source.get_token()) : r.heap->alloc_raw(layout);
      if (mode <= 1) r.board.add(source);
      std::optional<Result<void*>> res = fut.poll(t.waker());
      if (!res && mode == 2) {
        // Cancel by dropping the pending future, maybe while a free is serving it.
        for (unsigned y = static_cast<unsigned>(rng() % 3); y > 0; --y) std::this_thread::yield();
        r.cancelled_drop.fetch_add(1, std::memory_order_relaxed);
        r.progress->fetch_add(1, std::memory_order_relaxed);
      } else {
        if (!res) {
          r.waited.fetch_add(1, std::memory_order_relaxed);
          t.park();
          res = fut.poll(t.waker());
          STRESS_CHECK(res.has_value());  // a wake is never spurious
        }
        if (*res) {
          r.deliver(**res, layout);
          r.ready_polled.fetch_add(1, std::memory_order_relaxed);
        } else if (res->error() == Error::Closed) {
          r.closed.fetch_add(1, std::memory_order_relaxed);
          finished = true;
        } else {
          STRESS_CHECK(res->error() == Error::Cancelled && mode <= 1);
          r.cancelled_stop.fetch_add(1, std::memory_order_relaxed);
          r.progress->fetch_add(1, std::memory_order_relaxed);
        }
      }
      if (mode <= 1) r.board.remove(source);
    }  // the future's destructor has returned
    t.destroyed();
    if (finished) return;
  }
}

// --- coroutines of a foreign type, resumed inline -----------------------------------

struct CoroutineContext {
  Round* round;
  std::uint64_t seed;
  bool tracked;
  WaitTrack* current = nullptr;  // the wait in progress (tracked coroutines)
  std::deque<WaitTrack> tracks;
};

// Eager, detached, no executor: `co_await` on an allocation future is resumed
// by the waker on the completing thread. A tracked coroutine's promise offers
// resume_waker(), so the future calls a tracking waker that resumes inline.
struct Detached {
  struct promise_type {
    CoroutineContext* ctx;
    promise_type(CoroutineContext& c) : ctx(&c) {}  // NOLINT: the coroutine's parameter
    Detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::abort(); }
    Waker resume_waker() {
      if (!ctx->tracked) return Waker{};  // empty: the library's default inline waker
      ctx->current->resume = std::coroutine_handle<promise_type>::from_promise(*this);
      return ctx->current->waker();
    }
  };
};

Detached coroutine_waiter(CoroutineContext& ctx) {
  Round& r = *ctx.round;
  std::mt19937_64 rng(ctx.seed);
  for (;;) {
    const Layout layout = random_layout(rng, kMaxSize);
    WaitTrack& t = ctx.tracks.emplace_back();
    ctx.current = &t;
    Result<void*> res = co_await r.heap->alloc_raw(layout);  // the future dies at the end of this statement
    // Its destructor has returned (an inline resumption's call is still on this
    // thread's stack, counted out already): no other call may run or start.
    t.destroyed();
    if (!res) {
      STRESS_CHECK(res.error() == Error::Closed);
      r.closed.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    r.deliver(*res, layout);
    if (r.draining.load(std::memory_order_acquire)) break;
  }
  r.coroutines_done.fetch_add(1, std::memory_order_release);
  r.progress->fetch_add(1, std::memory_order_relaxed);
}

// --- freeing and cancelling threads -------------------------------------------------

void freer(Round& r, std::uint64_t seed, std::atomic<std::uint64_t>& frees) {
  std::mt19937_64 rng(seed);
  for (;;) {
    void* block = r.channel.receive();
    if (block == nullptr) {
      if (r.stop_freeing.load(std::memory_order_acquire)) {
        if ((block = r.channel.receive()) == nullptr) return;
      } else {
        std::this_thread::yield();
        continue;
      }
    }
    const Layout layout = Cookie::verify(block);
    if (rng() % 5 == 0) {
      // Under a Guard: the free itself has no atomics; the Guard's release
      // serves the waiters (and runs their wakers, maybe resuming coroutines).
      if (std::optional<Heap::Guard> g = r.heap->try_lock()) {
        g->free_raw(block, layout);
        if (rng() % 2 == 0) std::this_thread::yield();
      } else {
        Heap::free_raw(block, layout);
      }
    } else {
      Heap::free_raw(block, layout);  // may wake (and resume inline) a waiter here
    }
    frees.fetch_add(1, std::memory_order_relaxed);
    r.progress->fetch_add(1, std::memory_order_relaxed);
  }
}

void canceller(Round& r, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  while (!r.round_over.load(std::memory_order_acquire)) {
    if (std::optional<std::stop_source> s = r.board.pick(rng)) s->request_stop();  // runs the stop callback here
    for (unsigned y = static_cast<unsigned>(rng() % 8); y > 0; --y) std::this_thread::yield();
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto rounds = static_cast<unsigned>(arg(argc, argv, "--rounds", 8));
  const double cap = static_cast<double>(arg(argc, argv, "--seconds", 15));
  const std::uint64_t ops = arg(argc, argv, "--ops", 80000);
  const std::uint64_t seed = arg(argc, argv, "--seed", 0x3a17e55u);
  std::printf("waiters_stress: %u rounds, <= %" PRIu64 " completions per round, cap %.0fs, seed %" PRIu64 "\n",
              rounds, ops, cap, seed);

  std::atomic<std::uint64_t> progress{0};
  Watchdog watchdog(progress, std::chrono::milliseconds(10000), "waiters_stress");
  const auto start = Clock::now();
  for (unsigned round = 0; round < rounds; ++round) {
    const auto round_start = Clock::now();
    const double round_cap = cap / rounds;
    Region region(kArena);
    Round r;
    r.heap = &make_heap(region);
    r.progress = &progress;
    std::atomic<std::uint64_t> frees{0};
    const std::uint64_t s0 = seed + round * 1000;

    std::vector<std::thread> freers;
    for (int i = 0; i < kFreers; ++i) freers.emplace_back(freer, std::ref(r), s0 + 10 + i, std::ref(frees));
    std::thread cancel_thread(canceller, std::ref(r), s0 + 20);
    std::vector<std::thread> waiters;
    for (int i = 0; i < kPollWaiters; ++i) waiters.emplace_back(poll_waiter, std::ref(r), i, s0 + 30 + i, ops);
    std::deque<CoroutineContext> contexts;
    for (int i = 0; i < kCoroutines; ++i) {
      contexts.push_back(CoroutineContext{&r, s0 + 40 + i, i % 2 == 0, nullptr, {}});
      coroutine_waiter(contexts.back());  // runs until its first wait, then on the freeing threads
    }

    // Run until enough completions or the round's share of the time cap.
    while (r.ready.load() < ops && seconds_since(round_start) < round_cap) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const bool close_round = round % 2 == 0;
    if (close_round) {
      // close() while waiters wait and frees keep coming: all end Ready or Closed.
      r.heap->close();
      r.round_over.store(true, std::memory_order_release);
    } else {
      // Quiet drain: no new requests, no cancels; what still waits must be
      // served by the frees of what is outstanding.
      r.round_over.store(true, std::memory_order_release);
      cancel_thread.join();
      r.draining.store(true, std::memory_order_release);
    }
    for (auto& t : waiters) t.join();
    while (r.coroutines_done.load(std::memory_order_acquire) < kCoroutines) std::this_thread::yield();
    if (close_round) cancel_thread.join();
    r.stop_freeing.store(true, std::memory_order_release);
    for (auto& t : freers) t.join();
    if (!close_round) {
      STRESS_CHECK(r.closed.load() == 0);  // nobody was closed: all were served (or cancelled earlier)
      r.heap->close();
    }

    const Stats st = r.heap->stats();
    check_pristine(*r.heap);
    STRESS_CHECK(st.spurious_wake_count == 0);
    Result<void*> late = r.heap->try_alloc_raw(Layout{16, 8});
    STRESS_CHECK(!late && late.error() == Error::Closed);
    std::printf("  round %u (%s): %.2fs ready %" PRIu64 " (by poll-driven futures %" PRIu64 "), parked %" PRIu64
                ", closed %" PRIu64 ", cancelled: stop %" PRIu64 " drop %" PRIu64
                "; frees %" PRIu64 ", deferred %zu, waits %zu\n",
                round, close_round ? "close" : "drain", seconds_since(round_start), r.ready.load(),
                r.ready_polled.load(), r.waited.load(),
                r.closed.load(), r.cancelled_stop.load(), r.cancelled_drop.load(), frees.load(),
                st.deferred_free_count, st.wait_count);
    STRESS_CHECK(st.wait_count > 0);
  }
  std::printf("waiters_stress: PASS in %.2fs\n", seconds_since(start));
  return 0;
}
