// A producer -> transformer -> consumer pipeline of Task<> coroutines on the
// bundled single-threaded Executor, over one small static arena. The arena
// is the only flow control: there is no queue limit anywhere. A stage that
// outruns the next simply finds the arena full and waits (co_await) until
// the next stage frees something; the free hands it a block and the executor
// resumes it. Prints how often each stage waited, and exits non-zero unless
// every item arrived intact and in order, both stages actually waited, and
// every byte came back.
//
// Why two heaps on one arena: the transformer holds a frame while it waits
// for room for its summary. If frames and summaries shared one heap, a full
// arena of frames would leave the transformer waiting for room that only the
// frames it is waiting to process could free: a deadlock (hold-and-wait).
// Giving each hop its own heap breaks the cycle: frames wait only on the
// transformer, summaries only on the consumer, and the consumer never waits
// for memory. (Dropping the input before asking for the output does not help
// on a shared heap: FIFO hands the freed block to the waiting producer.)
#include <cassert>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <span>
#include <utility>

#include <mnemos/alloc.hpp>
#include <mnemos/task.hpp>

using namespace mnemos;

namespace {

// One static arena, split between the two heaps.
constexpr std::size_t kFrameHeapBytes = 4 * 1024;
constexpr std::size_t kSummaryHeapBytes = 1024;
alignas(64) std::byte arena[kFrameHeapBytes + kSummaryHeapBytes];

constexpr std::uint32_t kItems = 2000;
constexpr std::size_t kSamples = 192;

// The messages link themselves into the mailboxes (`next`), so passing one
// along allocates nothing: the arena really is the only memory in play.
struct Frame {
  Frame* next = nullptr;
  std::uint32_t sequence = 0;
  std::uint8_t samples[kSamples] = {};
};

struct Summary {
  Summary* next = nullptr;
  std::uint32_t sequence;
  std::uint32_t sum;
  std::uint8_t min;
  std::uint8_t max;
  std::uint16_t histogram[8];
};

std::uint8_t sample(std::uint32_t sequence, std::size_t i) {
  std::uint32_t x = sequence * 2654435761u + static_cast<std::uint32_t>(i) * 40503u;
  x ^= x >> 13;
  return static_cast<std::uint8_t>(x);
}

// A single-receiver mailbox for Box<T> on one executor: an intrusive FIFO and
// the receiver's Waker. receive() suspends while it is empty; send() wakes the
// receiver through the executor (never resuming it inline).
template <class T>
class Mailbox {
 public:
  void send(Box<T> item) {
    T* raw = std::move(item).leak();  // the mailbox owns it until receive()
    raw->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = raw;
    } else {
      head_ = raw;
    }
    tail_ = raw;
    wake();
  }
  void close() {
    closed_ = true;
    wake();
  }

  struct Awaiter {
    Mailbox& box;
    bool await_ready() const noexcept { return box.head_ != nullptr || box.closed_; }
    template <class Promise>
    void await_suspend(std::coroutine_handle<Promise> h) noexcept {
      box.waker_ = h.promise().resume_waker();  // schedules h on its executor
      assert(box.waker_ && "receive() from a Task running on an Executor");
    }
    Box<T> await_resume() noexcept {
      T* raw = box.head_;
      if (raw == nullptr) return Box<T>::from_raw(nullptr);  // closed
      box.head_ = raw->next;
      if (box.head_ == nullptr) box.tail_ = nullptr;
      return Box<T>::from_raw(raw);
    }
  };

  // co_await mailbox.receive(): the next item, or an empty Box once the
  // mailbox is closed and drained.
  Awaiter receive() { return Awaiter{*this}; }

  ~Mailbox() {
    while (T* raw = head_) {  // items never received are freed
      head_ = raw->next;
      Box<T>::from_raw(raw);
    }
  }

 private:
  void wake() {
    if (waker_) std::exchange(waker_, Waker{}).wake();
  }

  T* head_ = nullptr;
  T* tail_ = nullptr;
  bool closed_ = false;
  Waker waker_;
};

struct Tally {
  std::uint32_t produced = 0;
  std::uint32_t transformed = 0;
  std::uint32_t consumed = 0;
  std::uint32_t errors = 0;
};

// A child task with a result: Task<T> is awaited like any awaitable.
struct Digest {
  std::uint32_t sum = 0;
  std::uint8_t min = 255;
  std::uint8_t max = 0;
  std::uint16_t histogram[8] = {};
};

Task<Digest> digest(const Frame& frame) {
  Digest d;
  for (std::uint8_t s : frame.samples) {
    d.sum += s;
    d.min = s < d.min ? s : d.min;
    d.max = s > d.max ? s : d.max;
    ++d.histogram[s >> 5];
  }
  co_return d;
}

