#!/usr/bin/env bash
# Runs the `fpq eval` jobs of a job file (one per line: NAME then eval flags; # comments), PARALLEL at a time with
# THREADS threads each, into $RESULTS/NAME.json; a job whose JSON exists is skipped, so an interrupted run
# resumes. The tables of docs/RESULTS.md are rendered from those files by render.py (formats.sh, methods.sh).
#   scripts/results/jobs.sh scripts/results/jobs-formats.txt
# Environment: FPQ (binary, default ./build/fpq), FPQ_ARGS (flags for every job, e.g. --model M --data D),
# LIMIT (WikiText-2 token budget, default 65536), CALIB (calibration text, default results/calib.txt),
# RESULTS (default results), PARALLEL (default 1), THREADS (default: the machine's cores / PARALLEL).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: scripts/results/jobs.sh JOBFILE (a file of 'NAME eval-flags' lines)" >&2; exit 2; }
jobs_file=$1
export FPQ=${FPQ:-./build/fpq} RESULTS=${RESULTS:-results} LIMIT=${LIMIT:-65536} CALIB=${CALIB:-results/calib.txt}
parallel=${PARALLEL:-1}
export FPQ_NUM_THREADS=${THREADS:-$(( $(nproc) / parallel > 0 ? $(nproc) / parallel : 1 ))}
mkdir -p "$RESULTS"
if [ ! -f "$CALIB" ]; then
  # ../shared/data holds only the evaluation split of WikiText-2, which calibration must not see. Python's own
  # documentation (pydoc topics) is English technical prose that ships with every Python.
  ${PYTHON:-.venv/bin/python} -c "import pydoc_data.topics as t; print('\n\n'.join(t.topics.values()))" > "$CALIB"
fi
run_job() {
  local name=$1; shift
  local out="$RESULTS/$name.json"
  [ -f "$out" ] && return 0
  # Calibration text only for the methods that use it (RTN and 4o6 given a text would also run it through the
  # model for the per-layer error report, which costs minutes and changes nothing).
  local calib=()
  case " $* " in *" --method rtn "* | *" --method 4o6 "*) ;; *" --method "*) calib=(--calib-data "$CALIB") ;; esac
  local kernels=(--kernels real,pseudo)  # unless the job names its own
  case " $* " in *" --kernels "*) kernels=() ;; esac
  # shellcheck disable=SC2086
  if "$FPQ" eval "${kernels[@]}" --limit-tokens "$LIMIT" "${calib[@]}" ${FPQ_ARGS:-} "$@" \
       --json "$out.tmp" >"$RESULTS/$name.log" 2>"$RESULTS/$name.err"; then
    mv "$out.tmp" "$out"
    echo "done: $name"
  else
    echo "FAILED: $name (see $RESULTS/$name.err)"; tail -2 "$RESULTS/$name.err"
  fi
}
export -f run_job
grep -v '^\s*#' "$jobs_file" | grep -v '^\s*$' | xargs -P "$parallel" -I{} bash -c 'run_job {}'
