#!/usr/bin/env bash
# docs/RESULTS.md, "Methods": NVFP4 and MXFP4 at W4A4 and W4A16 with RTN, GPTQ, MR-GPTQ, 4o6 (NVFP4) and ARC,
# real and pseudo kernels, WikiText-2 perplexity on LIMIT tokens (default 65536) and the tasks present.
# Calibration: CALIB (default results/calib.txt, see below), 32 sequences of 512 tokens.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results; mkdir -p "$out"
fpq=${FPQ:-./build/fpq}    # FPQ_ARGS: extra flags for every run (e.g. --model M --data D)
limit=${LIMIT:-65536}
calib=${CALIB:-$out/calib.txt}
if [ ! -f "$calib" ]; then
  # ../shared/data holds only the evaluation split of WikiText-2; calibration must not use it. Python's own
  # documentation (pydoc topics) is English technical prose that ships with every Python.
  ${PYTHON:-.venv/bin/python} -c "import pydoc_data.topics as t; print('\n\n'.join(t.topics.values()))" > "$calib"
fi
common=(--kernels real,pseudo --limit-tokens "$limit" --calib-data "$calib" --num-sequences 32 --seq-len 512)
run() { local name=$1; shift; [ -f "$out/methods-$name.json" ] || "$fpq" eval "${common[@]}" ${FPQ_ARGS:-} "$@" --json "$out/methods-$name.json"; }
for fmt in nvfp4 mxfp4; do
  for a in 4 16; do
    base=(--format "$fmt" --a-bits "$a")
    [ "$fmt$a" = nvfp44 ] && bl=() || bl=(--no-baseline)
    run "$fmt-a$a-rtn" "${bl[@]}" "${base[@]}" --method rtn
    run "$fmt-a$a-gptq" --no-baseline "${base[@]}" --method gptq
    run "$fmt-a$a-mr-gptq" --no-baseline "${base[@]}" --method mr-gptq
    [ "$fmt" = nvfp4 ] && run "$fmt-a$a-4o6" --no-baseline "${base[@]}" --method 4o6
    run "$fmt-a$a-arc" --no-baseline "${base[@]}" --method arc
  done
done
for fmt in nvfp4 mxfp4; do
  for a in 4 16; do
    files=()
    for m in rtn gptq mr-gptq 4o6 arc; do [ -f "$out/methods-$fmt-a$a-$m.json" ] && files+=("$out/methods-$fmt-a$a-$m.json"); done
    [ "$fmt$a" != nvfp44 ] && files=(--baseline-from "$out/methods-nvfp4-a4-rtn.json" "${files[@]}")
    ${PYTHON:-.venv/bin/python} scripts/results/render.py "$out/methods-$fmt-a$a.md" "$fmt W4A$a" "${files[@]}"
  done
done
