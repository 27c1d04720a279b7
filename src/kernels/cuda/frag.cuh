#pragma once
// The prepared weight's fragment layout and the per-warp weight path shared by the decode kernel (gemv.cu)
// and the prefill kernel (gemm_sm90.cu).
//
// A weight of N x K codes is cut into tiles of 16 rows x 64 columns; tile (rt, kt) holds, per lane l of a
// warp (g = l / 4, t = l % 4), the 32 codes that lane needs as the A operand of four 16x16 MMA steps
// j = 0..3 (columns 16j .. 16j+15 of the tile), in the register layout of mma.m16n8k16 / wgmma's A:
//   register i of step j holds two codes (first, second) of
//     i = 0: row g,     columns 16j + 2t, +1        i = 1: row g + 8, columns 16j + 2t, +1
//     i = 2: row g,     columns 16j + 2t + 8, +9    i = 3: row g + 8, columns 16j + 2t + 8, +9
// Planes (each [rt][kt][lane] contiguous):
//   plane4   low 4 bits, 16 bytes per lane: word j, nibble i = first code, nibble i + 4 = second code
//   hi (8-bit codes) bits 4..7, same arrangement as plane4
//   hi (6-bit codes) bits 4..5, 8 bytes per lane: word j / 2, 2-bit field f = (j % 2) * 4 + i (first), f + 8
//   hi (5-bit codes) bit 4, 4 bytes per lane: bit f = 4j + i (first), f + 16 (second)
// With this order a shift and a mask put the two codes of a register into the two 16-bit halves. E2M1, 6-bit
// and 5-bit float codes use the layouts of code_layout.h instead (same planes and sizes, bits placed so that
// rotates and masks make a register's bf16 image).
// Scales: raw bytes per (row, group), [rt][group][16 rows ordered g0, g8, g1, g9, ...] so that lane g reads
// the scales of rows g and g + 8 with one load; groups padded to cover k_tiles * 64 columns (zeros).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/code_layout.h"
#include "kernels/cuda/device_common.cuh"

