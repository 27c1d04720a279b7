#pragma once
// The prepared weight's fragment layout, shared by the decode kernel (gemv.cu) and the prefill kernel
// (gemm_sm90.cu). A weight of N x K codes is cut into tiles of 16 rows x 64 columns; tile (rt, kt) holds, per
// lane l of a warp (g = l / 4, t = l % 4), the 32 codes that lane needs as the A operand of four
// mma.m16n8k16 steps j = 0..3 (columns 16j .. 16j+15 of the tile):
//   register i of step j holds two codes (first, second) of
//     i = 0: row g,     columns 16j + 2t, +1        i = 1: row g + 8, columns 16j + 2t, +1
//     i = 2: row g,     columns 16j + 2t + 8, +9    i = 3: row g + 8, columns 16j + 2t + 8, +9
// Planes (each [rt][kt][lane] contiguous):
//   plane4   low 4 bits, 16 bytes per lane: word j, nibble i = first code, nibble i + 4 = second code
//   hi (8-bit codes) bits 4..7, same arrangement as plane4
//   hi (6-bit codes) bits 4..5, 8 bytes per lane: word j / 2, 2-bit field f = (j % 2) * 4 + i (first), f + 8
//   hi (5-bit codes) bit 4, 4 bytes per lane: bit f = 4j + i (first), f + 16 (second)
// With this order, one shift and mask puts the two codes of a register into the two 16-bit halves.
// Scales: raw bytes per (row, group), [rt][group][16 rows ordered g0, g8, g1, g9, ...] so that lane g reads
// the scales of rows g and g + 8 with one load; groups padded to cover k_tiles * 64 columns (zeros).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace fpq::cuda::detail {

template <int BITS>
struct HiWords {
  static constexpr int n = BITS == 8 ? 4 : BITS == 6 ? 2 : 1;
};

// Two codes (16-bit lanes) of register i of step j.
template <int BITS>
__device__ __forceinline__ uint32_t pair_code(const uint32_t (&lo)[4], const uint32_t (&hi)[HiWords<BITS>::n], int j,
                                              int i) {
  const uint32_t l = (lo[j] >> (4 * i)) & 0x000F000Fu;
  if constexpr (BITS == 4) {
    return l;
  } else if constexpr (BITS == 8) {
    return l | (((hi[j] >> (4 * i)) & 0x000F000Fu) << 4);
  } else if constexpr (BITS == 6) {
    const int f = (j & 1) * 4 + i;
    return l | (((hi[j >> 1] >> (2 * f)) & 0x00030003u) << 4);
  } else {
    const int f = j * 4 + i;
    return l | (((hi[0] >> f) & 0x00010001u) << 4);
  }
}

// Decoder constants for the 16-bit operand type (half or bf16) of one element type.
struct PairDecoder {
  uint32_t sign_shift;  // 16 - bits
  uint32_t mag_shift;   // (10 or 7) - mbits
  uint32_t mag_mask;    // magnitude field after the shift, both halves
  uint32_t mul;         // 2^(15 - bias) or 2^(127 - bias) in both halves
  uint32_t int_xor, int_or, int_sub;  // int elements: (code ^ xor) | or, minus sub
  int is_int, bits, half;
};

template <bool HALF>
__device__ __forceinline__ uint32_t hmul2_bits(uint32_t a, uint32_t b) {
  uint32_t d;
  if constexpr (HALF)
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  else
    asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}
template <bool HALF>
__device__ __forceinline__ uint32_t hsub2_bits(uint32_t a, uint32_t b) {
  uint32_t d;
  if constexpr (HALF)
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  else
    asm("sub.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}

// The two codes of P as a half2 / bf16x2 of their exact values.
template <bool HALF>
__device__ __forceinline__ uint32_t decode_pair(const PairDecoder& d, uint32_t P) {
  if (!d.is_int) {
    const uint32_t s = (P << d.sign_shift) & 0x80008000u;
    const uint32_t m = (P << d.mag_shift) & d.mag_mask;
    return hmul2_bits<HALF>(s | m, d.mul);
  }
  if (HALF || d.bits == 4) return hsub2_bits<HALF>((P ^ d.int_xor) | d.int_or, d.int_sub);
  // int8 as bf16: sign-extend each half and convert (exact).
  const int lo = int(int8_t(P & 0xFFu)), hi = int(int8_t((P >> 16) & 0xFFu));
  __nv_bfloat162 v = __floats2bfloat162_rn(float(lo), float(hi));
  return *reinterpret_cast<uint32_t*>(&v);
}

__host__ __device__ inline PairDecoder make_pair_decoder(int bits, int is_int, int mbits, int bias, bool half) {
  PairDecoder d{};
  d.is_int = is_int;
  d.bits = bits;
  d.half = half;
  if (!is_int) {
    d.sign_shift = uint32_t(16 - bits);
    d.mag_shift = uint32_t((half ? 10 : 7) - mbits);
    const uint32_t mag = ((1u << (bits - 1)) - 1u) << d.mag_shift;
    d.mag_mask = mag | (mag << 16);
    uint32_t m16;
    if (half) {
      const int e = 15 - bias;  // 2^e as fp16 (e within -14..15 for the supported types)
      m16 = uint32_t(e + 15) << 10;
    } else {
      const int e = 127 - bias;
      m16 = uint32_t(e + 127) << 7;
    }
    d.mul = m16 | (m16 << 16);
  } else {
    const uint32_t sb = 1u << (bits - 1);
    d.int_xor = sb | (sb << 16);
    if (half) {
      d.int_or = 0x64006400u;  // 1024
      const uint32_t sub = 0x6400u + sb;  // 1024 + 2^(bits-1): fp16 spacing is 1 in [1024, 2048)
      d.int_sub = sub | (sub << 16);
    } else {
      d.int_or = 0x43004300u;  // 128 (int4 only: 128 + 15 is exact in bf16)
      const uint32_t sub = 0x4300u + sb;
      d.int_sub = sub | (sub << 16);
    }
  }
  return d;
}

}  // namespace fpq::cuda::detail
