#!/usr/bin/env bash
# Before / after comparison of two builds of the CUDA kernels on the GPU machine, in one call: the kernel
# benchmark (bench_cuda --m 1 --m 16, all shapes and weight formats) and the generation benchmark (bench_decode,
# mxfp4 and NVFP4-like) of each build, alternating A, B, A, B so that both see the same machine state.
#
#   scripts/gpu-check.sh --prepare && mkdir -p .carry-old && cp .carry/* .carry-old/   # here, at the old commit
#   ... change the code ...
#   scripts/gpu-check.sh --prepare                                                    # here, the new build
#   scripts/gpu-ab.sh .carry-old/pack.tar.xz .carry/pack.tar.xz                       # GPU machine (carry both)
#
# Prints the generation rows as they come and a table of every kernel row: the better of each build's two
# runs, the speed-up and cuBLAS bf16 of the same run. Logs (tarred) go to $OUT (or ./gpu-ab-out).
set -u
if [[ $# -ne 2 ]]; then echo "usage: scripts/gpu-ab.sh OLD_PACK NEW_PACK" >&2; exit 2; fi
LOGS="${OUT:-$(pwd)/gpu-ab-out}"
mkdir -p "$LOGS"
PYCUBLAS="$(python3 -c 'import nvidia.cublas, os; print(os.path.join(os.path.dirname(nvidia.cublas.__file__), "lib"))' 2>/dev/null || true)"
packs=("$1" "$2"); names=(old new)
for k in 0 1; do
  d="/tmp/gpu-ab-${names[$k]}"; rm -rf "$d"; mkdir -p "$d"
  python3 -c "import tarfile,sys; tarfile.open(sys.argv[1], 'r:xz').extractall(sys.argv[2])" "${packs[$k]}" "$d" || exit 2
  echo "${names[$k]}: $(cat "$d/BUILD_INFO" 2>/dev/null)"
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for round in 1 2; do
  for v in old new; do
    export LD_LIBRARY_PATH="/tmp/gpu-ab-$v/lib:/usr/local/cuda/lib64${PYCUBLAS:+:$PYCUBLAS}"
    timeout 200 "/tmp/gpu-ab-$v/bin/bench_cuda" --m 1 --m 16 >"$LOGS/bench-$v-$round.log" 2>&1 || echo "bench_cuda ($v) exit $?"
    for f in mxfp4 e2m1/e4m3/g16; do
      log="$LOGS/decode-$v-$round-${f//\//_}.log"
      timeout 100 "/tmp/gpu-ab-$v/bin/bench_decode" --format "$f" >"$log" 2>&1 || echo "bench_decode ($v) exit $?"
      echo "$v round $round: $(grep -E '^\| (bf16|[a-z0-9/_]+ \([0-9]-bit\))' "$log" | cut -d'|' -f2,5,6 | tr '\n' ' ')"
    done
  done
done
python3 - "$LOGS" <<'PY'
import sys, os
d = sys.argv[1]
def parse(f):
    rows = {}
    for line in open(f):
        c = [x.strip() for x in line.split('|')]
        if len(c) > 8 and c[1][:1].isdigit():
            try: rows[(c[1], c[2], c[3])] = (float(c[4]), float(c[5]))
            except ValueError: pass
    return rows
runs = {(v, r): parse(os.path.join(d, f'bench-{v}-{r}.log')) for v in ('old', 'new') for r in (1, 2)}
print('| N x K | M | kernel | old us | new us | speed-up | cuBLAS bf16 us | new vs bf16 |')
print('|---|---:|---|---:|---:|---:|---:|---:|')
for k in runs[('old', 1)]:
    if 'cuBLAS' in k[2] or not all(k in runs[x] for x in runs): continue
    o = min(runs[('old', r)][k][0] for r in (1, 2)); n = min(runs[('new', r)][k][0] for r in (1, 2))
    b = min(runs[('new', r)][k][1] for r in (1, 2))
    print(f'| {k[0]} | {k[1]} | {k[2]} | {o:.1f} | {n:.1f} | {o / n:.2f}x | {b:.1f} | {b / n:.2f}x |')
PY
(cd "$LOGS" && tar czf gpu-ab-logs.tar.gz ./*.log && rm -f ./*.log)
