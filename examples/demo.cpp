// The demo: a heap in a 64 KiB static arena, producer threads allocating
// messages and consumer threads freeing them, so frees arrive from threads that
// did not allocate and often find the lock held (deferred frees). It prints a
// table and exits 0 only if check() passes and every byte came back.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <mnemos/alloc.hpp>

using namespace mnemos;

namespace {

alignas(64) std::byte arena[64 * 1024];

// A message: a header Box and a payload Array of a random length.
struct Message {
  std::uint32_t producer;
  std::uint32_t sequence;
  Array<std::uint8_t> payload;
};

// A hosted channel between threads: the demo's plumbing, not the allocator's.
class Channel {
 public:
  void send(Box<Message> m) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(m));
    }
    ready_.notify_one();
  }
  // Empty Box when the channel is closed and drained.
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

struct ProducerCounts {
  std::size_t sent = 0;
  std::size_t no_memory = 0;
  std::size_t locked = 0;
};

}  // namespace

int main() {
  constexpr int kProducers = 2;
  constexpr int kConsumers = 2;
  constexpr std::uint32_t kMessagesPerProducer = 50000;

  Result<Heap*> made = Heap::bootstrap(arena);
  if (!made) {
    std::printf("bootstrap failed: %s\n", to_string(made.error()));
    return 1;
  }
  Heap& heap = *made.value();

  // A request larger than the arena can ever hold fails at once.
  const Error too_large = heap.try_alloc_array<std::uint8_t>(sizeof arena).error();

  Channel channel;
  std::vector<ProducerCounts> counts(kProducers);
  const auto start = std::chrono::steady_clock::now();

  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&] {
      // Each drop frees the payload and the message from this thread.
      while (Box<Message> m = channel.receive()) {
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(static_cast<unsigned>(p + 1));
      ProducerCounts& mine = counts[static_cast<std::size_t>(p)];
      for (std::uint32_t seq = 0; seq < kMessagesPerProducer; ++seq) {
        const std::size_t length = 16 + rng() % 2000;
        for (;;) {
          Result<Array<std::uint8_t>> payload = heap.try_alloc_array<std::uint8_t>(length);
          if (payload) {
            Result<Box<Message>> m =
                heap.try_alloc<Message>(static_cast<std::uint32_t>(p), seq, std::move(*payload));
            if (m) {
              channel.send(std::move(*m));
              ++mine.sent;
              break;
            }
            (m.error() == Error::NoMemory ? mine.no_memory : mine.locked)++;
          } else {
            (payload.error() == Error::NoMemory ? mine.no_memory : mine.locked)++;
          }
          // Full or busy: give the consumers a turn (the async layer will wait instead).
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  channel.close();
  for (auto& t : consumers) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  ProducerCounts total;
  for (const ProducerCounts& c : counts) {
    total.sent += c.sent;
    total.no_memory += c.no_memory;
    total.locked += c.locked;
  }
  const Stats s = heap.stats();
  const CheckReport report = heap.check();
  const bool every_byte_back = s.allocated_bytes == 0 && s.free_bytes == s.capacity_bytes;
  const bool ok = report.ok() && every_byte_back && too_large == Error::TooLarge;

  std::printf("mnemos-alloc demo: %d producers, %d consumers, %zu-byte static arena\n", kProducers,
              kConsumers, sizeof arena);
  std::printf("+------------------------------+----------------+\n");
  std::printf("| %-28s | %14zu |\n", "messages sent and freed", total.sent);
  std::printf("| %-28s | %14zu |\n", "allocations", s.alloc_count);
  std::printf("| %-28s | %14zu |\n", "frees", s.free_count);
  std::printf("| %-28s | %14zu |\n", "  of which deferred", s.deferred_free_count);
  std::printf("| %-28s | %14zu |\n", "retries: arena full", total.no_memory);
  std::printf("| %-28s | %14zu |\n", "retries: lock busy", total.locked);
  std::printf("| %-28s | %13.1f%% |\n", "peak use of the arena",
              100.0 * static_cast<double>(s.peak_allocated_bytes) / static_cast<double>(s.capacity_bytes));
  std::printf("| %-28s | %14s |\n", "larger-than-arena request", to_string(too_large));
  std::printf("| %-28s | %14s |\n", "every byte back", every_byte_back ? "yes" : "NO");
  std::printf("| %-28s | %14s |\n", "check()", report.ok() ? "ok" : to_string(report.failure));
  std::printf("| %-28s | %13.2fs |\n", "wall time", seconds);
  std::printf("+------------------------------+----------------+\n");
  std::printf("%s\n", ok ? "demo: OK" : "demo: FAILED");
  return ok ? 0 : 1;
}
