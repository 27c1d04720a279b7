// Kernels for the model runtime's "cuda" backends (src/model/cuda_backends.cpp):
//
// * exact_kernel: Y = float(S * (g_x * g_w)) with S the float64 sum of the products of both operands
//   dequantized without their tensor scales -- the pseudo path's definition (src/model/builtin_backends.cpp).
//   Codes are multiplied on the tensor cores as exact bf16 values (mma.sync m16n8k16, float32 accumulation)
//   over one scale "piece" (the finer of the two operands' groups); such a partial sum of code products is
//   exact when it fits float32's 24 bits (FP4 / INT4 / FP6 codes, INT8 groups of up to 1024), and each piece
//   is then multiplied by the two group scales and added in float64, exactly for E8M0 / E4M3 / FP16 scales.
//   Where every step is exact, S equals the CPU's float64 sum bit for bit (for realistic scale ranges).
// * decode_act_kernel: planar activation codes -> their exact bf16 values and decoded group scales.
// * split3_kernel / sum3_kernel: float32 activations as hi + mid + lo bf16 parts (exact), so the bf16
//   weight-only kernels see float32 inputs; the three products are added in float32. With a range guard
//   (amax_kernel first): activations whose products could leave float32's range inside the weight-only kernel
//   (sums of x times element x group scale come before the global scales) are split as x * 2^-e, e =
//   floor(log2(max |x|)), and the sums multiplied by 2^e at the end -- exact, powers of two.
#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/frag.cuh"

namespace fpq::cuda::detail {
namespace {

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

constexpr int kExactWarps = 4;

template <int BITS, int DEC, int NT>
__global__ void __launch_bounds__(kExactWarps * 32) exact_kernel(ExactParams p) {
  const WeightView& w = p.w;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int ksteps = int(w.k / 16);
  const PairDecoder dec = make_pair_decoder(w.bits, w.is_int, w.mbits, w.bias, false);
  const int wsteps = w.group / 16;                 // steps per weight group
  const int xsteps = p.xgroup / 16;                // steps per activation group
  const int psteps = wsteps < xsteps ? wsteps : xsteps;  // steps per piece (both powers of two)

  // Rows come in blocks of 8 NT; with m_dev the count is read on the device (the int8 route's fix-up rows) and
  // the grid strides over the blocks.
  // Row tiles blockIdx.x, + gridDim.x, ...: a device-side count launches a small grid (most often there is no row
  // to compute, and one CTA per row tile meant thousands of CTAs that only read the count: 14336 at 28672 rows).
  const int64_t M = p.m_dev ? int64_t(*p.m_dev) : p.m;
  if (M == 0) return;
  for (int64_t rt = blockIdx.x; rt < w.n_tiles; rt += gridDim.x)
  for (int64_t m0 = int64_t(blockIdx.y) * (8 * NT); m0 < M; m0 += int64_t(gridDim.y) * (8 * NT)) {
    // Rows of X this lane feeds as B (clamped: B's column n only reaches output column n, never stored when
    // n >= M) and the rows whose activation scales its accumulators need.
    const uint16_t* xrow[NT];
    int64_t srow[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int64_t mb = m0 + nt * 8 + g;
      xrow[nt] = p.x + (mb < M ? mb : M - 1) * w.k + 2 * t;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t ma = m0 + nt * 8 + 2 * t + h;
        srow[nt][h] = ma < M ? ma : M - 1;
      }
    }

    double acc[NT][4];
    float part[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[nt][r] = 0.0, part[nt][r] = 0.0f;

    const int KT = int(w.k_tiles);
    const int kt_begin = int(int64_t(KT) * warp / kExactWarps), kt_end = int(int64_t(KT) * (warp + 1) / kExactWarps);
    for (int kt = kt_begin; kt < kt_end; ++kt) {
      WTile<BITS> cur;
      load_wtile<BITS>(cur, w, rt, kt, lane);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int kstep = kt * 4 + j;
        if (kstep >= ksteps) break;
        uint32_t a[4];
        decode_step<BITS, DEC, false>(dec, cur.lo, cur.hi, j, a);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const uint16_t* xp = xrow[nt] + kstep * 16;
          const uint32_t b0 = __ldg(reinterpret_cast<const unsigned int*>(xp));
          const uint32_t b1 = __ldg(reinterpret_cast<const unsigned int*>(xp + 8));
          mma_bf16(part[nt], a, b0, b1);
        }
        // A piece ends at its last step, at a tile's end (a warp's K range may end there) and at K's end.
        if (j == 3 || (kstep + 1) % psteps == 0 || kstep == ksteps - 1) {
          // Weight scales of rows g and g + 8 for this piece's group, activation scales of this lane's rows.
          const int64_t wg = kstep / wsteps;
          const uint8_t* sp = w.scales + ((rt * w.n_groups + wg) * 16 + 2 * g) * w.sb;
          const double sw_lo = double(decode_scale_bytes(w.scale, sp));
          const double sw_hi = double(decode_scale_bytes(w.scale, sp + w.sb));
          const int64_t xg = kstep / xsteps;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            const double sx0 = p.xs ? double(p.xs[srow[nt][0] * p.xgroups + xg]) : 1.0;
            const double sx1 = p.xs ? double(p.xs[srow[nt][1] * p.xgroups + xg]) : 1.0;
            acc[nt][0] += double(part[nt][0]) * (sw_lo * sx0);
            acc[nt][1] += double(part[nt][1]) * (sw_lo * sx1);
            acc[nt][2] += double(part[nt][2]) * (sw_hi * sx0);
            acc[nt][3] += double(part[nt][3]) * (sw_hi * sx1);
#pragma unroll
            for (int r = 0; r < 4; ++r) part[nt][r] = 0.0f;
          }
        }
      }
    }

