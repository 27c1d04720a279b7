// Prefill matrix multiply on Hopper tensor cores (wgmma, sm_90a): Y = A * dequant(W)^T * scales.
//
// A is bf16 in device memory: the exact tensor-core operand that quantize_activations_cuda writes for W4A4 /
// W8A8 (decode(code) * group scale, exact in bf16), or plain bf16 activations for weight-only prefill. W is
// the prepared weight (frag.cuh): its codes are staged raw in shared memory with cp.async and dequantized by
// all threads into a 128-byte-swizzled bf16 tile -- exactly: decode(code) * group scale (E8M0 / E4M3 groups)
// fits bf16 -- which wgmma reads next to A's tile. Per-row scales (one per row of A or of W) and the global
// scales are applied in float32 at the end.
//
// CTA: 2 warpgroups, tile BM x 128 (BM = 128 or 256), k-tiles of 64, a 4-stage cp.async pipeline for A and
// the raw weight, a double-buffered dequantized weight tile. Split-K (a partial-sum workspace and a fixed-
// order reduction) keeps the SMs busy when there are few tiles.
#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/frag.cuh"

namespace fpq::cuda::detail {
namespace {

constexpr int kStages = 4;
constexpr int kBN = 128;
constexpr int kThreads = 256;
constexpr int kBrawPlane = 8 * 512;   // 8 row tiles x 32 lanes x 16 bytes
constexpr int kBrawHi = 8 * 512;      // at most the same (8-bit codes)
constexpr int kBrawScales = 8 * 64;   // 8 row tiles x up to 4 groups x 16 rows (1-byte scales)
constexpr int kBrawBytes = kBrawPlane + kBrawHi + kBrawScales;
constexpr int kBbfBytes = kBN * 128;  // 128 rows x 64 bf16

__host__ __device__ constexpr int a_stage_bytes(int bm) { return bm * 128; }
__host__ __device__ constexpr int smem_bytes(int bm) {
  return kStages * (a_stage_bytes(bm) + kBrawBytes) + 2 * kBbfBytes + 1024;
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool pred) {
  const int sz = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(sz) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

__device__ __forceinline__ uint64_t make_desc(uint32_t addr) {
  uint64_t d = 0;
  d |= uint64_t((addr & 0x3FFFFu) >> 4);
  d |= uint64_t(16 >> 4) << 16;    // leading byte offset (unused for swizzled K-major)
  d |= uint64_t(1024 >> 4) << 32;  // stride byte offset: 8 rows x 128 bytes
  d |= uint64_t(1) << 62;          // 128-byte swizzle
  return d;
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{" 
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "n"(1));
}
__device__ __forceinline__ void fence_acc(float (&d)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// Byte offset of bf16 element (row, k) in a 128-byte-swizzled tile of 64-column rows.
__device__ __forceinline__ uint32_t swz(int row, int k) {
  return uint32_t(row * 128 + ((((k >> 3) ^ (row & 7)) & 7) << 4) + ((k & 7) << 1));
}

// Shared memory: kStages A tiles, 2 bf16 weight tiles, kStages raw weight tiles (addresses computed, so no
// run-time-indexed arrays end up in local memory).
struct Smem {
  uint8_t* base;
  uint32_t base_addr;
  int a_bytes;
  __device__ uint32_t a(int s) const { return base_addr + uint32_t(s * a_bytes); }
  __device__ uint32_t bbf(int b) const { return base_addr + uint32_t(kStages * a_bytes + b * kBbfBytes); }
  __device__ uint8_t* bbf_ptr(int b) const { return base + kStages * a_bytes + b * kBbfBytes; }
  __device__ uint32_t braw(int s) const { return base_addr + uint32_t(kStages * a_bytes + 2 * kBbfBytes + s * kBrawBytes); }
  __device__ const uint8_t* braw_ptr(int s) const { return base + kStages * a_bytes + 2 * kBbfBytes + s * kBrawBytes; }
};

// Issues the cp.async loads of k-tile kt into stage s.
template <int BM>
__device__ __forceinline__ void load_stage(const GemmParams& p, const Smem& sm, int s, int64_t kt, int64_t m0,
                                           int64_t rt0, int ng) {
  const int tid = threadIdx.x;
  const WeightView& w = p.w;
  // A: BM rows x 8 chunks of 16 bytes.
#pragma unroll
  for (int q = 0; q < BM * 8 / kThreads; ++q) {
    const int c = tid + q * kThreads;
    const int r = c >> 3, ch = c & 7;
    const int64_t m = m0 + r, k = kt * 64 + ch * 8;
    const bool ok = m < p.m && k < w.k;
    const uint16_t* src = ok ? p.a + m * p.lda + k : p.a;
    cp_async16(sm.a(s) + uint32_t(r * 128 + ((ch ^ (r & 7)) << 4)), src, ok);
  }
  // Raw weight: plane4, 8 row tiles x 512 bytes.
  {
    const int rtl = tid >> 5, lane = tid & 31;
    const int64_t rt = rt0 + rtl;
    const bool ok = rt < w.n_tiles;
    const uint8_t* src = ok ? w.plane4 + ((rt * w.k_tiles + kt) * 32 + lane) * 16 : w.plane4;
    cp_async16(sm.braw(s) + uint32_t(rtl * 512 + lane * 16), src, ok);
  }
  // High plane: per row tile 512 (8-bit), 256 (6-bit) or 128 (5-bit) bytes.
  if (w.bits != 4) {
    const int per_tile = w.bits == 8 ? 512 : w.bits == 6 ? 256 : 128;
    const int chunks = 8 * per_tile / 16;
    if (tid < chunks) {
      const int rtl = tid / (per_tile / 16), c = tid % (per_tile / 16);
      const int64_t rt = rt0 + rtl;
      const bool ok = rt < w.n_tiles;
      const uint8_t* src = ok ? w.plane_hi + (rt * w.k_tiles + kt) * per_tile + c * 16 : w.plane_hi;
      cp_async16(sm.braw(s) + uint32_t(kBrawPlane + rtl * per_tile + c * 16), src, ok);
    }
  }
  // Group scales (folded mode): ng groups x 16 rows per row tile.
  if (p.fold_b) {
    if (tid < 8 * ng) {
      const int rtl = tid / ng, q = tid % ng;
      const int64_t rt = rt0 + rtl;
      const int64_t gi = (kt * 64) / w.group + q;
      const bool ok = rt < w.n_tiles;
      const uint8_t* src = ok ? w.scales + (rt * w.n_groups + gi) * 16 : w.scales;
      cp_async16(sm.braw(s) + uint32_t(kBrawPlane + kBrawHi + rtl * 64 + q * 16), src, ok);
    }
  }
}

// Dequantizes the raw stage into the swizzled bf16 tile: warp w takes row tile w.
template <int BITS>
__device__ __forceinline__ void dequant_tile(const GemmParams& p, const uint8_t* raw, uint8_t* bbf, int ng,
                                             const PairDecoder& dec) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  uint32_t lo[4];
  {
    const uint4 v = *reinterpret_cast<const uint4*>(raw + warp * 512 + lane * 16);
    lo[0] = v.x;
    lo[1] = v.y;
    lo[2] = v.z;
    lo[3] = v.w;
  }
  uint32_t hi[HiWords<BITS>::n];
  if constexpr (BITS == 8) {
    const uint4 v = *reinterpret_cast<const uint4*>(raw + kBrawPlane + warp * 512 + lane * 16);
    hi[0] = v.x;
    hi[1] = v.y;
    hi[2] = v.z;
    hi[3] = v.w;
  } else if constexpr (BITS == 6) {
    const uint2 v = *reinterpret_cast<const uint2*>(raw + kBrawPlane + warp * 256 + lane * 8);
    hi[0] = v.x;
    hi[1] = v.y;
  } else if constexpr (BITS == 5) {
    hi[0] = *reinterpret_cast<const uint32_t*>(raw + kBrawPlane + warp * 128 + lane * 4);
  } else {
    hi[0] = 0;
  }
  const uint8_t* sc = raw + kBrawPlane + kBrawHi + warp * 64;
  const int G = p.w.group;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    uint32_t s_lo = 0x3F803F80u, s_hi = 0x3F803F80u;  // bf16 1.0 pairs
    if (p.fold_b) {
      const int q = G >= 64 ? 0 : (16 * j) / G;
      const uint8_t* sp = sc + q * 16 + 2 * g;
      const float f_lo = decode_scale_raw(p.w.scale, sp[0]);
      const float f_hi = decode_scale_raw(p.w.scale, sp[1]);
      const uint32_t b_lo = __bfloat16_as_ushort(__float2bfloat16_rn(f_lo));
      const uint32_t b_hi = __bfloat16_as_ushort(__float2bfloat16_rn(f_hi));
      s_lo = b_lo | (b_lo << 16);
      s_hi = b_hi | (b_hi << 16);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint32_t v = decode_pair<false>(dec, pair_code<BITS>(lo, hi, j, i));
      if (p.fold_b) v = hmul2_bits<false>(v, (i & 1) ? s_hi : s_lo);
      const int row = warp * 16 + g + ((i & 1) ? 8 : 0);
      const int k = 16 * j + 2 * t + ((i & 2) ? 8 : 0);
      *reinterpret_cast<uint32_t*>(bbf + swz(row, k)) = v;
    }
  }
}

__device__ __forceinline__ void dequant_any(const GemmParams& p, const uint8_t* raw, uint8_t* bbf, int ng,
                                            const PairDecoder& dec) {
  switch (p.w.bits) {
    case 4: dequant_tile<4>(p, raw, bbf, ng, dec); break;
    case 5: dequant_tile<5>(p, raw, bbf, ng, dec); break;
    case 6: dequant_tile<6>(p, raw, bbf, ng, dec); break;
    default: dequant_tile<8>(p, raw, bbf, ng, dec); break;
  }
}

__device__ __forceinline__ float row_scale_b(const GemmParams& p, int64_t n) {
  const WeightView& w = p.w;
  float s = 1.0f;
  if (!p.fold_b && w.scale != kScaleNone) {
    const int64_t rt = n >> 4;
    const int r = int(n & 15);
    const uint8_t* sp = w.scales + ((rt * w.n_groups) * 16 + 2 * (r & 7) + (r >> 3)) * w.sb;
    s = decode_scale_bytes(w.scale, sp);
  }
  if (w.row_global) s *= w.row_global[n];
  return s;
}

__device__ __forceinline__ void store_out(const GemmParams& p, int64_t m, int64_t n, float v) {
  const int64_t o = m * p.ldy + n;
  if (p.ytype == kF32) static_cast<float*>(p.y)[o] = v;
  else if (p.ytype == kBF16) static_cast<__nv_bfloat16*>(p.y)[o] = __float2bfloat16_rn(v);
  else static_cast<__half*>(p.y)[o] = __float2half_rn(v);
}

template <int BM>
__global__ void __launch_bounds__(kThreads, 1) gemm_sm90_kernel(GemmParams p) {
  constexpr int MI = BM / 128;  // m64 blocks per warpgroup
  extern __shared__ uint8_t smem_raw[];
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  Smem sm;
  sm.base = base;
  sm.base_addr = smem_addr(base);
  sm.a_bytes = a_stage_bytes(BM);
  const WeightView& w = p.w;
  const int64_t m0 = int64_t(blockIdx.x) * BM;
  const int64_t n0 = int64_t(blockIdx.y) * kBN;
  const int64_t rt0 = n0 / 16;
  const int64_t KT = w.k_tiles;
  const int64_t kt_begin = KT * blockIdx.z / p.splits, kt_end = KT * (blockIdx.z + 1) / p.splits;
  const int64_t nkt = kt_end - kt_begin;
  const int ng = p.fold_b ? (w.group >= 64 ? 1 : 64 / w.group) : 0;
  const PairDecoder dec = make_pair_decoder(w.bits, w.is_int, w.mbits, w.bias, false);

  const int wg = threadIdx.x >> 7;
  float d[MI][64];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int r = 0; r < 64; ++r) d[i][r] = 0.0f;

