// Fuzz target: the whole heap, differential against the reference models
// (proptest/model/wait_model.hpp over heap_model.hpp over first_fit_model.hpp).
//
// The input's first byte picks the arena (size, and where it starts modulo the
// larger alignments); the rest is a sequence of at most kMaxOps operations:
//   - synchronous allocations of every kind (try_alloc_raw with arbitrary and
//     invalid layouts, try_alloc Box, try_alloc_arc, try_alloc_array,
//     try_alloc_array_with, try_alloc_fixed_vec), through the Heap or a Guard;
//   - frees: owners dropped, Heap::free_raw, Guard::free_raw; while a Guard is
//     held, a free from "another context" (Heap::free_raw, an owner's drop) is
//     deferred, and the Guard's next allocation or its release drains it;
//   - the Guard itself (try_lock, a second try_lock, release), poll(), check(),
//     close(), Box::leak / from_raw, Arc clones, FixedVec push/pop/retain;
//   - allocation futures of every kind (alloc, alloc_arc, alloc_array,
//     alloc_array_with, alloc_fixed_vec, alloc_raw), some with a stop token,
//     polled with counting wakers, re-polled, cancelled through the token,
//     dropped while pending or completed. Some wakers act inline, as a
//     coroutine resumed by the waker would: they poll their future inside the
//     call, may free the block at once, may destroy the future inside its
//     own waker call, or may first poll another future (taking an outcome
//     whose wake is still due: that waker must then never be called);
//   - blocks of a second heap, freed through this heap's Guard (which hands
//     them to their own heap) or Heap::free_raw.
// The models are applied first and predict every result: each error, each
// address, each waker call and its order. Checked after every step: the model
// agrees (results, every Stats field, the backend's exact hole list, every
// waker call so far), heap.check().ok() (or the Guard's check), every live
// block's contents intact, aligned, inside the arena, its header naming the
// heap, and, under ASan, payloads addressable and free bytes poisoned. At the
// end everything is freed: one free span, capacity == free_bytes, nothing
// allocated, every tracked object destroyed exactly once.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <stop_token>
#include <utility>
#include <vector>

#include "fuzz_input.hpp"
#include "mnemos/alloc.hpp"
#include "mnemos/detail/asan.hpp"
#include "proptest/model/wait_model.hpp"

namespace mnemos {
// White-box access for the checks below (the heap's friend; this definition is
// private to this executable).
struct heap_test_access {
  // The heaps here are first fit (the model replicates it exactly).
  static const detail::FirstFit& backend(const Heap& heap) { return *heap.backend_.first_fit(); }
  static const detail::HeapLock& lock(const Heap& heap) { return heap.lock_; }
  static detail::WaitQueue& waiters(Heap& heap) { return heap.waiters_; }
};
}  // namespace mnemos

namespace {

using namespace mnemos;
using fuzz::FuzzInput;
using model::WaitModel;
using FutureId = WaitModel::FutureId;

constexpr std::size_t kMaxOps = 256;
constexpr std::size_t kMaxLive = 48;
constexpr std::size_t kMaxFutures = 16;

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

// ---------------------------------------------------------------------------
// Objects the typed owners hold: every live one is counted and carries a
// pattern derived from its seed, checked when it is moved or destroyed.
long g_objects = 0;

template <std::size_t N, std::size_t A>
struct alignas(A) Obj {
  std::uint8_t bytes[N];

  explicit Obj(std::uint8_t seed) noexcept {
    fill(seed);
    ++g_objects;
  }
  Obj() noexcept : Obj(0x3C) {}  // what value-initialisation (try_alloc_array) builds
  Obj(Obj&& other) noexcept {
    FUZZ_CHECK_MSG(other.intact(), "an object was corrupted before a move");
    fill(other.seed());
    ++g_objects;
  }
  Obj(const Obj&) = delete;
  Obj& operator=(const Obj&) = delete;
  ~Obj() {
    FUZZ_CHECK_MSG(intact(), "an object's bytes changed while it was alive");
    std::memset(bytes, 0xDD, N);
    --g_objects;
  }

  std::uint8_t seed() const noexcept { return bytes[0]; }
  void fill(std::uint8_t s) noexcept {
    for (std::size_t i = 0; i < N; ++i) bytes[i] = static_cast<std::uint8_t>(s + i * 0x9D);
  }
  bool intact() const noexcept {
    for (std::size_t i = 0; i < N; ++i) {
      if (bytes[i] != static_cast<std::uint8_t>(bytes[0] + i * 0x9D)) return false;
    }
    return true;
  }
};

using Tiny = Obj<1, 1>;
using Word = Obj<8, 8>;
using Mid = Obj<24, 8>;
using Wide = Obj<48, 16>;
using Line = Obj<64, 64>;
using Odd = Obj<130, 2>;

template <class T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) for the type the byte picks: single objects.
template <class F>
void with_object_type(std::size_t i, F&& f) {
  switch (i % 6) {
    case 0: return f(Tag<Tiny>{});
    case 1: return f(Tag<Word>{});
    case 2: return f(Tag<Mid>{});
    case 3: return f(Tag<Wide>{});
    case 4: return f(Tag<Line>{});
    default: return f(Tag<Odd>{});
  }
}
// Element types of arrays and vectors.
template <class F>
void with_element_type(std::size_t i, F&& f) {
  switch (i % 3) {
    case 0: return f(Tag<Tiny>{});
    case 1: return f(Tag<Word>{});
    default: return f(Tag<Wide>{});
  }
}

// ---------------------------------------------------------------------------
// Live blocks, type-erased. The harness updates the model before it destroys
// an owner (the free may complete waiters, whose wakers check the model).

struct Owner {
  int heap = 0;  // 0: the heap under test (A); 1: the second heap (B)
  virtual ~Owner() = default;
  virtual std::uintptr_t payload() const = 0;
  virtual Layout layout() const = 0;
  // The user's bytes are as the user left them.
  virtual bool intact() const = 0;
  // Owner-specific operations that do not free the block.
  virtual void exercise(FuzzInput&) {}
  virtual bool is_raw() const { return false; }
};