    // The warps' sums (exact, so any order gives the same bits; a fixed order anyway).
    __shared__ double red[kExactWarps][NT * 4][32];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r) red[warp][nt * 4 + r][lane] = acc[nt][r];
    __syncthreads();
    for (int e = threadIdx.x; e < NT * 4 * 32; e += blockDim.x) {
      const int sl = e / 32, l = e % 32;
      double s = 0.0;
#pragma unroll
      for (int q = 0; q < kExactWarps; ++q) s += red[q][sl][l];
      const int nt = sl / 4, r = sl % 4;
      const int64_t n = rt * 16 + (l >> 2) + (r >= 2 ? 8 : 0);
      const int64_t m = m0 + nt * 8 + 2 * (l & 3) + (r & 1);
      if (n >= w.n || m >= M) continue;
      const double gx = p.xg ? double(p.xg[m]) : double(p.xg_scalar);
      const double gw = w.row_global ? double(w.row_global[n]) : double(w.global);
      const float v = float(s * (gx * gw));
      if (p.y_row) store_typed(p.y_typed, p.ytype, int64_t(p.y_row[m]) * p.ldy + n, v);
      else p.y[m * w.n + n] = v;
    }
    __syncthreads();  // red is reused by the next block of rows
  }
}

template <int BITS, int DEC>
void launch_exact_bits(const ExactParams& p, CUstream_st* stream) {
  unsigned nt_tiles = unsigned(p.w.n_tiles);
  if (p.m <= 8) {
    exact_kernel<BITS, DEC, 1><<<dim3(nt_tiles, 1), kExactWarps * 32, 0, stream>>>(p);
  } else {
    int64_t blocks = (p.m + 31) / 32;
    if (p.m_dev) {  // a device-side count (usually few rows, often none): a grid of about 4 CTAs per SM, striding
      blocks = std::min<int64_t>(blocks, 8);
      nt_tiles = unsigned(std::max<int64_t>(1, std::min<int64_t>(nt_tiles, 4 * int64_t(sm_count()) / blocks)));
    }
    exact_kernel<BITS, DEC, 4><<<dim3(nt_tiles, unsigned(blocks)), kExactWarps * 32, 0, stream>>>(p);
  }
}

// One thread per 8 codes of a row (cols is a multiple of 16): decode to bf16 (exact for the element types the
// host admits); one thread per (row, group) scale.
__global__ void decode_act_kernel(DecodeActParams p) {
  const int64_t chunks = p.rows * (p.cols / 8);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < chunks; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / (p.cols / 8), c0 = (i % (p.cols / 8)) * 8;
    const uint8_t* row = p.codes + r * p.row_code_bytes;
    const int bits = p.e.bits;
    // 8 codes = `bits` bytes starting at a byte boundary (c0 * bits is a multiple of 8).
    uint64_t v = 0;
    const uint8_t* src = row + (c0 * bits) / 8;
    for (int b = 0; b < bits; ++b) v |= uint64_t(src[b]) << (8 * b);
    uint32_t out[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint32_t c_lo = uint32_t(v >> (bits * (2 * q))) & ((1u << bits) - 1u);
      const uint32_t c_hi = uint32_t(v >> (bits * (2 * q + 1))) & ((1u << bits) - 1u);
      const uint32_t lo = f32_to_bf16_dev(decode_dev(p.e, c_lo)), hi = f32_to_bf16_dev(decode_dev(p.e, c_hi));
      out[q] = lo | (hi << 16);
    }
    *reinterpret_cast<uint4*>(p.out + r * p.cols + c0) = make_uint4(out[0], out[1], out[2], out[3]);
  }
  if (p.scales && p.scale_out) {
    const int64_t ns = p.rows * p.groups;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < ns; i += int64_t(gridDim.x) * blockDim.x)
      p.scale_out[i] = decode_scale_bytes(p.scale, p.scales + i * p.sb);
  }
}

