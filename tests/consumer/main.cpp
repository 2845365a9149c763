// The consumer check's program (tests/consumer, ci/consumer): uses
// mnemos-alloc the way a downstream project does, through <mnemos/alloc.hpp>
// and the installed / vendored library, and exits 0 only if every step works.
#include <cstddef>
#include <cstdio>

#include <mnemos/alloc.hpp>

namespace {

alignas(64) std::byte arena[16 * 1024];

struct Point {
  int x;
  int y;
};

}  // namespace

int main() {
  mnemos::Result<mnemos::Heap*> made = mnemos::Heap::bootstrap(arena);
  if (!made) {
    std::puts("consumer: bootstrap failed");
    return 1;
  }
  mnemos::Heap& heap = *made.value();
  const std::size_t free_before = heap.stats().free_bytes;
  {
    mnemos::Result<mnemos::Box<Point>> p = heap.try_alloc<Point>(3, 4);
    if (!p || (*p)->x != 3 || (*p)->y != 4) {
      std::puts("consumer: Box<Point> allocation failed");
      return 1;
    }
    if (heap.stats().free_bytes >= free_before || !heap.check().ok()) {
      std::puts("consumer: the allocation is not accounted for");
      return 1;
    }
  }  // the Box frees its block here
  if (heap.stats().free_bytes != free_before || !heap.check().ok()) {
    std::puts("consumer: the block did not come back");
    return 1;
  }
  std::puts("consumer: ok");
  return 0;
}
