#!/usr/bin/env bash
# docs/RESULTS.md, "Formats": the full WikiText-2 perplexity (and every task whose data is present) of the
# default model, unquantized and in each format, with the real kernels and the pseudo path. Several hours on
# 2 cores. Results: results/formats-*.json, rendered to results/formats.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results; mkdir -p "$out"
fpq=${FPQ:-./build/fpq}    # FPQ_ARGS: extra flags for every run (e.g. --model M --data D)
run() { local name=$1; shift; [ -f "$out/formats-$name.json" ] || "$fpq" eval --kernels real,pseudo ${FPQ_ARGS:-} "$@" --json "$out/formats-$name.json"; }
run w4a4 --format nvfp4,mxfp4 --a-bits 4 ${EXTRA:-}
run mxfp6 --no-baseline --format mxfp6_e2m3 --a-bits 6 ${EXTRA:-}
run mxfp8 --no-baseline --format mxfp8_e4m3 --a-bits 8 ${EXTRA:-}
run fp6 --no-baseline --format fp6_e3m2 --a-bits 16 ${EXTRA:-}
run q4_0 --no-baseline --format q4_0 --a-bits 8 ${EXTRA:-}
${PYTHON:-.venv/bin/python} scripts/results/render.py "$out/formats.md" "Formats (round to nearest)" \
  "$out"/formats-w4a4.json "$out"/formats-mxfp6.json "$out"/formats-mxfp8.json "$out"/formats-fp6.json "$out"/formats-q4_0.json
