// The typed owners: Box, Arc, Array, FixedVec. Each destroys its elements exactly
// once and frees through the header, from any thread.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace mnemos;
using test::Region;

namespace {

// Counts live instances and destructions, to prove "exactly once".
struct Tracked {
  static inline int live = 0;
  static inline int destroyed = 0;
  int value;
  explicit Tracked(int v = 0) : value(v) { ++live; }
  Tracked(const Tracked& o) : value(o.value) { ++live; }
  Tracked(Tracked&& o) noexcept : value(o.value) { ++live; }
  Tracked& operator=(const Tracked&) = default;
  ~Tracked() {
    --live;
    ++destroyed;
  }
  static void reset() { live = destroyed = 0; }
};

struct Msg {
  int a;
  int b;
};

template <std::size_t Size, std::size_t Align>
struct alignas(Align) Blob {
  std::byte bytes[Size];
};

using Blob16x8 = Blob<16, 8>;
using Blob24x8 = Blob<24, 8>;
using Blob64x8 = Blob<64, 8>;
using Blob16x16 = Blob<16, 16>;
using Blob48x16 = Blob<48, 16>;
using Blob64x64 = Blob<64, 64>;
using Blob8192x8 = Blob<8192, 8>;

// Allocates Box<T> until NoMemory and returns the bytes each one cost.
template <class T>
std::size_t bytes_per_box(Heap& heap, std::size_t* count) {
  std::vector<Box<T>> boxes;
  for (;;) {
    Result<Box<T>> b = heap.try_alloc<T>();
    if (!b) {
      EXPECT_EQ(b.error(), Error::NoMemory);
      break;
    }
    boxes.push_back(std::move(*b));
  }
  *count = boxes.size();
  const Stats s = heap.stats();
  EXPECT_LT(s.free_bytes, s.allocated_bytes / boxes.size() + 64);  // the arena really is full
  return s.allocated_bytes / boxes.size();
}

}  // namespace

class BoxOwner : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(BoxOwner);

TEST_P(BoxOwner, OwnsOneValue) {
  Region region(4096);
  Heap& heap = make_heap(region);
  {
    Result<Box<Msg>> b = heap.try_alloc<Msg>(1, 2);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ((*b)->a, 1);
    EXPECT_EQ((**b).b, 2);
    EXPECT_EQ(b->get()->a, 1);
    EXPECT_TRUE(static_cast<bool>(*b));
    Box<Msg> moved = std::move(*b);
    EXPECT_FALSE(static_cast<bool>(*b));
    EXPECT_EQ(moved->b, 2);
    Box<Msg> other = std::move(*heap.try_alloc<Msg>(3, 4));
    moved = std::move(other);  // frees the first Msg
    EXPECT_EQ(moved->a, 3);
    EXPECT_EQ(heap.stats().free_count, 1u);
  }
  test::expect_pristine(heap);
}

TEST_P(BoxOwner, DestroysItsValueExactlyOnce) {
  Tracked::reset();
  Region region(4096);
  Heap& heap = make_heap(region);
  {
    Box<Tracked> b = std::move(*heap.try_alloc<Tracked>(5));
    Box<Tracked> c = std::move(b);
    EXPECT_EQ(Tracked::live, 1);
  }
  EXPECT_EQ(Tracked::live, 0);
  EXPECT_EQ(Tracked::destroyed, 1);
  test::expect_pristine(heap);
}

TEST_P(BoxOwner, LeakAndFromRawRoundTrip) {
  Tracked::reset();
  Region region(4096);
  Heap& heap = make_heap(region);
  Tracked* raw = std::move(*heap.try_alloc<Tracked>(8)).leak();
  EXPECT_EQ(Tracked::live, 1);
  EXPECT_GT(heap.stats().allocated_bytes, 0u);
  {
    Box<Tracked> back = Box<Tracked>::from_raw(raw);
    EXPECT_EQ(back->value, 8);
  }
  EXPECT_EQ(Tracked::destroyed, 1);
  test::expect_pristine(heap);
}

