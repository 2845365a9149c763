// The demo, the project's main job: a heap in a 64 KiB static arena under
// pressure. Producer tasks on an Executor (the main thread) allocate messages
// faster than consumer threads free them, so the heap is full most of the time
// and producers wait for room (co_await) instead of failing. One request
// larger than the arena is rejected at once; a few impatient waiters are
// cancelled through stop tokens. Prints a table, and exits 0 only if no
// allocation failed unexpectedly, every byte came back and check() passes.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include <mnemos/alloc.hpp>
#include <mnemos/task.hpp>

using namespace mnemos;
using Clock = std::chrono::steady_clock;

namespace {

alignas(64) std::byte arena[64 * 1024];

constexpr int kProducers = 4;
constexpr int kConsumers = 2;
constexpr int kMessagesPerProducer = 5000;
constexpr int kImpatient = 3;

struct Message {
  std::uint32_t producer;
  std::uint32_t sequence;
  Array<std::uint8_t> payload;
};

// Hosted plumbing between the executor and the consumer threads.
class Channel {
 public:
  void send(Box<Message> m) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(m));
    }
    ready_.notify_one();
  }
  // Empty Box once the channel is closed and drained.
  Box<Message> receive() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return Box<Message>::from_raw(nullptr);
    Box<Message> m = std::move(queue_.front());
    queue_.pop_front();
    return m;
  }
  void close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Box<Message>> queue_;
  bool closed_ = false;
};

struct Tally {
  int sent = 0;
  int failures = 0;  // errors other than the expected ones
  int cancelled = 0;
  Clock::duration longest_wait{};
};

void note_wait(Tally& tally, Clock::time_point since) {
  tally.longest_wait = std::max(tally.longest_wait, Clock::now() - since);
}

Task<void> producer(Heap& heap, Channel& channel, Tally& tally, std::uint32_t id) {
  std::uint32_t rng = id * 2654435761u + 1;
  for (int seq = 0; seq < kMessagesPerProducer; ++seq) {
    rng = rng * 1664525u + 1013904223u;
    const std::size_t length = 64 + (rng >> 16) % 960;
    Clock::time_point asked = Clock::now();
    Result<Array<std::uint8_t>> payload = co_await heap.alloc_array<std::uint8_t>(length);
    note_wait(tally, asked);
    if (!payload) {
      ++tally.failures;
      continue;
    }
    for (std::uint8_t& b : *payload) b = static_cast<std::uint8_t>(seq);
    asked = Clock::now();
    Result<Box<Message>> m = co_await heap.alloc<Message>(id, static_cast<std::uint32_t>(seq), std::move(*payload));
    note_wait(tally, asked);
    if (!m) {
      ++tally.failures;
      continue;
    }
    channel.send(std::move(*m));
    ++tally.sent;
  }
}

// Asks for most of the arena, but gives up when its stop token is stopped.
Task<void> impatient(Heap& heap, Tally& tally, std::stop_token token, std::atomic<int>& waiting) {
  auto request = heap.alloc_array<std::uint8_t>(48 * 1024).with(token);
  waiting.fetch_add(1);
  Result<Array<std::uint8_t>> big = co_await std::move(request);
  if (!big && big.error() == Error::Cancelled) {
    ++tally.cancelled;
  } else if (!big) {
    ++tally.failures;
  }
}

}  // namespace