// max |x| as float32 bits (non-negative floats order as their bits; NaN bits sort above Inf).
__global__ void amax_kernel(const float* x, int64_t n, unsigned* amax) {
  unsigned a = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    a = max(a, __float_as_uint(x[i]) & 0x7FFFFFFFu);
  for (int o = 16; o > 0; o >>= 1) a = max(a, __shfl_xor_sync(0xFFFFFFFFu, a, o));
  if ((threadIdx.x & 31) == 0 && a != 0) atomicMax(amax, a);
}

// The guard's exponent e (x is split as x * 2^-e, sums multiplied by 2^e): floor(log2(max |x|)) where the
// largest product times k could pass 2^100, the smallest could fall under 2^-90 or the activations' low bf16
// parts under 2^-76; otherwise 0 (no change). Non-finite activations: 0 (they propagate as they are).
__device__ __forceinline__ int guard_exp(const unsigned* amax, int w_log2, int k_log2) {
  if (amax == nullptr) return 0;
  const unsigned a = *amax;
  if (a == 0 || a >= 0x7F800000u) return 0;
  const int e = floor_log2_dev(__uint_as_float(a));
  return (e + w_log2 + k_log2 > 100 || e + w_log2 < -90 || e < -60) ? e : 0;
}

__global__ void split3_kernel(const float* x, int64_t n, uint16_t* out, const unsigned* amax, int w_log2, int k_log2) {
  const int e = guard_exp(amax, w_log2, k_log2);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = e == 0 ? x[i] : ldexpf(x[i], -e);
    const uint16_t hi = f32_to_bf16_dev(v);
    const float r1 = __fsub_rn(v, bf16_to_f32_dev(hi));
    const uint16_t mid = f32_to_bf16_dev(r1);
    const float r2 = __fsub_rn(r1, bf16_to_f32_dev(mid));
    const bool finite = is_finite_dev(v);
    out[i] = hi;
    out[n + i] = finite ? mid : uint16_t(0);
    out[2 * n + i] = finite ? f32_to_bf16_dev(r2) : uint16_t(0);
  }
}

__global__ void sum3_kernel(const float* y3, int64_t n, float* y, const unsigned* amax, int w_log2, int k_log2) {
  const int e = guard_exp(amax, w_log2, k_log2);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float s = __fadd_rn(__fadd_rn(y3[i], y3[n + i]), y3[2 * n + i]);
    y[i] = e == 0 ? s : ldexpf(s, e);
  }
}

int grid_of(int64_t work) {
  const int64_t b = (work + 255) / 256;
  const int64_t cap = int64_t(sm_count()) * 8;
  return int(b < 1 ? 1 : b > cap ? cap : b);
}

}  // namespace

void launch_exact(const ExactParams& p, CUstream_st* stream) {
  if (p.m == 0 || p.w.n == 0) return;
  const WeightView& w = p.w;
  const int dk = decode_kind(w.bits, w.is_int, w.mbits, w.bias);
  switch (w.bits) {
    case 4:
      if (dk == kDecE2M1) launch_exact_bits<4, kDecE2M1>(p, stream);
      else if (dk == kDecInt4) launch_exact_bits<4, kDecInt4>(p, stream);
      else launch_exact_bits<4, kDecFp>(p, stream);
      break;
    case 5: launch_exact_bits<5, kDecFp>(p, stream); break;
    case 6: launch_exact_bits<6, kDecFp>(p, stream); break;
    default:
      if (dk == kDecInt8) launch_exact_bits<8, kDecInt8>(p, stream);
      else launch_exact_bits<8, kDecFp>(p, stream);
      break;
  }
  check_launch("exact_kernel");
}

void launch_decode_act(const DecodeActParams& p, CUstream_st* stream) {
  if (p.rows == 0) return;
  decode_act_kernel<<<grid_of(p.rows * p.cols / 8), 256, 0, stream>>>(p);
  check_launch("decode_act_kernel");
}

void launch_amax(const float* x, int64_t n, unsigned* amax, CUstream_st* stream) {
  check(cudaMemsetAsync(amax, 0, sizeof(unsigned), stream), "cudaMemsetAsync");
  if (n == 0) return;
  amax_kernel<<<grid_of(n), 256, 0, stream>>>(x, n, amax);
  check_launch("amax_kernel");
}

void launch_split3(const float* x, int64_t n, uint16_t* out, const RangeGuard& g, CUstream_st* stream) {
  if (n == 0) return;
  split3_kernel<<<grid_of(n), 256, 0, stream>>>(x, n, out, g.amax, g.w_log2, g.k_log2);
  check_launch("split3_kernel");
}

void launch_sum3(const float* y3, int64_t n, float* y, const RangeGuard& g, CUstream_st* stream) {
  if (n == 0) return;
  sum3_kernel<<<grid_of(n), 256, 0, stream>>>(y3, n, y, g.amax, g.w_log2, g.k_log2);
  check_launch("sum3_kernel");
}

}  // namespace fpq::cuda::detail
