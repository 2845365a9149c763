// Fuzz target: the first-fit backend alone (include/mnemos/detail/first_fit.hpp),
// differential against its exact reference model
// (proptest/model/first_fit_model.hpp, rules R1-R6).
//
// The input picks an arena (any start byte, any size, so init's alignment and
// its refusal of tiny ranges are exercised), then a sequence of operations:
// allocate with arbitrary sizes and alignments (zero, huge, non-powers of two
// included), deallocate of a live block (or nullptr), fits_when_empty, and
// re-init. Checked after every step:
//   - the same address (or the same failure) as the model, for every allocate;
//   - the same holes, exactly (start and size, in address order), the same
//     free_bytes and hole_count, the same capacity and arena bounds;
//   - check() reports no broken invariant;
//   - every live block lies inside the arena, honours its alignment, and its
//     bytes (the whole rounded block: it is the user's) are never touched
//     (checked when it is returned, and for all blocks at every 8th step).
// At the end every block is returned: one hole spanning the arena.
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_input.hpp"
#include "mnemos/detail/first_fit.hpp"
#include "proptest/model/first_fit_model.hpp"

namespace {

using mnemos::detail::FirstFit;
using mnemos::fuzz::FuzzInput;
using mnemos::model::FirstFitModel;
using mnemos::model::Span;

constexpr std::size_t kMaxOps = 400;
constexpr std::size_t kMaxLive = 64;
constexpr std::size_t kBufBytes = 4096 + 64;

static_assert(FirstFit::kGranule == FirstFitModel::kGranule && FirstFit::kMinBlock == FirstFitModel::kMinBlock,
              "the model's granule and minimum block are the backend's");

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

struct LiveBlock {
  std::byte* p;
  std::size_t size;     // as passed to allocate (deallocate gets it again)
  std::size_t rounded;  // the bytes the block really has
  std::size_t align;
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
                     "everything returned, yet the arena is not one hole");
    }
  }

 private:
  void init() {
    // Any start byte and any size up to the buffer: R6 aligns both ends.
    const std::size_t offset = in_.pick(64);
    const std::uint16_t raw = in_.u16();
    std::size_t size = 0;
    switch (raw >> 14) {
      case 0: size = raw & 63; break;  // tiny: init may refuse
      case 1: size = 16 + (raw & 255); break;
      default: size = raw & 4095; break;
    }
    if (size > kBufBytes - offset) size = kBufBytes - offset;
    live_.clear();
    const bool ok = backend_.init(buf_ + offset, size);
    const bool want = model_.init(addr(buf_ + offset), size);
    FUZZ_CHECK_MSG(ok == want, "init's refusal differs from R6");
    FUZZ_CHECK(backend_.capacity() == model_.capacity());
    if (ok) {
      FUZZ_CHECK(addr(backend_.arena_begin()) == model_.begin() && addr(backend_.arena_end()) == model_.end());
    }
    check();
  }

  std::size_t read_size() {
    static constexpr std::array<std::size_t, 8> kSpecial = {0, 1, 15, 16, 17, SIZE_MAX, SIZE_MAX - 7, 4096};
    const std::uint8_t c = in_.u8();
    switch (c >> 6) {
      case 0: return c & 63;                           // 0..63
      case 1: return 8 * static_cast<std::size_t>(c & 63);  // multiples of the granule
      case 2: return kSpecial[c & 7];
      default: return in_.pick16(2048);
    }
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
    const std::optional<std::uintptr_t> want = model_.allocate(size, align);
    void* got = backend_.allocate(size, align);
    FUZZ_CHECK_MSG((got != nullptr) == want.has_value(), "allocate succeeded on one side only");
    if (got == nullptr) return;
    FUZZ_CHECK_MSG(addr(got) == *want, "allocate chose another address than the model");
    const std::size_t rounded = FirstFit::rounded_size(size);
    const std::size_t effective = align < FirstFit::kGranule ? FirstFit::kGranule : align;
    FUZZ_CHECK_MSG(addr(got) % effective == 0, "a block does not honour its alignment");
    FUZZ_CHECK_MSG(addr(got) >= addr(backend_.arena_begin()) && addr(got) + rounded <= addr(backend_.arena_end()),
                   "a block lies outside the arena");
    LiveBlock b{static_cast<std::byte*>(got), size, rounded, align, in_.u8()};
    fill(b);
    live_.push_back(b);
  }

  void release(std::size_t i) {
    const LiveBlock b = live_[i];
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(i));
    FUZZ_CHECK_MSG(intact(b), "a live block's bytes changed");
    FUZZ_CHECK(model_.deallocate(addr(b.p), b.size));
    backend_.deallocate(b.p, b.size);
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
    FUZZ_CHECK(backend_.hole_count() == model_.hole_count());
    FUZZ_CHECK(backend_.capacity() == model_.capacity());
    const std::vector<Span> want = model_.holes();
    std::size_t k = 0;
    bool same = true;
    backend_.for_each_hole([&](std::byte* start, std::size_t size) {
      if (k >= want.size() || want[k].start != addr(start) || want[k].size != size) same = false;
      ++k;
    });
    FUZZ_CHECK_MSG(same && k == want.size(), "the holes differ from the model");
    std::size_t used = 0;
    // Contents: every block at every 8th step (and each one when it is
    // returned); the cheaper checks at every step.
    const bool contents = (++checks_ % 8) == 0;
    for (const LiveBlock& b : live_) {
      if (contents) FUZZ_CHECK_MSG(intact(b), "a live block's bytes changed");
      FUZZ_CHECK_MSG(!model_.overlaps_hole(addr(b.p), b.rounded), "a live block overlaps a hole");
      used += b.rounded;
    }
    FUZZ_CHECK_MSG(used + backend_.free_bytes() == backend_.capacity(), "live + free != capacity");
  }

  FuzzInput& in_;
  alignas(4096) static inline std::byte buf_[kBufBytes];
  FirstFit backend_;
  FirstFitModel model_;
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
