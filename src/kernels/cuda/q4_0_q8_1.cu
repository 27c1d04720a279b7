// llama.cpp Q4_0 weights x Q8_1 activations with dp4a: one warp per weight row, lanes stride over the 32-value
// blocks, up to 8 activation rows per pass (the weight block is decoded once for all of them). Per block the
// integer dot product sum((q4 - 8) * q8) is exact (dp4a on the unsigned nibbles minus 8 * sum(q8)); it is
// scaled by d_w * d_a (exact in float32) and summed in float32.
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

}  // namespace

void launch_q4_0_q8_1(const void* w, const void* a, int64_t n, int64_t m, int64_t k, float* y, CUstream_st* stream) {
  if (n == 0 || m == 0) return;
  const dim3 grid(unsigned((n + 3) / 4), unsigned((m + kMT - 1) / kMT));
  q4_0_q8_1_kernel<<<grid, 128, 0, stream>>>(static_cast<const uint8_t*>(w), static_cast<const uint8_t*>(a), n, m,
                                             k, y);
  check_launch("q4_0_q8_1_kernel");
}

}  // namespace fpq::cuda::detail
