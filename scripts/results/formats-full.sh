#!/usr/bin/env bash
# docs/RESULTS.md, "Formats" on all of WikiText-2: the same rows as formats.sh (jobs-formats.txt), one row per
# kernel, each cut into shards of SHARD windows (fpq eval --windows A:B) so that a run can stop at any point and
# resume, and shards can run on several machines; merge_shards.py joins each row's shards, render.py draws the
# table. About 9 hours on 2 cores in all (a shard of 8 windows: 1.5-3 minutes).
#   scripts/results/formats-full.sh            run what is missing, then merge and render
#   JOBS_ONLY=1 scripts/results/formats-full.sh   only write the job file ($RESULTS/jobs-full.txt)
#   RENDER_ONLY=1 scripts/results/formats-full.sh only merge and render what exists
# Environment: RESULTS (default results/tokens-0-sharded), SHARD (default 8), WINDOWS (total windows; default:
# read from an existing shard, else found by running the first one), and jobs.sh's settings.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LIMIT=0
export RESULTS=${RESULTS:-results/tokens-0-sharded}
shard=${SHARD:-8}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$RESULTS"
# Shards already recorded in the repository (docs/RESULTS.md) count as done, for the default model and settings.
if [ "$RESULTS" = results/tokens-0-sharded ] && [ -z "${FPQ_ARGS:-}" ]; then
  cp -n docs/results/wikitext2-full/shards/*.json "$RESULTS"/ 2>/dev/null || true
fi
# The rows: the unquantized baseline, then each format of jobs-formats.txt with the real and the pseudo kernel.
rows=("baseline --kernels real")
while read -r name args; do
  args=${args//--no-baseline/}
  rows+=("${name#formats-}-real --no-baseline --kernels real $args" "${name#formats-}-pseudo --no-baseline --kernels pseudo $args")
done < <(grep -v '^\s*#' scripts/results/jobs-formats.txt | grep -v '^\s*$')
total_windows() {
  ${WINDOWS:+echo "$WINDOWS"}
  [ -n "${WINDOWS:-}" ] && return
  local f
  f=$(ls "$RESULTS"/full-*.json 2>/dev/null | head -1)
  if [ -z "$f" ]; then
    echo "full-baseline-w0 --kernels real --windows 0:$shard" >"$RESULTS/jobs-probe.txt"
    scripts/results/jobs.sh "$RESULTS/jobs-probe.txt" >&2
    f=$RESULTS/full-baseline-w0.json
  fi
  "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['rows'][0]['wikitext2']['windows_total'])" "$f"
}
if [ "${RENDER_ONLY:-0}" != 1 ]; then
  total=$(total_windows)
  : >"$RESULTS/jobs-full.txt.tmp"
  for row in "${rows[@]}"; do
    read -r name args <<<"$row"
    for ((a = 0; a < total; a += shard)); do
      echo "full-$name-w$a --windows $a:$((a + shard)) $args" >>"$RESULTS/jobs-full.txt.tmp"
    done
  done
  mv "$RESULTS/jobs-full.txt.tmp" "$RESULTS/jobs-full.txt"
  echo "$RESULTS/jobs-full.txt: $(wc -l <"$RESULTS/jobs-full.txt") shards of $shard windows ($total windows per row)"
  [ "${JOBS_ONLY:-0}" = 1 ] && exit 0
  scripts/results/jobs.sh "$RESULTS/jobs-full.txt"
fi
merged=()
for row in "${rows[@]}"; do
  read -r name _ <<<"$row"
  shopt -s nullglob
  parts=("$RESULTS"/full-"$name"-w[0-9]*.json)
  shopt -u nullglob
  [ ${#parts[@]} -gt 0 ] || continue
  if "$py" scripts/results/merge_shards.py "$RESULTS/merged-$name.json" "${parts[@]}"; then merged+=("$RESULTS/merged-$name.json"); fi
done
[ ${#merged[@]} -gt 0 ] || { echo "no complete row yet"; exit 0; }
"$py" scripts/results/render.py "$RESULTS/formats.md" "Formats (round to nearest), all of WikiText-2" "${merged[@]}"
echo "table: $RESULTS/formats.md"