// A raw block: the payload bytes are filled with a pattern of a seed.
class RawOwner final : public Owner {
 public:
  RawOwner(void* p, Layout layout, std::uint8_t seed) : p_(p), layout_(layout), seed_(seed) { fill(); }
  ~RawOwner() override {
    if (p_ != nullptr) Heap::free_raw(p_, layout_);
  }
  std::uintptr_t payload() const override { return addr(p_); }
  Layout layout() const override { return layout_; }
  bool intact() const override {
    const auto* b = static_cast<const std::uint8_t*>(p_);
    for (std::size_t i = 0; i < layout_.size; ++i) {
      if (b[i] != byte_at(i)) return false;
    }
    return true;
  }
  void exercise(FuzzInput& in) override {
    seed_ = in.u8();  // the user rewrites its block
    fill();
  }
  bool is_raw() const override { return true; }
  // Hands the block to the caller (who frees it another way).
  void* release() { return std::exchange(p_, nullptr); }

 private:
  std::uint8_t byte_at(std::size_t i) const { return static_cast<std::uint8_t>(seed_ ^ (i * 0x3B) ^ (i >> 8)); }
  void fill() {
    auto* b = static_cast<std::uint8_t*>(p_);
    for (std::size_t i = 0; i < layout_.size; ++i) b[i] = byte_at(i);
  }
  void* p_;
  Layout layout_;
  std::uint8_t seed_;
};

template <class T>
class BoxOwner final : public Owner {
 public:
  BoxOwner(Box<T> box, std::uint8_t seed) : box_(std::move(box)), seed_(seed) {}
  std::uintptr_t payload() const override { return addr(box_.get()); }
  Layout layout() const override { return Layout::of<T>(); }
  bool intact() const override { return box_ && box_->intact() && box_->seed() == seed_; }
  void exercise(FuzzInput&) override {
    // Box::leak / Box::from_raw round trip: same object, same block.
    T* raw = std::move(box_).leak();
    FUZZ_CHECK(!box_);
    box_ = Box<T>::from_raw(raw);
  }

 private:
  Box<T> box_;
  std::uint8_t seed_;
};

template <class T>
class ArcOwner final : public Owner {
 public:
  ArcOwner(Arc<T> arc, std::uint8_t seed) : seed_(seed) { refs_.push_back(std::move(arc)); }
  std::uintptr_t payload() const override {
    // The block holds an ArcInner<T>; the value sits at a fixed offset in it.
    return addr(refs_.front().get()) - offsetof(detail::ArcInner<T>, value);
  }
  Layout layout() const override { return Arc<T>::block_layout(); }
  bool intact() const override {
    for (const Arc<T>& a : refs_) {
      if (a.get() != refs_.front().get()) return false;
      if (a.use_count() != refs_.size()) return false;
    }
    return refs_.front()->intact() && refs_.front()->seed() == seed_;
  }
  void exercise(FuzzInput& in) override {
    // A clone, or the drop of a clone that is not the last (never a free).
    if (in.boolean() && refs_.size() < 4) {
      refs_.push_back(refs_.front());
    } else if (refs_.size() > 1) {
      refs_.erase(refs_.begin() + static_cast<std::ptrdiff_t>(in.pick(refs_.size())));
    }
  }

 private:
  std::vector<Arc<T>> refs_;
  std::uint8_t seed_;
};

template <class T>
class ArrayOwner final : public Owner {
 public:
  ArrayOwner(Array<T> array, std::uint8_t seed) : array_(std::move(array)), seed_(seed) {}
  std::uintptr_t payload() const override { return addr(array_.data()); }
  Layout layout() const override { return Layout{array_.size() * sizeof(T), alignof(T)}; }
  bool intact() const override {
    for (const T& x : array_) {
      if (!x.intact() || x.seed() != seed_) return false;
    }
    return true;
  }

 private:
  Array<T> array_;
  std::uint8_t seed_;
};

template <class T>
class FixedVecOwner final : public Owner {
 public:
  FixedVecOwner(FixedVec<T> vec, std::uint8_t) : vec_(std::move(vec)) {}
  std::uintptr_t payload() const override { return addr(vec_.data()); }
  Layout layout() const override { return Layout{vec_.capacity() * sizeof(T), alignof(T)}; }
  bool intact() const override {
    if (vec_.size() != seeds_.size() || vec_.size() > vec_.capacity()) return false;
    for (std::size_t i = 0; i < seeds_.size(); ++i) {
      if (!vec_[i].intact() || vec_[i].seed() != seeds_[i]) return false;
    }
    return true;
  }
  void exercise(FuzzInput& in) override {
    switch (in.pick(4)) {
      case 0: {
        const std::uint8_t s = in.u8();
        const bool pushed = vec_.emplace_back(s);
        FUZZ_CHECK_MSG(pushed == (seeds_.size() < vec_.capacity()), "push_back must fail exactly when full");
        if (pushed) seeds_.push_back(s);
        break;
      }
      case 1: {
        std::optional<T> out = vec_.pop_back();
        FUZZ_CHECK(out.has_value() == !seeds_.empty());
        if (out) {
          FUZZ_CHECK(out->seed() == seeds_.back());
          seeds_.pop_back();
        }
        break;
      }
      case 2: {
        const std::uint8_t mask = in.u8();
        const auto keep = [mask](std::uint8_t s) { return ((s ^ mask) & 1) != 0; };
        vec_.retain([&keep](const T& x) { return keep(x.seed()); });
        std::erase_if(seeds_, [&keep](std::uint8_t s) { return !keep(s); });
        break;
      }
      case 3:
        vec_.clear();
        seeds_.clear();
        break;
    }
  }

 private:
  FixedVec<T> vec_;
  std::vector<std::uint8_t> seeds_;
};

