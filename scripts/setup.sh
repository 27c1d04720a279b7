#!/usr/bin/env bash
# Installs everything fpq needs on a fresh Debian machine, then configures and builds it.
#   Debian packages: scripts/deps-debian.txt (apt-get, skipped when all are present)
#   PyPI packages:   scripts/requirements.txt (and, without their dependencies, scripts/requirements-nodeps.txt)
#                    into the project venv .venv
# Idempotent: a second run only rebuilds what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf '[setup] %s\n' "$*" >&2; }

mapfile -t pkgs < <(grep -v '^\s*#' scripts/deps-debian.txt | grep -v '^\s*$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv lives in the project; its stamp records which requirements it was built from.
py="${PYTHON:-python3}"
stamp=".venv/.requirements.sha256"
want="$(cat scripts/requirements.txt scripts/requirements-nodeps.txt | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating .venv from scripts/requirements.txt"
  "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r scripts/requirements.txt
  .venv/bin/python -m pip install -q --no-deps -r scripts/requirements-nodeps.txt
  echo "$want" > "$stamp"
fi
# Optional: llama.cpp's Python bindings, for the export tests that load fpq's GGUF files in llama.cpp (pip builds
# llama.cpp from source: many minutes on 2 cores, so CI leaves them out and those checks skip with a message).
if [ "${FPQ_WITH_LLAMA_CPP:-0}" = "1" ] && ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  log "installing llama-cpp-python (builds llama.cpp)"
  .venv/bin/python -m pip install -q "llama-cpp-python==0.3.36"
fi

build_type="${FPQ_BUILD_TYPE:-Release}"
werror="OFF"; [ "${CI:-}" = "true" ] && werror="ON"
log "configuring build/ ($build_type, warnings-as-errors=$werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$build_type" -DFPQ_WERROR="$werror" \
  -DPython3_EXECUTABLE="$root/.venv/bin/python" ${FPQ_CMAKE_ARGS:-} >/dev/null
log "building"
cmake --build build -j "$(nproc)"
