// Fuzz target: valid heap operations interleaved with injected misuse
// (MNEMOS_HARDENING, detail/hardening.hpp). Every misuse must be reported
// through the fault handler exactly once, with its address and an acceptable
// kind (a double free: DoubleFree and nothing else, whatever the backend, the
// alignment and the route of either free), and change nothing: the same
// Stats, check() ok, every live block's contents intact; valid frees must
// never be reported. At the end every block is freed and the arena is one
// free span.
//
// Input: header byte (bit 0: backend TLSF; bits 1-2: arena size index), then
// steps, one opcode byte each:
//   0 alloc   [size u8][align index u8]     try_alloc_raw (or guard's), filled with a pattern
//   1 free    [index u8]                    free_raw of a live block (deferred under a guard)
//   2 gfree   [index u8]                    guard.free_raw (free_raw when no guard)
//   3 guard                                 take / release a Guard (frees in between are deferred)
//   4 poll                                  heap.poll()
//   5 misuse  [kind u8][index u8][arg u8]   one injected misuse, see misuse()
// A freed block stays a double-free candidate until an allocation overlaps
// it (then its bytes are someone else's: undetectable, hardening.hpp), so a
// double free may come many operations after the first free.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <utility>
#include <vector>

#include "fuzz_input.hpp"
#include "mnemos/alloc.hpp"
#include "mnemos/detail/asan.hpp"
#include "mnemos/detail/hardening.hpp"

namespace mnemos {
struct heap_test_access {
  static const detail::AnyBackend& backend(const Heap& heap) { return heap.backend_; }
};
}  // namespace mnemos

namespace {

using namespace mnemos;
using mnemos::fuzz::FuzzInput;

std::vector<Fault>* g_faults = nullptr;
void record(const Fault& f) { g_faults->push_back(f); }

struct Live {
  std::byte* p;
  Layout layout;
  std::uint8_t seed;
};

constexpr std::size_t kArenaSizes[4] = {512, 1024, 2048, 4096};
constexpr std::size_t kAligns[8] = {1, 2, 4, 8, 16, 32, 64, 128};

alignas(4096) std::byte g_region[4096 + 1024];
struct alignas(16) Fake {
  std::uint64_t before;
  std::byte payload[32];
};
Fake g_fake{};

class Harness {
 public:
  Harness(bool tlsf, std::size_t arena) {
    Result<Heap*> made = Heap::bootstrap(std::span<std::byte>(g_region, arena + 1024),
                                         Heap::Options{.backend = tlsf ? Backend::Tlsf : Backend::FirstFit});
    FUZZ_CHECK(made.has_value());
    heap_ = *made;
  }

  void step(FuzzInput& in) {
    switch (in.pick(6)) {
      case 0: alloc(in.u8(), kAligns[in.pick(8)]); break;
      case 1: free(in.u8(), false); break;
      case 2: free(in.u8(), true); break;
      case 3:
        if (guard_) {
          guard_.reset();
        } else {
          guard_ = heap_->try_lock();
          FUZZ_CHECK(guard_.has_value());
        }
        break;
      case 4:
        if (!guard_) heap_->poll();
        break;
      case 5: {
        const std::uint8_t kind = in.u8();
        const std::uint8_t index = in.u8();
        misuse(kind, index, in.u8());
        break;
      }
    }
    FUZZ_CHECK_MSG(g_faults->empty(), "a valid operation was reported as a fault");
    verify();
  }

  void finish() {
    guard_.reset();
    while (!live_.empty()) free(0, false);
    heap_->poll();
    FUZZ_CHECK(g_faults->empty());
    const Stats s = heap_->stats();
    FUZZ_CHECK_MSG(s.allocated_bytes == 0 && s.free_bytes == s.capacity_bytes, "bytes lost");
    FUZZ_CHECK_MSG(heap_test_access::backend(*heap_).hole_count() == 1, "the arena is not one free span");
    FUZZ_CHECK(heap_->check().ok());
  }