// Wraps what an allocation produced into an Owner (raw blocks get the layout).
template <class T>
std::unique_ptr<Owner> make_owner(Box<T>&& b, Layout, std::uint8_t seed) {
  return std::make_unique<BoxOwner<T>>(std::move(b), seed);
}
template <class T>
std::unique_ptr<Owner> make_owner(Arc<T>&& a, Layout, std::uint8_t seed) {
  return std::make_unique<ArcOwner<T>>(std::move(a), seed);
}
template <class T>
std::unique_ptr<Owner> make_owner(Array<T>&& a, Layout, std::uint8_t seed) {
  return std::make_unique<ArrayOwner<T>>(std::move(a), seed);
}
template <class T>
std::unique_ptr<Owner> make_owner(FixedVec<T>&& v, Layout, std::uint8_t seed) {
  return std::make_unique<FixedVecOwner<T>>(std::move(v), seed);
}
inline std::unique_ptr<Owner> make_owner(void*&& p, Layout layout, std::uint8_t seed) {
  return std::make_unique<RawOwner>(p, layout, seed);
}

// The maker of try_alloc_array_with / alloc_array_with: counts its calls.
template <class T>
struct SeedMaker {
  std::uint8_t seed;
  std::size_t* calls;
  T operator()() const {
    ++*calls;
    return T(seed);
  }
};

// ---------------------------------------------------------------------------
// Futures, type-erased.

class Harness;

// What a waker does inside its call, as a coroutine resumed inline might.
enum class WakeMode : std::uint8_t {
  Flag,              // counts; the harness polls later
  PollInline,        // polls the future inside the call, keeps the result
  PollFreeInline,    // polls, frees the block at once
  PollDestroy,       // polls, keeps the result, destroys the future inside its own call
  DestroyInline,     // destroys the future inside its own call without polling it
  PollOther,         // polls itself, then another future (which may be completed and not yet woken:
                     // taking its outcome unlinks it, and its waker must then never be called)
  Count,
};

struct PollOut {
  bool pending = true;
  std::optional<Error> error;
  std::unique_ptr<Owner> owner;
};

struct FutureBase {
  FutureId id = 0;
  Layout layout{};
  std::uint8_t seed = 0;
  WakeMode mode = WakeMode::Flag;
  Harness* harness = nullptr;
  std::optional<std::stop_source> stop;
  std::size_t wakes = 0;
  std::size_t* maker_calls = nullptr;  // alloc_array_with's maker: its call count
  std::size_t expected_maker_calls = 0;
  bool polled = false;
  bool finished = false;  // a poll returned the outcome
  // Cleared on destruction: a future may be destroyed inside its own poll (a
  // waker run by that poll resumes its owner, which drops it), so a caller
  // that polls keeps a copy and looks before touching the future again.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  virtual ~FutureBase() { *alive = false; }
  virtual PollOut poll(const Waker& waker) = 0;
};

template <class Fut>
struct FutureImpl final : FutureBase {
  explicit FutureImpl(Fut&& f) : fut(std::move(f)) {}
  PollOut poll(const Waker& waker) override {
    auto r = fut.poll(waker);
    if (!r) return PollOut{};
    if (!r->has_value()) return PollOut{false, r->error(), nullptr};
    return PollOut{false, std::nullopt, make_owner(std::move(**r), layout, seed)};
  }
  Fut fut;
};

// ---------------------------------------------------------------------------

// A layout from the input: mostly small, sometimes medium, sometimes hostile.
Layout read_layout(FuzzInput& in) {
  static constexpr std::array<std::size_t, 16> kAligns = {
      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 4096, std::size_t{1} << 30, 0, 3, 24, (SIZE_MAX >> 1) + 1};
  static constexpr std::array<std::size_t, 8> kSpecial = {
      0, 4096, 100000, SIZE_MAX, SIZE_MAX - 7, static_cast<std::size_t>(PTRDIFF_MAX),
      static_cast<std::size_t>(PTRDIFF_MAX) - 7, 1};
  const std::uint8_t c = in.u8();
  std::size_t size = 0;
  switch (c >> 6) {
    case 0: size = 1 + (c & 63); break;                   // 1..64
    case 1: size = 1 + in.pick16(1024); break;           // 1..1024
    case 2: size = kSpecial[c & 7]; break;               // hostile
    default: size = 8 * static_cast<std::size_t>(c & 63); break;  // 0..504, multiples of 8
  }
  // Alignment: the low nibble of a byte picks it; mostly small.
  const std::uint8_t a = in.u8();
  const std::size_t align = (a & 0xF0) == 0 ? kAligns[a & 15] : kAligns[a % 5];
  return Layout{size, align};
}

class Harness {
 public:
  static constexpr std::size_t kRegionBytes = 8192 + 512;

  explicit Harness(FuzzInput& in) : in_(in) {}

  void run() {
    if (!bootstrap()) return;
    for (std::size_t ops = 0; ops < kMaxOps && !in_.done(); ++ops) {
      step();
      check_all();
    }
    finish();
  }

