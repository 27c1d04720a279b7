// llama.cpp Q4_0 weights x Q8_1 activations. Small batches (M <= 8) with dp4a: one warp per weight row, lanes stride over the 32-value
// blocks, up to 8 activation rows per pass (the weight block is decoded once for all of them). Per block the
// integer dot product sum((q4 - 8) * q8) is exact (dp4a on the unsigned nibbles minus 8 * sum(q8)); it is
// scaled by d_w * d_a (exact in float32) and summed in float32. Larger batches go to the tensor-core prefill
// kernel (gemm_sm90.cu, promoting with both operands' group scales) after two conversions here: the weight's
// blocks into the prepared int4 planes and fp16 scales, the activation's into bf16 codes and float32 scales.
#include "kernels/cuda/device_common.cuh"

namespace fpq::cuda::detail {
namespace {

constexpr int kMT = 8;

__global__ void __launch_bounds__(128) q4_0_q8_1_kernel(const uint8_t* w, const uint8_t* a, int64_t n, int64_t m,
                                                        int64_t k, float* y) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * 4 + warp;
  if (row >= n) return;
  const int64_t m0 = int64_t(blockIdx.y) * kMT;
  const int64_t nb = k / 32;
  float sum[kMT];
#pragma unroll
  for (int i = 0; i < kMT; ++i) sum[i] = 0.0f;
  for (int64_t b = lane; b < nb; b += 32) {
    const uint16_t* wb = reinterpret_cast<const uint16_t*>(w + (row * nb + b) * 18);
    const float dw = f16_to_f32_dev(__ldg(wb));
    uint32_t lo[4], hi[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t q = uint32_t(__ldg(wb + 1 + 2 * i)) | (uint32_t(__ldg(wb + 2 + 2 * i)) << 16);
      lo[i] = q & 0x0F0F0F0Fu;         // values 4i .. 4i+3
      hi[i] = (q >> 4) & 0x0F0F0F0Fu;  // values 16+4i .. 16+4i+3
    }
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
      const int64_t mr = m0 + mi;
      if (mr >= m) break;
      const uint8_t* ab = a + (mr * nb + b) * 36;
      const float da = f16_to_f32_dev(__ldg(reinterpret_cast<const uint16_t*>(ab)));
      const int* qa = reinterpret_cast<const int*>(ab + 4);
      int isum = 0, asum = 0;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int a0 = __ldg(qa + i), a1 = __ldg(qa + 4 + i);
        isum = __dp4a(int(lo[i]), a0, isum);
        isum = __dp4a(int(hi[i]), a1, isum);
        asum = __dp4a(0x01010101, a0, asum);
        asum = __dp4a(0x01010101, a1, asum);
      }
      isum -= 8 * asum;
      sum[mi] = fmaf(__fmul_rn(dw, da), float(isum), sum[mi]);
    }
  }
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
    float v = sum[mi];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    const int64_t mr = m0 + mi;
    if (lane == 0 && mr < m) y[mr * n + row] = v;
  }
}

// Q4_0 blocks -> the prepared weight's int4 planes (frag.cuh: 16-row x 64-column tiles, each lane's 32 codes in
// the A-register order; code = q - 8 as a two's-complement nibble, 0 past N and K). One thread per (tile, lane).
__global__ void repack_q4_0_codes(const uint8_t* w, int64_t n, int64_t k, int64_t k_tiles, int64_t lanes,
                                  uint8_t* plane4) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= lanes) return;
  const int64_t tile = idx >> 5, rt = tile / k_tiles, kt = tile % k_tiles;
  const int lane = int(idx & 31), g = lane >> 2, t = lane & 3;
  const int64_t nb = k / 32;
  uint32_t lo[4] = {0, 0, 0, 0};
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = rt * 16 + g + ((i & 1) ? 8 : 0);
        const int64_t col = kt * 64 + 16 * j + 2 * t + ((i & 2) ? 8 : 0) + h;
        uint32_t code = 0;
        if (row < n && col < k) {
          const int pos = int(col & 31);
          const uint8_t byte = __ldg(w + (row * nb + col / 32) * 18 + 2 + (pos & 15));
          code = ((pos < 16 ? byte & 0xFu : byte >> 4) - 8u) & 0xFu;
        }
        lo[j] |= code << (4 * (i + 4 * h));
      }
  *reinterpret_cast<uint4*>(plane4 + idx * 16) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
}

