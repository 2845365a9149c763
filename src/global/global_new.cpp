// mnemos::global (opt-in): every replaceable global operator new / delete
// (plain, array, aligned, nothrow, sized) served by one Heap on a static arena.
//
// Not part of the freestanding core: this TU is hosted (std::new_handler,
// std::bad_alloc, std::this_thread::yield) and is compiled with exceptions
// when the build has them. Configuration (compile definitions of this file):
//   MNEMOS_GLOBAL_ARENA_SIZE  bytes of the static arena (default 1 MiB)
//   MNEMOS_GLOBAL_BACKEND     FirstFit or Tlsf (default Tlsf: a general-purpose
//                             new sees every size, O(1) keeps it bounded)
//
// Layout of one `new` (u = the pointer returned, A = max(16, alignment)):
//
//   [ header ][ ... padding ... | size | A ][ the caller's bytes ]
//             ^ block (A-aligned)  ^ u - 16 ^ u (A-aligned)
//
// Unsized `delete u` has to free the block with the layout it was allocated
// with (MNEMOS_HARDENING checks it), and the heap's header does not store the
// size, so the request is recorded in the 16 bytes below u. A sized or aligned
// delete is checked against that record.
//
// Limits (docs/std-integration.md): Locked is spun on (yielding after a few
// tries): a thread that holds a Guard on global_heap() and then calls `new`
// spins forever. While an async waiter is queued on the global heap, `new`
// fails (FIFO) and goes through the new_handler loop. Not for ASan/TSan
// builds, whose runtimes provide operator new themselves.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <thread>

#include "mnemos/fault.hpp"
#include "mnemos/global.hpp"
#include "mnemos/heap.hpp"

#ifndef MNEMOS_GLOBAL_ARENA_SIZE
#define MNEMOS_GLOBAL_ARENA_SIZE (1024 * 1024)
#endif
#ifndef MNEMOS_GLOBAL_BACKEND
#define MNEMOS_GLOBAL_BACKEND Tlsf
#endif

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define MNEMOS_GLOBAL_EXCEPTIONS 1
#else
#define MNEMOS_GLOBAL_EXCEPTIONS 0
#endif

namespace mnemos {

namespace {

constexpr std::size_t kArenaSize = MNEMOS_GLOBAL_ARENA_SIZE;
static_assert(kArenaSize >= 4096, "MNEMOS_GLOBAL_ARENA_SIZE: at least 4 KiB (the heap state, TLSF metadata, blocks)");
static_assert(alignof(Heap) <= 64);

// What `new` records below the pointer it returns.
struct Record {
  std::size_t size;   // the caller's request
  std::size_t align;  // A: the block's alignment and the prefix's size
};
static_assert(sizeof(Record) <= 16, "the record must fit the smallest prefix");

// Static storage with a constant initializer: zeroed before any code runs, so
// it exists however early the first `new` comes (another TU's static
// initializer, before main). Never destroyed: deletes during static
// destruction, after main, still find it.
alignas(64) constinit std::byte g_arena[kArenaSize]{};

Heap* bootstrap_global() noexcept {
  Result<Heap*> made =
      Heap::bootstrap(std::span<std::byte>(g_arena), Heap::Options{.backend = Backend::MNEMOS_GLOBAL_BACKEND});
  if (!made) {  // unreachable given the static_asserts: a static arena is aligned and below 2^48
    std::fprintf(stderr, "mnemos-alloc: cannot bootstrap the global heap: %s\n", to_string(made.error()));
    std::abort();
  }
  return *made;
}

std::uintptr_t addr(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

// One attempt (spinning over Locked): the caller's pointer, or nullptr.
void* try_new(std::size_t size, std::size_t alignment) noexcept {
  const std::size_t a = global_new_prefix(alignment);  // also the block's alignment
  if (size > SIZE_MAX - a) return nullptr;              // the prefix would overflow the size
  Heap& heap = global_heap();
  const Layout layout{a + size, a};
  Result<void*> r = heap.try_alloc_raw(layout);
  // Locked is transient unless this very thread holds a Guard (documented):
  // another thread is inside an allocation or a free, a few hundred
  // nanoseconds. Spin; yield after a while in case the holder was preempted.
  // An operator new cannot wait on a future.
  for (unsigned spins = 1; !r && r.error() == Error::Locked; ++spins) {
    if (spins % 64 == 0) std::this_thread::yield();
    r = heap.try_alloc_raw(layout);
  }
  if (!r) return nullptr;  // NoMemory, TooLarge, InvalidLayout (alignment), Closed
  // The block is A-aligned and at least a + size bytes, so u = block + a is
  // A-aligned and the record's 16 bytes lie inside the block, below u.
  std::byte* const user = static_cast<std::byte*>(*r) + a;
  ::new (static_cast<void*>(user - sizeof(Record))) Record{size, a};
  return user;
}

[[noreturn]] void out_of_memory() {
#if MNEMOS_GLOBAL_EXCEPTIONS
  throw std::bad_alloc();
#else
  std::fputs("mnemos-alloc: global operator new: out of memory\n", stderr);
  std::abort();
#endif
}

// The standard's loop ([new.delete.single]): try; on failure call the
// new_handler (which may free memory, throw bad_alloc or end the program);
// with no handler, fail.
void* new_or_fail(std::size_t size, std::size_t alignment) {
  for (;;) {
    if (void* p = try_new(size, alignment)) return p;
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) out_of_memory();
    handler();
  }
}

void* new_or_null(std::size_t size, std::size_t alignment) noexcept {
#if MNEMOS_GLOBAL_EXCEPTIONS
  try {
    return new_or_fail(size, alignment);
  } catch (...) {  // bad_alloc, or whatever a new_handler threw
    return nullptr;
  }
#else
  for (;;) {
    if (void* p = try_new(size, alignment)) return p;
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) return nullptr;
    handler();
  }
#endif
}

constexpr std::size_t kUnknown = 0;  // no size / alignment given by the delete expression

// Every delete. A pointer the arena cannot hold, or whose record or header is
// wrong, goes to the fault handler (mnemos/fault.hpp) and the call is ignored:
// with no size we could only guess, and a guess would corrupt the arena.
void delete_impl(void* p, std::size_t size, std::size_t alignment) noexcept {
  if (p == nullptr) return;
  // Every u we return is at least 16 bytes past the arena's start (the heap's
  // state comes first), so the record below it is inside the arena.
  if (!global_heap_owns(p) || addr(p) < addr(g_arena) + 16) {
    detail::report_fault(FaultKind::ForeignPointer, p, nullptr);
    return;
  }
  Heap* const heap = &global_heap();
  if (addr(p) % 16 != 0) {
    detail::report_fault(FaultKind::Misaligned, p, heap);
    return;
  }
  // u - 16 is inside the arena (checked above). Copied as bytes, not read
  // through a Record*: for a bad pointer no Record lives there, and whatever
  // the bytes hold, the checks below or free_raw's reject the call.
  Record record;
  std::memcpy(&record, static_cast<const std::byte*>(p) - sizeof(Record), sizeof record);
  const bool plausible = record.align >= 16 && (record.align & (record.align - 1)) == 0 &&
                         record.align <= kArenaSize && record.size <= kArenaSize &&
                         addr(p) % record.align == 0 && addr(p) - record.align >= addr(g_arena);
  if (!plausible) {  // an underflow of the block wrote over the record, or a double free
    detail::report_fault(FaultKind::CorruptHeader, p, heap);
    return;
  }
  if ((size != kUnknown && size != record.size) ||
      (alignment != kUnknown && global_new_prefix(alignment) != record.align)) {
    detail::report_fault(FaultKind::BadLayout, p, heap);
    return;
  }
  // free_raw validates the heap's own header (double free, foreign, smashed)
  // and never blocks: a block of a locked heap is deferred.
  Heap::free_raw(static_cast<std::byte*>(p) - record.align, Layout{record.align + record.size, record.align});
}

constexpr std::size_t kDefaultAlign = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

}  // namespace