  // Called from a future's waker, inside the heap.
  void on_wake(FutureBase& f) {
    // The model was updated before the real operation, so the call the heap
    // makes now must be the next one in the model's log.
    const std::vector<FutureId>& log = model_.wake_log();
    skip_taken_early();
    FUZZ_CHECK_MSG(calls_ < log.size(), "a waker was called that the model did not expect");
    FUZZ_CHECK_MSG(log[calls_] == f.id, "wakers called out of order (FIFO / completion order)");
    ++calls_;
    ++f.wakes;
    if (trace_) std::fprintf(stderr, "\n    wake future %llu (mode %d)", static_cast<unsigned long long>(f.id), static_cast<int>(f.mode));
    FUZZ_CHECK_MSG(!f.finished, "a waker was called after its future took its outcome");
    // No internal lock is held during a waker call: the wait queue's is free
    // (taking and releasing it here is harmless: no service request can be
    // pending while it is free), and the heap's is free unless our Guard holds it.
    detail::WaitQueue& queue = heap_test_access::waiters(*heap_);
    FUZZ_CHECK_MSG(queue.try_lock(), "a waker was called with the wait-queue lock held");
    FUZZ_CHECK(!queue.release());
    FUZZ_CHECK_MSG(!heap_test_access::lock(*heap_).is_locked() || guard_.has_value(),
                   "a waker was called with the heap lock held");
    switch (f.mode) {
      case WakeMode::Flag:
      case WakeMode::Count:
        break;
      case WakeMode::PollInline:
        poll_future(f, true, false);
        break;
      case WakeMode::PollFreeInline:
        poll_future(f, true, true);
        break;
      case WakeMode::PollDestroy:
        poll_future(f, true, false);
        destroy_future(f);  // inside its own waker call: must not wait for itself
        break;
      case WakeMode::PollOther: {
        // Polls another future first (its own poll would run the pending wakes
        // first), then itself.
        // Mostly a younger future (likely completed in the same batch and still
        // waiting for its wake); the input says how far along.
        const auto self = std::find_if(futures_.begin(), futures_.end(), [&f](const auto& p) { return p.get() == &f; });
        const std::size_t at = static_cast<std::size_t>(self - futures_.begin()) + 1 + in_.pick(3);
        FutureBase& other = *futures_[at % futures_.size()];
        const WaitModel::Future& m = model_.future(other.id);
        // Only a future that is pending or completed (not one whose own poll
        // is running further up this stack: the model has it Taken already).
        if (&other != &f && (m.state == WaitModel::State::Pending || m.state == WaitModel::State::Completed)) {
          // Completed by the model with a wake still to come: taking it now
          // means that wake never happens.
          const bool early = m.state == WaitModel::State::Completed && m.wakes > other.wakes;
          if (early) taken_early_.push_back(other.id);
          poll_future(other, false, false);
        }
        // A waker nested in that poll may have taken f's outcome already.
        if (model_.future(f.id).state == WaitModel::State::Completed) poll_future(f, true, false);
        break;
      }
      case WakeMode::DestroyInline:
        // Only when no other wake is still due: the destructor runs the pending
        // wakes before it frees an untaken block, an interleaving the model
        // (one complete operation at a time) does not describe.
        skip_taken_early();
        if (calls_ == log.size()) destroy_future(f);
        break;
    }
  }

 private:
  // The model logs a wake for every completion of a future that was pending;
  // a future whose outcome was taken (by a poll from another waker) before its
  // wake ran is unlinked and never called: its log entry is passed over.
  void skip_taken_early() {
    const std::vector<FutureId>& log = model_.wake_log();
    while (calls_ < log.size()) {
      auto it = std::find(taken_early_.begin(), taken_early_.end(), log[calls_]);
      if (it == taken_early_.end()) return;
      taken_early_.erase(it);
      ++calls_;
      ++skipped_;
    }
  }

  // ---- set-up and tear-down --------------------------------------------------

  bool bootstrap() {
    static constexpr std::array<std::size_t, 8> kArena = {96, 160, 256, 400, 640, 1024, 2048, 4096};
    const std::uint8_t b = in_.u8();
    const std::size_t arena = kArena[b & 7];
    const std::size_t offset = ((b >> 3) & 7) * alignof(Heap);
    std::byte* base = region_ + offset;

    // The two refusals first: misaligned, and too small for the state.
    if ((b & 0x40) != 0) {
      Result<Heap*> bad = Heap::bootstrap(std::span<std::byte>(base + 1, sizeof(Heap) + arena));
      FUZZ_CHECK(!bad && bad.error() == Error::RegionMisaligned);
      Result<Heap*> tiny = Heap::bootstrap(std::span<std::byte>(base, sizeof(Heap) + 8));
      FUZZ_CHECK(!tiny && tiny.error() == Error::RegionTooSmall);
    }

    Result<Heap*> made = Heap::bootstrap(std::span<std::byte>(base, sizeof(Heap) + arena));
    FUZZ_CHECK(made.has_value());
    heap_ = *made;
    model_ = WaitModel(model::HeapModel(addr(base) + sizeof(Heap), arena));
    FUZZ_CHECK(heap_->capacity() == model_.heap().backend().capacity());

    // The second heap: blocks of another heap, freed through this one's Guard.
    Result<Heap*> made_b = Heap::bootstrap(std::span<std::byte>(region_b_, sizeof(Heap) + kArenaB));
    FUZZ_CHECK(made_b.has_value());
    heap_b_ = *made_b;
    model_b_ = model::HeapModel(addr(region_b_) + sizeof(Heap), kArenaB);
    check_all();
    return true;
  }

  void finish() {
    // Everything goes, in an order the input chose: the Guard, the futures,
    // the owners; then the arena must be one free span again.
    if (guard_ && in_.boolean()) release_guard();
    while (!futures_.empty()) {
      destroy_future(*futures_.front());
      check_all();
    }
    if (guard_) release_guard();
    while (!live_.empty()) {
      drop_live(live_.size() - 1, FreePath::Owner);
      check_all();
    }
    FUZZ_CHECK(heap_->poll() == model_.poll_heap());
    check_all();
    const Stats s = heap_->stats();
    FUZZ_CHECK_MSG(s.allocated_bytes == 0 && s.free_bytes == s.capacity_bytes, "memory leaked at the end");
    FUZZ_CHECK(s.deferred_pending == 0 && s.waiters == 0 && s.spurious_wake_count == 0);
    FUZZ_CHECK_MSG(heap_test_access::backend(*heap_).hole_count() == (s.capacity_bytes == 0 ? 0u : 1u),
                   "the free arena is not one span at the end");
    FUZZ_CHECK_MSG(g_objects == 0, "an object was not destroyed exactly once");
    const Stats sb = heap_b_->stats();
    FUZZ_CHECK_MSG(sb.allocated_bytes == 0 && heap_test_access::backend(*heap_b_).hole_count() == 1,
                   "heap B: not one free span at the end");
  }

  // ---- one operation ------------------------------------------------------------