namespace fpq::cuda::detail {

template <int BITS>
struct HiWords {
  static constexpr int n = BITS == 8 ? 4 : BITS == 6 ? 2 : 1;
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
// (a & b) ^ c and (a & c) | (b & ~c) in one LOP3 each.
__device__ __forceinline__ uint32_t and_xor(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0x6A;" : "=r"(d) : "r"(a), "r"(b), "r"(c));  // (a & b) ^ c
  return d;
}
__device__ __forceinline__ uint32_t select_bits(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xE4;" : "=r"(d) : "r"(a), "r"(b), "r"(c));  // (a & c) | (b & ~c)
  return d;
}

// How to turn codes into half / bf16 pairs (a compile-time choice, so hot loops hold one path).
enum DecodeKind : int { kDecE2M1 = 0, kDecInt4 = 1, kDecFp = 2, kDecInt8 = 3 };

__host__ __device__ inline int decode_kind(int bits, int is_int, int mbits, int bias) {
  if (is_int) return bits == 4 ? kDecInt4 : kDecInt8;
  return (bits == 4 && mbits == 1 && bias == 1) ? kDecE2M1 : kDecFp;
}

struct PairDecoder {
  uint32_t sign_shift;  // 16 - bits
  uint32_t mag_shift;   // (10 or 7) - mbits
  uint32_t mag_mask;    // magnitude field after the shift, both halves
  uint32_t mul;         // 2^(15 - bias) or 2^(127 - bias) in both halves
  uint32_t int_xor, int_or, int_sub;  // int elements: (code ^ xor) | or, minus sub
  int lay_b;                          // 6-bit float codes: 7 - mbits, where code_layout.h's slots sit
};

__host__ __device__ inline PairDecoder make_pair_decoder(int bits, int is_int, int mbits, int bias, bool half) {
  PairDecoder d{};
  if (!is_int) {
    d.sign_shift = uint32_t(16 - bits);
    d.mag_shift = uint32_t((half ? 10 : 7) - mbits);
    const uint32_t mag = ((1u << (bits - 1)) - 1u) << d.mag_shift;
    d.mag_mask = mag | (mag << 16);
    const uint32_t m16 = half ? uint32_t(15 - bias + 15) << 10 : uint32_t(127 - bias + 127) << 7;
    d.mul = m16 | (m16 << 16);
    d.lay_b = 7 - mbits;
  } else {
    const uint32_t sb = 1u << (bits - 1);
    d.int_xor = sb | (sb << 16);
    // fp16: 1024 + u exact for u < 1024; bf16: 128 + u exact for u < 128 (int4 only).
    const uint32_t base = half ? 0x6400u : 0x4300u;
    d.int_or = base | (base << 16);
    d.int_sub = (base + sb) | ((base + sb) << 16);
  }
  return d;
}

// Two codes (16-bit halves) of register i of step j (generic path).
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

// Float codes (E2M1 / kDecFp) of register i of step j with sign and magnitude fields moved into half / bf16
// positions: the value times 2^-(15 - bias) or 2^-(127 - bias), which one multiply finishes.
template <int BITS, int DEC, bool HALF>
__device__ __forceinline__ void float_code_bits(const PairDecoder& d, const uint32_t (&lo)[4],
                                                const uint32_t (&hi)[HiWords<BITS>::n], int j, uint32_t (&b)[4]) {
  if constexpr (DEC == kDecE2M1 || ((BITS == 6 || BITS == 5) && DEC == kDecFp)) {
    // The prepared layouts of code_layout.h give bf16 images; fp16 wants the magnitude 3 bits higher.
    const uint32_t mag = DEC == kDecE2M1 ? 0x01C001C0u
                         : BITS == 6     ? layout::fp6_mag_mask(d.lay_b)
                                         : layout::fp5_mag_mask(d.lay_b);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint32_t v;
      if constexpr (DEC == kDecE2M1) v = layout::e2m1_image(lo, j, i);
      else if constexpr (BITS == 6) v = layout::fp6_image(d.lay_b, lo, hi, j, i);
      else v = layout::fp5_image(d.lay_b, lo, hi, j, i);
      if constexpr (HALF) v = (v & layout::kSign) | ((v << 3) & (mag << 3));
      b[i] = v;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t P = pair_code<BITS>(lo, hi, j, i);
      b[i] = select_bits(P << d.sign_shift, (P << d.mag_shift) & d.mag_mask, 0x80008000u);
    }
  }
}

// The four A registers of step j (exact half / bf16 values of the codes, without scales).
template <int BITS, int DEC, bool HALF>
__device__ __forceinline__ void decode_step(const PairDecoder& d, const uint32_t (&lo)[4],
                                            const uint32_t (&hi)[HiWords<BITS>::n], int j, uint32_t (&a)[4]) {
  if constexpr (DEC == kDecE2M1 || DEC == kDecFp) {
    constexpr uint32_t MUL = HALF ? 0x74007400u : 0x7E807E80u;  // E2M1: 2^14 / 2^126
    const uint32_t mul = DEC == kDecE2M1 ? MUL : d.mul;
    uint32_t b[4];
    float_code_bits<BITS, DEC, HALF>(d, lo, hi, j, b);
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = hmul2_bits<HALF>(b[i], mul);
  } else if constexpr (DEC == kDecInt4) {
    const uint32_t w = lo[j];
    constexpr uint32_t C = HALF ? 0x64086408u : 0x43084308u;    // base | 8: (code & 0xF) ^ 8 | base
    constexpr uint32_t SUB = HALF ? 0x64086408u : 0x43084308u;  // base + 8
    a[0] = hsub2_bits<HALF>(and_xor(w, 0x000F000Fu, C), SUB);
    a[1] = hsub2_bits<HALF>(and_xor(w >> 4, 0x000F000Fu, C), SUB);
    a[2] = hsub2_bits<HALF>(and_xor(w >> 8, 0x000F000Fu, C), SUB);
    a[3] = hsub2_bits<HALF>(and_xor(w >> 12, 0x000F000Fu, C), SUB);
  } else {  // int8
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t P = pair_code<BITS>(lo, hi, j, i);
      if constexpr (HALF) {
        a[i] = hsub2_bits<HALF>((P ^ 0x00800080u) | 0x64006400u, 0x64806480u);
      } else {
        const int l = int(int8_t(P & 0xFFu)), h = int(int8_t((P >> 16) & 0xFFu));
        __nv_bfloat162 v = __floats2bfloat162_rn(float(l), float(h));
        a[i] = *reinterpret_cast<uint32_t*>(&v);
      }
    }
  }
}

