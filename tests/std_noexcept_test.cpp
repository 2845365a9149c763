// The std integration compiled with -fno-exceptions (tests/CMakeLists.txt), as
// a firmware build would: a failed allocation calls the allocation-failure
// handler and then aborts; it never hands a null pointer to a container.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory_resource>
#include <optional>
#include <type_traits>
#include <vector>

#include "mnemos/memory_resource.hpp"
#include "mnemos/std_allocator.hpp"
#include "test_support.hpp"

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#error "std_noexcept_test must be built with -fno-exceptions"
#endif

using namespace mnemos;
using test::Region;

namespace {

// The flags pick the inline namespace, so a TU built with exceptions has
// distinct types: mixing the two policies is a link error, not an ODR violation.
static_assert(std::is_same_v<MemoryResource, mnemos::std_rtti::MemoryResource>);
static_assert(std::is_same_v<StdAllocator<int>, mnemos::std_rtti::StdAllocator<int>>);

// Restores the default handler after each test.
class NoExceptions : public ::testing::Test {
 protected:
  void TearDown() override { set_alloc_failure_handler(nullptr); }
};

// A handler that logs and returns: the allocating call must still not return.
void log_and_return(const AllocFailure& f) {
  std::fprintf(stderr, "handler saw %s for %zu bytes\n", to_string(f.error), f.layout.size);
}

// A handler that ends the program its own way (a firmware reset, say).
[[noreturn]] void exit_with_error_code(const AllocFailure& f) { std::_Exit(10 + static_cast<int>(f.error)); }

TEST_F(NoExceptions, SuccessPathIsUnchanged) {
  Region region(16 * 1024);
  Heap& heap = test::make_heap(region);
  MemoryResource resource(heap);
  {
    std::pmr::vector<int> v(&resource);
    for (int i = 0; i < 500; ++i) v.push_back(i);
    EXPECT_TRUE(test::in_arena(region, v.data(), v.size() * sizeof(int)));
    std::list<int, StdAllocator<int>> l{StdAllocator<int>(heap)};
    l.assign(100, 3);
    EXPECT_TRUE(test::in_arena(region, &l.front(), sizeof(int)));
    EXPECT_TRUE(heap.check().ok());
  }
  test::expect_pristine(heap);
}

TEST_F(NoExceptions, HandlerIsInstalledAndRestored) {
  EXPECT_EQ(alloc_failure_handler(), &default_alloc_failure_handler);
  EXPECT_EQ(set_alloc_failure_handler(&log_and_return), &default_alloc_failure_handler);
  EXPECT_EQ(alloc_failure_handler(), &log_and_return);
  EXPECT_EQ(set_alloc_failure_handler(nullptr), &log_and_return);
  EXPECT_EQ(alloc_failure_handler(), &default_alloc_failure_handler);
}

TEST_F(NoExceptions, FormatsOneLine) {
  alignas(Heap) static std::byte fake[1];
  const AllocFailure f{Error::NoMemory, Layout{4096, 16}, reinterpret_cast<const Heap*>(fake)};
  char line[200];
  const std::size_t n = format_alloc_failure(f, line, sizeof line);
  EXPECT_EQ(n, std::strlen(line));
  EXPECT_NE(std::strstr(line, "mnemos-alloc: allocation of 4096 bytes (align 16) failed: NoMemory (heap 0x"), nullptr)
      << line;
  char tiny[8];
  EXPECT_EQ(format_alloc_failure(f, tiny, sizeof tiny), 7u);  // truncated, NUL-terminated
  EXPECT_STREQ(tiny, "mnemos-");
  EXPECT_EQ(format_alloc_failure(f, tiny, 0), 0u);  // no room, not even for the NUL: nothing written
}

using NoExceptionsDeathTest = NoExceptions;

// The default allocation-failure handler reports through the fault handler
// (mnemos/fault.hpp): a safety-critical build's one handler sees it.
void fault_logs_and_returns(const Fault& f) {
  std::fprintf(stderr, "fault handler saw %s, address %p, heap %p\n", to_string(f.kind), f.address,
               static_cast<const void*>(f.heap));
}

TEST_F(NoExceptionsDeathTest, TheDefaultReportsThroughTheFaultHandlerThenAborts) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  MemoryResource resource(heap);
  char expected[160];
  std::snprintf(expected, sizeof expected, "fault handler saw AllocationFailed, address \\(nil\\), heap %p",
                static_cast<const void*>(&heap));
  EXPECT_DEATH(
      {
        set_fault_handler(&fault_logs_and_returns);
        (void)resource.allocate(8192, 8);  // TooLarge: the handler returns, the call must not
        std::fprintf(stderr, "allocate returned\n");
        std::_Exit(0);
      },
      expected);
}

TEST_F(NoExceptionsDeathTest, ExhaustionReportsAndAborts) {
  Region region(8 * 1024);
  Heap& heap = test::make_heap(region);
  MemoryResource resource(heap);
  EXPECT_DEATH(
      {
        std::pmr::vector<std::uint64_t> v(&resource);
        for (std::uint64_t i = 0;; ++i) v.push_back(i);
      },
      "mnemos-alloc: allocation of [0-9]+ bytes \\(align 8\\) failed: NoMemory \\(heap 0x");
}

TEST_F(NoExceptionsDeathTest, AHandlerThatReturnsStillAborts) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  MemoryResource resource(heap);
  set_alloc_failure_handler(&log_and_return);
  EXPECT_DEATH((void)resource.allocate(8192, 8), "handler saw TooLarge for 8192 bytes");
  // In the parent nothing was allocated.
  test::expect_pristine(heap);
}

TEST_F(NoExceptionsDeathTest, AHandlerMayEndTheProgramItself) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  StdAllocator<int> alloc(heap);
  set_alloc_failure_handler(&exit_with_error_code);
  EXPECT_EXIT((void)alloc.allocate(4096), ::testing::ExitedWithCode(10 + static_cast<int>(Error::TooLarge)), "");
}

TEST_F(NoExceptionsDeathTest, CountOverflowIsInvalidLayout) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  StdAllocator<std::uint64_t> alloc(heap);
  EXPECT_DEATH((void)alloc.allocate(SIZE_MAX / 4), "failed: InvalidLayout");
}

TEST_F(NoExceptionsDeathTest, LockedIsReported) {
  Region region(4096);
  Heap& heap = test::make_heap(region);
  MemoryResource resource(heap);
  EXPECT_DEATH(
      {
        std::optional<Heap::Guard> guard = heap.try_lock();
        (void)resource.allocate(64, 8);
      },
      "failed: Locked");
}

}  // namespace