  void step() {
    static constexpr const char* kNames[16] = {"sync_raw", "sync_typed", "drop",  "guard",     "unguard", "poll",
                                               "future",   "repoll",     "drop_future", "stop", "close",  "exercise",
                                               "check",    "fill",       "free_every_other", "burst"};
    const std::size_t op = in_.pick(16);
    if (trace_) std::fprintf(stderr, "op %-16s", kNames[op]);
    switch (op) {
      case 0: sync_raw(); break;
      case 1: sync_typed(); break;
      case 2:
        if (!live_.empty()) drop_live(in_.pick(live_.size()), static_cast<FreePath>(in_.pick(3)));
        break;
      case 3: take_guard(); break;
      case 4:
        if (guard_) release_guard();
        break;
      case 5: FUZZ_CHECK(heap_->poll() == model_.poll_heap()); break;
      case 6: new_future(); break;
      case 7:
        if (!futures_.empty()) {
          FutureBase& f = *futures_[in_.pick(futures_.size())];
          if (!f.finished) poll_future(f, false, false);
        }
        break;
      case 8:
        if (!futures_.empty()) destroy_future(*futures_[in_.pick(futures_.size())]);
        break;
      case 9:
        if (!futures_.empty()) request_stop(*futures_[in_.pick(futures_.size())]);
        break;
      case 10:
        if (in_.u8() < 24) {  // rare: everything after it fails with Closed
          model_.close();
          heap_->close();
        }
        break;
      case 11:
        if (!live_.empty()) live_[in_.pick(live_.size())]->exercise(in_);
        break;
      case 12: explicit_check(); break;
      case 13: fill(); break;
      case 14: free_every_other(); break;
      case 15: typed_future_burst(); break;
    }
  }

  // try_alloc_raw through the heap, or through the Guard when one is held and
  // the input says so.
  void sync_raw() {
    const Layout l = read_layout(in_);
    const std::uint8_t route = in_.u8();
    const bool via_guard = guard_ && (route & 1) != 0;
    const std::uint8_t seed = in_.u8();
    if ((route & 6) == 6) {  // on the second heap, never locked
      const model::AllocOutcome want = model_b_.try_alloc(l);
      Result<void*> got = heap_b_->try_alloc_raw(l);
      expect_alloc(want, got.has_value() ? std::optional<std::uintptr_t>(addr(*got)) : std::nullopt,
                   got.has_value() ? std::nullopt : std::optional<Error>(got.error()));
      if (got) {
        std::unique_ptr<Owner> o = make_owner(std::move(*got), l, seed);
        o->heap = 1;
        adopt(std::move(o));
      }
      return;
    }
    const model::AllocOutcome want = via_guard ? model_.guard_try_alloc(l) : model_.try_alloc(l);
    Result<void*> got = via_guard ? guard_->try_alloc_raw(l) : heap_->try_alloc_raw(l);
    expect_alloc(want, got.has_value() ? std::optional<std::uintptr_t>(addr(*got)) : std::nullopt,
                 got.has_value() ? std::nullopt : std::optional<Error>(got.error()));
    if (got) adopt(make_owner(std::move(*got), l, seed));
  }

  void sync_typed() {
    const std::size_t kind = in_.pick(5);
    const std::size_t type = in_.u8();
    const std::size_t n = in_.pick(24);  // arrays: 0 is InvalidLayout
    const bool via_guard = guard_ && in_.boolean();
    const std::uint8_t seed = in_.u8();
    const auto run = [&](auto& source) {
      switch (kind) {
        case 0:
          with_object_type(type, [&](auto tag) {
            using T = typename decltype(tag)::type;
            typed_alloc(Layout::of<T>(), via_guard, [&] { return source.template try_alloc<T>(seed); }, seed);
          });
          break;
        case 1:
          with_object_type(type, [&](auto tag) {
            using T = typename decltype(tag)::type;
            typed_alloc(Arc<T>::block_layout(), via_guard, [&] { return source.template try_alloc_arc<T>(seed); },
                        seed);
          });
          break;
        case 2:
          with_element_type(type, [&](auto tag) {
            using T = typename decltype(tag)::type;
            // try_alloc_array value-initialises: T() carries the default seed.
            typed_alloc(detail::array_layout<T>(n), via_guard, [&] { return source.template try_alloc_array<T>(n); },
                        T().seed());
          });
          break;
        case 3:
          with_element_type(type, [&](auto tag) {
            using T = typename decltype(tag)::type;
            std::size_t calls = 0;
            const bool ok = typed_alloc(detail::array_layout<T>(n), via_guard, [&] {
              return source.template try_alloc_array_with<T>(n, SeedMaker<T>{seed, &calls});
            }, seed);
            FUZZ_CHECK_MSG(calls == (ok ? n : 0), "array_with must call make() once per element, only on success");
          });
          break;
        default:
          with_element_type(type, [&](auto tag) {
            using T = typename decltype(tag)::type;
            typed_alloc(detail::array_layout<T>(n), via_guard,
                        [&] { return source.template try_alloc_fixed_vec<T>(n); }, seed);
          });
          break;
      }
    };
    if (via_guard) {
      run(*guard_);
    } else {
      run(*heap_);
    }
  }

  // One typed synchronous allocation against the model; returns success.
  template <class Alloc>
  bool typed_alloc(Layout l, bool via_guard, Alloc&& alloc, std::uint8_t seed) {
    const model::AllocOutcome want = via_guard ? model_.guard_try_alloc(l) : model_.try_alloc(l);
    auto got = alloc();
    if (!got) {
      expect_alloc(want, std::nullopt, got.error());
      return false;
    }
    std::unique_ptr<Owner> owner = make_owner(std::move(*got), l, seed);
    expect_alloc(want, owner->payload(), std::nullopt);
    adopt(std::move(owner));
    return true;
  }

  void expect_alloc(const model::AllocOutcome& want, std::optional<std::uintptr_t> payload,
                    std::optional<Error> error) {
    if (want.ok()) {
      FUZZ_CHECK_MSG(payload.has_value(), "the model allocated, the heap refused");
      FUZZ_CHECK_MSG(*payload == want.payload, "the heap chose another address than first fit");
    } else {
      FUZZ_CHECK_MSG(error.has_value(), "the heap allocated, the model refused");
      FUZZ_CHECK_MSG(*error == *want.error, "the heap failed with another error than the model");
    }
  }

