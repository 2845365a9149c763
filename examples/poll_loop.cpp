// A firmware-style main loop with no coroutines: two "jobs" (small state
// machines) fill frames and hand them to a simulated DMA engine, whose
// completion interrupt frees each frame. The arena holds only a handful of
// frames, so the jobs keep running out of room and *wait*: each keeps an
// allocation future and polls it by hand with a Waker that sets the job's
// ready flag. The interrupt's free hands the oldest waiter a block and calls
// its waker, in the interrupt's context; the main loop sleeps ("WFI") until
// some waker fires, then polls only the jobs that were woken.
//
// The "interrupt" is a second thread here (a hosted simulation); on a
// microcontroller it would be the DMA-complete ISR, and the main loop's sleep a
// WFI instruction. Heap::free_raw never blocks, so it is safe in either.
//
// Checks its own results and exits non-zero if any fails: every frame is
// transmitted intact and in order, every wait is answered by exactly one wake
// (no spurious wake, no lost one), every byte comes back and check() passes.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

#include <mnemos/alloc.hpp>

using namespace mnemos;

namespace {

// Room for a few frames only: backpressure is the normal state of affairs.
alignas(64) std::byte arena[4 * 1024];

constexpr std::uint32_t kFramesPerJob = 400;
constexpr auto kDmaTimePerFrame = std::chrono::microseconds(40);

// What a job writes into its block; the DMA "interrupt" checks it and frees it.
struct FrameHeader {
  std::uint32_t job;
  std::uint32_t sequence;
  std::uint32_t bytes;     // the whole block's payload: header + samples
  std::uint32_t checksum;  // of the samples
};

std::uint8_t sample(std::uint32_t job, std::uint32_t sequence, std::size_t i) {
  return static_cast<std::uint8_t>(job * 31 + sequence * 7 + i);
}

// --- the interrupt side ------------------------------------------------------

// Single-producer (main loop) / single-consumer (DMA interrupt) ring of frames
// queued for transmission. Lock-free: an interrupt handler must never wait for
// the code it interrupted. The arena bounds the frames in flight (far fewer
// than kSlots), so the ring can never be full.
class DmaQueue {
 public:
  static constexpr std::size_t kSlots = 64;

  void push(void* frame) {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);  // only the producer writes it
    slots_[tail % kSlots] = frame;
    // release: the consumer that sees the new tail sees the slot and the frame's bytes.
    tail_.store(tail + 1, std::memory_order_release);
  }
  void* pop() {
    const std::size_t head = head_.load(std::memory_order_relaxed);  // only the consumer writes it
    // acquire: pairs with push's release store.
    if (head == tail_.load(std::memory_order_acquire)) return nullptr;
    void* frame = slots_[head % kSlots];
    head_.store(head + 1, std::memory_order_release);  // release: the slot may be reused
    return frame;
  }
  std::size_t in_flight() const {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }

 private:
  void* slots_[kSlots] = {};
  std::atomic<std::size_t> head_{0};
  std::atomic<std::size_t> tail_{0};
};

DmaQueue dma;
std::atomic<bool> shutting_down{false};
std::uint32_t frames_sent[2] = {0, 0};  // written by the interrupt only
std::uint32_t frames_bad = 0;           // written by the interrupt only

// The DMA engine: "transmits" one frame at a time, then raises its completion
// interrupt, which verifies the frame and frees it. The free is what wakes the
// main loop's waiting job (through its waker, from this context).
void dma_engine() {
  std::uint32_t expected_sequence[2] = {0, 0};
  for (;;) {
    void* frame = dma.pop();
    if (frame == nullptr) {
      if (shutting_down.load(std::memory_order_acquire) && dma.in_flight() == 0) return;
      std::this_thread::sleep_for(std::chrono::microseconds(10));  // the line is idle
      continue;
    }
    std::this_thread::sleep_for(kDmaTimePerFrame);  // the transfer itself

    // --- the completion interrupt handler ---
    FrameHeader h;
    std::memcpy(&h, frame, sizeof h);
    const auto* samples = static_cast<const std::uint8_t*>(frame) + sizeof h;
    std::uint32_t sum = 0;
    bool ok = h.job < 2 && h.sequence == expected_sequence[h.job];
    for (std::size_t i = 0; ok && i < h.bytes - sizeof h; ++i) {
      ok = samples[i] == sample(h.job, h.sequence, i);
      sum += samples[i];
    }
    ok = ok && sum == h.checksum;
    if (ok) {
      ++frames_sent[h.job];
      ++expected_sequence[h.job];
    } else {
      ++frames_bad;
    }
    // Never blocks: if the main loop holds the heap lock right now, the block
    // is queued and returned when it lets go.
    Heap::free_raw(frame, Layout{h.bytes, alignof(FrameHeader)});
  }
}

// --- the main-loop side: a hand-written executor of two jobs -----------------

// Sleeps until an interrupt signals an event (a stand-in for WFI). Wakers bump
// the counter; the loop reads it *before* looking at the ready flags, so a wake
// that lands after the look makes the counter differ and the wait return.
std::atomic<std::uint32_t> events{0};

using RawFuture = decltype(std::declval<Heap&>().alloc_raw(Layout{}));

struct Job {
  Job(std::uint32_t job_id, std::size_t bytes) : id(job_id), frame_bytes(bytes) {}

  std::uint32_t id;
  std::size_t frame_bytes;
  std::uint32_t next_sequence = 0;
  // The allocation in flight. A future must not move once polled (its wait
  // node lives inside it), so it is built in place and reset when done.
  std::optional<RawFuture> pending;
  // Set by the waker (from the interrupt), cleared by the main loop. Starts
  // true so that the first pass polls every job.
  std::atomic<bool> ready{true};
  std::uint32_t waits = 0;     // polls that returned "pending"
  std::atomic<std::uint32_t> wakes{0};  // waker calls (from the interrupt)
  std::uint32_t failures = 0;  // allocations that failed (none expected)

