// Shared plumbing of the Relacy interleaving tests (verify/relacy/run.sh).
//
// Each test compiles the core's own headers (and, for the heap protocol, its
// sources) with MNEMOS_USE_RELACY=1: detail/atomic.hpp then maps every atomic
// of the lock word, the deferred stack and the wait queue to rl::atomic, so
// Relacy explores their interleavings (and the values a relaxed or acquire
// load may read) exactly as the core performs them. What the tests add is
// rl::var state that stands for what the atomics must order (the backend a
// lock holder owns, the bytes a user wrote before freeing, the context a
// waker touches): Relacy reports a data race on it whenever the core's orders
// fail to make one access happen before the other.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <streambuf>
#include <string>

#include "mnemos/detail/atomic.hpp"  // Relacy's core (not relacy.hpp: see there)

namespace mnemos::verify {

// Relacy's report goes here, not into a std::ostringstream: Relacy replaces the
// global operator new/delete while a simulation runs, so a stream buffer that
// grows during the run would be freed by the wrong allocator. A fixed buffer
// never allocates; a report longer than it is cut (its start is kept: the
// failing interleaving is printed from its first step).
class ReportBuffer : public std::streambuf {
 public:
  void clear() { setp(bytes_, bytes_ + sizeof bytes_ - 1); }
  const char* text() {
    *pptr() = '\0';
    return bytes_;
  }

 protected:
  int_type overflow(int_type c) override { return traits_type::not_eof(c); }  // full: drop

 private:
  static inline char bytes_[8 << 20];
};

inline const char* scheduler_name(rl::scheduler_type_e s) {
  switch (s) {
    case rl::sched_full: return "full";
    case rl::sched_bound: return "bound";
    case rl::sched_random: return "random";
    default: return "?";
  }
}

// Runs one rl::test_suite and prints one line: name, search, iterations
// explored, time, verdict. On failure Relacy's report (the failing
// interleaving, step by step) follows the line.
//   full:   every interleaving (and every value a load may read);
//   bound:  every interleaving with at most `bound` preemptions;
//   random: `iterations` random interleavings.
// MNEMOS_RELACY_SEARCH=full | bound:N | random:N overrides every test's own
// choice (for a deeper run than the CI budget allows, or a quick one).
template <class Test>
bool run(const char* name, rl::scheduler_type_e search, unsigned bound = 0, rl::iteration_t iterations = 0) {
  if (const char* force = std::getenv("MNEMOS_RELACY_SEARCH")) {
    const std::string f(force);
    if (f == "full") {
      search = rl::sched_full;
    } else if (f.rfind("bound:", 0) == 0) {
      search = rl::sched_bound;
      bound = static_cast<unsigned>(std::strtoul(f.c_str() + 6, nullptr, 10));
    } else if (f.rfind("random:", 0) == 0) {
      search = rl::sched_random;
      iterations = std::strtoull(f.c_str() + 7, nullptr, 10);
    }
  }
  rl::test_params params;
  params.search_type = search;
  if (search == rl::sched_bound) params.context_bound = bound;
  if (iterations != 0) params.iteration_count = iterations;
  params.execution_depth_limit = 20000;  // scheduling points per iteration before "livelock"
  static ReportBuffer buffer;
  buffer.clear();
  std::ostream report(&buffer);
  params.output_stream = &report;
  params.progress_stream = &report;
  const auto start = std::chrono::steady_clock::now();
  const bool ok = rl::simulate<Test>(params);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char search_text[32];
  if (search == rl::sched_bound) {
    std::snprintf(search_text, sizeof search_text, "bound(%u)", bound);
  } else {
    std::snprintf(search_text, sizeof search_text, "%s", scheduler_name(search));
  }
  std::printf("%-52s %-10s iterations=%-10llu %7.2fs  %s\n", name, search_text,
              static_cast<unsigned long long>(params.stop_iteration), seconds, ok ? "PASS" : "FAIL");
  if (!ok) std::printf("%s\n", buffer.text());
  std::fflush(stdout);
  return ok;
}

// Command-line selection: with no arguments every test runs; otherwise only
// those whose key is named (keys are listed in each test's main).
class Filter {
 public:
  Filter(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool operator()(const char* key) const {
    if (argc_ <= 1) return true;
    for (int i = 1; i < argc_; ++i) {
      if (std::string(argv_[i]) == key) return true;
    }
    return false;
  }

 private:
  int argc_;
  char** argv_;
};

}  // namespace mnemos::verify