int main() {
  Result<Heap*> made = Heap::bootstrap(arena);
  if (!made) {
    std::printf("bootstrap failed: %s\n", to_string(made.error()));
    return 1;
  }
  Heap& heap = *made.value();

  // Larger than the arena could ever hold: rejected at once, never waits.
  Executor executor;
  Error too_large = Error::NoMemory;
  too_large = executor.block_on([](Heap& h) -> Task<Error> {
    Result<Array<std::uint8_t>> r = co_await h.alloc_array<std::uint8_t>(sizeof arena);
    co_return r ? Error::NoMemory : r.error();
  }(heap));

  Channel channel;
  std::stop_source impatience;
  std::atomic<int> impatient_waiting{0};
  std::atomic<std::uint64_t> checksum{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&] {
      std::uint64_t sum = 0;
      while (Box<Message> m = channel.receive()) {
        for (std::uint8_t b : m->payload) sum += b;
        // Consumers are slower than producers (simulated processing), so the
        // arena stays full and producers spend their time waiting for room.
        const Clock::time_point busy_until = Clock::now() + std::chrono::microseconds(20);
        while (Clock::now() < busy_until) {
        }
        // The impatient waiters give up as soon as the consumers see them waiting.
        if (impatient_waiting.load() == kImpatient) impatience.request_stop();
      }  // each drop frees the payload and the message, from this thread
      checksum.fetch_add(sum);
    });
  }

  std::vector<Tally> tallies(kProducers + kImpatient);
  const Clock::time_point start = Clock::now();
  for (int p = 0; p < kProducers; ++p) {
    executor.spawn(producer(heap, channel, tallies[static_cast<std::size_t>(p)], static_cast<std::uint32_t>(p)));
  }
  for (int i = 0; i < kImpatient; ++i) {
    executor.spawn(impatient(heap, tallies[static_cast<std::size_t>(kProducers + i)], impatience.get_token(),
                             impatient_waiting));
  }
  executor.run();  // until every task has finished
  channel.close();
  for (std::thread& t : consumers) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  Tally total;
  for (const Tally& t : tallies) {
    total.sent += t.sent;
    total.failures += t.failures;
    total.cancelled += t.cancelled;
    total.longest_wait = std::max(total.longest_wait, t.longest_wait);
  }
  const Stats s = heap.stats();
  const CheckReport report = heap.check();
  const bool every_byte_back = s.allocated_bytes == 0 && s.free_bytes == s.capacity_bytes;
  const bool ok = report.ok() && every_byte_back && total.failures == 0 && too_large == Error::TooLarge &&
                  total.sent == kProducers * kMessagesPerProducer;
  const double longest_ms = std::chrono::duration<double, std::milli>(total.longest_wait).count();

  std::printf("mnemos-alloc demo: %d producer tasks on an executor, %d consumer threads, %zu-byte static arena\n",
              kProducers, kConsumers, sizeof arena);
  std::printf("+--------------------------------+----------------+\n");
  std::printf("| %-30s | %14d |\n", "messages sent and freed", total.sent);
  std::printf("| %-30s | %14zu |\n", "allocations", s.alloc_count);
  std::printf("| %-30s | %14zu |\n", "waits (arena full or busy)", s.wait_count);
  std::printf("| %-30s | %11.3f ms |\n", "longest wait", longest_ms);
  std::printf("| %-30s | %14zu |\n", "deferred frees", s.deferred_free_count);
  std::printf("| %-30s | %14zu |\n", "spurious wakes", s.spurious_wake_count);
  std::printf("| %-30s | %13.1f%% |\n", "peak use of the arena",
              100.0 * static_cast<double>(s.peak_allocated_bytes) / static_cast<double>(s.capacity_bytes));
  std::printf("| %-30s | %14s |\n", "larger-than-arena request", to_string(too_large));
  std::printf("| %-30s | %10d / %d |\n", "impatient waiters cancelled", total.cancelled, kImpatient);
  std::printf("| %-30s | %14d |\n", "failures", total.failures);
  std::printf("| %-30s | %14s |\n", "every byte back", every_byte_back ? "yes" : "NO");
  std::printf("| %-30s | %14s |\n", "check()", report.ok() ? "ok" : to_string(report.failure));
  std::printf("| %-30s | %13.2fs |\n", "wall time", seconds);
  std::printf("+--------------------------------+----------------+\n");
  std::printf("%s\n", ok ? "demo: OK" : "demo: FAILED");
  return ok ? 0 : 1;
}
