// mnemos::global: this whole executable (GoogleTest included) allocates through
// the replaced global operator new / delete, from the global heap's static
// arena. Built only where no sanitizer runtime owns operator new.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "mnemos/alloc.hpp"
#include "mnemos/global.hpp"

// Clang 14 leaves sized deallocation off by default, and <new> then does not
// declare the sized forms; they exist all the same (src/global/global_new.cpp
// defines them, as libstdc++ does), so declare them to call them directly.
#if !defined(__cpp_sized_deallocation)
void operator delete(void*, std::size_t) noexcept;
void operator delete[](void*, std::size_t) noexcept;
void operator delete(void*, std::size_t, std::align_val_t) noexcept;
void operator delete[](void*, std::size_t, std::align_val_t) noexcept;
#endif

using namespace mnemos;

namespace {

// Fault records without allocating (a handler may run inside the allocator).
std::atomic<int> g_faults{0};
std::atomic<FaultKind> g_last_fault{FaultKind::DoubleFree};
std::atomic<const void*> g_last_address{nullptr};

void record_fault(const Fault& f) {
  g_last_fault.store(f.kind);
  g_last_address.store(f.address);
  g_faults.fetch_add(1);
}

// The misuse below is deliberate: a volatile round trip hides the pointer's
// provenance from GCC's -Wfree-nonheap-object / -Wuse-after-free / mismatched
// new-delete analyses (which would otherwise, rightly, reject it).
template <class T>
void* hide(T* p) {
  void* volatile v = const_cast<void*>(static_cast<const void*>(p));
  return v;
}

// ditto, for sizes GCC would reject at compile time
std::size_t hide(std::size_t n) {
  volatile std::size_t v = n;
  return v;
}

class GlobalNew : public ::testing::Test {
 protected:
  void SetUp() override {
    g_faults.store(0);
    previous_ = set_fault_handler(&record_fault);
  }
  void TearDown() override {
    set_fault_handler(previous_);
    std::set_new_handler(nullptr);
    EXPECT_TRUE(global_heap().check().ok());
  }
  FaultHandler previous_ = nullptr;
};

TEST_F(GlobalNew, TheHeapWasAlreadyInUseBeforeMain) {
  // GoogleTest registered the tests (static initializers) through our new.
  EXPECT_GT(global_heap().stats().alloc_count, 0u);
  EXPECT_GT(global_heap().stats().allocated_bytes, 0u);
  EXPECT_TRUE(global_heap_owns(&global_heap()));  // its state is at the arena's start
  EXPECT_LT(global_heap().capacity(), global_arena_size);
}

TEST_F(GlobalNew, NewAndDeleteGoThroughTheHeap) {
  Heap& heap = global_heap();
  const Stats before = heap.stats();
  int* p = new int(7);
  const Stats during = heap.stats();
  EXPECT_TRUE(global_heap_owns(p));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % __STDCPP_DEFAULT_NEW_ALIGNMENT__, 0u);
  EXPECT_EQ(during.alloc_count, before.alloc_count + 1);
  // 4 bytes cost the header, the 16-byte record and the rounding: 32 at least.
  EXPECT_GE(during.allocated_bytes - before.allocated_bytes, 4 + global_new_prefix(16) + 8);
  EXPECT_EQ(*p, 7);
  delete p;
  const Stats after = heap.stats();
  EXPECT_EQ(after.free_count, before.free_count + 1);
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
}

TEST_F(GlobalNew, ContainersLiveInTheArena) {
  std::vector<std::string> v;
  for (int i = 0; i < 200; ++i) v.push_back("a string that does not fit in the SSO buffer, number " + std::to_string(i));
  EXPECT_TRUE(global_heap_owns(v.data()));
  for (const std::string& s : v) EXPECT_TRUE(global_heap_owns(s.data()));
  std::map<int, std::unique_ptr<double[]>> m;
  for (int i = 0; i < 100; ++i) m.emplace(i, std::make_unique<double[]>(static_cast<std::size_t>(i) + 1));
  for (const auto& [k, arr] : m) {
    EXPECT_TRUE(global_heap_owns(&k));
    EXPECT_TRUE(global_heap_owns(arr.get()));
  }
  auto shared = std::make_shared<std::string>(300, 'x');
  EXPECT_TRUE(global_heap_owns(shared.get()));
  EXPECT_TRUE(global_heap().check().ok());
}