  bool finished() const { return next_sequence == kFramesPerJob && !pending; }
};

// The waker: set the flag, signal the main loop. Runs in the freeing context
// (the interrupt), so it does nothing else.
void wake_job(void* context) {
  auto* job = static_cast<Job*>(context);
  job->wakes.fetch_add(1, std::memory_order_relaxed);
  job->ready.store(true, std::memory_order_release);
  events.fetch_add(1, std::memory_order_release);
  events.notify_one();
}

// Runs a job until it must wait for room or has sent everything. Returns
// whether it made progress.
bool step(Heap& heap, Job& job) {
  bool progressed = false;
  while (job.next_sequence < kFramesPerJob) {
    if (!job.pending) job.pending.emplace(heap.alloc_raw(Layout{job.frame_bytes, alignof(FrameHeader)}));
    std::optional<Result<void*>> r = job.pending->poll(Waker{&wake_job, &job});
    if (!r) {  // parked in the heap's FIFO queue: wake_job will be called
      ++job.waits;
      return progressed;
    }
    job.pending.reset();
    progressed = true;
    if (!*r) {  // TooLarge / InvalidLayout / Closed: a bug here, waiting cannot help
      ++job.failures;
      ++job.next_sequence;
      continue;
    }
    // Fill the frame and queue it for transmission.
    auto* bytes = static_cast<std::uint8_t*>(**r);
    FrameHeader h{job.id, job.next_sequence, static_cast<std::uint32_t>(job.frame_bytes), 0};
    for (std::size_t i = 0; i < job.frame_bytes - sizeof h; ++i) {
      bytes[sizeof h + i] = sample(job.id, job.next_sequence, i);
      h.checksum += bytes[sizeof h + i];
    }
    std::memcpy(bytes, &h, sizeof h);
    dma.push(bytes);
    ++job.next_sequence;
  }
  return progressed;
}

}  // namespace

int main() {
  Result<Heap*> made = Heap::bootstrap(arena);
  if (!made) {
    std::printf("bootstrap failed: %s\n", to_string(made.error()));
    return 1;
  }
  Heap& heap = *made.value();

  // Two jobs with different frame sizes share the arena; FIFO service means
  // the larger frames are never starved by the smaller ones.
  Job jobs[2] = {{0, 600}, {1, 240}};

  std::thread interrupt(dma_engine);
  std::uint32_t sleeps = 0;
  while (!jobs[0].finished() || !jobs[1].finished()) {
    const std::uint32_t seen = events.load(std::memory_order_acquire);
    bool progressed = false;
    for (Job& job : jobs) {
      // acquire: pairs with wake_job's release store, so the block the free
      // handed over is visible to the poll.
      if (job.ready.exchange(false, std::memory_order_acquire)) progressed |= step(heap, job);
    }
    if (!progressed) {
      ++sleeps;
      events.wait(seen, std::memory_order_acquire);  // "WFI" until some waker fires
    }
  }
  shutting_down.store(true, std::memory_order_release);
  interrupt.join();
  heap.poll();

  const Stats s = heap.stats();
  const CheckReport report = heap.check();
  const std::uint32_t waits = jobs[0].waits + jobs[1].waits;
  const std::uint32_t wakes = jobs[0].wakes.load() + jobs[1].wakes.load();
  const bool every_byte_back = s.allocated_bytes == 0 && s.free_bytes == s.capacity_bytes;
  bool ok = true;
  auto expect = [&ok](bool condition, const char* what) {
    if (!condition) {
      std::printf("FAILED: %s\n", what);
      ok = false;
    }
  };
  expect(frames_sent[0] == kFramesPerJob && frames_sent[1] == kFramesPerJob, "every frame transmitted");
  expect(frames_bad == 0, "every frame intact and in order");
  expect(jobs[0].failures + jobs[1].failures == 0, "no allocation failed");
  expect(waits > 0, "the arena ran out of room (backpressure happened)");
  // Every pending poll was answered by exactly one wake: none lost (the loop
  // would hang), none spurious. (The heap's wait_count may be a little higher:
  // a request that subscribed can still be served before its first poll returns.)
  expect(wakes == waits, "one wake per pending poll");
  expect(s.wait_count >= waits, "the heap counted every wait");
  expect(s.spurious_wake_count == 0, "no spurious wakes");
  expect(every_byte_back, "every byte back");
  expect(report.ok(), "check()");

  std::printf("poll_loop: 2 jobs, %u frames each, %zu-byte arena (%zu usable)\n", kFramesPerJob, sizeof arena,
              s.capacity_bytes);
  std::printf("  job 0 (600 B frames): %u sent, waited %u times, woken %u times\n", frames_sent[0], jobs[0].waits,
              jobs[0].wakes.load());
  std::printf("  job 1 (240 B frames): %u sent, waited %u times, woken %u times\n", frames_sent[1], jobs[1].waits,
              jobs[1].wakes.load());
  std::printf("  heap: %zu allocations, %zu waits, %zu spurious wakes, %zu deferred frees, peak %.0f%%\n",
              s.alloc_count, s.wait_count, s.spurious_wake_count, s.deferred_free_count,
              100.0 * static_cast<double>(s.peak_allocated_bytes) / static_cast<double>(s.capacity_bytes));
  std::printf("  main loop slept %u times; check() %s\n", sleeps, report.ok() ? "ok" : to_string(report.failure));
  std::printf("%s\n", ok ? "poll_loop: OK" : "poll_loop: FAILED");
  return ok ? 0 : 1;
}
