#!/usr/bin/env bash
# docs/RESULTS.md, "Methods": NVFP4 and MXFP4 at W4A4 and W4A16 with RTN, GPTQ, MR-GPTQ, 4o6 (NVFP4) and ARC, real
# and pseudo kernels: jobs-methods.txt through jobs.sh (calibration: CALIB, 32 sequences of 512 tokens), rendered
# to $RESULTS/methods-{nvfp4,mxfp4}-a{4,16}.md. LIMIT: WikiText-2 tokens (default 65536). See jobs.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LIMIT=${LIMIT:-65536}
export RESULTS=${RESULTS:-results/tokens-$LIMIT}
[ "${RENDER_ONLY:-0}" = 1 ] || scripts/results/jobs.sh scripts/results/jobs-methods.txt
for fmt in nvfp4 mxfp4; do
  for a in 4 16; do
    files=(--baseline-from "$RESULTS/methods-nvfp4-a4-rtn.json")
    for m in rtn gptq mr-gptq 4o6 arc; do
      [ -f "$RESULTS/methods-$fmt-a$a-$m.json" ] && files+=("$RESULTS/methods-$fmt-a$a-$m.json")
    done
    [ ${#files[@]} -gt 2 ] && ${PYTHON:-.venv/bin/python} scripts/results/render.py "$RESULTS/methods-$fmt-a$a.md" "$fmt W4A$a" "${files[@]}"
  done
done
echo "tables: $RESULTS/methods-*.md"
