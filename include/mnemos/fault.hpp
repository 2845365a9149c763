// Misuse reports: what a free (or a drain, or check()) found wrong, and the
// handler that is told about it.
//
// With MNEMOS_HARDENING (mnemos/config.hpp, on by default on 64-bit targets)
// every free validates the pointer and its header before it touches the arena
// (detail/hardening.hpp). On a bad free the fault handler is called and the
// free is ignored: no byte of the arena changes, so a handler that returns
// (a test's, or a safety-critical build's that logs and carries on) leaves the
// heap exactly as it was, minus nothing but the bad call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mnemos {

class Heap;

enum class FaultKind : std::uint8_t {
  DoubleFree,      // the block was already freed (its header was scrubbed)
  ForeignPointer,  // no live block starts there: a stack, global, other
                   // allocator's or interior pointer (or a double free whose
                   // header the free list overwrote, see detail/hardening.hpp)
  CorruptHeader,   // a live header with a byte changed (an overflow into it)
  Misaligned,      // the pointer is not aligned to the word or to the layout
  BadLayout,       // an impossible layout, or not the block's (size class or
                   // alignment differs from the allocation's)
  CorruptArena,    // a deferred block's node was overwritten while it waited
};

constexpr const char* to_string(FaultKind k) noexcept {
  switch (k) {
    case FaultKind::DoubleFree: return "DoubleFree";
    case FaultKind::ForeignPointer: return "ForeignPointer";
    case FaultKind::CorruptHeader: return "CorruptHeader";
    case FaultKind::Misaligned: return "Misaligned";
    case FaultKind::BadLayout: return "BadLayout";
    case FaultKind::CorruptArena: return "CorruptArena";
  }
  return "?";
}

struct Fault {
  FaultKind kind;
  const void* address;  // the pointer freed, or the deferred node at fault
  const Heap* heap;     // the heap concerned, or nullptr when it cannot be known
};

using FaultHandler = void (*)(const Fault&);

// Installs `handler` for every heap and returns the previous one (as
// std::set_new_handler); nullptr restores the default, which writes one line
// to stderr, e.g.
//   mnemos-alloc: double free of 0x7f...10 (heap 0x7f...00)
// and calls std::abort(). A handler may return: the bad call is then ignored.
// It is called on the thread (or interrupt) that made the bad free, or that
// drained the bad deferred block (then with the heap's lock held: it must not
// allocate from or free to that heap). Any thread; the handler is published
// with release and read with acquire.
FaultHandler set_fault_handler(FaultHandler handler) noexcept;

// The handler in force (never nullptr: the default when none was set).
FaultHandler fault_handler() noexcept;

// The default handler (prints and aborts), for handlers that chain to it.
[[noreturn]] void default_fault_handler(const Fault& fault) noexcept;

// Formats the default handler's line (without the newline) into buf, always
// NUL-terminated; returns its length. No allocation.
std::size_t format_fault(const Fault& fault, char* buf, std::size_t size) noexcept;

namespace detail {
// Calls the handler in force. Never allocates.
void report_fault(FaultKind kind, const void* address, const Heap* heap) noexcept;
}  // namespace detail

}  // namespace mnemos