extern const std::size_t global_arena_size = kArenaSize;

Heap& global_heap() noexcept {
  // A function-local static: the runtime makes its first initialization
  // thread-safe (__cxa_guard_acquire, which does not allocate), and it is
  // initialized on first use, so an operator new called by another TU's
  // static initializer, before this TU's own, still finds the heap.
  // bootstrap never calls operator new, so this cannot recurse.
  static Heap* const heap = bootstrap_global();
  return *heap;
}

bool global_heap_owns(const void* p) noexcept {
  return addr(p) >= addr(g_arena) && addr(p) < addr(g_arena) + kArenaSize;
}

}  // namespace mnemos

// --- the replaceable forms ---------------------------------------------------
// Sized and aligned forms all reach delete_impl, which checks what they claim.

void* operator new(std::size_t size) { return mnemos::new_or_fail(size, mnemos::kDefaultAlign); }
void* operator new[](std::size_t size) { return mnemos::new_or_fail(size, mnemos::kDefaultAlign); }
void* operator new(std::size_t size, std::align_val_t align) {
  return mnemos::new_or_fail(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return mnemos::new_or_fail(size, static_cast<std::size_t>(align));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return mnemos::new_or_null(size, mnemos::kDefaultAlign);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return mnemos::new_or_null(size, mnemos::kDefaultAlign);
}
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return mnemos::new_or_null(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return mnemos::new_or_null(size, static_cast<std::size_t>(align));
}

void operator delete(void* p) noexcept { mnemos::delete_impl(p, mnemos::kUnknown, mnemos::kUnknown); }
void operator delete[](void* p) noexcept { mnemos::delete_impl(p, mnemos::kUnknown, mnemos::kUnknown); }
void operator delete(void* p, std::size_t size) noexcept { mnemos::delete_impl(p, size, mnemos::kUnknown); }
void operator delete[](void* p, std::size_t size) noexcept { mnemos::delete_impl(p, size, mnemos::kUnknown); }
void operator delete(void* p, std::align_val_t align) noexcept {
  mnemos::delete_impl(p, mnemos::kUnknown, static_cast<std::size_t>(align));
}
void operator delete[](void* p, std::align_val_t align) noexcept {
  mnemos::delete_impl(p, mnemos::kUnknown, static_cast<std::size_t>(align));
}
void operator delete(void* p, std::size_t size, std::align_val_t align) noexcept {
  mnemos::delete_impl(p, size, static_cast<std::size_t>(align));
}
void operator delete[](void* p, std::size_t size, std::align_val_t align) noexcept {
  mnemos::delete_impl(p, size, static_cast<std::size_t>(align));
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  mnemos::delete_impl(p, mnemos::kUnknown, mnemos::kUnknown);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  mnemos::delete_impl(p, mnemos::kUnknown, mnemos::kUnknown);
}
void operator delete(void* p, std::align_val_t align, const std::nothrow_t&) noexcept {
  mnemos::delete_impl(p, mnemos::kUnknown, static_cast<std::size_t>(align));
}
void operator delete[](void* p, std::align_val_t align, const std::nothrow_t&) noexcept {
  mnemos::delete_impl(p, mnemos::kUnknown, static_cast<std::size_t>(align));
}