// Float codes decoded and scaled in one multiply per register (the fused fold, PreparedWeight::fold_ok):
// m_lo / m_hi = the group scale of rows g / g + 8 times 2^(127 - bias - fold_shift), both halves.
template <int BITS, int DEC, bool HALF>
__device__ __forceinline__ void decode_step_scaled(const PairDecoder& d, const uint32_t (&lo)[4],
                                                   const uint32_t (&hi)[HiWords<BITS>::n], int j, uint32_t m_lo,
                                                   uint32_t m_hi, uint32_t (&a)[4]) {
  static_assert(DEC == kDecE2M1 || DEC == kDecFp, "the fused fold takes float codes");
  uint32_t b[4];
  float_code_bits<BITS, DEC, HALF>(d, lo, hi, j, b);
  a[0] = hmul2_bits<HALF>(b[0], m_lo);
  a[1] = hmul2_bits<HALF>(b[1], m_hi);
  a[2] = hmul2_bits<HALF>(b[2], m_lo);
  a[3] = hmul2_bits<HALF>(b[3], m_hi);
}

// Group bookkeeping. Partial sums end at a group's last 16-column step, at a tile's last step and at K's end.
struct GroupInfo {
  int spg;     // 16-column steps per group
  int pow2;    // spg is a power of two
  int sshift;  // log2(spg) when pow2
  int ksteps;  // K / 16
};

__host__ __device__ inline GroupInfo make_group_info(int group, int64_t k) {
  GroupInfo gi{};
  gi.spg = group / 16;
  gi.ksteps = int(k / 16);
  int s = 0;
  while ((1 << s) < gi.spg) ++s;
  gi.pow2 = (1 << s) == gi.spg;
  gi.sshift = s;
  return gi;
}

// Group sizes that are not a power of two (e.g. 48, 96, or one group per row of such a length) take a slow,
// out-of-line division; the usual 16 / 32 / 64 / 128 are a shift and a mask.
static __device__ __noinline__ int group_div_slow(int a, int b) { return a / b; }
__device__ __forceinline__ int group_of(const GroupInfo& G, int kstep) {
  if (G.pow2) return kstep >> G.sshift;
  return group_div_slow(kstep, G.spg);
}
__device__ __forceinline__ bool step_promotes(const GroupInfo& G, int kstep, int j) {
  if (j == 3 || kstep == G.ksteps - 1) return true;
  if (G.pow2) return ((kstep + 1) & (G.spg - 1)) == 0;
  return (kstep + 1) - group_div_slow(kstep + 1, G.spg) * G.spg == 0;
}

// One tile of a warp's weight fragments (codes only).
template <int BITS>
struct WTile {
  uint32_t lo[4];
  uint32_t hi[HiWords<BITS>::n];
};

__device__ __forceinline__ uint4 ld_stream16(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
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

template <int BITS>
__device__ __forceinline__ void load_wtile(WTile<BITS>& tl, const WeightView& w, int64_t rt, int kt, int lane) {
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
}

// Float value of every 1-byte scale code (E8M0 or E4M3), for a shared-memory lookup table.
__device__ __forceinline__ float scale_code_value(int s, uint32_t code) {
  if (s == kScaleE8M0) return e8m0_decode_dev(code);
  return decode_dev(e4m3_desc(), code);
}
// 2- and 4-byte scales.
__device__ __forceinline__ float scale_wide_value(int s, uint32_t raw) {
  if (s == kScaleF16) return __half2float(__ushort_as_half(uint16_t(raw)));
  if (s == kScaleBF16) return __uint_as_float(raw << 16);
  return __uint_as_float(raw);
}

}  // namespace fpq::cuda::detail
