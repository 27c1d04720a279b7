#!/usr/bin/env bash
# docs/RESULTS.md, "Formats": the default model unquantized and in each format (round to nearest), real and pseudo
# kernels: jobs-formats.txt through jobs.sh, rendered to $RESULTS/formats.md. LIMIT: WikiText-2 tokens (default 0 =
# all 304,830: about 9 hours on 2 cores; LIMIT=16384 about 25 minutes). RENDER_ONLY=1: only render what exists.
# Other settings: see jobs.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LIMIT=${LIMIT:-0}
export RESULTS=${RESULTS:-results/tokens-$LIMIT}
[ "${RENDER_ONLY:-0}" = 1 ] || scripts/results/jobs.sh scripts/results/jobs-formats.txt
files=()
while read -r name _; do [ -f "$RESULTS/$name.json" ] && files+=("$RESULTS/$name.json"); done < <(grep -v '^\s*#' scripts/results/jobs-formats.txt)
${PYTHON:-.venv/bin/python} scripts/results/render.py "$RESULTS/formats.md" "Formats (round to nearest)" "${files[@]}"
echo "table: $RESULTS/formats.md"
