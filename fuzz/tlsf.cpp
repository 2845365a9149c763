// Fuzz target: the TLSF backend alone (include/mnemos/detail/tlsf.hpp),
// against the rules of its model (proptest/model/tlsf_model.hpp: no exact
// addresses, TLSF's choice depends on its class lists).
//
// The input picks an arena (any start byte, any size up to 16 KiB, so init's
// metadata placement and its refusal of small ranges are exercised), then a
// sequence of operations in first_fit.cpp's encoding: allocate with arbitrary
// sizes and alignments (zero, huge, non-powers of two included), deallocate of
// a live block (told its size or its rounding), fits_when_empty, and re-init.
// Checked after every step:
//   - a block returned lies inside the arena, in free space (no overlap with
//     a live block), and honours its alignment;
//   - allocate() fails only when the model allows it (no free block of the
//     search size, T3) and stays within kAllocateMaxSteps; deallocate()
//     within kDeallocateMaxSteps (the O(1) bound, counted by the test probe);
//   - fits_when_empty() is exactly the model's;
//   - check() reports no broken invariant; free_bytes() agrees; the free
//     blocks are exactly the gaps between live blocks (immediate coalescing);
//   - every live block's bytes (the whole rounded block) are never touched
//     (checked when it is returned, and for all blocks at every 8th step).
// At the end every block is returned: one free block spanning the arena.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "mnemos/detail/tlsf.hpp"
#include "proptest/model/tlsf_model.hpp"

namespace mnemos::detail {
// This executable's definition of the backend's test friend: the same code as
// allocate()/deallocate(), instantiated with a counting probe in src/tlsf.cpp.
struct tlsf_test_access {
  static void* allocate(Tlsf& t, std::size_t size, std::size_t align, std::size_t& steps) {
    TlsfSteps s;
    void* p = t.allocate_impl(size, align, s);
    steps = s.count;
    return p;
  }
  static void deallocate(Tlsf& t, void* p, std::size_t size, std::size_t& steps) {
    TlsfSteps s;
    t.deallocate_impl(p, size, s);
    steps = s.count;
  }
};
}  // namespace mnemos::detail

namespace {

using mnemos::detail::Tlsf;
using mnemos::detail::tlsf_test_access;
using mnemos::fuzz::FuzzInput;
using mnemos::model::Span;
using mnemos::model::TlsfModel;

constexpr std::size_t kMaxOps = 400;
constexpr std::size_t kMaxLive = 64;
constexpr std::size_t kBufBytes = 16384 + 64;

static_assert(Tlsf::kGranule == TlsfModel::kGranule && Tlsf::kMinBlock == TlsfModel::kMinBlock,
              "the model's granule and minimum block are the backend's");

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

struct LiveBlock {
  std::byte* p;
  std::size_t size;     // as passed to allocate
  std::size_t rounded;  // the bytes the block really has
  std::uint8_t seed;
};

class Harness {
 public:
  explicit Harness(FuzzInput& in) : in_(in) {}

  void run() {
    init();
    for (std::size_t ops = 0; ops < kMaxOps && !in_.done(); ++ops) {
      step();
      check();
    }
    while (!live_.empty()) {
      release(live_.size() - 1);
      check();
    }
    if (backend_.capacity() != 0) {
      FUZZ_CHECK_MSG(backend_.hole_count() == 1 && backend_.free_bytes() == backend_.capacity(),
                     "everything returned, yet the arena is not one free block");
    }
  }

 private:
  void init() {
    // Any start byte and any size up to the buffer (first_fit.cpp's header,
    // with a larger third class: TLSF keeps its metadata in the region).
    const std::size_t offset = in_.pick(64);
    const std::uint16_t raw = in_.u16();
    std::size_t size = 0;
    switch (raw >> 14) {
      case 0: size = raw & 255; break;  // small: init may refuse
      case 1: size = 160 + (raw & 511); break;
      default: size = raw & 16383; break;
    }
    if (size > kBufBytes - offset) size = kBufBytes - offset;
    live_.clear();
    std::byte* const start = buf_ + offset;
    const bool ok = backend_.init(start, size);
    // Below 168 bytes no block fits after the metadata; from 512 on one always does.
    FUZZ_CHECK_MSG(ok || size < 512, "init refused a region that can hold blocks");
    FUZZ_CHECK_MSG(!ok || size >= 168, "init accepted a region too small for its metadata");
    if (ok) {
      FUZZ_CHECK_MSG(backend_.arena_begin() >= start && backend_.arena_end() <= start + size,
                     "the arena is not inside the region");
      FUZZ_CHECK(addr(backend_.arena_begin()) % Tlsf::kGranule == 0);
      model_.reset(addr(backend_.arena_begin()), addr(backend_.arena_end()));
    } else {
      FUZZ_CHECK(backend_.capacity() == 0 && backend_.allocate(8, 8) == nullptr);
      model_.reset(0, 0);
    }
    FUZZ_CHECK(backend_.capacity() == model_.capacity());
    check();
  }

