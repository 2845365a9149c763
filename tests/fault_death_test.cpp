// The default fault handler: one line naming the fault, then abort (death
// tests; the recording-handler cases are in hardening_test.cpp).
#include <gtest/gtest.h>

#include <cstdint>

#include "mnemos/alloc.hpp"
#include "test_support.hpp"

#if MNEMOS_HARDENING

namespace mnemos {
namespace {

using test::Region;

class FaultDeathTest : public test::BackendTest {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    set_fault_handler(nullptr);  // the default, whatever another test left
  }
};

constexpr const char* kHex = "0x[0-9a-f]+";

std::string line(const std::string& body) { return "mnemos-alloc: " + body; }

TEST_P(FaultDeathTest, DoubleFreeNamesTheBlockAndTheHeap) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const Layout l{100, 64};
  void* p = *heap.try_alloc_raw(l);
  Heap::free_raw(p, l);
  EXPECT_DEATH(Heap::free_raw(p, l),
               line(std::string("double free of ") + kHex + " \\(heap " + kHex + "\\)"));
}

// A small block: the backend's free-list node lies on the header word, whose
// freed pattern names no heap.
TEST_P(FaultDeathTest, DoubleFreeOfASmallBlockSaysTheHeapIsUnknown) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* a = *heap.try_alloc_raw(test::kPlug);
  void* p = *heap.try_alloc_raw(test::kPlug);
  void* b = *heap.try_alloc_raw(test::kPlug);
  Heap::free_raw(p, test::kPlug);
  EXPECT_DEATH(Heap::free_raw(p, test::kPlug), line(std::string("double free of ") + kHex + " \\(heap unknown\\)"));
  Heap::free_raw(a, test::kPlug);
  Heap::free_raw(b, test::kPlug);
}

TEST_P(FaultDeathTest, ForeignPointer) {
  Region region(4096);
  make_heap(region);
  alignas(16) std::uint64_t words[4] = {0, 0, 0, 0};
  EXPECT_DEATH(Heap::free_raw(&words[2], Layout{16, 8}),
               line(std::string("free of ") + kHex + ", which is not a live block"));
}

TEST_P(FaultDeathTest, CorruptHeader) {
  Region region(4096);
  Heap& heap = make_heap(region);
  void* p = *heap.try_alloc_raw(Layout{24, 8});
  detail::asan_modify(detail::header_slot(p), [](std::uintptr_t& w) { w ^= std::uintptr_t{0x10} << 24; });
  EXPECT_DEATH(Heap::free_raw(p, Layout{24, 8}),
               line(std::string("corrupt header before ") + kHex + " .* \\(heap " + kHex + "\\)"));
}

TEST_P(FaultDeathTest, MisalignedAndBadLayout) {
  Region region(4096);
  Heap& heap = make_heap(region);
  auto* p = static_cast<std::byte*>(*heap.try_alloc_raw(Layout{24, 8}));
  EXPECT_DEATH(Heap::free_raw(p + 2, Layout{8, 1}), line(std::string("free of misaligned pointer ") + kHex));
  EXPECT_DEATH(Heap::free_raw(p, Layout{0, 8}),
               line(std::string("free of ") + kHex + " with a layout it was not allocated with"));
}

MNEMOS_TEST_ALL_BACKENDS(FaultDeathTest);

}  // namespace
}  // namespace mnemos

#else

TEST(FaultDeathTest, DisabledInThisBuild) { GTEST_SKIP() << "MNEMOS_HARDENING=0"; }

#endif
