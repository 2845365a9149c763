#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build: every fuzz/<target>.cpp into $OUT/<target>,
# with its seed corpus ($OUT/<target>_seed_corpus.zip), dictionary
# ($OUT/<target>.dict) and options ($OUT/<target>.options).
#
# Uses only $CXX, $CXXFLAGS, $LIB_FUZZING_ENGINE, $OUT and $SRC (plus -std,
# -I and -c). Runs locally with OSS-Fuzz-style variables, e.g. from the repo:
#   CXX=clang++ CXXFLAGS="-fsanitize=address,undefined -fno-sanitize=function -fsanitize=fuzzer-no-link" \
#   LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=/tmp/out SRC=$PWD bash .clusterfuzzlite/build.sh
# (ci/cflite-check does exactly that and checks the result.)

# The repository: the working directory (the Dockerfile's WORKDIR), else
# $SRC/mnemos-alloc, else $SRC itself.
if [ -d include/mnemos ] && [ -d fuzz ]; then
  REPO="$(pwd)"
elif [ -d "$SRC/mnemos-alloc/include/mnemos" ]; then
  REPO="$SRC/mnemos-alloc"
else
  REPO="$SRC"
fi

# clang 14 cannot compile C++20 coroutines with -fsanitize=fuzzer plus UBSan's
# function check ("Cannot represent a difference across sections").
EXTRA=""
case " $CXXFLAGS " in
  *undefined*|*function*) EXTRA="-fno-sanitize=function" ;;
esac

# libc++ (OSS-Fuzz builds with -stdlib=libc++) shipped <stop_token>, which the
# allocation futures use, as experimental before LLVM 20: ask for it if needed.
stop_token_probe='#include <stop_token>
int main() { std::stop_source s; return s.stop_requested() ? 1 : 0; }'
# shellcheck disable=SC2086
if ! printf '%s\n' "$stop_token_probe" | $CXX $CXXFLAGS $EXTRA -std=c++20 -x c++ -fsyntax-only - 2>/dev/null; then
  EXTRA="$EXTRA -fexperimental-library"
fi

OBJ="$(mktemp -d)"
trap 'rm -rf "$OBJ"' EXIT
mkdir -p "$OUT"

# The allocator, once (no exceptions, no RTTI: the core's own discipline; vptr
# needs RTTI, so it is off for these objects only).
objs=()
for src in "$REPO"/src/*.cpp; do
  o="$OBJ/$(basename "${src%.cpp}").o"
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS $EXTRA -fno-sanitize=vptr -std=c++20 -fno-exceptions -fno-rtti -I"$REPO/include" -c "$src" -o "$o"
  objs+=("$o")
done

built=0
for src in "$REPO"/fuzz/*.cpp; do
  t="$(basename "${src%.cpp}")"
  built=$((built + 1))
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS $EXTRA -std=c++20 -I"$REPO/include" -I"$REPO/fuzz" -I"$REPO" "$src" "${objs[@]}" \
    $LIB_FUZZING_ENGINE -o "$OUT/$t"
  if [ -d "$REPO/fuzz/corpus/$t" ]; then
    rm -f "$OUT/${t}_seed_corpus.zip"
    (cd "$REPO/fuzz/corpus/$t" && zip -q -r "$OUT/${t}_seed_corpus.zip" .)
  fi
  [ -f "$REPO/fuzz/$t.dict" ] && cp "$REPO/fuzz/$t.dict" "$OUT/$t.dict"
  [ -f "$REPO/fuzz/$t.options" ] && cp "$REPO/fuzz/$t.options" "$OUT/$t.options"
done
echo "build.sh: built $built fuzz targets into $OUT"
