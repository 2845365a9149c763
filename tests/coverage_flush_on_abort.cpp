// Linked into the unit tests of coverage builds only (tests/CMakeLists.txt).
//
// A death test's child process ends in std::abort(), which skips the exit-time
// hook that writes the LLVM profile, so the branches only a death test reaches
// (the misuse checks) would count as never taken. This SIGABRT handler writes
// the child's profile first (its own file: LLVM_PROFILE_FILE has %p), then
// restores the default action and re-raises, so the child still dies of
// SIGABRT exactly as the death test expects. Writing a file from a signal
// handler is not async-signal-safe in general; here the process is a dying
// test child that only ever aborts from our own code, on its only thread.
#include <csignal>

extern "C" int __llvm_profile_write_file(void);  // compiler-rt profile runtime

namespace {

extern "C" void mnemos_flush_profile_then_abort(int sig) {
  __llvm_profile_write_file();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Installed before main (static initialisation), so every test, and every
// forked death-test child, has it.
[[maybe_unused]] const bool installed = [] {
  std::signal(SIGABRT, mnemos_flush_profile_then_abort);
  return true;
}();

}  // namespace
