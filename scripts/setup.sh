#!/usr/bin/env bash
# One idempotent set-up: Debian packages, a virtual environment with torch on its CPU build,
# llama-cpp-python from a cached wheel (built once, ~4 min on 2 cores), and the offline model files.
# It prints a few progress lines; everything the installers say goes to $LOG.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
CACHE="${VLMSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vlmsearch}"
STAMP="$VENV/.setup-done"
HASH=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && [ -f /usr/share/wordnet/data.noun ]; then
  exit 0
fi
mkdir -p out
LOG="$(pwd)/out/setup.log"
: >"$LOG"
step() { echo ">> $1"; echo "== $1" >>"$LOG"; }
run() { "$@" >>"$LOG" 2>&1 || { echo "failed: $*; the log is $LOG"; tail -20 "$LOG"; exit 1; }; }

# Debian: WordNet (info cards, evaluation facts), openclipart (demo, training and evaluation images),
# Chromium (the web page's browser tests).
DEB_PKGS="wordnet-base openclipart-png chromium"
missing=""
for p in $DEB_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  step "apt-get install$missing"
  run $SUDO apt-get update -q
  run env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

step "Python environment in $VENV (torch on its CPU build)"
[ -x "$VENV/bin/python" ] || run python3 -m venv "$VENV"
PIP="$VENV/bin/pip"
run $PIP install --upgrade pip wheel
# torch first and pinned: anything that pulls an unpinned torch drags in a CUDA build.
run $PIP install -c constraints.txt torch

# llama-cpp-python compiles from source; keep the wheel, keyed by version, CPU features and flags.
# AMX stays off: where a VM advertises AMX but does not enable it, ggml's AMX kernels crash (SIGSEGV)
# on the first prompt; the AVX-512/VNNI kernels run wherever the CPU flags say they do. Its multimodal
# library (mtmd, a quarter of the build) is left out: our VLMs run in torch or behind a server.
LLAMA_VERSION=$(grep -E '^llama[-_]cpp[-_]python==' constraints.txt | cut -d= -f3)
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF '-DCMAKE_C_FLAGS=$NO_AMX' '-DCMAKE_CXX_FLAGS=$NO_AMX'"
CPU_KEY=$( (uname -m; grep -m1 -o 'flags.*' /proc/cpuinfo 2>/dev/null; echo "$LLAMA_CMAKE_ARGS") | sha256sum | cut -c1-12)
WHEELS="$CACHE/wheels/$CPU_KEY"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  step "building llama-cpp-python $LLAMA_VERSION (once; about 4 minutes on 2 cores)"
  run env CMAKE_ARGS="$LLAMA_CMAKE_ARGS" $PIP wheel --no-cache-dir --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi

step "vlmsearch and its dependencies (pinned in constraints.txt)"
run $PIP install -c constraints.txt --find-links "$WHEELS" -e ".[dev,scale,docs]"

step "offline model files"
run "$VENV/bin/vlmsearch" setup
echo "$HASH" > "$STAMP"
echo ">> set-up done (installer output: $LOG)"