struct alignas(256) Page {
  std::uint8_t bytes[256];
};

TEST_F(GlobalNew, AlignedForms) {
  const Stats before = global_heap().stats();
  Page* one = new Page;
  Page* many = new Page[3];
  void* raw = ::operator new(100, std::align_val_t{1024});
  void* raw_nothrow = ::operator new(100, std::align_val_t{64}, std::nothrow);
  for (const void* p : {static_cast<const void*>(one), static_cast<const void*>(many), static_cast<const void*>(raw),
                        static_cast<const void*>(raw_nothrow)}) {
    EXPECT_TRUE(global_heap_owns(p));
  }
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(one) % 256, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(many) % 256, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(raw) % 1024, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(raw_nothrow) % 64, 0u);
  delete one;     // sized + aligned
  delete[] many;  // aligned array
  ::operator delete(raw, std::align_val_t{1024});
  ::operator delete(raw_nothrow, 100, std::align_val_t{64});
  EXPECT_EQ(g_faults.load(), 0);
  EXPECT_EQ(global_heap().stats().allocated_bytes, before.allocated_bytes);
}

TEST_F(GlobalNew, EveryFormRoundTrips) {
  const Stats before = global_heap().stats();
  void* a = ::operator new(10);
  void* b = ::operator new[](20);
  void* c = ::operator new(30, std::nothrow);
  void* d = ::operator new[](40, std::nothrow);
  void* e = ::operator new[](50, std::align_val_t{32});
  void* f = ::operator new[](60, std::align_val_t{32}, std::nothrow);
  void* g = ::operator new[](70, std::nothrow);
  void* h = ::operator new(80, std::align_val_t{64}, std::nothrow);
  void* z1 = ::operator new(0);
  void* z2 = ::operator new(0);
  EXPECT_NE(z1, z2);  // a zero-size request still gets a unique pointer
  for (void* p : {a, b, c, d, e, f, g, h, z1, z2}) EXPECT_TRUE(global_heap_owns(p));
  ::operator delete(a, 10);
  ::operator delete[](b);
  ::operator delete(c, std::nothrow);
  ::operator delete[](d, 40);
  ::operator delete[](e, 50, std::align_val_t{32});
  ::operator delete[](f, std::align_val_t{32}, std::nothrow);
  ::operator delete[](g, std::nothrow);
  ::operator delete(h, std::align_val_t{64}, std::nothrow);
  ::operator delete(z1);
  ::operator delete(z2, std::size_t{0});
  ::operator delete(hide(static_cast<int*>(nullptr)));  // a no-op, as for every delete
  EXPECT_EQ(g_faults.load(), 0);
  EXPECT_EQ(global_heap().stats().allocated_bytes, before.allocated_bytes);
}

TEST_F(GlobalNew, TooLargeThrowsOrReturnsNull) {
  const std::size_t huge = global_arena_size;  // can never fit: the state comes first
  EXPECT_EQ(::operator new(huge, std::nothrow), nullptr);
  EXPECT_EQ(::operator new(hide(SIZE_MAX - 4), std::nothrow), nullptr);  // the prefix would overflow
  EXPECT_THROW((void)::operator new(huge), std::bad_alloc);
  EXPECT_THROW((void)::operator new[](huge, std::align_val_t{64}), std::bad_alloc);
}

std::atomic<int> g_handler_calls{0};
void* g_reserve = nullptr;

