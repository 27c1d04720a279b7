#!/usr/bin/env bash
# Runs results jobs (scripts/results/jobs.sh) on a lent machine that has no package registry, from carried files:
#   .carry-r/pack.tar.xz  fpq (stripped) + the shared libraries it needs + data (wiki.test.raw, calib.txt)
#   .carry-r/m.a, .carry-s/m.b, .carry-t/m.c  the default model in three parts (one device call carries each)
# A call's carried folders do not survive to the next call, so each part is stashed in /tmp/fpq-results-run/parts
# (`cp .carry-X/* /tmp/fpq-results-run/parts/`); results are kept in /tmp/fpq-results-run/results and copied to
# $OUT/results.tar.gz. Usage there: scripts/results/device.sh SECONDS JOBFILE... (stops the jobs after SECONDS).
set -uo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] && [[ "$1" =~ ^[0-9]+$ ]] || { echo "usage: scripts/results/device.sh SECONDS JOBFILE..." >&2; exit 2; }
budget=$1; shift
R=/tmp/fpq-results-run
P=$R/parts
mkdir -p "$P"
for d in .carry-r .carry-s .carry-t; do [ -d "$d" ] && cp "$d"/* "$P"/; done
if [ ! -x "$R/bin/fpq" ]; then
  python3 -c "import tarfile,sys; tarfile.open(sys.argv[1], 'r:xz').extractall(sys.argv[2])" "$P/pack.tar.xz" "$R" || exit 2
fi
read -r NAME SIZE <"$P/INFO"
if [ ! -f "$R/$NAME" ]; then
  cat "$P/m.a" "$P/m.b" "$P/m.c" >"$R/$NAME.tmp" && [ "$(stat -c %s "$R/$NAME.tmp")" = "$SIZE" ] && mv "$R/$NAME.tmp" "$R/$NAME" ||
    { echo "model parts missing or incomplete"; exit 2; }
fi
export LD_LIBRARY_PATH="$R/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
lscpu | grep -E "Model name|^CPU\(s\)" ; "$R/bin/fpq" info
export FPQ="$R/bin/fpq" FPQ_ARGS="--model $R/$NAME --data $R/data/wiki.test.raw" CALIB="$R/data/calib.txt"
export RESULTS=$R/results
end=$(( $(date +%s) + budget ))
for f in "$@"; do
  left=$(( end - $(date +%s) )); [ "$left" -gt 5 ] || break
  timeout --signal=INT "$left" scripts/results/jobs.sh "$f"
done
# One archive (a device call returns only a few files).
mkdir -p "${OUT:-out}"
tar -C "$RESULTS" -czf "${OUT:-out}/results.tar.gz" . && tar -tzf "${OUT:-out}/results.tar.gz" | grep -c '\.json$' | sed 's/^/result files: /'
