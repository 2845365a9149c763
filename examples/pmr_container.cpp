// Standard containers on a static arena through std::pmr: a MemoryResource
// over a Heap, given to pmr::vector, pmr::string, pmr::map and a
// monotonic_buffer_resource chained on top of it. Shows that every byte comes
// from the arena (addresses checked), what the heap's counters say, what
// running out looks like (std::bad_alloc, the container left intact), and that
// everything comes back. Exits non-zero if any check fails.
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory_resource>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <mnemos/alloc.hpp>
#include <mnemos/memory_resource.hpp>

using namespace mnemos;

namespace {

alignas(64) std::byte arena[32 * 1024];

bool in_arena(const void* p, std::size_t n = 1) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  const auto b = reinterpret_cast<std::uintptr_t>(arena);
  return a >= b && a + n <= b + sizeof arena;
}

bool ok = true;
void expect(bool condition, const char* what) {
  if (!condition) {
    std::printf("FAILED: %s\n", what);
    ok = false;
  }
}

void print_stats(const char* when, const Heap& heap) {
  const Stats s = heap.stats();
  std::printf("  %-28s %6zu B in use, %4zu allocations, %4zu frees, %3zu refused\n", when, s.allocated_bytes,
              s.alloc_count, s.free_count, s.alloc_no_memory_count);
}

}  // namespace

int main() {
  Result<Heap*> made = Heap::bootstrap(arena, Heap::Options{.backend = Backend::Tlsf});
  if (!made) {
    std::printf("bootstrap failed: %s\n", to_string(made.error()));
    return 1;
  }
  Heap& heap = *made.value();
  MemoryResource resource(heap);  // must outlive every container that uses it
  std::printf("pmr_container: %zu-byte static arena, TLSF backend\n", sizeof arena);

  {
    // A word index: pmr::map of pmr::string -> count, plus a pmr::vector of
    // the words in order. The pmr containers hand &resource to the strings
    // they construct (uses-allocator construction), so the strings' bytes come
    // from the arena too, not only the containers' nodes and buffers.
    constexpr std::string_view text =
        "the heap lives inside a region you give it and running out of memory is usually temporary "
        "so the heap can wait for room instead of failing and frees never block from any thread "
        "the standard containers below know nothing of this they see a memory resource";
    std::pmr::vector<std::pmr::string> words(&resource);
    std::pmr::map<std::pmr::string, int> counts(&resource);
    std::size_t start = 0;
    while (start < text.size()) {
      std::size_t end = text.find(' ', start);
      if (end == std::string_view::npos) end = text.size();
      // Prefixed so that every word outgrows the small-string buffer and really allocates.
      std::pmr::string word("word:", &resource);
      word.append(text.substr(start, end - start));
      ++counts[word];
      words.push_back(std::move(word));
      start = end + 1;
    }
    bool all_in_arena = in_arena(words.data(), words.size() * sizeof(std::pmr::string));
    for (const std::pmr::string& w : words) all_in_arena = all_in_arena && in_arena(w.data(), w.size() + 1);
    for (const auto& [w, n] : counts) all_in_arena = all_in_arena && in_arena(&w) && in_arena(w.data());
    expect(all_in_arena, "every node, buffer and string of the word index lies in the arena");
    expect(words.size() == 47 && counts.at("word:the") == 3 && counts.at("word:heap") == 2, "the word index");
    std::printf("  %zu words, %zu distinct; \"the\" x%d\n", words.size(), counts.size(), counts.at("word:the"));
    print_stats("with the word index:", heap);
    expect(heap.check().ok(), "check() with the index alive");

    // A per-frame scratch arena on top of the heap: monotonic_buffer_resource
    // takes big chunks from `resource` and hands out pieces with no per-piece
    // bookkeeping; release() (or its destructor) returns the chunks at once.
    {
      std::pmr::monotonic_buffer_resource scratch(1024, &resource);
      std::pmr::vector<int> squares(&scratch);
      for (int i = 0; i < 500; ++i) squares.push_back(i * i);
      expect(in_arena(squares.data(), squares.size() * sizeof(int)), "scratch memory lies in the arena");
      expect(squares[499] == 499 * 499, "scratch contents");
      print_stats("with scratch chunks:", heap);
    }
    print_stats("scratch released:", heap);

    // Running out: with exceptions (this build) the resource throws
    // std::bad_alloc and push_back's strong guarantee leaves the vector as it
    // was. (Built with -fno-exceptions, the allocation-failure handler would
    // be called instead and the program would stop: see docs/std-integration.md.)
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    std::pmr::vector<std::uint64_t> greedy(&resource);
    std::size_t before_failure = 0;
    bool threw = false;
    try {
      for (std::uint64_t i = 0;; ++i) {
        before_failure = greedy.size();
        greedy.push_back(i);
      }
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    bool intact = greedy.size() == before_failure;
    for (std::size_t i = 0; intact && i < greedy.size(); ++i) intact = greedy[i] == i;
    expect(threw && intact, "exhaustion throws bad_alloc and leaves the vector intact");
    std::printf("  a vector grew to %zu elements, then its next growth did not fit: std::bad_alloc, contents kept\n",
                greedy.size());
    print_stats("after the refusal:", heap);
#endif
  }

  // Every container is gone: all of the arena is free again.
  heap.poll();
  const Stats s = heap.stats();
  expect(s.allocated_bytes == 0 && s.free_bytes == s.capacity_bytes, "every byte back");
  expect(heap.check().ok(), "check() at the end");
  print_stats("at the end:", heap);
  std::printf("  peak use %.0f%% of %zu bytes\n",
              100.0 * static_cast<double>(s.peak_allocated_bytes) / static_cast<double>(s.capacity_bytes),
              s.capacity_bytes);
  std::printf("%s\n", ok ? "pmr_container: OK" : "pmr_container: FAILED");
  return ok ? 0 : 1;
}