TEST_F(GlobalNew, NewHandlerLoop) {
  // A handler that gives up: called once, then bad_alloc.
  g_handler_calls.store(0);
  std::set_new_handler([] {
    g_handler_calls.fetch_add(1);
    std::set_new_handler(nullptr);
  });
  EXPECT_THROW((void)::operator new(global_arena_size), std::bad_alloc);
  EXPECT_EQ(g_handler_calls.load(), 1);

  // A handler that frees a reserve: the retry succeeds. The reserve takes
  // most of the arena, so the second big request does not fit until then.
  const std::size_t big = global_heap().stats().free_bytes / 2 + 1024;
  g_reserve = ::operator new(big);
  g_handler_calls.store(0);
  std::set_new_handler([] {
    g_handler_calls.fetch_add(1);
    ::operator delete(g_reserve);
    g_reserve = nullptr;
    std::set_new_handler(nullptr);
  });
  void* p = ::operator new(big);
  EXPECT_EQ(g_handler_calls.load(), 1);
  EXPECT_EQ(g_reserve, nullptr);
  EXPECT_TRUE(global_heap_owns(p));
  ::operator delete(p, big);

  // nothrow: the handler runs too, and a handler that throws gives nullptr.
  g_handler_calls.store(0);
  std::set_new_handler([] {
    g_handler_calls.fetch_add(1);
    throw std::bad_alloc();
  });
  EXPECT_EQ(::operator new(global_arena_size, std::nothrow), nullptr);
  EXPECT_EQ(g_handler_calls.load(), 1);
}

TEST_F(GlobalNew, ExhaustionAndRecovery) {
  std::vector<void*> chunks;
  chunks.reserve(1024);  // allocated before the arena fills
  for (;;) {
    void* p = ::operator new(16 * 1024, std::nothrow);
    if (p == nullptr) break;
    chunks.push_back(p);
  }
  EXPECT_GT(chunks.size(), 20u);
  EXPECT_GT(global_heap().stats().alloc_no_memory_count, 0u);
  EXPECT_THROW((void)::operator new(16 * 1024), std::bad_alloc);
  for (void* p : chunks) ::operator delete(p, 16 * 1024);
  void* again = ::operator new(16 * 1024);
  EXPECT_TRUE(global_heap_owns(again));
  ::operator delete(again);
}