// Box<T> for sizeof(T) >= 16 costs exactly sizeof(T) + one pointer, rounded to
// alignof(T): measured by filling the arena.
TEST_P(BoxOwner, OverheadIsExactlyOnePointer) {
  Region region(64 * 1024);
  std::size_t n = 0;
  {
    Heap& heap = make_heap(region);
    EXPECT_EQ(bytes_per_box<Blob16x8>(heap, &n), 16u + sizeof(void*));
    test::expect_pristine(heap);
  }
  {
    Heap& heap = make_heap(region);
    EXPECT_EQ(bytes_per_box<Blob24x8>(heap, &n), 24u + sizeof(void*));
  }
  {
    Heap& heap = make_heap(region);
    EXPECT_EQ(bytes_per_box<Blob64x8>(heap, &n), 64u + sizeof(void*));
  }
  {
    Heap& heap = make_heap(region);
    EXPECT_EQ(bytes_per_box<Blob16x16>(heap, &n), 32u);  // 16 + 8 rounded to 16
  }
  {
    Heap& heap = make_heap(region);
    EXPECT_EQ(bytes_per_box<Blob48x16>(heap, &n), 64u);  // 48 + 8 rounded to 16
  }
  {
    Heap& heap = make_heap(region);
    EXPECT_EQ(bytes_per_box<Blob64x64>(heap, &n), 128u);  // 64 + 8 rounded to 64
    EXPECT_GT(n, 400u);
  }
}

TEST_P(BoxOwner, FreedFromAnotherThread) {
  Region region(4096);
  Heap& heap = make_heap(region);
  Box<Msg> b = std::move(*heap.try_alloc<Msg>(1, 1));
  std::thread([box = std::move(b)]() mutable { Box<Msg> dies = std::move(box); }).join();
  test::expect_pristine(heap);
}

class ArcOwner : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(ArcOwner);

TEST_P(ArcOwner, SharesOneValueAndFreesWithTheLastOwner) {
  Tracked::reset();
  Region region(4096);
  Heap& heap = make_heap(region);
  {
    Result<Arc<Tracked>> a = heap.try_alloc_arc<Tracked>(4);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->use_count(), 1u);
    Arc<Tracked> b = *a;
    EXPECT_EQ(a->use_count(), 2u);
    EXPECT_EQ(b->value, 4);
    EXPECT_EQ(b.get(), a->get());
    {
      Arc<Tracked> c = b;
      EXPECT_EQ(c.use_count(), 3u);
      Arc<Tracked> d = std::move(c);
      EXPECT_EQ(c.use_count(), 0u);
      EXPECT_FALSE(static_cast<bool>(c));
      EXPECT_EQ(d.use_count(), 3u);
    }
    EXPECT_EQ(b.use_count(), 2u);
    EXPECT_EQ(Tracked::destroyed, 0);
  }
  EXPECT_EQ(Tracked::live, 0);
  EXPECT_EQ(Tracked::destroyed, 1);
  test::expect_pristine(heap);
}

TEST_P(ArcOwner, LastOwnerOnAnotherThreadDestroysOnce) {
  Tracked::reset();
  Region region(64 * 1024);
  Heap& heap = make_heap(region);
  for (int round = 0; round < 50; ++round) {
    Arc<Tracked> a = std::move(*heap.try_alloc_arc<Tracked>(round));
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([copy = a]() mutable {
        Arc<Tracked> local = copy;
        EXPECT_GE(local.use_count(), 2u);
      });
    }
    a = Arc<Tracked>(std::move(a));  // self-move through a temporary stays sound
    Arc<Tracked> gone = std::move(a);
    { Arc<Tracked> drop = std::move(gone); }
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(Tracked::live, 0);
  EXPECT_EQ(Tracked::destroyed, 50);
  test::expect_pristine(heap);
}

class ArrayOwner : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(ArrayOwner);

TEST_P(ArrayOwner, ValueInitialisesAndIterates) {
  Region region(4096);
  Heap& heap = make_heap(region);
  {
    Result<Array<int>> xs = heap.try_alloc_array<int>(10);
    ASSERT_TRUE(xs.has_value());
    EXPECT_EQ(xs->size(), 10u);
    EXPECT_FALSE(xs->empty());
    for (int x : *xs) EXPECT_EQ(x, 0);
    for (std::size_t i = 0; i < xs->size(); ++i) (*xs)[i] = static_cast<int>(i);
    std::span<int> s = *xs;
    EXPECT_EQ(s.size(), 10u);
    EXPECT_EQ(s[9], 9);
    EXPECT_EQ(xs->data(), s.data());
    Array<int> moved = std::move(*xs);
    EXPECT_EQ(xs->size(), 0u);
    EXPECT_EQ(moved.span().back(), 9);
  }
  test::expect_pristine(heap);
}

