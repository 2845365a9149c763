#!/usr/bin/env bash
# Builds and runs the Relacy interleaving tests of the lock word + deferred
# stack, the wait queue's waker-lifetime handshake, and the heap's wait
# protocol end to end (the real src/heap.cpp and src/alloc_wait.cpp).
#
#   verify/relacy/run.sh                                # build, run all; exit 0 only if all pass
#   verify/relacy/run.sh heap_protocol_test wake close  # one binary, only these keys (see its main)
#
# Each test prints one line: name, search (full = every interleaving and every
# value a load may read; bound(N) = every interleaving with at most N
# preemptions; random = that many random interleavings), iterations explored,
# time, PASS/FAIL; a failure is followed by Relacy's step-by-step trace.
#
# Environment:
#   MNEMOS_RELACY_BUILD   build directory (default: build/relacy)
#   MNEMOS_RELACY_SEARCH  full | bound:N | random:N overrides every test's
#                         search (a deeper run than CI's ~2 minute budget)
#   CXX                   compiler (default g++; Relacy needs exceptions and RTTI)
#   JOBS                  parallel compiles (default 2)
#
# Needs Debian's relacy-dev (/usr/include/relacy). The core is compiled with
# MNEMOS_USE_RELACY=1, which maps include/mnemos/detail/atomic.hpp's shim to
# rl::atomic (see there).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${MNEMOS_RELACY_BUILD:-$repo/build/relacy}
cxx=${CXX:-g++}
jobs=${JOBS:-2}

if [[ ! -f /usr/include/relacy/relacy.hpp ]]; then
  echo "relacy: /usr/include/relacy/relacy.hpp not found (apt-get install relacy-dev)" >&2
  exit 1
fi

mkdir -p "$out"
# -Wno-mismatched-new-delete: Relacy replaces the global operator new/delete
# with a malloc/free pair, which GCC 12 flags once inlined into our code.
flags=(-std=c++20 -O1 -DMNEMOS_USE_RELACY=1 -I"$repo/include" -I"$here"
       -Wall -Wextra -Wpedantic -Werror -Wno-mismatched-new-delete)

# Every core source is compiled once, with the Relacy shim, for the heap test.
core=()
for c in "$repo"/src/*.cpp; do core+=("$(basename "$c" .cpp)"); done
tests=(deferred_queue_test wait_queue_test heap_protocol_test)

flags_q=$(printf '%q ' "${flags[@]}")

start=$(date +%s)
{
  for c in "${core[@]}"; do printf '%s\n%s\n' "$repo/src/$c.cpp" "$out/core_$c.o"; done
  for t in "${tests[@]}"; do printf '%s\n%s\n' "$here/$t.cpp" "$out/$t.o"; done
} | xargs -n 2 -P "$jobs" bash -c "$cxx $flags_q -c \"\$0\" -o \"\$1\""

"$cxx" -o "$out/deferred_queue_test" "$out/deferred_queue_test.o"
"$cxx" -o "$out/wait_queue_test" "$out/wait_queue_test.o"
core_objs=()
for c in "${core[@]}"; do core_objs+=("$out/core_$c.o"); done
"$cxx" -o "$out/heap_protocol_test" "$out/heap_protocol_test.o" "${core_objs[@]}"
echo "relacy: built in $(( $(date +%s) - start ))s ($cxx, ${out})"

failed=0
rm -f "$out"/*.log
run() {  # binary [keys...]
  local bin=$1
  shift
  # pipefail: a failing (or crashing) binary fails the pipeline.
  if ! "$out/$bin" "$@" | tee "$out/$bin.log"; then
    failed=$((failed + 1))
  fi
}

start=$(date +%s)
if [[ $# -gt 0 ]]; then
  run "$@"
else
  for t in "${tests[@]}"; do run "$t"; done
fi
passed=$(cat "$out"/*.log 2>/dev/null | grep -c ' PASS$' || true)
fails=$(cat "$out"/*.log 2>/dev/null | grep -c ' FAIL$' || true)
echo "relacy: $passed passed, $fails failed, $failed binaries failing, in $(( $(date +%s) - start ))s"
[[ $failed -eq 0 && $fails -eq 0 ]]
