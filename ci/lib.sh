# Shared by the ci/ scripts: set-up on a fresh Debian machine and small helpers.
# Sourced, not run.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="${JOBS:-$(nproc)}"

# Installs the Debian packages named as arguments that are missing, when run as
# root; otherwise says what is missing and fails.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "ci: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "ci: missing packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    return 1
  fi
}

# The toolchain every gate needs.
ensure_base_toolchain() {
  ensure_packages cmake ninja-build g++ clang libgtest-dev librapidcheck-dev
}

# Configures and builds one CMake preset, quietly unless it fails.
build_preset() {
  local preset="$1" log
  log="$(mktemp)"
  if ! { cmake --preset "$preset" && cmake --build --preset "$preset" -j "$JOBS"; } >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}