TEST_P(ArrayOwner, WithCallsMakeOncePerElementInOrder) {
  Tracked::reset();
  Region region(4096);
  Heap& heap = make_heap(region);
  {
    int next = 0;
    Result<Array<Tracked>> xs = heap.try_alloc_array_with<Tracked>(6, [&] { return Tracked(next++); });
    ASSERT_TRUE(xs.has_value());
    EXPECT_EQ(next, 6);
    for (int i = 0; i < 6; ++i) EXPECT_EQ((*xs)[static_cast<std::size_t>(i)].value, i);
    EXPECT_EQ(Tracked::live, 6);
    const int destroyed_before = Tracked::destroyed;  // the temporaries make() returned
    Array<Tracked> other = std::move(*heap.try_alloc_array<Tracked>(2));
    other = std::move(*xs);  // destroys the two it held
    EXPECT_EQ(Tracked::destroyed, destroyed_before + 2);
  }
  EXPECT_EQ(Tracked::live, 0);
  test::expect_pristine(heap);
}

class FixedVecOwner : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(FixedVecOwner);

TEST_P(FixedVecOwner, PushUntilFullThenFalse) {
  Region region(4096);
  Heap& heap = make_heap(region);
  {
    Result<FixedVec<int>> v = heap.try_alloc_fixed_vec<int>(4);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->capacity(), 4u);
    EXPECT_TRUE(v->empty());
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(v->push_back(i));
    EXPECT_TRUE(v->full());
    EXPECT_FALSE(v->push_back(99));
    EXPECT_FALSE(v->emplace_back(99));
    EXPECT_EQ(v->size(), 4u);
    EXPECT_EQ(v->pop_back(), std::optional<int>(3));
    EXPECT_TRUE(v->emplace_back(7));
    EXPECT_EQ(v->span().back(), 7);
    int sum = 0;
    for (int x : *v) sum += x;
    EXPECT_EQ(sum, 0 + 1 + 2 + 7);
    v->clear();
    EXPECT_EQ(v->pop_back(), std::nullopt);
  }
  test::expect_pristine(heap);
}

TEST_P(FixedVecOwner, RetainKeepsOrderAndDestroysEachElementOnce) {
  Tracked::reset();
  Region region(4096);
  Heap& heap = make_heap(region);
  {
    FixedVec<Tracked> v = std::move(*heap.try_alloc_fixed_vec<Tracked>(10));
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(v.emplace_back(i));
    EXPECT_EQ(Tracked::live, 10);
    v.retain([](const Tracked& t) { return t.value % 3 != 0; });
    std::vector<int> kept;
    for (const Tracked& t : v) kept.push_back(t.value);
    EXPECT_EQ(kept, (std::vector<int>{1, 2, 4, 5, 7, 8}));
    EXPECT_EQ(Tracked::live, 6);
    std::optional<Tracked> last = v.pop_back();
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(last->value, 8);
    EXPECT_EQ(Tracked::live, 6);  // five in the vector, one in `last`
  }
  EXPECT_EQ(Tracked::live, 0);
  test::expect_pristine(heap);
}

class Owners : public test::BackendTest {};
MNEMOS_TEST_ALL_BACKENDS(Owners);

TEST_P(Owners, ErrorsComeBackAsValues) {
  Region region(4096);
  Heap& heap = make_heap(region);
  EXPECT_EQ(heap.try_alloc_fixed_vec<int>(0).error(), Error::InvalidLayout);
  EXPECT_EQ(heap.try_alloc_array<int>(1 << 20).error(), Error::TooLarge);
  EXPECT_EQ(heap.try_alloc<Blob8192x8>().error(), Error::TooLarge);
  int calls = 0;
  EXPECT_EQ(heap.try_alloc_array_with<int>(1 << 20, [&] { return ++calls; }).error(), Error::TooLarge);
  EXPECT_EQ(calls, 0);
  test::expect_pristine(heap);
}

// A full heap: each owner's allocation reports NoMemory and constructs nothing.
TEST_P(Owners, NoMemoryComesBackFromEveryOwnerWhenFull) {
  Region region(4096);
  Heap& heap = make_heap(region);
  const std::vector<void*> plugs = test::plug(heap);
  ASSERT_FALSE(plugs.empty());
  EXPECT_EQ(heap.try_alloc_arc<Tracked>(1).error(), Error::NoMemory);
  EXPECT_EQ(heap.try_alloc<int>(1).error(), Error::NoMemory);
  EXPECT_EQ(heap.try_alloc_array<int>(4).error(), Error::NoMemory);
  EXPECT_EQ(heap.try_alloc_fixed_vec<int>(4).error(), Error::NoMemory);
  test::free_all(plugs, test::kPlug);
  test::expect_pristine(heap);
}