  void adopt(std::unique_ptr<Owner> owner) {
    check_owner(*owner);
    live_.push_back(std::move(owner));
    // Bounded: beyond kMaxLive, the oldest goes (keeps each input cheap).
    if (live_.size() > kMaxLive) drop_live(0, FreePath::Owner);
  }

  enum class FreePath : std::uint8_t { Owner, FreeRaw, GuardFree };

  // Frees live_[i]: through its owner (Heap::free_raw underneath), or for raw
  // blocks explicitly through Heap::free_raw or the Guard's free_raw.
  void drop_live(std::size_t i, FreePath path) {
    std::unique_ptr<Owner> owner = std::move(live_[i]);
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(i));
    FUZZ_CHECK_MSG(owner->intact(), "a live block's contents changed");
    const std::uintptr_t p = owner->payload();
    if (owner->heap == 1) {
      // A block of heap B: through A's Guard (which hands it to B's free path),
      // or Heap::free_raw. B is never locked, so it is returned at once.
      auto& raw = static_cast<RawOwner&>(*owner);
      const Layout l = raw.layout();
      model_b_.free(p);
      if (path == FreePath::GuardFree && guard_) {
        guard_->free_raw(raw.release(), l);
      } else {
        Heap::free_raw(raw.release(), l);
      }
      return;
    }
    if (owner->is_raw() && path == FreePath::GuardFree && guard_) {
      auto& raw = static_cast<RawOwner&>(*owner);
      model_.guard_free(p);
      guard_->free_raw(raw.release(), raw.layout());
      return;
    }
    model_.free(p);  // deferred while the Guard is held: a free from "another context"
    if (owner->is_raw() && path == FreePath::FreeRaw) {
      auto& raw = static_cast<RawOwner&>(*owner);
      const Layout l = raw.layout();
      Heap::free_raw(raw.release(), l);
    }
    owner.reset();
  }

  void take_guard() {
    const bool want = model_.try_lock();
    std::optional<Heap::Guard> g = heap_->try_lock();
    FUZZ_CHECK_MSG(g.has_value() == want, "try_lock disagrees with the model");
    if (g) guard_ = std::move(g);
    // A second try_lock, while held, must fail (and change nothing).
  }

  void release_guard() {
    model_.unlock();
    guard_.reset();
  }

  void explicit_check() {
    if (guard_) {
      FUZZ_CHECK(heap_->check().failure == CheckFailure::Busy);
      FUZZ_CHECK(model_.check() == CheckFailure::Busy);
      FUZZ_CHECK(!heap_->try_lock().has_value());
      FUZZ_CHECK(!model_.try_lock());
    }
  }

  // Allocates small raw blocks until the heap refuses: memory full often.
  void fill() {
    const Layout l{1 + in_.pick(40), std::size_t{1} << in_.pick(4)};
    for (std::size_t k = 0; k < 64 && live_.size() < kMaxLive; ++k) {
      const model::AllocOutcome want = model_.try_alloc(l);
      Result<void*> got = heap_->try_alloc_raw(l);
      expect_alloc(want, got ? std::optional<std::uintptr_t>(addr(*got)) : std::nullopt,
                   got ? std::nullopt : std::optional<Error>(got.error()));
      if (!got) break;
      adopt(make_owner(std::move(*got), l, static_cast<std::uint8_t>(k)));
    }
  }

  // Frees every other live block: fragmentation.
  void free_every_other() {
    const std::size_t start = in_.pick(2);
    for (std::size_t i = live_.size(); i-- > 0;) {
      if (i % 2 == start) drop_live(i, FreePath::Owner);
    }
  }

  // ---- futures --------------------------------------------------------------------

  template <class Fut>
  FutureBase& add_future(Fut&& fut, Layout l, std::uint8_t seed, bool with_token) {
    std::unique_ptr<FutureBase> f;
    std::optional<std::stop_source> source;
    if (with_token) {
      source.emplace();
      f = std::make_unique<FutureImpl<Fut>>(std::move(fut).with(source->get_token()));
    } else {
      f = std::make_unique<FutureImpl<Fut>>(std::move(fut));
    }
    f->id = next_id_++;
    f->layout = l;
    f->seed = seed;
    f->harness = this;
    f->stop = std::move(source);
    model_.create(f->id, l, with_token);
    futures_.push_back(std::move(f));
    return *futures_.back();
  }

  void new_future() {
    if (futures_.size() >= kMaxFutures) return;
    const std::size_t kind = in_.pick(6);
    const std::size_t type = in_.u8();
    const std::size_t n = in_.pick(24);
    const std::uint8_t seed = in_.u8();
    const bool with_token = in_.pick(4) == 0;
    FutureBase* f = nullptr;
    switch (kind) {
      case 0:
        with_object_type(type, [&](auto tag) {
          using T = typename decltype(tag)::type;
          f = &add_future(heap_->alloc<T>(seed), Layout::of<T>(), seed, with_token);
        });
        break;
      case 1:
        with_object_type(type, [&](auto tag) {
          using T = typename decltype(tag)::type;
          f = &add_future(heap_->alloc_arc<T>(seed), Arc<T>::block_layout(), seed, with_token);
        });
        break;
      case 2:
        with_element_type(type, [&](auto tag) {
          using T = typename decltype(tag)::type;
          f = &add_future(heap_->alloc_array<T>(n), detail::array_layout<T>(n), T().seed(), with_token);
        });
        break;
      case 3:
        with_element_type(type, [&](auto tag) {
          using T = typename decltype(tag)::type;
          std::size_t* counter = &maker_counters_.emplace_back(0);
          f = &add_future(heap_->alloc_array_with<T>(n, SeedMaker<T>{seed, counter}), detail::array_layout<T>(n),
                          seed, with_token);
          f->maker_calls = counter;
          f->expected_maker_calls = n;
        });
        break;
      case 4:
        with_element_type(type, [&](auto tag) {
          using T = typename decltype(tag)::type;
          f = &add_future(heap_->alloc_fixed_vec<T>(n), detail::array_layout<T>(n), seed, with_token);
        });
        break;
      default: {
        const Layout l = read_layout(in_);
        f = &add_future(heap_->alloc_raw(l), l, seed, with_token);
        break;
      }
    }
    f->mode = static_cast<WakeMode>(in_.pick(static_cast<std::size_t>(WakeMode::Count)));
    // Sometimes the token is stopped before the first poll.
    if (f->stop && in_.pick(4) == 0) request_stop(*f);
    if (in_.pick(8) != 0) poll_future(*f, false, false);  // most are polled at once
  }

  // Several small Box futures at once: queues of waiters with equal sizes.
  void typed_future_burst() {
    const std::size_t count = 1 + in_.pick(4);
    const std::size_t type = in_.u8();
    for (std::size_t k = 0; k < count && futures_.size() < kMaxFutures; ++k) {
      with_object_type(type, [&](auto tag) {
        using T = typename decltype(tag)::type;
        FutureBase& f = add_future(heap_->alloc<T>(static_cast<std::uint8_t>(k)), Layout::of<T>(),
                                   static_cast<std::uint8_t>(k), false);
        f.mode = static_cast<WakeMode>(in_.pick(static_cast<std::size_t>(WakeMode::Count)));
        poll_future(f, false, false);
      });
    }
  }

  static Waker waker_for(FutureBase& f) {
    return Waker{[](void* ctx) {
                   auto* fb = static_cast<FutureBase*>(ctx);
                   fb->harness->on_wake(*fb);
                 },
                 &f};
  }

  // Polls f against the model. `inline_call`: from inside its waker call (it
  // was woken, so it must be ready). `free_at_once`: drop the block at once.
  void poll_future(FutureBase& f, bool inline_call, bool free_at_once) {
    if (trace_) std::fprintf(stderr, "\n    poll future %llu", static_cast<unsigned long long>(f.id));
    const WaitModel::PollResult want = model_.poll(f.id);
    f.polled = true;
    const std::shared_ptr<bool> alive = f.alive;
    PollOut got = f.poll(waker_for(f));
    if (inline_call) FUZZ_CHECK_MSG(!got.pending, "a woken future was still pending: a spurious wake");
    if (!*alive) {
      // Pending, then completed, woken and destroyed by its waker, all inside
      // this poll (after the poll registered its waker).
      FUZZ_CHECK(want.pending && got.pending);
      return;
    }
    const std::size_t maker_calls = f.maker_calls != nullptr ? *f.maker_calls : 0;
    if (want.pending) {
      FUZZ_CHECK_MSG(got.pending, "the model says pending, the future completed");
      return;
    }
    FUZZ_CHECK_MSG(!got.pending, "the model says complete, the future is pending");
    f.finished = true;
    if (want.error) {
      FUZZ_CHECK_MSG(got.error.has_value(), "the model says error, the future got a block");
      FUZZ_CHECK_MSG(*got.error == *want.error, "the future failed with another error than the model");
      FUZZ_CHECK(maker_calls == 0);
      return;
    }
    FUZZ_CHECK_MSG(got.owner != nullptr, "the model says block, the future failed");
    FUZZ_CHECK_MSG(got.owner->payload() == want.payload, "the future got another block than the model");
    FUZZ_CHECK_MSG(maker_calls == f.expected_maker_calls, "alloc_array_with must call make() once per element");
    check_owner(*got.owner);
    if (free_at_once) {
      model_.free(want.payload);
      got.owner.reset();
      return;
    }
    live_.push_back(std::move(got.owner));
  }

  void destroy_future(FutureBase& f) {
    auto it = std::find_if(futures_.begin(), futures_.end(), [&f](const auto& p) { return p.get() == &f; });
    FUZZ_CHECK(it != futures_.end());
    std::unique_ptr<FutureBase> doomed = std::move(*it);
    futures_.erase(it);
    if (trace_) std::fprintf(stderr, "\n    destroy future %llu", static_cast<unsigned long long>(doomed->id));
    model_.destroy(doomed->id);
    doomed.reset();  // a pending one leaves the queue; an untaken block is freed
  }

  void request_stop(FutureBase& f) {
    if (!f.stop) return;
    model_.request_stop(f.id);
    // A copy of the source keeps the stop state alive if the waker destroys
    // the future (and its source) inside this call.
    std::stop_source source = *f.stop;
    source.request_stop();  // a waiting future completes with Cancelled and is woken
  }

  // ---- invariants -----------------------------------------------------------------

  void check_owner(const Owner& o) const {
    const Layout l = o.layout();
    const std::uintptr_t p = o.payload();
    Heap* const heap = o.heap == 1 ? heap_b_ : heap_;
    const detail::FirstFit& backend = heap_test_access::backend(*heap);
    FUZZ_CHECK_MSG(p % l.align == 0, "a live block does not honour its alignment");
    FUZZ_CHECK_MSG(p >= addr(backend.arena_begin()) && p + l.size <= addr(backend.arena_end()),
                   "a live block lies outside the arena");
    FUZZ_CHECK_MSG(o.intact(), "a live block's contents changed");
    // The header word names the heap, encoded for this block (read through the
    // ASan-aware load; detail/hardening.hpp).
    void* const payload = reinterpret_cast<void*>(p);
    FUZZ_CHECK_MSG(detail::asan_load(detail::header_slot(payload)) ==
                       detail::live_header(heap, payload, detail::header_size_class(*detail::block_request(l)), l.align),
                   "a live block's header does not name its heap");
#if MNEMOS_ASAN
    FUZZ_CHECK_MSG(__asan_region_is_poisoned(reinterpret_cast<void*>(p), l.size) == nullptr,
                   "a live payload is poisoned");
#endif
  }

  void check_all() {
    // Every wake the model expects has happened, none more.
    skip_taken_early();
    FUZZ_CHECK_MSG(calls_ == model_.wake_log().size(), "a waker call the model expects did not happen");
    FUZZ_CHECK(taken_early_.empty());
    for (const auto& f : futures_) {
      FUZZ_CHECK(f->wakes <= model_.future(f->id).wakes && f->wakes + 1 >= model_.future(f->id).wakes);
    }

    // The heap's own walk and counters, then the model's.
    if (guard_) {
      FUZZ_CHECK_MSG(guard_->check().ok(), "Guard::check() failed");
      FUZZ_CHECK(model_.heap().consistent());
    } else {
      FUZZ_CHECK(model_.check() == CheckFailure::None);
      const CheckReport r = heap_->check();  // a lock and release, as the model's
      FUZZ_CHECK_MSG(r.ok(), to_string(r.failure));
    }
    FUZZ_CHECK_MSG(calls_ == model_.wake_log().size(), "check() woke a waiter: a lost wakeup before it");

    const Stats s = heap_->stats();
    const Stats m = model_.heap().stats();
    FUZZ_CHECK(s.capacity_bytes == m.capacity_bytes);
    FUZZ_CHECK_MSG(s.allocated_bytes == m.allocated_bytes, "stats: allocated_bytes");
    FUZZ_CHECK_MSG(s.free_bytes == m.free_bytes, "stats: free_bytes");
    FUZZ_CHECK_MSG(s.peak_allocated_bytes == m.peak_allocated_bytes, "stats: peak_allocated_bytes");
    FUZZ_CHECK_MSG(s.alloc_count == m.alloc_count, "stats: alloc_count");
    FUZZ_CHECK_MSG(s.alloc_no_memory_count == m.alloc_no_memory_count, "stats: alloc_no_memory_count");
    FUZZ_CHECK_MSG(s.free_count == m.free_count, "stats: free_count");
    FUZZ_CHECK_MSG(s.deferred_free_count == m.deferred_free_count, "stats: deferred_free_count");
    FUZZ_CHECK_MSG(s.deferred_pending == m.deferred_pending, "stats: deferred_pending");
    FUZZ_CHECK_MSG(s.waiters == m.waiters, "stats: waiters");
    FUZZ_CHECK_MSG(s.wait_count == m.wait_count, "stats: wait_count");
    FUZZ_CHECK_MSG(s.spurious_wake_count == 0, "stats: a spurious wake");
    FUZZ_CHECK(s.allocated_bytes + s.free_bytes == s.capacity_bytes);

    // The backend's holes, exactly.
    const std::vector<model::Span> want = model_.heap().backend().holes();
    std::size_t k = 0;
    bool same = true;
    heap_test_access::backend(*heap_).for_each_hole([&](std::byte* start, std::size_t size) {
      if (k >= want.size() || want[k].start != addr(start) || want[k].size != size) same = false;
      ++k;
#if MNEMOS_ASAN
      // Free bytes are poisoned (granule by granule: ASan's unit).
      for (std::size_t off = 0; off < size; off += detail::kAsanGranule) {
        if (!__asan_address_is_poisoned(start + off)) same = false;
      }
#endif
    });
    FUZZ_CHECK_MSG(same && k == want.size(), "the backend's holes differ from the model (or are not poisoned)");

    // The lock word agrees: held iff our Guard; no deferred free outside it.
    const detail::HeapLock& lock = heap_test_access::lock(*heap_);
    FUZZ_CHECK(lock.is_locked() == guard_.has_value());
    FUZZ_CHECK(lock.has_waiters() == (m.waiters != 0));
    if (!guard_) FUZZ_CHECK_MSG(!lock.has_deferred(), "a deferred free was stranded");

    // Invariant 4.
    FUZZ_CHECK_MSG(!model_.head_servable_now(), "model: the head waiter is servable on an idle heap");
    if (trace_) {
      std::fprintf(stderr, " | alloc %zu/%zu allocs %zu nomem %zu frees %zu deferred %zu/%zu waiters %zu/%zu wakes %zu live %zu futures %zu%s\n",
                   s.allocated_bytes, s.capacity_bytes, s.alloc_count, s.alloc_no_memory_count, s.free_count,
                   s.deferred_free_count, s.deferred_pending, s.waiters, s.wait_count, calls_, live_.size(),
                   futures_.size(), guard_ ? " [guard]" : "");
    }

    // Every live block: where the model has it, intact.
    for (const auto& o : live_) {
      const model::HeapModel& m = o->heap == 1 ? model_b_ : model_.heap();
      FUZZ_CHECK_MSG(m.is_live(o->payload()), "a live block is not live in the model");
      check_owner(*o);
    }

    // Heap B: its walk, counters and holes.
    FUZZ_CHECK(model_b_.check() == CheckFailure::None);
    FUZZ_CHECK_MSG(heap_b_->check().ok(), "heap B: check() failed");
    const Stats sb = heap_b_->stats();
    const Stats mb = model_b_.stats();
    FUZZ_CHECK_MSG(sb.allocated_bytes == mb.allocated_bytes && sb.alloc_count == mb.alloc_count &&
                       sb.free_count == mb.free_count && sb.alloc_no_memory_count == mb.alloc_no_memory_count &&
                       sb.deferred_free_count == 0 && sb.deferred_pending == 0,
                   "heap B: stats differ from its model");
  }

  FuzzInput& in_;
  // MNEMOS_FUZZ_TRACE=1: one line per operation on stderr (to read a reproducer).
  const bool trace_ = std::getenv("MNEMOS_FUZZ_TRACE") != nullptr;
  alignas(64) static inline std::byte region_[kRegionBytes];
  static constexpr std::size_t kArenaB = 256;
  alignas(64) static inline std::byte region_b_[sizeof(Heap) + kArenaB];
  Heap* heap_ = nullptr;
  Heap* heap_b_ = nullptr;
  model::HeapModel model_b_;
  std::vector<FutureId> taken_early_;  // outcomes taken before their wake (PollOther)
  std::size_t skipped_ = 0;
  WaitModel model_;
  std::optional<Heap::Guard> guard_;
  std::vector<std::unique_ptr<Owner>> live_;
  std::vector<std::unique_ptr<FutureBase>> futures_;
  FutureId next_id_ = 1;
  std::size_t calls_ = 0;  // waker calls so far
  std::deque<std::size_t> maker_counters_;  // stable addresses for the makers' counters
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  {
    Harness harness(in);
    harness.run();
  }
  FUZZ_CHECK(g_objects == 0);
  return 0;
}
