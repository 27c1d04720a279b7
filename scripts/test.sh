#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), builds, and runs every test through CTest.
# Extra arguments go to ctest (e.g. -R Nvfp4, -L python-ref, -LE gpu).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root/build"
ctest --output-on-failure -j "$(nproc)" "$@"
