#!/usr/bin/env bash
# The decode kernel's tuning knobs (FPQ_GEMV_RING_KB, FPQ_GEMV_RT2_TILES; docs/ARCHITECTURE.md, "CUDA decode
# kernel") compared in one GPU call on one build: `bench_cuda --m 1 --m 16 --chain` under each setting, twice,
# alternating, then a table of the M = 1 and M = 16 rows (the better of each setting's two runs, alone and
# chained) next to the defaults.
#
#   scripts/gpu-knobs.sh .carry/pack.tar.xz "FPQ_GEMV_RING_KB=200" "FPQ_GEMV_RT2_TILES=0"   # GPU machine
#
# Each setting is a space-separated list of VAR=VALUE; the defaults (no variable set) always run first.
# KNOB_ARGS: bench_cuda's arguments (default "--m 1 --m 16 --chain"; e.g. add "--shape 4096x14336").
# Logs (tarred) go to $OUT (or ./gpu-knobs-out).
set -u
if [[ $# -lt 2 ]]; then echo "usage: scripts/gpu-knobs.sh PACK SETTING..." >&2; exit 2; fi
pack=$1; shift
LOGS="${OUT:-$(pwd)/gpu-knobs-out}"
mkdir -p "$LOGS"
d=/tmp/gpu-knobs-bin; rm -rf "$d"; mkdir -p "$d"
python3 -c "import tarfile,sys; tarfile.open(sys.argv[1], 'r:xz').extractall(sys.argv[2])" "$pack" "$d" || exit 2
echo "build: $(cat "$d/BUILD_INFO" 2>/dev/null)"
PYCUBLAS="$(python3 -c 'import nvidia.cublas, os; print(os.path.join(os.path.dirname(nvidia.cublas.__file__), "lib"))' 2>/dev/null || true)"
export LD_LIBRARY_PATH="$d/lib:/usr/local/cuda/lib64${PYCUBLAS:+:$PYCUBLAS}"
settings=("" "$@")
for round in 1 2; do
  for i in "${!settings[@]}"; do
    # shellcheck disable=SC2086
    env ${settings[$i]} timeout 200 "$d/bin/bench_cuda" ${KNOB_ARGS:---m 1 --m 16 --chain} >"$LOGS/knobs-$i-$round.log" 2>&1 ||
      echo "setting $i (${settings[$i]:-defaults}) round $round: exit $?"
  done
done
python3 - "$LOGS" "${settings[@]}" <<'PY'
import os, sys
d, settings = sys.argv[1], sys.argv[2:]
def parse(f):
    alone, chained = {}, {}
    for line in open(f):
        c = [x.strip() for x in line.split('|')]
        try:
            if len(c) == 10 and c[1][:1].isdigit() and c[2].isdigit():   # main table
                alone[(c[1], c[2], c[3])] = float(c[4])
            elif len(c) == 10 and c[1][:1].isdigit():                     # chained table
                chained[(c[1], '1', c[2])] = float(c[4])
        except ValueError:
            pass
    return alone, chained
runs = [[parse(os.path.join(d, f'knobs-{i}-{r}.log')) for r in (1, 2)] for i in range(len(settings))]
names = [s or 'defaults' for s in settings]
print('| N x K | M | kernel | ' + ' | '.join(f'{n} us' for n in names) + ' | ' + ' | '.join(f'{n} chained us' for n in names) + ' |')
print('|---|---:|---|' + '---:|' * (2 * len(names)))
for k in runs[0][0][0]:
    if 'cuBLAS' in k[2] or 'fused fold off' in k[2]: continue
    best = lambda i, t: min((runs[i][r][t].get(k if t == 0 else (k[0], '1', k[2])) or 1e30) for r in (0, 1))
    a = [best(i, 0) for i in range(len(names))]
    c = [best(i, 1) if k[1] == '1' else 1e30 for i in range(len(names))]
    fmt = lambda v: '-' if v >= 1e29 else f'{v:.1f}'
    print(f'| {k[0]} | {k[1]} | {k[2]} | ' + ' | '.join(map(fmt, a)) + ' | ' + ' | '.join(map(fmt, c)) + ' |')
PY
(cd "$LOGS" && tar czf gpu-knobs-logs.tar.gz ./*.log && rm -f ./*.log)