TEST_F(GlobalNew, ThreadsShareTheHeap) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::atomic<int> outside{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::uint32_t rng = 12345u + static_cast<std::uint32_t>(t);
      std::vector<std::unique_ptr<std::uint8_t[]>> held(16);
      for (int i = 0; i < kRounds; ++i) {
        rng = rng * 1664525u + 1013904223u;
        const std::size_t size = 1 + (rng >> 20) % 512;
        auto block = std::unique_ptr<std::uint8_t[]>(new (std::nothrow) std::uint8_t[size]);
        if (!block) {
          failures.fetch_add(1);
          continue;
        }
        if (!global_heap_owns(block.get())) outside.fetch_add(1);
        block[0] = static_cast<std::uint8_t>(i);
        block[size - 1] = static_cast<std::uint8_t>(i);
        held[(rng >> 8) % held.size()] = std::move(block);  // frees the previous one
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(outside.load(), 0);
  EXPECT_EQ(failures.load(), 0);  // Locked is spun on, never a failure
  global_heap().poll();
  EXPECT_EQ(global_heap().stats().deferred_pending, 0u);
  EXPECT_TRUE(global_heap().check().ok());
}

TEST_F(GlobalNew, SizedDeleteWithTheWrongSizeIsAFault) {
  void* p = ::operator new(64);
  const std::size_t live = global_heap().stats().allocated_bytes;
  ::operator delete(p, 32);
  EXPECT_EQ(g_faults.load(), 1);
  EXPECT_EQ(g_last_fault.load(), FaultKind::BadLayout);
  EXPECT_EQ(g_last_address.load(), p);
  EXPECT_EQ(global_heap().stats().allocated_bytes, live);  // ignored: still allocated
  ::operator delete(p, std::align_val_t{128});             // the wrong alignment too
  EXPECT_EQ(g_faults.load(), 2);
  EXPECT_EQ(g_last_fault.load(), FaultKind::BadLayout);
  ::operator delete(p, 64);
  EXPECT_EQ(g_faults.load(), 2);
  EXPECT_LT(global_heap().stats().allocated_bytes, live);
}

TEST_F(GlobalNew, ForeignAndInteriorPointersAreFaults) {
  int on_stack = 0;
  const std::size_t live = global_heap().stats().allocated_bytes;
  ::operator delete(hide(&on_stack));
  EXPECT_EQ(g_faults.load(), 1);
  EXPECT_EQ(g_last_fault.load(), FaultKind::ForeignPointer);
  void* from_malloc = std::malloc(32);
  ::operator delete(hide(from_malloc));
  EXPECT_EQ(g_faults.load(), 2);
  EXPECT_EQ(g_last_fault.load(), FaultKind::ForeignPointer);
  std::free(from_malloc);

  auto* block = static_cast<std::uint8_t*>(::operator new(128));
  std::memset(block, 0, 128);
  ::operator delete(hide(block + 8));  // interior, misaligned for new
  EXPECT_EQ(g_faults.load(), 3);
  EXPECT_EQ(g_last_fault.load(), FaultKind::Misaligned);
  ::operator delete(hide(block + 64));  // interior, aligned: the "record" below it reads as zeros
  EXPECT_EQ(g_faults.load(), 4);
  EXPECT_EQ(g_last_fault.load(), FaultKind::CorruptHeader);
  EXPECT_GT(global_heap().stats().allocated_bytes, live);  // both ignored: still allocated
  ::operator delete(block);
  EXPECT_EQ(g_faults.load(), 4);
  EXPECT_EQ(global_heap().stats().allocated_bytes, live);
}

// Every way the record below a pointer can fail to read back (an underflow of
// the block before it, or a pointer `new` never returned) is refused.
TEST_F(GlobalNew, ImplausibleRecordsAreRefused) {
  struct Record {
    std::size_t size;
    std::size_t align;
  };
  auto* block = static_cast<std::uint8_t*>(::operator new(512));
  std::uint8_t* const u = block + 256;  // 16-aligned, inside the block
  const std::uintptr_t lowest_bit = reinterpret_cast<std::uintptr_t>(u) & (~reinterpret_cast<std::uintptr_t>(u) + 1);
  const Record bad[] = {
      {8, 8},                            // alignment below 16
      {8, 48},                           // not a power of two
      {8, std::size_t{1} << 40},         // larger than the arena
      {std::size_t{1} << 40, 16},        // size larger than the arena
      {8, static_cast<std::size_t>(lowest_bit) * 2},  // u not aligned to it
  };
  const std::size_t live = global_heap().stats().allocated_bytes;
  int expected = 0;
  for (const Record& r : bad) {
    std::memcpy(u - sizeof(Record), &r, sizeof r);
    ::operator delete(hide(u));
    EXPECT_EQ(g_faults.load(), ++expected) << r.size << " / " << r.align;
    EXPECT_EQ(g_last_fault.load(), FaultKind::CorruptHeader);
  }
  // The heap's own state at the arena's start is not a block either.
  ::operator delete(hide(&global_heap()));
  EXPECT_EQ(g_faults.load(), ++expected);
  EXPECT_EQ(g_last_fault.load(), FaultKind::ForeignPointer);
  EXPECT_EQ(global_heap().stats().allocated_bytes, live);  // nothing was freed
  ::operator delete(block, 512);
  EXPECT_EQ(g_faults.load(), expected);
}

// Needs MNEMOS_HARDENING: the record below the pointer survives the first
// delete, and only the scrubbed heap header tells the second one apart.
#if MNEMOS_HARDENING
TEST_F(GlobalNew, DoubleDeleteIsAFault) {
  const std::size_t live = global_heap().stats().allocated_bytes;
  void* volatile p = ::operator new(sizeof(int) * 8);  // volatile: see hide()
  ::operator delete(p);
  EXPECT_EQ(global_heap().stats().allocated_bytes, live);
  ::operator delete(p);  // nothing allocated in between: detected, ignored
  EXPECT_EQ(g_faults.load(), 1);
  EXPECT_EQ(global_heap().stats().allocated_bytes, live);
  EXPECT_TRUE(global_heap().check().ok());
}
#endif

TEST_F(GlobalNew, HybridUseOfTheSameHeap) {
  // The heap behind `new` also serves the typed API (and co_await).
  Result<Box<std::uint64_t>> b = global_heap().try_alloc<std::uint64_t>(99u);
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(global_heap_owns(b->get()));
  EXPECT_EQ(**b, 99u);
}

}  // namespace