  if (nkt > 0) {
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < nkt) load_stage<BM>(p, sm, s, kt_begin + s, m0, rt0, ng);
      cp_async_commit();
    }
    cp_async_wait<kStages - 2>();
    __syncthreads();
    dequant_any(p, sm.braw_ptr(0), sm.bbf_ptr(0), ng, dec);
    fence_proxy_async();
    __syncthreads();

    for (int64_t it = 0; it < nkt; ++it) {
      const int s = int(it % kStages);
      const int b = int(it & 1);
      // (a) tensor cores on stage s
#pragma unroll
      for (int i = 0; i < MI; ++i) fence_acc(d[i]);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint64_t db = make_desc(sm.bbf(b) + kk * 32);
#pragma unroll
        for (int i = 0; i < MI; ++i) {
          const uint64_t da = make_desc(sm.a(s) + uint32_t((wg * MI + i) * 64 * 128) + kk * 32);
          wgmma_m64n128k16(d[i], da, db);
        }
      }
      wgmma_commit();
      // (b) the previous k-tile's wgmma has finished in both warpgroups: its buffers are free
      wgmma_wait<1>();
#pragma unroll
      for (int i = 0; i < MI; ++i) fence_acc(d[i]);
      __syncthreads();
      // (c) loads for k-tile it + kStages - 1 into the stage that k-tile it - 1 used
      {
        const int64_t nt = it + kStages - 1;
        if (nt < nkt) load_stage<BM>(p, sm, int(nt % kStages), kt_begin + nt, m0, rt0, ng);
        cp_async_commit();
      }
      // (d) k-tile it + 1 has landed
      cp_async_wait<kStages - 2>();
      __syncthreads();
      // (e) dequantize it into the other bf16 buffer
      if (it + 1 < nkt) dequant_any(p, sm.braw_ptr(int((it + 1) % kStages)), sm.bbf_ptr(b ^ 1), ng, dec);
      fence_proxy_async();
      __syncthreads();
    }
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < MI; ++i) fence_acc(d[i]);
  }

  // Epilogue.
  const int wi = (threadIdx.x & 127) >> 5, lane = threadIdx.x & 31;
  const float alpha = w.global * (p.a_global ? *p.a_global : 1.0f);
  const bool partial = p.splits > 1;
