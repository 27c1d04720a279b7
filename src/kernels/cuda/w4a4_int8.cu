// W4A4 mxfp4 products on the int8 tensor cores (cuda_kernels.h, "W4A4 prefill on the int8 tensor cores"):
//
//   1. fold_kernel: each activation row (E2M1 codes, E8M0 scales in groups of 32) becomes int8 values
//      (2 x E2M1 << (e_g - base), |v| <= 96) and the exponent base, when its non-zero groups' exponents lie
//      within 4 of each other. Other rows -- a wider span, or a NaN scale -- are marked; the wide ones are
//      copied (bf16 code values and float32 group scales, compacted by an atomic counter) for step 3.
//   2. cuBLASLt: D (int32, M x virtual rows) = X_i8 * W_i8^T, exact.
//   3. launch_exact with the device-side row count (exact.cu): the compacted rows in float64, exactly, written
//      straight into their rows of y.
//   4. epilogue_kernel: y = float(sum over the weight row's bands of D x 2^band, x 2^base x global), in
//      float64 (exact up to the one rounding to float), or NaN; it skips the fix-up rows.
// Steps 2 and 4 are int8_gemm_scaled (int8_gemm_scaled.cu) where the output allows: a CUTLASS GEMM with that
// scaling in its epilogue, over the weight rows' top bands; the weight rows with several bands are then
// multiplied apart (their own image, cuBLASLt) and their columns rewritten by epilogue_kernel.
#include <cublasLt.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/int8_codes.h"

namespace fpq::cuda::detail {
namespace {

constexpr int kRowOk = -1, kRowNaN = -2;  // Int8Params::slot values besides a fix-up slot (>= 0)

// 8 codes (one 32-bit word, first code in the low nibble) -> 8 int8 values 2 x E2M1 << shift (int8_codes.h).
__device__ __forceinline__ uint2 codes_to_i8(const TwiceE2M1Table& t, uint32_t w) {
  return make_uint2(twice_e2m1_x4(t, w, 0), twice_e2m1_x4(t, w, 16));
}

__device__ __forceinline__ uint16_t e2m1_bf16(uint32_t c) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(0.5f * float(twice_e2m1(c))));
}

// One warp per activation row.
__global__ void __launch_bounds__(256) fold_kernel(Int8FoldParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (r >= p.m) return;
  const int G = int(p.k / 32);
  const uint4* rc = reinterpret_cast<const uint4*>(p.codes + r * (p.k / 2));
  const uint8_t* rs = p.scales + r * G;
  int top = INT_MIN, bot = INT_MAX, nan = 0;
#pragma unroll 4
  for (int g = lane; g < G; g += 32) {
    const uint4 w = rc[g];
    const int s = rs[g];
    nan |= s == 0xFF;
    if (((w.x | w.y | w.z | w.w) & 0x77777777u) != 0) top = max(top, s), bot = min(bot, s);
  }
  for (int o = 16; o > 0; o >>= 1) {
    top = max(top, __shfl_xor_sync(0xFFFFFFFFu, top, o));
    bot = min(bot, __shfl_xor_sync(0xFFFFFFFFu, bot, o));
    nan |= __shfl_xor_sync(0xFFFFFFFFu, nan, o);
  }
  uint4* out = reinterpret_cast<uint4*>(p.out + r * p.k);
  const bool empty = top == INT_MIN;
  const int base = empty ? 128 : top - 3;  // in scale-code units: value = i8 x 2^(base - 128)
  if (nan || (!empty && top - bot > 3)) {
    int slot = kRowNaN;
    if (!nan) {
      if (lane == 0) slot = atomicAdd(p.fix_count, 1), p.fix_row[slot] = int(r);
      slot = __shfl_sync(0xFFFFFFFFu, slot, 0);
      uint16_t* fx = p.fix_x + int64_t(slot) * p.k;
      for (int g = lane; g < G; g += 32) {
        const uint4 w = rc[g];
        const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int q = 0; q < 4; ++q)
#pragma unroll
          for (int e = 0; e < 8; ++e) fx[int64_t(g) * 32 + q * 8 + e] = e2m1_bf16(ws[q] >> (4 * e));
        p.fix_s[int64_t(slot) * G + g] = ldexpf(1.0f, int(rs[g]) - 127);
      }
    }
    if (lane == 0) {
      p.slot[r] = slot, p.exp[r] = 0;
      if (p.row_scale) p.row_scale[r] = slot == kRowNaN ? __int_as_float(0x7FC00000) : 0.0f;
    }
    for (int g = lane; g < G; g += 32) out[2 * g] = out[2 * g + 1] = make_uint4(0, 0, 0, 0);
    return;
  }
  if (lane == 0) {
    p.slot[r] = kRowOk, p.exp[r] = base - 128;
    if (p.row_scale) p.row_scale[r] = ldexpf(1.0f, base - 128);  // >= 2^-131: a float subnormal, exact
  }