 private:
  CheckReport check() { return guard_ ? guard_->check() : heap_->check(); }

  void alloc(std::uint8_t size_byte, std::size_t align) {
    const Layout l{static_cast<std::size_t>(size_byte % 160) + 1, align};
    Result<void*> r = guard_ ? guard_->try_alloc_raw(l) : heap_->try_alloc_raw(l);
    if (!r) return;
    auto* p = static_cast<std::byte*>(*r);
    const auto seed = static_cast<std::uint8_t>(live_.size() * 37 + size_byte);
    // Even bytes only: no word of a payload carries a live header's tag, so an
    // interior pointer is never taken for a block (user data that does look
    // like a header for its address is accepted with probability 2^-19).
    for (std::size_t i = 0; i < l.size; ++i) p[i] = static_cast<std::byte>((seed + i) << 1);
    live_.push_back({p, l, seed});
    // A freed block this allocation overlaps is reused: no longer a candidate.
    std::erase_if(freed_, [&](const Live& f) { return overlaps(f, live_.back()); });
  }

  // The bytes a block occupies: from its start (the header, or the
  // alignment padding before it) to its end as both backends round it.
  static std::pair<std::uintptr_t, std::uintptr_t> span(const Live& b) {
    const std::uintptr_t start = detail::addr(detail::block_start(b.p, b.layout.align));
    return {start, start + detail::FirstFit::rounded_size(detail::block_request(b.layout)->size)};
  }
  static bool overlaps(const Live& a, const Live& b) {
    const auto [a0, a1] = span(a);
    const auto [b0, b1] = span(b);
    return a0 < b1 && b0 < a1;
  }

  void free(std::uint8_t index, bool through_guard) {
    if (live_.empty()) return;
    const std::size_t i = index % live_.size();
    const Live b = live_[i];
    FUZZ_CHECK_MSG(intact(b), "a live block's contents changed");
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(i));
    if (through_guard && guard_) {
      guard_->free_raw(b.p, b.layout);
    } else {
      Heap::free_raw(b.p, b.layout);
    }
    freed_.push_back(b);
  }

  static bool intact(const Live& b) {
    for (std::size_t i = 0; i < b.layout.size; ++i) {
      if (b.p[i] != static_cast<std::byte>((b.seed + i) << 1)) return false;
    }
    return true;
  }

  void verify() {
    const CheckReport r = check();
    FUZZ_CHECK_MSG(r.ok(), "check() failed");
    for (const Live& b : live_) FUZZ_CHECK_MSG(intact(b), "a live block's contents changed");
  }