// Q4_0 blocks' fp16 scales -> [row tile][group][16 rows ordered g0, g8, g1, g9, ...], 0 past N and K.
__global__ void repack_q4_0_scales(const uint8_t* w, int64_t n, int64_t k, int64_t n_groups, int64_t total,
                                   uint16_t* scales) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int slot = int(idx & 15);
  const int64_t grp = (idx >> 4) % n_groups, rt = (idx >> 4) / n_groups;
  const int64_t row = rt * 16 + (slot >> 1) + 8 * (slot & 1);
  const int64_t nb = k / 32;
  uint16_t v = 0;
  if (row < n && grp < nb) {
    const uint8_t* b = w + (row * nb + grp) * 18;
    v = uint16_t(__ldg(b) | (__ldg(b + 1) << 8));
  }
  scales[idx] = v;
}

// Q8_1 blocks -> bf16 codes (exact: |code| <= 127), m x k, and the blocks' d as float32, group-major
// (scales[b * ld + row]).
__global__ void unpack_q8_1(const uint8_t* a, int64_t m, int64_t k, int64_t ld, uint16_t* codes, float* scales) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nb = k / 32;
  if (idx >= m * nb) return;
  const int64_t row = idx / nb, b = idx % nb;
  const uint8_t* blk = a + idx * 36;
  scales[b * ld + row] = f16_to_f32_dev(uint16_t(__ldg(blk) | (__ldg(blk + 1) << 8)));
  const uint32_t* q = reinterpret_cast<const uint32_t*>(blk + 4);
  uint4* out = reinterpret_cast<uint4*>(codes + row * k + b * 32);
#pragma unroll
  for (int c = 0; c < 4; ++c) {  // 8 codes -> 16 bytes of bf16
    uint32_t o[4];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t wv = __ldg(q + 2 * c + h);
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int lo = int(int8_t((wv >> (16 * e)) & 0xFFu)), hi = int(int8_t((wv >> (16 * e + 8)) & 0xFFu));
        o[2 * h + e] = uint32_t(f32_to_bf16_dev(float(lo))) | (uint32_t(f32_to_bf16_dev(float(hi))) << 16);
      }
    }
    out[c] = make_uint4(o[0], o[1], o[2], o[3]);
  }
}

}  // namespace

void launch_repack_q4_0(const void* w, int64_t n, int64_t k, int64_t n_tiles, int64_t k_tiles, int64_t n_groups,
                        uint8_t* plane4, uint16_t* scales, CUstream_st* stream) {
  const int64_t lanes = n_tiles * k_tiles * 32;
  if (lanes > 0) {
    repack_q4_0_codes<<<unsigned((lanes + 255) / 256), 256, 0, stream>>>(static_cast<const uint8_t*>(w), n, k, k_tiles,
                                                                          lanes, plane4);
    check_launch("repack_q4_0_codes");
  }
  const int64_t total = n_tiles * n_groups * 16;
  if (total > 0) {
    repack_q4_0_scales<<<unsigned((total + 255) / 256), 256, 0, stream>>>(static_cast<const uint8_t*>(w), n, k,
                                                                           n_groups, total, scales);
    check_launch("repack_q4_0_scales");
  }
}

void launch_unpack_q8_1(const void* a, int64_t m, int64_t k, int64_t ld, uint16_t* codes, float* scales,
                        CUstream_st* stream) {
  const int64_t blocks = m * (k / 32);
  if (blocks == 0) return;
  unpack_q8_1<<<unsigned((blocks + 255) / 256), 256, 0, stream>>>(static_cast<const uint8_t*>(a), m, k, ld, codes,
                                                                   scales);
  check_launch("unpack_q8_1");
}

void launch_q4_0_q8_1(const void* w, const void* a, int64_t n, int64_t m, int64_t k, float* y, CUstream_st* stream) {
  if (n == 0 || m == 0) return;
  const dim3 grid(unsigned((n + 3) / 4), unsigned((m + kMT - 1) / kMT));
  q4_0_q8_1_kernel<<<grid, 128, 0, stream>>>(static_cast<const uint8_t*>(w), static_cast<const uint8_t*>(a), n, m,
                                             k, y);
  check_launch("q4_0_q8_1_kernel");
}

}  // namespace fpq::cuda::detail
