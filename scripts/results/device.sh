#!/usr/bin/env bash
# Runs results jobs (scripts/results/jobs.sh) on a lent machine that has no package registry, from carried files:
#   .carry-r/pack.tar.xz  fpq (stripped) + the shared libraries it needs + data (wiki.test.raw, calib.txt)
#   .carry-r/m.a, .carry-s/m.b, .carry-t/m.c  the default model in three parts (one device call carries each)
# Usage there: scripts/results/device.sh SECONDS JOBFILE...  (stops starting jobs after SECONDS; results/ stays
# on the machine between calls and is copied to $OUT).
set -uo pipefail
cd "$(dirname "$0")/../.."
budget=$1; shift
R=/tmp/fpq-results-run
if [ ! -x "$R/bin/fpq" ]; then
  mkdir -p "$R"
  python3 -c "import tarfile,sys; tarfile.open(sys.argv[1], 'r:xz').extractall(sys.argv[2])" .carry-r/pack.tar.xz "$R" || exit 2
fi
read -r NAME SIZE <.carry-r/INFO
if [ ! -f "$R/$NAME" ]; then
  cat .carry-r/m.a .carry-s/m.b .carry-t/m.c >"$R/$NAME.tmp" && [ "$(stat -c %s "$R/$NAME.tmp")" = "$SIZE" ] && mv "$R/$NAME.tmp" "$R/$NAME" ||
    { echo "model parts missing or incomplete"; exit 2; }
fi
export LD_LIBRARY_PATH="$R/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
lscpu | grep -E "Model name|^CPU\(s\)" ; "$R/bin/fpq" info
export FPQ="$R/bin/fpq" FPQ_ARGS="--model $R/$NAME --data $R/data/wiki.test.raw" CALIB="$R/data/calib.txt"
for f in "$@"; do timeout --signal=INT "$budget" scripts/results/jobs.sh "$f"; done
mkdir -p "${OUT:-out}/results"; cp results/*.json results/*.err "${OUT:-out}/results/" 2>/dev/null
ls results/
