// The byte reader every fuzz target decodes its input with, and the check macro
// they report failures through.
//
// An input is read front to back as a sequence of small values. Reading past
// the end yields zeros (and `done()` turns true), so every input, even the
// empty one, decodes to some well-defined operation sequence: libFuzzer's
// mutations never produce an "invalid" input, only a different sequence. The
// targets bound their loops by `done()` and by an operation count, so an input
// costs O(its length) operations at most.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace mnemos::fuzz {

class FuzzInput {
 public:
  FuzzInput(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

  // True once every byte has been consumed.
  bool done() const noexcept { return pos_ >= size_; }
  std::size_t remaining() const noexcept { return done() ? 0 : size_ - pos_; }

  std::uint8_t u8() noexcept { return done() ? 0 : data_[pos_++]; }

  // Little-endian, so a dictionary entry spells a value the way a reader sees it.
  std::uint16_t u16() noexcept {
    const std::uint16_t lo = u8();
    return static_cast<std::uint16_t>(lo | (u8() << 8));
  }
  std::uint32_t u32() noexcept {
    const std::uint32_t lo = u16();
    return lo | (static_cast<std::uint32_t>(u16()) << 16);
  }
  std::uint64_t u64() noexcept {
    const std::uint64_t lo = u32();
    return lo | (static_cast<std::uint64_t>(u32()) << 32);
  }

  bool boolean() noexcept { return (u8() & 1) != 0; }

  // A value in [0, n) for 0 < n <= 256, from one byte. Modulo bias is harmless
  // here: the fuzzer steers the bytes, it does not sample them.
  std::size_t pick(std::size_t n) noexcept { return n == 0 ? 0 : u8() % n; }

  // A value in [0, n) for n <= 65536, from two bytes.
  std::size_t pick16(std::size_t n) noexcept { return n == 0 ? 0 : u16() % n; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Aborts with a message naming the broken expectation; libFuzzer records the
// input as a crash artifact. Active in every build type (never compiled out).
[[noreturn]] inline void fuzz_failure(const char* expr, const char* file, int line, const char* what) noexcept {
  std::fprintf(stderr, "\nFUZZ CHECK FAILED: %s\n  at %s:%d\n  %s\n", expr, file, line, what);
  std::fflush(stderr);
  std::abort();
}

}  // namespace mnemos::fuzz

#define FUZZ_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::mnemos::fuzz::fuzz_failure(#cond, __FILE__, __LINE__, ""))
#define FUZZ_CHECK_MSG(cond, what) \
  ((cond) ? static_cast<void>(0) : ::mnemos::fuzz::fuzz_failure(#cond, __FILE__, __LINE__, (what)))
