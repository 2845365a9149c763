// The fault handler: storage, the default (print one line, abort), reporting.
#include "mnemos/fault.hpp"

#include <cstdio>
#include <cstdlib>

#include "mnemos/config.hpp"
#include "mnemos/detail/align.hpp"
#include "mnemos/detail/hardening.hpp"

#if !MNEMOS_USE_RELACY
#include <atomic>
#endif

namespace mnemos {

namespace detail {
// Only its address matters (detail/hardening.hpp: header_secret).
extern const char kHeaderSecretAnchor = 0;
}  // namespace detail

namespace {

#if MNEMOS_USE_RELACY
// Relacy replaces std::atomic; the interleaving tests never change the handler.
FaultHandler g_handler = nullptr;
FaultHandler load_handler() noexcept { return g_handler; }
FaultHandler exchange_handler(FaultHandler h) noexcept {
  FaultHandler old = g_handler;
  g_handler = h;
  return old;
}
#else
// acq_rel exchange / acquire load: a thread that calls the handler it reads
// also sees everything its installer wrote before installing it (the
// handler's own state, e.g. a test's record).
constinit std::atomic<FaultHandler> g_handler{nullptr};
FaultHandler load_handler() noexcept { return g_handler.load(std::memory_order_acquire); }
FaultHandler exchange_handler(FaultHandler h) noexcept { return g_handler.exchange(h, std::memory_order_acq_rel); }
#endif

// Appends s to buf[n..size-1), keeping room for the NUL.
void put(char* buf, std::size_t size, std::size_t& n, const char* s) noexcept {
  while (*s != '\0' && n + 1 < size) buf[n++] = *s++;
}
void put_hex(char* buf, std::size_t size, std::size_t& n, const void* p) noexcept {
  char digits[2 + 2 * sizeof(std::uintptr_t) + 1];
  std::size_t k = 0;
  digits[k++] = '0';
  digits[k++] = 'x';
  std::uintptr_t v = detail::addr(p);
  bool started = false;
  for (int shift = static_cast<int>(8 * sizeof v) - 4; shift >= 0; shift -= 4) {
    const unsigned d = static_cast<unsigned>((v >> shift) & 0xF);
    if (d != 0 || started || shift == 0) {
      digits[k++] = "0123456789abcdef"[d];
      started = true;
    }
  }
  digits[k] = '\0';
  put(buf, size, n, digits);
}
void put_heap(char* buf, std::size_t size, std::size_t& n, const Heap* heap) noexcept {
  if (heap == nullptr) {
    put(buf, size, n, " (heap unknown)");
    return;
  }
  put(buf, size, n, " (heap ");
  put_hex(buf, size, n, heap);
  put(buf, size, n, ")");
}

}  // namespace

std::size_t format_fault(const Fault& f, char* buf, std::size_t size) noexcept {
  if (size == 0) return 0;
  std::size_t n = 0;
  put(buf, size, n, "mnemos-alloc: ");
  switch (f.kind) {
    case FaultKind::DoubleFree:
      put(buf, size, n, "double free of ");
      put_hex(buf, size, n, f.address);
      break;
    case FaultKind::ForeignPointer:
      put(buf, size, n, "free of ");
      put_hex(buf, size, n, f.address);
      put(buf, size, n, ", which is not a live block (a foreign or interior pointer)");
      break;
    case FaultKind::CorruptHeader:
      put(buf, size, n, "corrupt header before ");
      put_hex(buf, size, n, f.address);
      put(buf, size, n, " (overwritten by an overflow?)");
      break;
    case FaultKind::Misaligned:
      put(buf, size, n, "free of misaligned pointer ");
      put_hex(buf, size, n, f.address);
      break;
    case FaultKind::BadLayout:
      put(buf, size, n, "free of ");
      put_hex(buf, size, n, f.address);
      put(buf, size, n, " with a layout it was not allocated with");
      break;
    case FaultKind::CorruptArena:
      put(buf, size, n, "corrupt arena: deferred block ");
      put_hex(buf, size, n, f.address);
      put(buf, size, n, " was overwritten while queued");
      break;
    case FaultKind::AllocationFailed:
      put(buf, size, n, "allocation failed with no error to return (exceptions disabled)");
      break;
  }
  put_heap(buf, size, n, f.heap);
  buf[n] = '\0';
  return n;
}

void default_fault_handler(const Fault& fault) noexcept {
  // A fixed buffer: no allocation on the way to abort (the heap may be the
  // only allocator there is).
  char line[256];
  const std::size_t n = format_fault(fault, line, sizeof line - 1);
  line[n] = '\n';
  line[n + 1] = '\0';
  std::fputs(line, stderr);
  std::fflush(stderr);
  std::abort();
}

FaultHandler set_fault_handler(FaultHandler handler) noexcept {
  const FaultHandler old = exchange_handler(handler);
  return old != nullptr ? old : &default_fault_handler;
}

FaultHandler fault_handler() noexcept {
  const FaultHandler h = load_handler();
  return h != nullptr ? h : &default_fault_handler;
}

namespace detail {
void report_fault(FaultKind kind, const void* address, const Heap* heap) noexcept {
  const Fault fault{kind, address, heap};
  fault_handler()(fault);
}
}  // namespace detail

}  // namespace mnemos