#pragma unroll 4
  for (int g = lane; g < G; g += 32) {
    const uint4 w = rc[g];
    const int shift = int(rs[g]) - base;
    const bool nz = ((w.x | w.y | w.z | w.w) & 0x77777777u) != 0;
    if (!nz) {
      out[2 * g] = out[2 * g + 1] = make_uint4(0, 0, 0, 0);
      continue;
    }
    const TwiceE2M1Table t = twice_e2m1_table(shift);
    const uint2 a = codes_to_i8(t, w.x), b = codes_to_i8(t, w.y), c = codes_to_i8(t, w.z), d = codes_to_i8(t, w.w);
    out[2 * g] = make_uint4(a.x, a.y, b.x, b.y);
    out[2 * g + 1] = make_uint4(c.x, c.y, d.x, d.y);
  }
}

// Entry j: its top band d[j] and its other bands; the global scale of its output column `col`.
__device__ __forceinline__ float epilogue_value(const Int8EpilogueParams& p, const int32_t* d, int slot, double ascale,
                                                int64_t j, int64_t col) {
  if (slot == kRowNaN) return __int_as_float(0x7FC00000);
  double s = double(d[j]) * p.wscale[j];
  for (int32_t b = p.extra_first[j], e = p.extra_first[j + 1]; b < e; ++b) s += double(d[b]) * p.wscale[b];
  const double gw = p.row_global ? double(p.row_global[col]) : double(p.wglobal);
  return float(s * (ascale * gw));
}

// Block (x, y): 1024 entries of rows y, y + gridDim.y, ...; each thread 4 consecutive ones. Where every weight row
// is one virtual row, N is a multiple of 4 and entries are columns (`direct`), D is read as int4 and y written 4
// values at a time.
// The columns' weight scales are loaded once, before the row loop (y may alias nothing, but the compiler cannot
// know that and reloaded them for every row).
__global__ void __launch_bounds__(256) epilogue_kernel(Int8EpilogueParams p) {
  const int64_t n0 = (int64_t(blockIdx.x) * 256 + threadIdx.x) * 4;
  if (n0 >= p.n) return;
  double ws[4] = {0, 0, 0, 0}, gws[4] = {0, 0, 0, 0};
  if (p.direct) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      ws[e] = p.wscale[n0 + e];
      gws[e] = p.row_global ? double(p.row_global[n0 + e]) : double(p.wglobal);
    }
  }
  for (int64_t m = blockIdx.y; m < p.m; m += gridDim.y) {
    const int slot = p.slot[m];
    if (slot >= 0) continue;  // a fix-up row: the exact kernel wrote it
    const double ascale = ldexp(1.0, p.exp[m]);
    const int32_t* d = p.d + m * p.nv;
    const int64_t o = m * p.ldy + n0;
    if (p.direct && slot == kRowOk) {
      const int4 v = *reinterpret_cast<const int4*>(d + n0);
      const int32_t dv[4] = {v.x, v.y, v.z, v.w};
      float r[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) r[e] = float(double(dv[e]) * ws[e] * (ascale * gws[e]));
      if (p.ytype == kF32) {
        *reinterpret_cast<float4*>(static_cast<float*>(p.y) + o) = make_float4(r[0], r[1], r[2], r[3]);
      } else if (p.ytype == kBF16) {
        const __nv_bfloat162 lo = __floats2bfloat162_rn(r[0], r[1]), hi = __floats2bfloat162_rn(r[2], r[3]);
        *reinterpret_cast<uint2*>(static_cast<__nv_bfloat16*>(p.y) + o) =
            make_uint2(*reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
      } else {
        const __half2 lo = __floats2half2_rn(r[0], r[1]), hi = __floats2half2_rn(r[2], r[3]);
        *reinterpret_cast<uint2*>(static_cast<__half*>(p.y) + o) =
            make_uint2(*reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
      }
      continue;
    }
    for (int e = 0; e < 4 && n0 + e < p.n; ++e) {
      const int64_t col = p.col ? p.col[n0 + e] : n0 + e;
      store_typed(p.y, p.ytype, m * p.ldy + col, epilogue_value(p, d, slot, ascale, n0 + e, col));
    }
  }
}

// cuBLASLt: handle and one heuristic answer per shape, shared by all calls (guarded).
struct Int8Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t ws = 0;
};