  std::size_t read_size() {
    static constexpr std::array<std::size_t, 8> kSpecial = {0, 1, 15, 16, 17, SIZE_MAX, SIZE_MAX - 7, 4096};
    const std::uint8_t c = in_.u8();
    switch (c >> 6) {
      case 0: return c & 63;                                 // 0..63
      case 1: return 8 * static_cast<std::size_t>(c & 63);  // multiples of the granule
      case 2:
        // The special sizes, or one at the class and padding boundaries of
        // the largest free block now.
        if ((c & 8) == 0) return kSpecial[c & 7];
        return near_largest(c & 7);
      default: return in_.pick16(4096);
    }
  }

  std::size_t near_largest(unsigned k) const {
    static constexpr std::array<std::size_t, 8> kDelta = {0, 1, 8, 9, 16, 64, 255, 0};
    const std::size_t largest = model_.largest_hole();
    if (k == 7) return largest + 8;  // just too large for a good fit
    return largest > kDelta[k] ? largest - kDelta[k] : 1;
  }

  std::size_t read_align() {
    static constexpr std::array<std::size_t, 16> kAligns = {
        1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 0, 3, 24, std::size_t{1} << 40, (SIZE_MAX >> 1) + 1};
    const std::uint8_t a = in_.u8();
    return (a & 0xF0) == 0 ? kAligns[a & 15] : kAligns[a % 6];
  }

  void step() {
    switch (in_.pick(6)) {
      case 0:
      case 1:
      case 2:
        allocate();
        break;
      case 3:
        if (!live_.empty()) release(in_.pick(live_.size()));
        break;
      case 4: {
        const std::size_t size = read_size();
        const std::size_t align = read_align();
        FUZZ_CHECK_MSG(backend_.fits_when_empty(size, align) == model_.fits_when_empty(size, align),
                       "fits_when_empty differs from the model");
        backend_.deallocate(nullptr, size);  // ignored
        break;
      }
      case 5:
        if (in_.pick(8) == 0) init();  // rare: discards every block
        break;
    }
  }

  void allocate() {
    if (live_.size() >= kMaxLive) return;
    const std::size_t size = read_size();
    const std::size_t align = read_align();
    const bool may_fail = model_.may_fail(size, align);
    std::size_t steps = 0;
    void* got = tlsf_test_access::allocate(backend_, size, align, steps);
    FUZZ_CHECK_MSG(steps <= Tlsf::kAllocateMaxSteps, "allocate() exceeded its step bound");
    if (got == nullptr) {
      FUZZ_CHECK_MSG(may_fail, "allocate failed although a free block of the search size exists");
      return;
    }
    const std::string wrong = model_.allocated(addr(got), size, align);
    FUZZ_CHECK_MSG(wrong.empty(), wrong.c_str());
    LiveBlock b{static_cast<std::byte*>(got), size, Tlsf::rounded_size(size), in_.u8()};
    fill(b);
    live_.push_back(b);
  }

  void release(std::size_t i) {
    const LiveBlock b = live_[i];
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(i));
    FUZZ_CHECK_MSG(intact(b), "a live block's bytes changed");
    FUZZ_CHECK(model_.freed(addr(b.p)));
    std::size_t steps = 0;
    // T1: deallocate() takes the request or its rounding.
    tlsf_test_access::deallocate(backend_, b.p, (b.seed & 1) != 0 ? b.rounded : b.size, steps);
    FUZZ_CHECK_MSG(steps <= Tlsf::kDeallocateMaxSteps, "deallocate() exceeded its step bound");
  }

  static std::byte byte_at(const LiveBlock& b, std::size_t i) {
    return static_cast<std::byte>(b.seed + i * 0x9D + (i >> 8));
  }
  static void fill(const LiveBlock& b) {
    for (std::size_t i = 0; i < b.rounded; ++i) b.p[i] = byte_at(b, i);
  }
  static bool intact(const LiveBlock& b) {
    for (std::size_t i = 0; i < b.rounded; ++i) {
      if (b.p[i] != byte_at(b, i)) return false;
    }
    return true;
  }

  void check() {
    const mnemos::CheckReport r = backend_.check();
    FUZZ_CHECK_MSG(r.ok(), mnemos::to_string(r.failure));
    FUZZ_CHECK_MSG(backend_.free_bytes() == model_.free_bytes(), "free_bytes differs from the model");
    FUZZ_CHECK(backend_.capacity() == model_.capacity());
    const std::vector<Span> want = model_.holes();
    std::size_t k = 0;
    bool same = true;
    backend_.for_each_hole([&](std::byte* start, std::size_t size) {
      if (k >= want.size() || want[k].start != addr(start) || want[k].size != size) same = false;
      ++k;
    });
    FUZZ_CHECK_MSG(same && k == want.size(), "the free blocks are not the gaps between live blocks");
    FUZZ_CHECK(backend_.hole_count() == want.size());
    // Contents: every block at every 8th step (and each one when it is
    // returned).
    if ((++checks_ % 8) == 0) {
      for (const LiveBlock& b : live_) FUZZ_CHECK_MSG(intact(b), "a live block's bytes changed");
    }
  }

  FuzzInput& in_;
  alignas(4096) static inline std::byte buf_[kBufBytes];
  Tlsf backend_;
  TlsfModel model_;
  std::vector<LiveBlock> live_;
  std::size_t checks_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  Harness harness(in);
  harness.run();
  return 0;
}
