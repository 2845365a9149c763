// MemoryResource: a std::pmr::memory_resource over a Heap, and the failure
// policy it shares with StdAllocator (mnemos/std_allocator.hpp).
//
//   alignas(64) static std::byte arena[16 * 1024];
//   mnemos::Heap& heap = *mnemos::Heap::bootstrap(arena).value();
//   mnemos::MemoryResource resource(heap);
//   std::pmr::vector<std::pmr::string> names(&resource);   // every byte from `arena`
//
// Hosted and header-only: this is not part of the freestanding core (which
// builds with -fno-exceptions -fno-rtti and never includes it). It is compiled
// in the user's translation unit with the user's flags, and adapts to them:
//
//   * Failure policy. The standard lets do_allocate either return a usable
//     pointer or throw; a null return is not allowed (containers dereference
//     it). So a failed allocation (NoMemory, Locked, TooLarge, InvalidLayout,
//     Closed) throws std::bad_alloc when exceptions are enabled; when they are
//     disabled it calls the allocation-failure handler below, whose default
//     prints one line naming the error and the size and then reports through
//     the fault handler (mnemos/fault.hpp, FaultKind::AllocationFailed; its
//     default aborts), and, if that returns, aborts: never a null pointer into
//     a container. This matches what libstdc++ does for std::allocator under
//     -fno-exceptions.
//   * Locked. try_alloc_raw fails with Locked when another context holds the
//     heap lock: a Guard held anywhere (on this very thread too, where waiting
//     could never end), or another thread's allocation or free in progress. By
//     default that is a failure like NoMemory (bounded time, no spinning, and
//     no deadlock against a Guard held by the caller). Options::locked_retries
//     re-tries a Locked attempt up to that many times at once, which cures the
//     nanosecond collisions of a heap shared between threads.
//   * FIFO fairness. While an async waiter (co_await heap.alloc...) is queued,
//     synchronous allocations fail with NoMemory even if they would fit
//     (README, "Waiting for room"): a container on a heap that also serves
//     waiters sees bad_alloc then.
//   * RTTI. do_is_equal recognises another MemoryResource on the same heap
//     with dynamic_cast when RTTI is on; without RTTI it compares identity
//     only (this == &other), which is still correct (unequal resources make
//     containers copy instead of stealing storage), only slower.
//
// Because these choices depend on the TU's flags, the types live in an inline
// namespace named after them: a program whose TUs disagree gets distinct types
// (a link error if they are mixed) instead of a silent ODR violation.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory_resource>
#include <new>

#include "mnemos/error.hpp"
#include "mnemos/fault.hpp"
#include "mnemos/heap.hpp"
#include "mnemos/layout.hpp"
#include "mnemos/result.hpp"

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define MNEMOS_DETAIL_STD_EXCEPTIONS 1
#else
#define MNEMOS_DETAIL_STD_EXCEPTIONS 0
#endif

#if defined(__cpp_rtti) || defined(__GXX_RTTI)
#define MNEMOS_DETAIL_STD_RTTI 1
#else
#define MNEMOS_DETAIL_STD_RTTI 0
#endif

#if MNEMOS_DETAIL_STD_EXCEPTIONS && MNEMOS_DETAIL_STD_RTTI
#define MNEMOS_DETAIL_STD_ABI std_eh_rtti
#elif MNEMOS_DETAIL_STD_EXCEPTIONS
#define MNEMOS_DETAIL_STD_ABI std_eh
#elif MNEMOS_DETAIL_STD_RTTI
#define MNEMOS_DETAIL_STD_ABI std_rtti
#else
#define MNEMOS_DETAIL_STD_ABI std_plain
#endif