  // The misuse, then: exactly one fault of an acceptable kind, nothing changed.
  void misuse(std::uint8_t kind, std::uint8_t index, std::uint8_t arg) {
    const Stats before = heap_->stats();
    FaultKind expected[4] = {};
    std::size_t n_expected = 0;
    auto expect = [&](FaultKind k) { expected[n_expected++] = k; };
    const void* address = nullptr;
    switch (kind % 7) {
      case 0: {  // double free of a block freed before and not reused since
        if (freed_.empty()) return;
        const Live& f = freed_[index % freed_.size()];
        address = f.p;
        if (guard_ && arg % 2 == 1) {
          guard_->free_raw(f.p, f.layout);  // the guard's own path
        } else {
          Heap::free_raw(f.p, f.layout);  // deferred path while a guard is held
        }
        expect(FaultKind::DoubleFree);  // and nothing else (hardening.hpp)
        break;
      }
      case 1: {  // interior pointer of a live block
        if (live_.empty()) return;
        const Live& b = live_[index % live_.size()];
        const std::size_t off = 8 * (1 + arg % 4);
        if (off >= b.layout.size) return;
        address = b.p + off;
        Heap::free_raw(b.p + off, Layout{8, 8});
        expect(FaultKind::ForeignPointer);
        expect(FaultKind::BadLayout);      // the payload bytes before it look tagged
        expect(FaultKind::CorruptHeader);  // or one byte off a header (2^-16)
        break;
      }
      case 2: {  // a global, never a block
        g_fake.before = arg % 2 == 0 ? 0 : detail::addr(heap_);
        address = g_fake.payload;
        Heap::free_raw(g_fake.payload, Layout{32, 8});
        expect(FaultKind::ForeignPointer);
        break;
      }
      case 3: {  // one byte of a live header changed
        if (live_.empty()) return;
        const Live& b = live_[index % live_.size()];
        const int byte = arg % 8;
        const auto flip = static_cast<std::uintptr_t>((arg >> 3) | 1);
        std::uintptr_t* slot = detail::header_slot(b.p);
        const std::uintptr_t good = detail::asan_load(slot);
        detail::asan_store(slot, good ^ (flip << (8 * byte)));
        address = b.p;
        Heap::free_raw(b.p, b.layout);
        detail::asan_store(slot, good);
        expect(FaultKind::CorruptHeader);
        if (byte == 0) {  // the tag byte: ~2^-16 cases read as something else
          expect(FaultKind::ForeignPointer);
          expect(FaultKind::DoubleFree);
        }
        break;
      }
      case 4: {  // misaligned
        if (live_.empty()) return;
        const Live& b = live_[index % live_.size()];
        address = b.p + 1 + arg % 7;
        Heap::free_raw(b.p + 1 + arg % 7, Layout{1, 1});
        expect(FaultKind::Misaligned);
        break;
      }
      case 5: {  // impossible layout
        if (live_.empty()) return;
        const Live& b = live_[index % live_.size()];
        const Layout bad[3] = {Layout{0, 8}, Layout{8, 3}, Layout{SIZE_MAX, 8}};
        address = b.p;
        if (guard_ && arg % 2 == 1) {
          guard_->free_raw(b.p, bad[arg % 3]);
        } else {
          Heap::free_raw(b.p, bad[arg % 3]);
        }
        expect(FaultKind::BadLayout);
        break;
      }
      case 6: {  // a layout of another size class
        if (live_.empty()) return;
        const Live& b = live_[index % live_.size()];
        address = b.p;
        Heap::free_raw(b.p, Layout{b.layout.size + 8 * (1 + arg % 16), b.layout.align});
        expect(FaultKind::BadLayout);
        expect(FaultKind::CorruptHeader);  // ~3%: one byte off (hardening.hpp)
        break;
      }
    }
    FUZZ_CHECK_MSG(g_faults->size() == 1, "a misuse was not reported exactly once");
    const Fault f = g_faults->front();
    g_faults->clear();
    FUZZ_CHECK_MSG(f.address == address, "the fault names another address");
    bool ok = false;
    for (std::size_t i = 0; i < n_expected; ++i) ok = ok || f.kind == expected[i];
    if (!ok) std::fprintf(stderr, "misuse %d: kind %s\n", kind % 7, to_string(f.kind));
    FUZZ_CHECK_MSG(ok, "unexpected fault kind");
    const Stats after = heap_->stats();
    FUZZ_CHECK_MSG(after.allocated_bytes == before.allocated_bytes && after.free_count == before.free_count &&
                       after.deferred_pending == before.deferred_pending && after.alloc_count == before.alloc_count,
                   "a refused free changed the heap");
  }

  Heap* heap_ = nullptr;
  std::optional<Heap::Guard> guard_;
  std::vector<Live> live_;
  std::vector<Live> freed_;  // freed, not overlapped by an allocation since
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
#if MNEMOS_HARDENING
  std::vector<Fault> faults;
  g_faults = &faults;
  const FaultHandler previous = set_fault_handler(&record);
  FuzzInput in(data, size);
  const std::uint8_t header = in.u8();
  {
    Harness h((header & 1) != 0, kArenaSizes[(header >> 1) & 3]);
    for (int steps = 0; steps < 512 && !in.done(); ++steps) h.step(in);
    h.finish();
  }
  set_fault_handler(previous);
  g_faults = nullptr;
#else
  (void)data;
  (void)size;
#endif
  return 0;
}
