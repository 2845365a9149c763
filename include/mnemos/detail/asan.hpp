// AddressSanitizer hooks for the arena: poisoning of free, never-allocated and
// header bytes, so that a user's use-after-free or overflow *inside* the arena
// is reported (ASan alone sees the arena as one valid object).
//
// Under ASan (GCC's __SANITIZE_ADDRESS__, clang's
// __has_feature(address_sanitizer)) these wrap <sanitizer/asan_interface.h>;
// otherwise every function is an empty inline one (the access helpers a plain
// load or store), so a normal build has neither a cost nor a change in
// behaviour or layout.
//
// Granularity. ASan tracks addressability per 8-byte granule: a granule is
// either wholly poisoned, wholly addressable, or addressable in its first k
// bytes only. Poisoning [p, p + n) is exact when p and n are multiples of 8
// (every block, hole, free-list node and, on LP64, header word is); a range
// that ends inside a granule leaves that granule's addressable part alone, and
// unpoisoning makes the leading part of the last granule addressable. So the
// unaligned edges err towards "addressable": never a false report, at worst a
// missed one (e.g. a 4-byte header on a 32-bit target shares its granule with
// the payload and cannot be poisoned alone).
//
// Threads. Shadow bytes are written with plain stores. Every caller touches
// only the shadow of bytes it owns at that moment (the lock holder: the
// backend's free bytes and the blocks it carves or returns; a freeing thread:
// its own block), and blocks are granule-aligned multiples of the granule, so
// no two threads ever write the shadow of the same granule concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

#if defined(__SANITIZE_ADDRESS__)
#define MNEMOS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MNEMOS_ASAN 1
#endif
#endif
#ifndef MNEMOS_ASAN
#define MNEMOS_ASAN 0
#endif

#if MNEMOS_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace mnemos::detail {

// Whether this translation unit is built with AddressSanitizer.
inline constexpr bool kAsan = MNEMOS_ASAN != 0;

#if MNEMOS_ASAN

inline constexpr std::size_t kAsanGranule = 8;  // ASan's shadow scale (1 shadow byte per 8)

// Makes [p, p + n) unaddressable: any user access is reported. O(n / 8).
inline void asan_poison(const volatile void* p, std::size_t n) noexcept {
  ASAN_POISON_MEMORY_REGION(p, n);
}
// Makes [p, p + n) addressable again. O(n / 8).
inline void asan_unpoison(const volatile void* p, std::size_t n) noexcept {
  ASAN_UNPOISON_MEMORY_REGION(p, n);
}

// Opens an object of n <= 16 bytes that the allocator keeps in poisonable
// memory (a free-list node, a header word) for one access, and on destruction
// restores its poisoning: for each granule the object covers, the bytes from
// the first one that was poisoned to the object's end in that granule are
// poisoned again (ASan's states are "first k bytes addressable", so that suffix
// is the whole poisoned part). Exact for a granule-aligned object, which all of
// the allocator's are on LP64; bytes before an unaligned object in its first
// granule may be left addressable (never a false report). An object in memory
// nobody poisoned (a bare backend in a unit test, a foreign pointer) is left
// as it was: no shadow byte is written.
class AsanOpen {
 public:
  static constexpr std::size_t kMaxGranules = 3;  // a 16-byte object straddling granules

  AsanOpen(const volatile void* p, std::size_t n) noexcept {
    // Sound: integer view of the address only to find granule boundaries; all
    // pointers handed to ASan are derived from p itself.
    const auto* bytes = static_cast<const volatile char*>(p);
    const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
    std::size_t off = 0;
    while (off < n && count_ < kMaxGranules) {
      const std::size_t in_granule = kAsanGranule - static_cast<std::size_t>((a + off) % kAsanGranule);
      const std::size_t len = in_granule < n - off ? in_granule : n - off;
      const void* first = __asan_region_is_poisoned(const_cast<char*>(bytes + off), len);
      if (first != nullptr) {
        poisoned_[count_] = static_cast<const volatile char*>(first);
        end_[count_] = bytes + off + len;
        ++count_;
      }
      off += len;
    }
    if (count_ != 0) asan_unpoison(p, n);
  }
  ~AsanOpen() {
    for (std::size_t i = 0; i < count_; ++i) {
      asan_poison(poisoned_[i], static_cast<std::size_t>(end_[i] - poisoned_[i]));
    }
  }
  AsanOpen(const AsanOpen&) = delete;
  AsanOpen& operator=(const AsanOpen&) = delete;

 private:
  const volatile char* poisoned_[kMaxGranules]{};
  const volatile char* end_[kMaxGranules]{};
  std::size_t count_ = 0;
};

#else  // !MNEMOS_ASAN

inline void asan_poison(const volatile void*, std::size_t) noexcept {}
inline void asan_unpoison(const volatile void*, std::size_t) noexcept {}

#endif  // MNEMOS_ASAN

// Reads the object at p, which may lie in poisoned memory (see AsanOpen).
// Without ASan: exactly `*p`.
template <class T>
T asan_load(const T* p) noexcept {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16, "small plain objects only (AsanOpen)");
#if MNEMOS_ASAN
  const AsanOpen open(p, sizeof(T));
  return *p;  // the copy is made before `open` restores the poisoning
#else
  return *p;
#endif
}

// Constructs a copy of value at p, which may lie in poisoned memory (see
// AsanOpen), and returns the pointer to the new object. Sound as placement
// whenever the caller's own placement would be (p aligned, sized and owned).
// Without ASan: exactly `::new (p) T(value)`.
template <class T>
T* asan_store(void* p, const T& value) noexcept {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16, "small plain objects only (AsanOpen)");
#if MNEMOS_ASAN
  const AsanOpen open(p, sizeof(T));
  return ::new (p) T(value);
#else
  return ::new (p) T(value);
#endif
}

// Runs f(*p) with the object at p, which may lie in poisoned memory, open for
// the call (see AsanOpen): for updating some fields in place. Without ASan:
// exactly `f(*p)`.
template <class T, class F>
void asan_modify(T* p, F&& f) noexcept {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16, "small plain objects only (AsanOpen)");
#if MNEMOS_ASAN
  const AsanOpen open(p, sizeof(T));
#endif
  f(*p);
}

}  // namespace mnemos::detail