#pragma unroll
  for (int i = 0; i < MI; ++i) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m0 + (wg * MI + i) * 64 + wi * 16 + (lane >> 2) + half * 8;
      if (m >= p.m) continue;
      const float ra = partial ? 1.0f : alpha * (p.a_row_scale ? p.a_row_scale[m] : 1.0f);
#pragma unroll
      for (int c = 0; c < 16; ++c) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t n = n0 + c * 8 + (lane & 3) * 2 + e;
          if (n >= w.n) continue;
          const float v = d[i][c * 4 + half * 2 + e];
          if (partial) p.workspace[(int64_t(blockIdx.z) * p.m + m) * w.n + n] = v;
          else store_out(p, m, n, v * ra * row_scale_b(p, n));
        }
      }
    }
  }
}

__global__ void splitk_reduce(GemmParams p) {
  const int64_t total = p.m * p.w.n;
  const float alpha = p.w.global * (p.a_global ? *p.a_global : 1.0f);
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = idx / p.w.n, n = idx % p.w.n;
    float v = 0.0f;
    for (int z = 0; z < p.splits; ++z) v += p.workspace[int64_t(z) * total + idx];
    const float ra = alpha * (p.a_row_scale ? p.a_row_scale[m] : 1.0f);
    store_out(p, m, n, v * ra * row_scale_b(p, n));
  }
}

}  // namespace

