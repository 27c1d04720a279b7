// Weight-only matrix multiply for decode and small batches (M <= 32): Y = X * dequant(W)^T.
//
// One CTA (8 warps) per 16 weight rows; the warps take the 64-column tiles of those rows in turn and keep
// P tiles of codes in flight in registers (16-byte streaming loads, the prepared fragment layout of frag.cuh).
// Codes become exact half / bf16 values with a shift, a mask and one packed multiply; mma.sync m16n8k16 (the
// weight as A, up to four 8-row slices of X as B) accumulates each scale group in float32, and the group's
// partial sums are multiplied by the decoded scale and added into the float32 result (so any scale type works
// exactly, e.g. fp16 scales of INT4 groups). Warps' sums are added in shared memory in a fixed order.
#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/frag.cuh"

namespace fpq::cuda::detail {
namespace {

constexpr int kWarps = 8;

__device__ __forceinline__ uint4 ld_stream16(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
__device__ __forceinline__ uint2 ld_stream8(const void* p) {
  uint2 v;
  asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t ld_stream4(const void* p) {
  uint32_t v;
  asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}

template <bool HALF>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (HALF) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

template <int BITS>
struct Tile {
  uint32_t lo[4];
  uint32_t hi[HiWords<BITS>::n];
  uint32_t sc[4];  // raw scales (1- or 2-byte types) of rows g (low half) and g + 8 (high half), per promoting step
};

// Raw scales of rows g and g + 8 of group gi: 1-byte types as bytes 0 and 2, 2-byte types as the two halves.
// (4-byte scales are read at use: they only occur as one scale per row.)
__device__ __forceinline__ uint32_t load_scale_pair(const WeightView& w, int64_t rt, int64_t gi, int g) {
  const uint8_t* base = w.scales + ((rt * w.n_groups + gi) * 16 + 2 * g) * w.sb;
  if (w.sb == 1) {
    const uint32_t v = __ldg(reinterpret_cast<const uint16_t*>(base));
    return (v & 0xFFu) | ((v >> 8) << 16);
  }
  if (w.sb == 2) return __ldg(reinterpret_cast<const uint32_t*>(base));
  return 0;
}

__device__ __forceinline__ float2 scale_pair(const WeightView& w, uint32_t raw, int64_t rt, int64_t gi, int g) {
  if (w.sb == 4) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(w.scales + ((rt * w.n_groups + gi) * 16 + 2 * g) * 4));
    return make_float2(__uint_as_float(v.x), __uint_as_float(v.y));
  }
  return make_float2(decode_scale_raw(w.scale, raw & 0xFFFFu), decode_scale_raw(w.scale, raw >> 16));
}

__device__ __forceinline__ bool promotes(int64_t kstep, int64_t ksteps, int spg, int j) {
  return j == 3 || kstep == ksteps - 1 || (kstep + 1) % spg == 0;
}

template <int BITS>
__device__ __forceinline__ void load_tile(Tile<BITS>& tl, const WeightView& w, int64_t rt, int64_t kt, int lane,
                                          int spg) {
  const int64_t tile = rt * w.k_tiles + kt;
  const uint4 v = ld_stream16(w.plane4 + (tile * 32 + lane) * 16);
  tl.lo[0] = v.x;
  tl.lo[1] = v.y;
  tl.lo[2] = v.z;
  tl.lo[3] = v.w;
  if constexpr (BITS == 8) {
    const uint4 h = ld_stream16(w.plane_hi + (tile * 32 + lane) * 16);
    tl.hi[0] = h.x;
    tl.hi[1] = h.y;
    tl.hi[2] = h.z;
    tl.hi[3] = h.w;
  } else if constexpr (BITS == 6) {
    const uint2 h = ld_stream8(w.plane_hi + (tile * 32 + lane) * 8);
    tl.hi[0] = h.x;
    tl.hi[1] = h.y;
  } else if constexpr (BITS == 5) {
    tl.hi[0] = ld_stream4(w.plane_hi + (tile * 32 + lane) * 4);
  } else {
    tl.hi[0] = 0;
  }
  const int64_t ksteps = w.k / 16;
  const int g = lane >> 2;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t kstep = kt * 4 + j;
    tl.sc[j] = 0;
    if (kstep < ksteps && promotes(kstep, ksteps, spg, j)) tl.sc[j] = load_scale_pair(w, rt, kstep / spg, g);
  }
}

template <int BITS, bool HALF, int NT>
__global__ void __launch_bounds__(kWarps * 32, NT == 1 ? 2 : 1) gemv_kernel(GemvParams p) {
  constexpr int P = BITS == 8 ? 3 : 4;  // tiles in flight per warp
  const WeightView& w = p.w;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int64_t rt = blockIdx.x;
  const int64_t ksteps = w.k / 16;
  const int spg = w.group / 16;
  const PairDecoder dec = make_pair_decoder(w.bits, w.is_int, w.mbits, w.bias, HALF);
  const uint16_t* x = static_cast<const uint16_t*>(p.x);

  float acc[NT][4], part[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) acc[nt][r] = part[nt][r] = 0.0f;

  // Activation rows this lane feeds into B (rows >= M read as zero).
  const uint16_t* xrow[NT];
  bool xok[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int64_t m = nt * 8 + g;
    xok[nt] = m < p.m;
    xrow[nt] = x + (xok[nt] ? m : 0) * p.ldx + 2 * t;
  }

  Tile<BITS> buf[P];
  const int64_t KT = w.k_tiles;
#pragma unroll
  for (int s = 0; s < P; ++s) {
    const int64_t kt = warp + int64_t(s) * kWarps;
    if (kt < KT) load_tile<BITS>(buf[s], w, rt, kt, lane, spg);
  }
  for (int64_t base = warp; base < KT; base += int64_t(P) * kWarps) {
#pragma unroll
    for (int s = 0; s < P; ++s) {
      const int64_t kt = base + int64_t(s) * kWarps;
      if (kt < KT) {
        const Tile<BITS> cur = buf[s];
        const int64_t ktn = kt + int64_t(P) * kWarps;
        if (ktn < KT) load_tile<BITS>(buf[s], w, rt, ktn, lane, spg);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t kstep = kt * 4 + j;
          if (kstep >= ksteps) break;
          uint32_t a[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) a[i] = decode_pair<HALF>(dec, pair_code<BITS>(cur.lo, cur.hi, j, i));
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            uint32_t b0 = 0, b1 = 0;
            if (xok[nt]) {
              const uint16_t* xp = xrow[nt] + kstep * 16;
              b0 = __ldg(reinterpret_cast<const unsigned int*>(xp));
              b1 = __ldg(reinterpret_cast<const unsigned int*>(xp + 8));
            }
            mma16816<HALF>(part[nt], a, b0, b1);
          }
          if (promotes(kstep, ksteps, spg, j)) {
            const float2 sp = scale_pair(w, cur.sc[j], rt, kstep / spg, g);
            const float s_lo = sp.x, s_hi = sp.y;
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
              acc[nt][0] = fmaf(part[nt][0], s_lo, acc[nt][0]);
              acc[nt][1] = fmaf(part[nt][1], s_lo, acc[nt][1]);
              acc[nt][2] = fmaf(part[nt][2], s_hi, acc[nt][2]);
              acc[nt][3] = fmaf(part[nt][3], s_hi, acc[nt][3]);
#pragma unroll
              for (int r = 0; r < 4; ++r) part[nt][r] = 0.0f;
            }
          }
        }
      }
    }
  }

  // Sum the warps' results in a fixed order.
  __shared__ float red[kWarps][NT * 4][32];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) red[warp][nt * 4 + r][lane] = acc[nt][r];
  __syncthreads();
  for (int e = threadIdx.x; e < NT * 4 * 32; e += blockDim.x) {
    const int slot = e / 32, l = e % 32;
    float v = 0.0f;
#pragma unroll
    for (int q = 0; q < kWarps; ++q) v += red[q][slot][l];
    const int nt = slot / 4, r = slot % 4;
    const int64_t n = rt * 16 + (l >> 2) + (r >= 2 ? 8 : 0);
    const int64_t m = nt * 8 + 2 * (l & 3) + (r & 1);
    if (n >= w.n || m >= p.m) continue;
    v *= w.global;
    if (w.row_global) v *= w.row_global[n];
    const int64_t o = m * p.ldy + n;
    if (p.ytype == kF32) static_cast<float*>(p.y)[o] = v;
    else if (p.ytype == kBF16) static_cast<__nv_bfloat16*>(p.y)[o] = __float2bfloat16_rn(v);
    else static_cast<__half*>(p.y)[o] = __float2half_rn(v);
  }
}

template <int BITS, bool HALF>
void launch_bits(const GemvParams& p, CUstream_st* stream) {
  const dim3 grid(unsigned(p.w.n_tiles)), block(kWarps * 32);
  if (p.m <= 8) gemv_kernel<BITS, HALF, 1><<<grid, block, 0, stream>>>(p);
  else gemv_kernel<BITS, HALF, 4><<<grid, block, 0, stream>>>(p);
}

}  // namespace

void launch_gemv(const GemvParams& p, CUstream_st* stream) {
  if (p.m == 0 || p.w.n == 0) return;
  const bool half = p.xtype == kF16;
  switch (p.w.bits) {
    case 4: half ? launch_bits<4, true>(p, stream) : launch_bits<4, false>(p, stream); break;
    case 5: half ? launch_bits<5, true>(p, stream) : launch_bits<5, false>(p, stream); break;
    case 6: half ? launch_bits<6, true>(p, stream) : launch_bits<6, false>(p, stream); break;
    case 8: half ? launch_bits<8, true>(p, stream) : launch_bits<8, false>(p, stream); break;
    default: break;
  }
  check_launch("gemv_kernel");
}

}  // namespace fpq::cuda::detail
