// The owners the property tests hold, type-erased so that a command sequence
// can keep any mix of them: raw blocks, Box, Arc, Array, FixedVec. Each knows
// its payload address and writes / verifies a per-block pattern.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "mnemos/alloc.hpp"
#include "support.hpp"

namespace mnemos::proptest {

// ---- the owned types ------------------------------------------------------------

struct Msg {
  std::uint32_t a;
  std::uint32_t b;
};

struct alignas(64) Big64 {
  std::uint8_t bytes[100];
};

// Element i of a block with seed s (the typed owners' pattern).
inline std::uint64_t value_of(std::uint32_t seed, std::size_t i) {
  std::uint64_t z = (std::uint64_t{seed} << 20) + i + 0x9e3779b97f4a7c15u;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

template <class T>
Layout array_layout(std::size_t n) {
  return Layout::array_of<T>(n).value_or(Layout{0, alignof(T)});  // as detail::array_layout
}

// One owner of the test, type-erased over the owner kinds.
class Owner {
 public:
  virtual ~Owner() = default;
  virtual void* payload() const = 0;
  virtual void write(std::uint32_t seed) = 0;
  // A description of the first difference from the pattern of `seed`, or "".
  virtual std::string mismatch(std::uint32_t seed) const = 0;
};

class RawOwner final : public Owner {
 public:
  RawOwner(void* p, Layout l) : p_(p), layout_(l) {}
  ~RawOwner() override {
    if (p_ != nullptr) Heap::free_raw(p_, layout_);
  }
  RawOwner(const RawOwner&) = delete;
  RawOwner& operator=(const RawOwner&) = delete;
  void* payload() const override { return p_; }
  void write(std::uint32_t seed) override { fill_pattern(p_, layout_.size, seed); }
  std::string mismatch(std::uint32_t seed) const override {
    const std::size_t i = pattern_mismatch(p_, layout_.size, seed);
    return i == layout_.size ? "" : "byte " + std::to_string(i);
  }
  // guard.free_raw: the owner is then empty.
  void free_with(Heap::Guard& guard) {
    guard.free_raw(p_, layout_);
    p_ = nullptr;
  }

 private:
  void* p_;
  Layout layout_;
};

class BoxU64Owner final : public Owner {
 public:
  explicit BoxU64Owner(Box<std::uint64_t> b) : box_(std::move(b)) {}
  void* payload() const override { return box_.get(); }
  void write(std::uint32_t seed) override { *box_ = value_of(seed, 0); }
  std::string mismatch(std::uint32_t seed) const override { return *box_ == value_of(seed, 0) ? "" : "value"; }

 private:
  Box<std::uint64_t> box_;
};

class BoxMsgOwner final : public Owner {
 public:
  explicit BoxMsgOwner(Box<Msg> b) : box_(std::move(b)) {}
  void* payload() const override { return box_.get(); }
  void write(std::uint32_t seed) override {
    box_->a = static_cast<std::uint32_t>(value_of(seed, 0));
    box_->b = static_cast<std::uint32_t>(value_of(seed, 1));
  }
  std::string mismatch(std::uint32_t seed) const override {
    const bool ok = box_->a == static_cast<std::uint32_t>(value_of(seed, 0)) &&
                    box_->b == static_cast<std::uint32_t>(value_of(seed, 1));
    return ok ? "" : "value";
  }

 private:
  Box<Msg> box_;
};

class BoxBigOwner final : public Owner {
 public:
  explicit BoxBigOwner(Box<Big64> b) : box_(std::move(b)) {}
  void* payload() const override { return box_.get(); }
  void write(std::uint32_t seed) override { fill_pattern(box_->bytes, sizeof box_->bytes, seed); }
  std::string mismatch(std::uint32_t seed) const override {
    const std::size_t i = pattern_mismatch(box_->bytes, sizeof box_->bytes, seed);
    return i == sizeof box_->bytes ? "" : "byte " + std::to_string(i);
  }

 private:
  Box<Big64> box_;
};

class ArcOwner final : public Owner {
 public:
  explicit ArcOwner(Arc<Msg> a) : arc_(std::move(a)) {}
  // The block starts with the ArcInner that holds the count and the value.
  void* payload() const override {
    static_assert(std::is_standard_layout_v<detail::ArcInner<Msg>>);
    return reinterpret_cast<std::byte*>(arc_.get()) - offsetof(detail::ArcInner<Msg>, value);
  }
  void write(std::uint32_t seed) override {
    arc_->a = static_cast<std::uint32_t>(value_of(seed, 0));
    arc_->b = static_cast<std::uint32_t>(value_of(seed, 1));
  }
  std::string mismatch(std::uint32_t seed) const override {
    const bool ok = arc_->a == static_cast<std::uint32_t>(value_of(seed, 0)) &&
                    arc_->b == static_cast<std::uint32_t>(value_of(seed, 1));
    return ok ? "" : "value";
  }
  const Arc<Msg>& arc() const { return arc_; }

 private:
  Arc<Msg> arc_;
};

template <class T>
class ArrayOwner final : public Owner {
 public:
  explicit ArrayOwner(Array<T> a) : array_(std::move(a)) {}
  void* payload() const override { return array_.data(); }
  void write(std::uint32_t seed) override {
    for (std::size_t i = 0; i < array_.size(); ++i) array_[i] = static_cast<T>(value_of(seed, i));
  }
  std::string mismatch(std::uint32_t seed) const override {
    for (std::size_t i = 0; i < array_.size(); ++i) {
      if (array_[i] != static_cast<T>(value_of(seed, i))) return "element " + std::to_string(i);
    }
    return "";
  }
  const Array<T>& array() const { return array_; }

 private:
  Array<T> array_;
};

class VecOwner final : public Owner {
 public:
  explicit VecOwner(FixedVec<std::uint64_t> v) : vec_(std::move(v)) {}
  void* payload() const override { return vec_.data(); }
  void write(std::uint32_t seed) override {
    for (std::size_t i = 0; i < vec_.size(); ++i) vec_[i] = value_of(seed, i);
  }
  std::string mismatch(std::uint32_t seed) const override {
    for (std::size_t i = 0; i < vec_.size(); ++i) {
      if (vec_[i] != value_of(seed, i)) return "element " + std::to_string(i);
    }
    return "";
  }
  FixedVec<std::uint64_t>& vec() { return vec_; }

 private:
  FixedVec<std::uint64_t> vec_;
};

}  // namespace mnemos::proptest