bool gemm_supported(const WeightView& w, int fold_b) {
  if (!(w.bits == 4 || w.bits == 5 || w.bits == 6 || w.bits == 8)) return false;
  if (w.is_int && !(w.bits == 4 || w.bits == 8)) return false;
  if (fold_b) {
    if (!(w.scale == kScaleE8M0 || w.scale == kScaleE4M3) || w.sb != 1) return false;
    if (w.group < 16 || (w.group & (w.group - 1)) != 0) return false;
  }
  return true;
}

int gemm_choose_splits(int64_t m, int64_t n, int64_t k) {
  const int64_t bm = m > 128 ? 256 : 128;
  const int64_t tiles = ((m + bm - 1) / bm) * ((n + kBN - 1) / kBN);
  const int64_t kt = (k + 63) / 64;
  const int64_t sms = sm_count();
  if (tiles >= sms) return 1;
  int64_t s = (sms + tiles - 1) / tiles;
  s = s > kt / 4 ? kt / 4 : s;
  return int(s < 1 ? 1 : s);
}

void launch_gemm(GemmParams p, CUstream_st* stream) {
  if (p.m == 0 || p.w.n == 0) return;
  const bool big = p.m > 128;
  const int bm = big ? 256 : 128;
  const dim3 grid(unsigned((p.m + bm - 1) / bm), unsigned((p.w.n + kBN - 1) / kBN), unsigned(p.splits));
  if (big) {
    const int smem = smem_bytes(256);
    check(cudaFuncSetAttribute(gemm_sm90_kernel<256>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
          "cudaFuncSetAttribute");
    gemm_sm90_kernel<256><<<grid, kThreads, smem, stream>>>(p);
  } else {
    const int smem = smem_bytes(128);
    check(cudaFuncSetAttribute(gemm_sm90_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
          "cudaFuncSetAttribute");
    gemm_sm90_kernel<128><<<grid, kThreads, smem, stream>>>(p);
  }
  check_launch("gemm_sm90_kernel");
  if (p.splits > 1) {
    const int64_t total = p.m * p.w.n;
    int blocks = int((total + 255) / 256);
    if (blocks > sm_count() * 8) blocks = sm_count() * 8;
    splitk_reduce<<<blocks, 256, 0, stream>>>(p);
    check_launch("splitk_reduce");
  }
}

}  // namespace fpq::cuda::detail
