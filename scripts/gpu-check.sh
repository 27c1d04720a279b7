#!/usr/bin/env bash
# GPU check of fpq's CUDA kernels: runs the GPU tests (tests/kernels_cuda), compute-sanitizer on them, and the
# benchmark (bench/cuda), printing the benchmark table last.
#
# The GPU machine has nvcc, cmake and the CUDA libraries but none of fpq's Debian -dev packages (fmt, gtest,
# ...), so the binaries are built on the development machine (nvcc compiles sm_90a code without a GPU) and
# carried over in .carry/ (git-ignored) together with the one shared library they need (libfmt):
#
#   scripts/gpu-check.sh --prepare        # here: build into build-cuda/, copy binaries + libs to .carry/
#   scripts/gpu-check.sh                  # on the GPU machine (repo root, .carry/ present): test + bench
#
# Options for the run: --quick (one benchmark shape), --no-sanitizer, --no-bench, --no-tests.
# Logs go to $OUT (or ./gpu-check-out) as tests.log, sanitizer.log, bench.log.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="$ROOT/.carry"

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  SRC="${FPQ_SRC:-$ROOT}"
  BUILD="${FPQ_CUDA_BUILD:-$ROOT/build-cuda}"
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFPQ_CUDA=ON >/dev/null
  ninja -C "$BUILD" -j"${JOBS:-2}" test_kernels_cuda bench_cuda
  rm -rf "$CARRY"
  mkdir -p "$CARRY/bin" "$CARRY/lib"
  cp "$BUILD/tests/kernels_cuda/test_kernels_cuda" "$BUILD/bench/cuda/bench_cuda" "$CARRY/bin/"
  # Shared libraries the GPU machine lacks: everything ldd resolves outside libc/libstdc++/CUDA.
  for bin in "$CARRY"/bin/*; do
    ldd "$bin" | awk '/=> \//{print $3}' | while read -r lib; do
      case "$(basename "$lib")" in
        libc.so*|libm.so*|libstdc++*|libgcc_s*|libpthread*|libdl*|librt*|ld-linux*|libcublas*|libcuda*) ;;
        *) cp -L "$lib" "$CARRY/lib/" ;;
      esac
    done
  done
  (cd "$ROOT" && echo "built $(date -u +%Y-%m-%dT%H:%MZ) from $(git rev-parse --short HEAD 2>/dev/null)" >"$CARRY/BUILD_INFO")
  du -sh "$CARRY"
  ls -la "$CARRY/bin" "$CARRY/lib"
  exit 0
fi

QUICK=""; SAN=1; BENCH=1; TESTS=1
for a in "$@"; do
  case "$a" in
    --quick) QUICK="--quick" ;;
    --no-sanitizer) SAN=0 ;;
    --no-bench) BENCH=0 ;;
    --no-tests) TESTS=0 ;;
    *) echo "gpu-check.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
LOGS="${OUT:-$ROOT/gpu-check-out}"
mkdir -p "$LOGS"
if [[ ! -x "$CARRY/bin/test_kernels_cuda" ]]; then
  echo "gpu-check.sh: $CARRY/bin/test_kernels_cuda is missing: run 'scripts/gpu-check.sh --prepare' on the build machine and carry .carry" >&2
  exit 2
fi
# Libraries: carried ones, the CUDA toolkit's, PyTorch's pip cuBLAS as a fallback.
LIBS="$CARRY/lib:/usr/local/cuda/lib64"
PYCUBLAS="$(python3 -c 'import nvidia.cublas, os; print(os.path.join(os.path.dirname(nvidia.cublas.__file__), "lib"))' 2>/dev/null || true)"
[[ -n "$PYCUBLAS" ]] && LIBS="$LIBS:$PYCUBLAS"
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== machine"; cat "$CARRY/BUILD_INFO" 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | head -2
for bin in "$CARRY"/bin/*; do
  if ldd "$bin" | grep -q "not found"; then echo "MISSING LIBRARIES for $bin:"; ldd "$bin" | grep "not found"; fi
done

STATUS=0
if [[ $TESTS == 1 ]]; then
  echo "== GPU tests"
  timeout 150 "$CARRY/bin/test_kernels_cuda" 2>&1 | tee "$LOGS/tests.log" | grep -E "^\[  (PASSED|FAILED|  OK|  SKIPPED) |^\[==========\]|Failure|error|Expected|Which is|rel|differ|seed|cuda_available" | head -120
  [[ ${PIPESTATUS[0]} -ne 0 ]] && STATUS=1
fi
if [[ $SAN == 1 ]] && command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer (memcheck, racecheck) on the GPU tests"
  FILTER='Cuda.*'
  timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 "$CARRY/bin/test_kernels_cuda" --gtest_filter="$FILTER" >"$LOGS/sanitizer.log" 2>&1
  rc=$?; echo "memcheck exit $rc: $(grep -E 'ERROR SUMMARY|PASSED|FAILED' "$LOGS/sanitizer.log" | tail -3 | tr '\n' ' ')"
  [[ $rc -ne 0 && $rc -ne 124 ]] && STATUS=1
  timeout 90 compute-sanitizer --tool racecheck --error-exitcode 9 "$CARRY/bin/test_kernels_cuda" --gtest_filter='Cuda.QuantizedMatmul*:Cuda.WeightOnly*' >>"$LOGS/sanitizer.log" 2>&1
  rc=$?; echo "racecheck exit $rc: $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$LOGS/sanitizer.log" | tail -1)"
  [[ $rc -ne 0 && $rc -ne 124 ]] && STATUS=1
fi
if [[ $BENCH == 1 ]]; then
  echo "== benchmark"
  timeout 200 "$CARRY/bin/bench_cuda" $QUICK >"$LOGS/bench.log" 2>"$LOGS/bench.err"
  rc=$?
  [[ $rc -ne 0 ]] && { echo "bench_cuda exit $rc"; tail -5 "$LOGS/bench.err"; STATUS=1; }
  cat "$LOGS/bench.log"
fi
exit $STATUS
