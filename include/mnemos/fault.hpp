/// @file
/// @brief Misuse reports: what a free (or a drain, or check()) found wrong, and the
/// handler that is told about it.
///
/// With MNEMOS_HARDENING (mnemos/config.hpp, on by default on 64-bit targets)
/// every free validates the pointer and its header before it touches the arena
/// (detail/hardening.hpp). On a bad free the fault handler is called and the
/// free is ignored: no byte of the arena changes, so a handler that returns
/// (a test's, or a safety-critical build's that logs and carries on) leaves the
/// heap exactly as it was, minus nothing but the bad call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mnemos {

class Heap;

/// What kind of misuse a Fault reports.
enum class FaultKind : std::uint8_t {
  DoubleFree,      ///< the block was already freed (and not handed out again
                   ///< since): any backend, alignment or route (detail/hardening.hpp)
  ForeignPointer,  ///< no live block starts there: a stack, global, other
                   ///< allocator's or interior pointer
  CorruptHeader,   ///< a live header with a byte changed (an overflow into it)
  Misaligned,      ///< the pointer is not aligned to the word or to the layout
  BadLayout,       ///< an impossible layout, or not the block's (size class or
                   ///< alignment differs from the allocation's)
  CorruptArena,    ///< a deferred block's node was overwritten while it waited
  AllocationFailed,  ///< a hosted adapter (MemoryResource, StdAllocator) could
                     ///< not allocate and, with exceptions disabled, has no
                     ///< error to return: address is nullptr; the call then
                     ///< aborts if the handler returns (mnemos/memory_resource.hpp)
};

/// The enumerator's name ("DoubleFree"), or "?" for any other value.
constexpr const char* to_string(FaultKind k) noexcept {
  switch (k) {
    case FaultKind::DoubleFree: return "DoubleFree";
    case FaultKind::ForeignPointer: return "ForeignPointer";
    case FaultKind::CorruptHeader: return "CorruptHeader";
    case FaultKind::Misaligned: return "Misaligned";
    case FaultKind::BadLayout: return "BadLayout";
    case FaultKind::CorruptArena: return "CorruptArena";
    case FaultKind::AllocationFailed: return "AllocationFailed";
  }
  return "?";
}

/// One misuse report, passed to the fault handler.
struct Fault {
  FaultKind kind;       ///< what was wrong
  const void* address;  ///< the pointer freed, or the deferred node at fault (nullptr for AllocationFailed)
  const Heap* heap;     ///< the heap concerned, or nullptr when it cannot be known
};

/// A fault handler: called with the report, on the thread or interrupt that
/// found the fault; it may return (the bad call is then ignored) or not.
using FaultHandler = void (*)(const Fault&);

/// Installs the handler of every heap's faults and returns the previous one.
///
/// As std::set_new_handler: it returns the previous handler, and nullptr
/// restores the default, which writes one line to stderr, for example
///
///     mnemos-alloc: double free of 0x7f...10 (heap 0x7f...00)
///
/// and calls std::abort(). A handler may return: the bad call is then ignored.
/// It is called on the thread (or interrupt) that made the bad free, or that
/// drained the bad deferred block (then with the heap's lock held: it must not
/// allocate from or free to that heap). Any thread; the handler is published
/// with release and read with acquire.
/// @param handler the new handler, or nullptr for the default
/// @return the handler in force before the call (never nullptr)
FaultHandler set_fault_handler(FaultHandler handler) noexcept;

/// The handler in force (never nullptr: the default when none was set). Any thread.
FaultHandler fault_handler() noexcept;

/// The default handler (prints and aborts), for handlers that chain to it.
[[noreturn]] void default_fault_handler(const Fault& fault) noexcept;

/// Formats the default handler's line (without the newline) into buf, always
/// NUL-terminated; returns its length. No allocation.
std::size_t format_fault(const Fault& fault, char* buf, std::size_t size) noexcept;

namespace detail {
/// Calls the handler in force. Never allocates.
void report_fault(FaultKind kind, const void* address, const Heap* heap) noexcept;
}  // namespace detail

}  // namespace mnemos