void ckb(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) fail_message(what);
}

// One cuBLASLt handle per device, created on first use there.
cublasLtHandle_t lt_handle(int dev) {
  static std::mutex mu;
  static std::map<int, cublasLtHandle_t> handles;
  std::lock_guard<std::mutex> lock(mu);
  cublasLtHandle_t& h = handles[dev];
  if (h == nullptr) ckb(cublasLtCreate(&h), "int8 matmul: cublasLtCreate failed");
  return h;
}

// The plan of a shape on a device: cuBLASLt's heuristic candidates (up to 8) timed once on the caller's operands, the fastest
// kept (H100, 2026-12-06, 4096 x 14336 at M = 2048: the heuristic's first answer took 197 us, its second 168 us).
// Products under 2^34 multiply-adds take the first candidate untimed: there the timing (32 runs and a sync per
// shape, and a model's weights differ in virtual rows) costs more than it can win. Under stream capture nothing
// can be timed: the first candidate is taken (and not kept, so a later call tunes).
const Int8Plan& int8_plan(int dev, int64_t m, int64_t nv, int64_t k, const int8_t* w, const int8_t* x, int32_t* d,
                          CUstream_st* stream) {
  static std::mutex mu;
  static std::map<std::tuple<int, int64_t, int64_t, int64_t>, Int8Plan> plans;
  static thread_local Int8Plan untuned;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(dev, m, nv, k);
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  Int8Plan pl;
  // Column-major view: D (nv x m) = W^T(op T on the k x nv weight) * X (k x m), int32 accumulation.
  ckb(cublasLtMatmulDescCreate(&pl.op, CUBLAS_COMPUTE_32I, CUDA_R_32I), "int8 matmul: descriptor");
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  ckb(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "int8 matmul: transa");
  ckb(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "int8 matmul: transb");
  ckb(cublasLtMatrixLayoutCreate(&pl.la, CUDA_R_8I, uint64_t(k), uint64_t(nv), k), "int8 matmul: layout");
  ckb(cublasLtMatrixLayoutCreate(&pl.lb, CUDA_R_8I, uint64_t(k), uint64_t(m), k), "int8 matmul: layout");
  ckb(cublasLtMatrixLayoutCreate(&pl.lc, CUDA_R_32I, uint64_t(nv), uint64_t(m), nv), "int8 matmul: layout");
  cublasLtMatmulPreference_t pref;
  ckb(cublasLtMatmulPreferenceCreate(&pref), "int8 matmul: preference");
  size_t wsb = size_t(32) << 20;
  ckb(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb)),
      "int8 matmul: preference");
  cublasLtMatmulHeuristicResult_t res[8] = {};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_handle(dev), pl.op, pl.la, pl.lb, pl.lc, pl.lc, pref, 8,
                                                           res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) fail_message("int8 matmul: cuBLASLt has no int8 algorithm for this shape");
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(stream, &cap), "cudaStreamIsCapturing");
  int best = 0;
  const bool large = double(m) * double(nv) * double(k) >= 0x1p34;
  if (found > 1 && large && cap == cudaStreamCaptureStatusNone) {
    size_t ws_max = 0;
    for (int a = 0; a < found; ++a) ws_max = std::max(ws_max, res[a].workspaceSize);
    void* ws = nullptr;
    if (ws_max) check(cudaMallocAsync(&ws, ws_max, stream), "cudaMallocAsync");
    cudaEvent_t e0, e1;
    check(cudaEventCreate(&e0), "cudaEventCreate");
    check(cudaEventCreate(&e1), "cudaEventCreate");
    float best_ms = 0;
    const int32_t alpha = 1, beta = 0;
    for (int a = 0; a < found; ++a) {
      auto run = [&] {
        return cublasLtMatmul(lt_handle(dev), pl.op, &alpha, w, pl.la, x, pl.lb, &beta, d, pl.lc, d, pl.lc, &res[a].algo,
                              ws, res[a].workspaceSize, stream) == CUBLAS_STATUS_SUCCESS;
      };
      if (!run()) continue;  // warm-up; a candidate that fails is skipped
      float t = 0;
      bool ok = true;
      check(cudaEventRecord(e0, stream), "cudaEventRecord");
      for (int r = 0; r < 3 && ok; ++r) ok = run();
      check(cudaEventRecord(e1, stream), "cudaEventRecord");
      check(cudaEventSynchronize(e1), "cudaEventSynchronize");
      check(cudaEventElapsedTime(&t, e0, e1), "cudaEventElapsedTime");
      if (ok && (best_ms == 0 || t < best_ms)) best = a, best_ms = t;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (ws) check(cudaFreeAsync(ws, stream), "cudaFreeAsync");
  }
  pl.algo = res[best].algo;
  pl.ws = res[best].workspaceSize;
  if (cap != cudaStreamCaptureStatusNone) {
    untuned = pl;
    return untuned;
  }
  return plans.emplace(key, pl).first->second;
}

}  // namespace