namespace mnemos {

/// What a failed allocation through MemoryResource or StdAllocator reports
/// when exceptions are disabled.
struct AllocFailure {
  Error error;       ///< NoMemory, Locked, TooLarge, InvalidLayout or Closed
  Layout layout;     ///< the request as passed to the heap (size 0 already mapped to 1)
  const Heap* heap;  ///< the heap that refused it
};

/// Called on allocation failure when exceptions are disabled. It may log,
/// reset the device or never return (longjmp, exit, a reboot); if it returns,
/// the allocating call aborts.
using AllocFailureHandler = void (*)(const AllocFailure&);

namespace detail {
// Shared by every TU of the program (an inline variable has one definition),
// whatever their flags. constinit: usable before main, no init-order problem.
// acq_rel exchange / acquire load: a thread that calls the handler it read
// also sees everything its installer wrote before installing it.
inline constinit std::atomic<AllocFailureHandler> g_alloc_failure_handler{nullptr};

// Appends to buf[n..size-1), keeping room for the NUL. Hand-written rather
// than snprintf: no printf machinery pulled into a firmware image, and no
// truncation warnings in the user's TU for a deliberately short buffer.
inline void alloc_failure_put(char* buf, std::size_t size, std::size_t& n, const char* s) noexcept {
  while (*s != '\0' && n + 1 < size) buf[n++] = *s++;
}
inline void alloc_failure_put_number(char* buf, std::size_t size, std::size_t& n, std::uintptr_t v,
                                     unsigned base) noexcept {
  char digits[2 * sizeof v + 2 + 3 * sizeof v];  // enough for base 10 or 16 with "0x"
  std::size_t k = sizeof digits;
  digits[--k] = '\0';
  do {
    digits[--k] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  if (base == 16) {
    digits[--k] = 'x';
    digits[--k] = '0';
  }
  alloc_failure_put(buf, size, n, digits + k);
}
}  // namespace detail

/// Writes the default handler's line (without newline) into buf, always
/// NUL-terminated (truncated to size - 1 characters), e.g.
/// "mnemos-alloc: allocation of 4096 bytes (align 16) failed: NoMemory (heap
/// 0x55d0c0a0)". Returns its length. No allocation. Any thread.
inline std::size_t format_alloc_failure(const AllocFailure& f, char* buf, std::size_t size) noexcept {
  if (size == 0) return 0;
  std::size_t n = 0;
  detail::alloc_failure_put(buf, size, n, "mnemos-alloc: allocation of ");
  detail::alloc_failure_put_number(buf, size, n, f.layout.size, 10);
  detail::alloc_failure_put(buf, size, n, " bytes (align ");
  detail::alloc_failure_put_number(buf, size, n, f.layout.align, 10);
  detail::alloc_failure_put(buf, size, n, ") failed: ");
  detail::alloc_failure_put(buf, size, n, to_string(f.error));
  detail::alloc_failure_put(buf, size, n, " (heap ");
  detail::alloc_failure_put_number(buf, size, n, reinterpret_cast<std::uintptr_t>(f.heap), 16);
  detail::alloc_failure_put(buf, size, n, ")");
  buf[n] = '\0';
  return n;
}

/// The default handler: prints format_alloc_failure's line to stderr, then
/// reports through the fault handler (mnemos::set_fault_handler) as a Fault of
/// kind AllocationFailed with the heap and a null address, and calls
/// std::abort() if that handler returns. Never allocates (a fixed buffer: the
/// heap may be the only allocator there is).
[[noreturn]] inline void default_alloc_failure_handler(const AllocFailure& f) noexcept {
  char line[200];
  const std::size_t n = format_alloc_failure(f, line, sizeof line - 1);
  line[n] = '\n';
  line[n + 1] = '\0';
  std::fputs(line, stderr);
  std::fflush(stderr);
  detail::report_fault(FaultKind::AllocationFailed, nullptr, f.heap);
  std::abort();
}

/// Installs `handler` for every MemoryResource and StdAllocator of the program
/// and returns the previous one (as std::set_new_handler); nullptr restores
/// the default. Only consulted when the allocating TU has exceptions disabled.
/// Any thread; O(1).
inline AllocFailureHandler set_alloc_failure_handler(AllocFailureHandler handler) noexcept {
  const AllocFailureHandler old = detail::g_alloc_failure_handler.exchange(handler, std::memory_order_acq_rel);
  return old != nullptr ? old : &default_alloc_failure_handler;
}

/// The handler in force, never nullptr. Any thread.
inline AllocFailureHandler alloc_failure_handler() noexcept {
  const AllocFailureHandler h = detail::g_alloc_failure_handler.load(std::memory_order_acquire);
  return h != nullptr ? h : &default_alloc_failure_handler;
}

inline namespace MNEMOS_DETAIL_STD_ABI {

// Not `detail`: a second mnemos::detail reachable through the inline
// namespace would make every `detail::` in the core ambiguous.
namespace std_detail {

// The failure policy. Exceptions on: std::bad_alloc. Off: the handler, then
// abort if it returns, so the caller never sees a null pointer.
[[noreturn]] inline void std_alloc_failed(const AllocFailure& failure) {
#if MNEMOS_DETAIL_STD_EXCEPTIONS
  (void)failure;
  throw std::bad_alloc();
#else
  alloc_failure_handler()(failure);
  std::abort();
#endif
}

// The request the heap sees: the standard allows size 0 (and wants a unique
// pointer back), the heap calls it InvalidLayout, so 0 becomes 1. Deallocation
// maps the same way, so the block is freed with the layout it was allocated
// with (MNEMOS_HARDENING checks that).
constexpr Layout std_layout(std::size_t bytes, std::size_t alignment) noexcept {
  return Layout{bytes == 0 ? 1 : bytes, alignment};
}

// The heap's sync path with the Locked policy: up to `locked_retries` more
// attempts while the failure is Locked, then the failure policy.
inline void* std_allocate(Heap& heap, Layout layout, unsigned locked_retries) {
  Result<void*> r = heap.try_alloc_raw(layout);
  for (unsigned i = 0; i < locked_retries && !r && r.error() == Error::Locked; ++i) r = heap.try_alloc_raw(layout);
  if (!r) std_alloc_failed(AllocFailure{r.error(), layout, &heap});
  return *r;
}

}  // namespace std_detail

/// How a MemoryResource allocates (spelled MemoryResource::Options; at
/// namespace scope so that it can be a default argument of its constructor).
struct MemoryResourceOptions {
  /// Extra immediate attempts while try_alloc_raw fails with Locked (see the
  /// header comment). 0: Locked is a failure at once. Each attempt costs two
  /// atomic RMWs; attempts never sleep.
  unsigned locked_retries = 0;
};

/// A std::pmr::memory_resource whose bytes come from one Heap.
///
/// Not copyable (pmr containers hold a pointer to it: it must outlive them,
/// and the heap must outlive it). Every member may be called from any thread;
/// the heap synchronizes. Deallocation may also happen from an interrupt
/// handler (Heap::free_raw never blocks), though pmr containers rarely do.
class MemoryResource final : public std::pmr::memory_resource {
 public:
  /// The constructor's options (MemoryResourceOptions).
  using Options = MemoryResourceOptions;

  /// Serves allocations from `heap`, which must outlive this resource and
  /// every block it hands out. O(1), no allocation.
  explicit MemoryResource(Heap& heap, Options options = {}) noexcept : heap_(&heap), options_(options) {}
  MemoryResource(const MemoryResource&) = delete;
  MemoryResource& operator=(const MemoryResource&) = delete;

  /// The heap behind this resource.
  Heap& heap() const noexcept { return *heap_; }
  /// The options it was built with.
  Options options() const noexcept { return options_; }

 private:
  /// A block of `bytes` (0 is served as 1) aligned to `alignment` (any power
  /// of two). Fails, by the policy above, with NoMemory (no room now, or async
  /// waiters queued), Locked (after the retries), TooLarge, InvalidLayout
  /// (alignment not a power of two, size overflow) or Closed. Cost: the heap's
  /// try_alloc_raw (first fit O(free blocks), TLSF O(1)) per attempt.
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    return std_detail::std_allocate(*heap_, std_detail::std_layout(bytes, alignment), options_.locked_retries);
  }

  /// Heap::free_raw: never blocks, never fails (a block of a locked heap is
  /// deferred). A bad pointer or layout goes to the fault handler
  /// (mnemos/fault.hpp) under MNEMOS_HARDENING.
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    Heap::free_raw(p, std_detail::std_layout(bytes, alignment));
  }

  /// Equal to another MemoryResource on the same heap (memory from one may be
  /// freed by the other); without RTTI, only to itself.
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    if (this == &other) return true;
#if MNEMOS_DETAIL_STD_RTTI
    // dynamic_cast, not a static one: `other` may be any memory_resource.
    const auto* same_kind = dynamic_cast<const MemoryResource*>(&other);
    return same_kind != nullptr && same_kind->heap_ == heap_;
#else
    return false;
#endif
  }

  Heap* heap_;
  Options options_;
};

}  // namespace MNEMOS_DETAIL_STD_ABI
}  // namespace mnemos