Task<void> producer(Heap& frames, Mailbox<Frame>& out, Tally& tally) {
  for (std::uint32_t seq = 0; seq < kItems; ++seq) {
    Result<Box<Frame>> frame = co_await frames.alloc<Frame>();  // waits while the frame heap is full
    if (!frame) {
      ++tally.errors;
      break;
    }
    (*frame)->sequence = seq;
    for (std::size_t i = 0; i < kSamples; ++i) (*frame)->samples[i] = sample(seq, i);
    out.send(std::move(*frame));
    ++tally.produced;
  }
  out.close();
}

Task<void> transformer(Heap& summaries, Mailbox<Frame>& in, Mailbox<Summary>& out, Tally& tally) {
  while (Box<Frame> frame = co_await in.receive()) {
    const Digest d = co_await digest(*frame);
    Result<Box<Summary>> summary = co_await summaries.alloc<Summary>();  // waits on the consumer
    if (!summary) {
      ++tally.errors;
      break;
    }
    Summary& s = **summary;
    s.sequence = frame->sequence;
    s.sum = d.sum;
    s.min = d.min;
    s.max = d.max;
    for (int b = 0; b < 8; ++b) s.histogram[b] = d.histogram[b];
    out.send(std::move(*summary));
    ++tally.transformed;
  }  // each frame is freed here: that is what wakes the waiting producer
  out.close();
}

Task<void> consumer(Mailbox<Summary>& in, Tally& tally) {
  std::uint32_t expected = 0;
  while (Box<Summary> s = co_await in.receive()) {
    // Recompute what the producer generated and check the transformer's work.
    std::uint32_t sum = 0;
    std::uint16_t count = 0;
    for (std::size_t i = 0; i < kSamples; ++i) sum += sample(expected, i);
    for (std::uint16_t h : s->histogram) count = static_cast<std::uint16_t>(count + h);
    if (s->sequence != expected || s->sum != sum || count != kSamples || s->min > s->max) ++tally.errors;
    ++expected;
    ++tally.consumed;
  }  // each summary is freed here: that wakes the waiting transformer
}

bool pristine(Heap& heap) {
  heap.poll();
  const Stats s = heap.stats();
  return s.allocated_bytes == 0 && s.free_bytes == s.capacity_bytes && heap.check().ok();
}

}  // namespace

int main() {
  Result<Heap*> frame_heap = Heap::bootstrap(std::span(arena).first(kFrameHeapBytes));
  Result<Heap*> summary_heap = Heap::bootstrap(std::span(arena).subspan(kFrameHeapBytes));
  if (!frame_heap || !summary_heap) {
    std::printf("bootstrap failed\n");
    return 1;
  }
  Heap& frames = **frame_heap;
  Heap& summaries = **summary_heap;

  Tally tally;
  {
    Mailbox<Frame> raw;
    Mailbox<Summary> digested;
    Executor executor;
    executor.spawn(producer(frames, raw, tally));
    executor.spawn(transformer(summaries, raw, digested, tally));
    executor.spawn(consumer(digested, tally));
    executor.run();  // until all three have finished
  }

  const Stats f = frames.stats();
  const Stats s = summaries.stats();
  bool ok = true;
  auto expect = [&ok](bool condition, const char* what) {
    if (!condition) {
      std::printf("FAILED: %s\n", what);
      ok = false;
    }
  };
  expect(tally.produced == kItems && tally.transformed == kItems && tally.consumed == kItems,
         "every item went through every stage");
  expect(tally.errors == 0, "every item intact and in order");
  expect(f.wait_count > 0, "the producer waited for room (backpressure from the transformer)");
  expect(s.wait_count > 0, "the transformer waited for room (backpressure from the consumer)");
  expect(f.spurious_wake_count == 0 && s.spurious_wake_count == 0, "no spurious wakes");
  expect(pristine(frames) && pristine(summaries), "every byte back, check() ok");

  std::printf("coroutine_pipeline: %u items, frames heap %zu B (%zu-byte frames), summaries heap %zu B\n", kItems,
              f.capacity_bytes, sizeof(Frame), s.capacity_bytes);
  std::printf("  %-34s %6s %6s %8s\n", "", "allocs", "waits", "peak use");
  std::printf("  %-34s %6zu %6zu %7.0f%%\n", "producer   (frames heap)", f.alloc_count, f.wait_count,
              100.0 * static_cast<double>(f.peak_allocated_bytes) / static_cast<double>(f.capacity_bytes));
  std::printf("  %-34s %6zu %6zu %7.0f%%\n", "transformer (summaries heap)", s.alloc_count, s.wait_count,
              100.0 * static_cast<double>(s.peak_allocated_bytes) / static_cast<double>(s.capacity_bytes));
  std::printf("%s\n", ok ? "coroutine_pipeline: OK" : "coroutine_pipeline: FAILED");
  return ok ? 0 : 1;
}