void launch_int8_fold(const Int8FoldParams& p, CUstream_st* stream) {
  if (p.m == 0) return;
  fold_kernel<<<unsigned((p.m + 7) / 8), 256, 0, stream>>>(p);
  check_launch("fold_kernel");
}

void launch_int8_epilogue(const Int8EpilogueParams& p, CUstream_st* stream) {
  if (p.m == 0 || p.n == 0) return;
  const int64_t bx = (p.n + 1023) / 1024;
  // A grid of 16 CTAs per SM whose threads loop over the rows (measured: one row per block row instead was 4-8 us
  // slower at M = 2048 on all three Llama shapes, H100, 2026-12-06 14:54 UTC).
  const int64_t by = std::min<int64_t>(p.m, std::max<int64_t>(1, int64_t(sm_count()) * 16 / bx));
  epilogue_kernel<<<dim3(unsigned(bx), unsigned(std::min<int64_t>(by, 65535))), 256, 0, stream>>>(p);
  check_launch("epilogue_kernel");
}

void int8_gemm(const int8_t* w, const int8_t* x, int32_t* d, int64_t m, int64_t nv, int64_t k, CUstream_st* stream) {
  if (m == 0 || nv == 0) return;
  const int dev = current_device();
  const Int8Plan& pl = int8_plan(dev, m, nv, k, w, x, d, stream);
  void* ws = nullptr;
  if (pl.ws) check(cudaMallocAsync(&ws, pl.ws, stream), "cudaMallocAsync");
  const int32_t alpha = 1, beta = 0;
  const cublasStatus_t st = cublasLtMatmul(lt_handle(dev), pl.op, &alpha, w, pl.la, x, pl.lb, &beta, d, pl.lc, d, pl.lc,
                                           &pl.algo, ws, pl.ws, stream);
  if (ws) check(cudaFreeAsync(ws, stream), "cudaFreeAsync");
  if (st != CUBLAS_STATUS_SUCCESS) fail_message("int8 matmul: cublasLtMatmul failed");
}

}  // namespace fpq::cuda::detail
