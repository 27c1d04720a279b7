#pragma once
// Internal: 16-lane vector primitives for the kernel variants, one implementation per FPQ_KISA (0 = scalar C++,
// 1 = AVX2 with two 8-lane halves, 2 = AVX-512). Every kernel is written once on top of these, so all variants
// perform the same operations in the same order per lane: the float results of a kernel are bit-identical
// across variants. Only intrinsics, <cstdint> and <cstring> here (see kernel_abi.h on why).
//
// VF: 16 floats. VI: 16 int32. VB: 64 bytes seen as 16 lanes of 4 bytes (lane r = row r of a tile). VD: 16 doubles.
#include <cstdint>
#include <cstring>

#include "kernels/cpu/kernel_abi.h"

#ifndef FPQ_KISA
#error "FPQ_KISA must be defined (0 scalar, 1 avx2, 2 avx512)"
#endif

#if FPQ_KISA == 2
#define FPQ_ISA_NS avx512
#include <immintrin.h>
#elif FPQ_KISA == 1
#define FPQ_ISA_NS avx2
#include <immintrin.h>
#else
#define FPQ_ISA_NS scalar
#endif

#define FPQ_INLINE inline __attribute__((always_inline))

namespace fpq::cpu::detail::FPQ_ISA_NS {

FPQ_INLINE uint32_t f2u(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
FPQ_INLINE float u2f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Exact IEEE half -> float (also used by the scalar variant for scales).
FPQ_INLINE float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0x1F) return u2f(sign | 0x7F800000u | (man << 13));
  if (exp == 0) {
    const float v = float(man) * 0x1p-24f;
    return sign ? -v : v;
  }
  return u2f(sign | ((exp + 112u) << 23) | (man << 13));
}
FPQ_INLINE float e8m0_to_float(uint8_t c) {
  if (c == 0xFF) return u2f(0x7FC00000u);
  if (c == 0) return u2f(0x00400000u);
  return u2f(uint32_t(c) << 23);
}
// E4M3 (fn) as a scale: sign, 4 exponent bits (bias 7), 3 mantissa bits, S.1111.111 NaN.
FPQ_INLINE float e4m3_to_float(uint8_t c) {
  if ((c & 0x7F) == 0x7F) return u2f(0x7FC00000u);
  const float mag = u2f(uint32_t(c & 0x7F) << 20) * 0x1p120f;
  return (c & 0x80) ? -mag : mag;
}

#if FPQ_KISA == 2
// ------------------------------------------------------------------------------------------------ AVX-512
using VF = __m512;
using VI = __m512i;
using VB = __m512i;

FPQ_INLINE VF vf_zero() { return _mm512_setzero_ps(); }
FPQ_INLINE VF vf_set1(float v) { return _mm512_set1_ps(v); }
FPQ_INLINE VF vf_bcast(const float* p) { return _mm512_set1_ps(*p); }
FPQ_INLINE VF vf_add(VF a, VF b) { return _mm512_add_ps(a, b); }
FPQ_INLINE VF vf_sub(VF a, VF b) { return _mm512_sub_ps(a, b); }
FPQ_INLINE VF vf_mul(VF a, VF b) { return _mm512_mul_ps(a, b); }
FPQ_INLINE VF vf_fma(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
FPQ_INLINE VF vf_cvt(VI a) { return _mm512_cvtepi32_ps(a); }
// acc + w * broadcast(*x), the broadcast kept as an embedded {1to16} memory operand.
FPQ_INLINE VF vf_fma_bc(VF w, const float* x, VF acc) {
  __asm__("vfmadd231ps %[x]%{1to16%}, %[w], %[acc]" : [acc] "+v"(acc) : [w] "v"(w), [x] "m"(*x));
  return acc;
}
FPQ_INLINE VF vf_load(const float* p) { return _mm512_loadu_ps(p); }
FPQ_INLINE void vf_store(float* p, VF v, int n) {
  if (n >= 16) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1u), v);
}
FPQ_INLINE VI vi_zero() { return _mm512_setzero_si512(); }
FPQ_INLINE VI vi_set1(int32_t v) { return _mm512_set1_epi32(v); }
FPQ_INLINE VI vi_sub(VI a, VI b) { return _mm512_sub_epi32(a, b); }
FPQ_INLINE VI vi_mullo(VI a, VI b) { return _mm512_mullo_epi32(a, b); }
FPQ_INLINE VI vi_u8x16(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p)); }
FPQ_INLINE VB vb_load(const uint8_t* p) { return _mm512_load_si512((const void*)p); }
FPQ_INLINE VB vb_lo4(VB v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0F)); }
FPQ_INLINE VB vb_hi4(VB v) { return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F)); }
FPQ_INLINE VB vb_xor80(VB v) { return _mm512_xor_si512(v, _mm512_set1_epi8(char(0x80))); }

struct Lut16B {
  __m512i t;
  explicit Lut16B(const uint8_t* tab) { t = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)tab)); }
};
FPQ_INLINE VB lut16b(const Lut16B& l, VB idx) { return _mm512_shuffle_epi8(l.t, idx); }
struct Lut64B {
  __m512i t;
  explicit Lut64B(const uint8_t* tab) { t = _mm512_loadu_si512((const void*)tab); }
};
FPQ_INLINE VB lut64b(const Lut64B& l, VB idx) { return _mm512_permutexvar_epi8(idx, l.t); }

// acc += w (unsigned bytes) . x4 (4 signed bytes, broadcast) per lane. Inline asm so the broadcast stays an
// embedded {1to16} memory operand (GCC 12 otherwise loads it into a register first).
FPQ_INLINE VI dpbusd(VI acc, VB w, const int8_t* x4) {
  __asm__("vpdpbusd %[x]%{1to16%}, %[w], %[acc]" : [acc] "+v"(acc) : [w] "v"(w), [x] "m"(*(const int32_t*)x4));
  return acc;
}
// acc += w (bf16 pairs) . x2 (a bf16 pair, broadcast) per lane.
FPQ_INLINE VF dpbf16(VF acc, VI w, const uint16_t* x2) {
  __asm__("vdpbf16ps %[x]%{1to16%}, %[w], %[acc]" : [acc] "+v"(acc) : [w] "v"(w), [x] "m"(*(const int32_t*)x2));
  return acc;
}
// bf16 pairs (lo word from a, hi word from b) of two vectors of exactly representable floats.
FPQ_INLINE VI bf16_pair(VF a, VF b) {
  return _mm512_or_si512(_mm512_srli_epi32(_mm512_castps_si512(a), 16),
                         _mm512_and_si512(_mm512_castps_si512(b), _mm512_set1_epi32(int32_t(0xFFFF0000u))));
}
FPQ_INLINE VI vi_load(const void* p) { return _mm512_load_si512(p); }
FPQ_INLINE void vi_store(void* p, VI v) { _mm512_store_si512(p, v); }
FPQ_INLINE VI dpwssd(VI acc, VI w, const int16_t* x2) {
  __asm__("vpdpwssd %[x]%{1to16%}, %[w], %[acc]" : [acc] "+v"(acc) : [w] "v"(w), [x] "m"(*(const int32_t*)x2));
  return acc;
}

// int16 values of the codes in a quad of bytes: even = (v(b0), v(b2)), odd = (v(b1), v(b3)) per lane.
struct LutW {
  __m512i t0, t1;
  bool wide;
  LutW(const int16_t* tab, int bits) {
    t0 = _mm512_loadu_si512((const void*)tab);
    t1 = _mm512_loadu_si512((const void*)(tab + 32));
    wide = bits > 5;
  }
};
FPQ_INLINE void words_lut(const LutW& l, VB q, VI& even, VI& odd) {
  const __m512i qo = _mm512_srli_epi16(q, 8);
  if (l.wide) {
    even = _mm512_permutex2var_epi16(l.t0, q, l.t1);
    odd = _mm512_permutex2var_epi16(l.t0, qo, l.t1);
  } else {
    even = _mm512_permutexvar_epi16(q, l.t0);
    odd = _mm512_permutexvar_epi16(qo, l.t0);
  }
}
FPQ_INLINE void words_sint8(VB q, VI& even, VI& odd) {
  even = _mm512_srai_epi16(_mm512_slli_epi16(q, 8), 8);
  odd = _mm512_srai_epi16(q, 8);
}
FPQ_INLINE void words_uint8(VB q, VI& even, VI& odd) {
  even = _mm512_and_si512(q, _mm512_set1_epi16(0x00FF));
  odd = _mm512_srli_epi16(q, 8);
}

// Float decoding of column j (0..3) of a quad of byte codes / column j (0..7) of a nibble chunk.
struct LutF16 {
  __m512 t;
  explicit LutF16(const float* tab) { t = _mm512_loadu_ps(tab); }
};
FPQ_INLINE VF dec_nib(const LutF16& l, VB v, int j) {
  const int sh = 8 * (j & 3) + 4 * (j >> 2);
  return _mm512_permutexvar_ps(sh ? _mm512_srli_epi32(v, sh) : v, l.t);
}
struct FloatArith {
  int sh_left, sh_right;
  __m512i magmask;
  __m512 mul;
  explicit FloatArith(const WeightView& w) {
    sh_left = 32 - w.bits;
    sh_right = 8 - w.ebits;
    magmask = _mm512_set1_epi32(int32_t(((1u << (w.ebits + w.mbits)) - 1u) << (23 - w.mbits)));
    mul = _mm512_set1_ps(w.float_mul);
  }
};
FPQ_INLINE VF dec_float(const FloatArith& d, VB q, int j) {
  const __m512i t = _mm512_sll_epi32(q, _mm_cvtsi32_si128(d.sh_left - 8 * j));
  const __m512i m = _mm512_and_si512(_mm512_srl_epi32(t, _mm_cvtsi32_si128(d.sh_right)), d.magmask);
  const __m512i r = _mm512_ternarylogic_epi32(m, t, _mm512_set1_epi32(int32_t(0x80000000u)), 0xF8);
  // (an FMA with -0, not a multiply: see the AVX2 dec_float_half)
  return _mm512_fmadd_ps(_mm512_castsi512_ps(r), d.mul, _mm512_set1_ps(-0.0f));
}
FPQ_INLINE VF dec_sint8(VB q, int j, VF mul) {
  const __m512i t = j == 3 ? q : _mm512_slli_epi32(q, 24 - 8 * j);
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srai_epi32(t, 24)), mul);
}
FPQ_INLINE VF dec_uint8(VB q, int j, VF mul) {
  const __m512i t = j == 3 ? q : _mm512_slli_epi32(q, 24 - 8 * j);
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(t, 24)), mul);
}
FPQ_INLINE VF dec_table(const float* lut, VB q, int j, int bits) {
  __m512i idx = j ? _mm512_srli_epi32(q, 8 * j) : q;
  idx = _mm512_and_si512(idx, _mm512_set1_epi32(0xFF));
  return _mm512_i32gather_ps(idx, lut, 4);
}
FPQ_INLINE VF dec_nib_table(const float* lut, VB v, int j) {
  const int sh = 8 * (j & 3) + 4 * (j >> 2);
  const __m512i idx = _mm512_and_si512(_mm512_srli_epi32(v, sh), _mm512_set1_epi32(0xF));
  return _mm512_i32gather_ps(idx, lut, 4);
}

// Half-precision decoding (WeightView::half_mode): a quad of 64 code bytes becomes two vectors of 32 half
// patterns, columns (0, 1) and (2, 3) of the quad; low(q) / high(q) then convert 16 of them.
struct HalfDec {
  int mode;
  __m512i hb_tab, lb_tab, idx01, idx23;
  bool has_lb;
  explicit HalfDec(const WeightView& w) {
    mode = w.half_mode;
    has_lb = mode == 2 || (mode == 1 && w.lut_lb != nullptr);
    hb_tab = mode == 1 ? _mm512_loadu_si512((const void*)w.lut_hb) : _mm512_setzero_si512();
    lb_tab = mode == 1 && w.lut_lb ? _mm512_loadu_si512((const void*)w.lut_lb) : _mm512_setzero_si512();
    // Output word r of column c (bytes 2r, 2r + 1) = (lb, hb) of code byte 4r + c; bytes >= 64 pick from hb.
    alignas(64) uint8_t i01[64], i23[64];
    for (int r = 0; r < 16; ++r) {
      for (int c = 0; c < 2; ++c) {
        i01[32 * c + 2 * r] = uint8_t(4 * r + c);
        i01[32 * c + 2 * r + 1] = uint8_t(64 + 4 * r + c);
        i23[32 * c + 2 * r] = uint8_t(4 * r + 2 + c);
        i23[32 * c + 2 * r + 1] = uint8_t(64 + 4 * r + 2 + c);
      }
    }
    idx01 = _mm512_load_si512((const void*)i01);
    idx23 = _mm512_load_si512((const void*)i23);
  }
  FPQ_INLINE void quad(VB q, VB& c01, VB& c23) const {
    __m512i hb, lb = _mm512_setzero_si512();
    if (mode == 1) {
      hb = _mm512_permutexvar_epi8(q, hb_tab);
      if (has_lb) lb = _mm512_permutexvar_epi8(q, lb_tab);
    } else if (mode == 2) {  // E4M3: hb = sign | magnitude >> 1, lb = (magnitude & 1) << 7
      const __m512i m = _mm512_srli_epi16(_mm512_and_si512(q, _mm512_set1_epi8(0x7F)), 1);
      hb = _mm512_ternarylogic_epi32(m, q, _mm512_set1_epi8(char(0x80)), 0xD8);  // bit 7 from q, the rest from m
      lb = _mm512_and_si512(_mm512_slli_epi16(q, 7), _mm512_set1_epi8(char(0x80)));
    } else {  // E5M2: the code is the high byte
      hb = q;
    }
    if (has_lb) {
      c01 = _mm512_permutex2var_epi8(lb, idx01, hb);
      c23 = _mm512_permutex2var_epi8(lb, idx23, hb);
    } else {
      const __mmask64 odd = 0xAAAAAAAAAAAAAAAAull;
      c01 = _mm512_maskz_permutexvar_epi8(odd, idx01, hb);  // vpermb reads the low 6 index bits: 64 + i -> i
      c23 = _mm512_maskz_permutexvar_epi8(odd, idx23, hb);
    }
  }
};
FPQ_INLINE VF half_lo(VB v) { return _mm512_cvtph_ps(_mm512_castsi512_si256(v)); }
FPQ_INLINE VF half_hi(VB v) { return _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1)); }

FPQ_INLINE VF load_scales(int code, const uint8_t* p) {
  switch (code) {
    case kScaleE8M0Fast:
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p)), 23));
    case kScaleE4M3Fast:
      return _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p)), 20)),
                           _mm512_set1_ps(0x1p120f));
    case kScaleE8M0: {
      const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p));
      __m512i b = _mm512_slli_epi32(c, 23);
      b = _mm512_mask_mov_epi32(b, _mm512_cmpeq_epi32_mask(c, _mm512_setzero_si512()), _mm512_set1_epi32(0x00400000));
      b = _mm512_mask_mov_epi32(b, _mm512_cmpeq_epi32_mask(c, _mm512_set1_epi32(255)), _mm512_set1_epi32(0x7FC00000));
      return _mm512_castsi512_ps(b);
    }
    case kScaleE4M3: {
      const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p));
      const __m512i mag = _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(0x7F)), 20);
      __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(mag), _mm512_set1_ps(0x1p120f));
      v = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(0x80)), 24)));
      const __mmask16 nan = _mm512_cmpeq_epi32_mask(_mm512_and_si512(c, _mm512_set1_epi32(0x7F)), _mm512_set1_epi32(0x7F));
      return _mm512_mask_mov_ps(v, nan, _mm512_castsi512_ps(_mm512_set1_epi32(0x7FC00000)));
    }
    case kScaleF16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p));
    case kScaleBF16:
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
    case kScaleF32: return _mm512_loadu_ps((const float*)p);
    default: return _mm512_set1_ps(1.0f);
  }
}
FPQ_INLINE VF load_f16x16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }

// VD: 16 doubles, lane i of a VF/VI in lane i (the exact float64 accumulation of the quantized-activation kernels).
struct VD {
  __m512d lo, hi;
};
FPQ_INLINE VD vd_zero() { return {_mm512_setzero_pd(), _mm512_setzero_pd()}; }
FPQ_INLINE VD vd_set1(double v) { return {_mm512_set1_pd(v), _mm512_set1_pd(v)}; }
FPQ_INLINE VD vd_cvt(VF f) {
  return {_mm512_cvtps_pd(_mm512_castps512_ps256(f)),
          _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)))};
}
FPQ_INLINE VD vd_cvti(VI v) {
  return {_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)), _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1))};
}
FPQ_INLINE VD vd_mul(VD x, VD y) { return {_mm512_mul_pd(x.lo, y.lo), _mm512_mul_pd(x.hi, y.hi)}; }
// acc + x * double(*s), fused (one rounding).
FPQ_INLINE VD vd_fma_bc(VD x, const float* s, VD acc) {
  const __m512d b = _mm512_set1_pd(double(*s));
  return {_mm512_fmadd_pd(x.lo, b, acc.lo), _mm512_fmadd_pd(x.hi, b, acc.hi)};
}
FPQ_INLINE VD vd_load(const double* p) { return {_mm512_load_pd(p), _mm512_load_pd(p + 8)}; }
FPQ_INLINE void vd_store(double* p, VD x) {
  _mm512_store_pd(p, x.lo);
  _mm512_store_pd(p + 8, x.hi);
}
FPQ_INLINE VD vd_add(VD x, VD y) { return {_mm512_add_pd(x.lo, y.lo), _mm512_add_pd(x.hi, y.hi)}; }
// acc + x * (*s) (a broadcast float64 operand), fused.
FPQ_INLINE VD vd_fma_bcd(VD x, const double* s, VD acc) {
  const __m512d b = _mm512_set1_pd(*s);
  return {_mm512_fmadd_pd(x.lo, b, acc.lo), _mm512_fmadd_pd(x.hi, b, acc.hi)};
}
FPQ_INLINE VF vf_from_vd(VD d) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(d.lo)), _mm512_cvtpd_ps(d.hi), 1);
}

#elif FPQ_KISA == 1
// ------------------------------------------------------------------------------------------------ AVX2
struct VF {
  __m256 a, b;
};
struct VI {
  __m256i a, b;
};
using VB = VI;

FPQ_INLINE VF vf_zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
FPQ_INLINE VF vf_set1(float v) { return {_mm256_set1_ps(v), _mm256_set1_ps(v)}; }
FPQ_INLINE VF vf_bcast(const float* p) {
  const __m256 v = _mm256_broadcast_ss(p);
  return {v, v};
}
FPQ_INLINE VF vf_add(VF x, VF y) { return {_mm256_add_ps(x.a, y.a), _mm256_add_ps(x.b, y.b)}; }
FPQ_INLINE VF vf_sub(VF x, VF y) { return {_mm256_sub_ps(x.a, y.a), _mm256_sub_ps(x.b, y.b)}; }
FPQ_INLINE VF vf_mul(VF x, VF y) { return {_mm256_mul_ps(x.a, y.a), _mm256_mul_ps(x.b, y.b)}; }
FPQ_INLINE VF vf_fma(VF x, VF y, VF z) { return {_mm256_fmadd_ps(x.a, y.a, z.a), _mm256_fmadd_ps(x.b, y.b, z.b)}; }
FPQ_INLINE VF vf_cvt(VI x) { return {_mm256_cvtepi32_ps(x.a), _mm256_cvtepi32_ps(x.b)}; }
FPQ_INLINE VF vf_fma_bc(VF w, const float* x, VF acc) { return vf_fma(w, vf_bcast(x), acc); }
FPQ_INLINE VF vf_load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
FPQ_INLINE void vf_store(float* p, VF v, int n) {
  if (n >= 16) {
    _mm256_storeu_ps(p, v.a);
    _mm256_storeu_ps(p + 8, v.b);
    return;
  }
  alignas(32) float tmp[16];
  _mm256_store_ps(tmp, v.a);
  _mm256_store_ps(tmp + 8, v.b);
  for (int i = 0; i < n; ++i) p[i] = tmp[i];
}
FPQ_INLINE VI vi_zero() { return {_mm256_setzero_si256(), _mm256_setzero_si256()}; }
FPQ_INLINE VI vi_set1(int32_t v) { return {_mm256_set1_epi32(v), _mm256_set1_epi32(v)}; }
FPQ_INLINE VI vi_sub(VI x, VI y) { return {_mm256_sub_epi32(x.a, y.a), _mm256_sub_epi32(x.b, y.b)}; }
FPQ_INLINE VI vi_mullo(VI x, VI y) { return {_mm256_mullo_epi32(x.a, y.a), _mm256_mullo_epi32(x.b, y.b)}; }
FPQ_INLINE VI vi_u8x16(const uint8_t* p) {
  return {_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p)), _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(p + 8)))};
}
FPQ_INLINE VB vb_load(const uint8_t* p) {
  return {_mm256_load_si256((const __m256i*)p), _mm256_load_si256((const __m256i*)(p + 32))};
}
FPQ_INLINE VB vb_lo4(VB v) {
  const __m256i m = _mm256_set1_epi8(0x0F);
  return {_mm256_and_si256(v.a, m), _mm256_and_si256(v.b, m)};
}
FPQ_INLINE VB vb_hi4(VB v) {
  const __m256i m = _mm256_set1_epi8(0x0F);
  return {_mm256_and_si256(_mm256_srli_epi16(v.a, 4), m), _mm256_and_si256(_mm256_srli_epi16(v.b, 4), m)};
}
FPQ_INLINE VB vb_xor80(VB v) {
  const __m256i m = _mm256_set1_epi8(char(0x80));
  return {_mm256_xor_si256(v.a, m), _mm256_xor_si256(v.b, m)};
}
struct Lut16B {
  __m256i t;
  explicit Lut16B(const uint8_t* tab) { t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)tab)); }
};
FPQ_INLINE VB lut16b(const Lut16B& l, VB idx) { return {_mm256_shuffle_epi8(l.t, idx.a), _mm256_shuffle_epi8(l.t, idx.b)}; }
struct Lut64B {
  __m256i t0, t1, t2, t3;
  explicit Lut64B(const uint8_t* tab) {
    t0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)tab));
    t1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(tab + 16)));
    t2 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(tab + 32)));
    t3 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(tab + 48)));
  }
};
FPQ_INLINE __m256i lut64_half(const Lut64B& l, __m256i idx) {
  const __m256i lo = _mm256_and_si256(idx, _mm256_set1_epi8(0x0F));
  const __m256i s4 = _mm256_slli_epi16(idx, 3), s5 = _mm256_slli_epi16(idx, 2);  // bit 4 / bit 5 -> bit 7
  const __m256i r01 = _mm256_blendv_epi8(_mm256_shuffle_epi8(l.t0, lo), _mm256_shuffle_epi8(l.t1, lo), s4);
  const __m256i r23 = _mm256_blendv_epi8(_mm256_shuffle_epi8(l.t2, lo), _mm256_shuffle_epi8(l.t3, lo), s4);
  return _mm256_blendv_epi8(r01, r23, s5);
}
FPQ_INLINE VB lut64b(const Lut64B& l, VB idx) { return {lut64_half(l, idx.a), lut64_half(l, idx.b)}; }

FPQ_INLINE VI dpbusd(VI acc, VB w, const int8_t* x4) {
  int32_t v;
  std::memcpy(&v, x4, 4);
  const __m256i x = _mm256_set1_epi32(v), ones = _mm256_set1_epi16(1);
  return {_mm256_add_epi32(acc.a, _mm256_madd_epi16(_mm256_maddubs_epi16(w.a, x), ones)),
          _mm256_add_epi32(acc.b, _mm256_madd_epi16(_mm256_maddubs_epi16(w.b, x), ones))};
}
// vpdpwssd without VNNI: vpmaddwd (two int16 products summed into int32, exact) and an int32 add.
FPQ_INLINE __m256i bcast_pair(const int16_t* x2) {
  int32_t v;
  std::memcpy(&v, x2, 4);
  return _mm256_set1_epi32(v);
}
FPQ_INLINE VI dpwssd(VI acc, VI w, const int16_t* x2) {
  const __m256i x = bcast_pair(x2);
  return {_mm256_add_epi32(acc.a, _mm256_madd_epi16(w.a, x)), _mm256_add_epi32(acc.b, _mm256_madd_epi16(w.b, x))};
}

// int16 values of the codes in a quad of bytes: even = (v(b0), v(b2)), odd = (v(b1), v(b3)) per 32-bit lane.
// AVX2 has no 16-bit permute: the low and the high bytes of the 64 int16 values are two 64-entry byte tables.
struct LutW {
  Lut64B lo, hi;
  static Lut64B bytes_of(const int16_t* tab, int shift) {
    uint8_t b[64];
    for (int i = 0; i < 64; ++i) b[i] = uint8_t(uint16_t(tab[i]) >> shift);
    return Lut64B(b);
  }
  LutW(const int16_t* tab, int) : lo(bytes_of(tab, 0)), hi(bytes_of(tab, 8)) {}
};
FPQ_INLINE void words_lut_half(const LutW& l, __m256i q, __m256i& even, __m256i& odd) {
  // lut64_half for both tables, sharing the index arithmetic
  const __m256i lo4 = _mm256_and_si256(q, _mm256_set1_epi8(0x0F));
  const __m256i s4 = _mm256_slli_epi16(q, 3), s5 = _mm256_slli_epi16(q, 2);  // bit 4 / bit 5 -> bit 7
  auto look = [&](const Lut64B& t) {
    const __m256i r01 = _mm256_blendv_epi8(_mm256_shuffle_epi8(t.t0, lo4), _mm256_shuffle_epi8(t.t1, lo4), s4);
    const __m256i r23 = _mm256_blendv_epi8(_mm256_shuffle_epi8(t.t2, lo4), _mm256_shuffle_epi8(t.t3, lo4), s4);
    return _mm256_blendv_epi8(r01, r23, s5);
  };
  const __m256i L = look(l.lo), H = look(l.hi);
  const __m256i m8 = _mm256_set1_epi16(0x00FF);
  even = _mm256_or_si256(_mm256_and_si256(L, m8), _mm256_slli_epi16(H, 8));
  odd = _mm256_or_si256(_mm256_srli_epi16(L, 8), _mm256_andnot_si256(m8, H));
}
FPQ_INLINE void words_lut(const LutW& l, VB q, VI& even, VI& odd) {
  words_lut_half(l, q.a, even.a, odd.a);
  words_lut_half(l, q.b, even.b, odd.b);
}
FPQ_INLINE void words_sint8_half(__m256i q, __m256i& even, __m256i& odd) {
  even = _mm256_srai_epi16(_mm256_slli_epi16(q, 8), 8);
  odd = _mm256_srai_epi16(q, 8);
}
FPQ_INLINE void words_sint8(VB q, VI& even, VI& odd) {
  words_sint8_half(q.a, even.a, odd.a);
  words_sint8_half(q.b, even.b, odd.b);
}
FPQ_INLINE void words_uint8_half(__m256i q, __m256i& even, __m256i& odd) {
  even = _mm256_and_si256(q, _mm256_set1_epi16(0x00FF));
  odd = _mm256_srli_epi16(q, 8);
}
FPQ_INLINE void words_uint8(VB q, VI& even, VI& odd) {
  words_uint8_half(q.a, even.a, odd.a);
  words_uint8_half(q.b, even.b, odd.b);
}

struct LutF16 {
  __m256 lo, hi;
  explicit LutF16(const float* tab) {
    lo = _mm256_loadu_ps(tab);
    hi = _mm256_loadu_ps(tab + 8);
  }
};
FPQ_INLINE __m256 dec_nib_half(const LutF16& l, __m256i v, int sh) {
  const __m256i idx = _mm256_srl_epi32(v, _mm_cvtsi32_si128(sh));
  const __m256 a = _mm256_permutevar8x32_ps(l.lo, idx), b = _mm256_permutevar8x32_ps(l.hi, idx);
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}
FPQ_INLINE VF dec_nib(const LutF16& l, VB v, int j) {
  const int sh = 8 * (j & 3) + 4 * (j >> 2);
  return {dec_nib_half(l, v.a, sh), dec_nib_half(l, v.b, sh)};
}
struct FloatArith {
  int sh_left, sh_right;
  __m256i magmask;
  __m256 mul;
  explicit FloatArith(const WeightView& w) {
    sh_left = 32 - w.bits;
    sh_right = 8 - w.ebits;
    magmask = _mm256_set1_epi32(int32_t(((1u << (w.ebits + w.mbits)) - 1u) << (23 - w.mbits)));
    mul = _mm256_set1_ps(w.float_mul);
  }
};
FPQ_INLINE __m256 dec_float_half(const FloatArith& d, __m256i q, int j) {
  const __m256i t = _mm256_sll_epi32(q, _mm_cvtsi32_si128(d.sh_left - 8 * j));
  const __m256i m = _mm256_and_si256(_mm256_srl_epi32(t, _mm_cvtsi32_si128(d.sh_right)), d.magmask);
  const __m256i r = _mm256_or_si256(m, _mm256_and_si256(t, _mm256_set1_epi32(int32_t(0x80000000u))));
  // r is the value times 2^-(127 - bias): a float32 denormal for subnormal codes (2-3% of FP6 E3M2 weights).
  // A Zen 3 multiply with a denormal input is slow (the weight-only FP6 matrix-vector product ran at half
  // speed, 14.4 against 7.5 ms for weights without subnormal codes); its FMA is not. With -0 as the addend the
  // FMA returns the product exactly, signed zeros included.
  return _mm256_fmadd_ps(_mm256_castsi256_ps(r), d.mul, _mm256_set1_ps(-0.0f));
}
FPQ_INLINE VF dec_float(const FloatArith& d, VB q, int j) { return {dec_float_half(d, q.a, j), dec_float_half(d, q.b, j)}; }
FPQ_INLINE VF dec_sint8(VB q, int j, VF mul) {
  const __m128i s = _mm_cvtsi32_si128(24 - 8 * j);
  return {_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_sll_epi32(q.a, s), 24)), mul.a),
          _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_sll_epi32(q.b, s), 24)), mul.b)};
}
FPQ_INLINE VF dec_uint8(VB q, int j, VF mul) {
  const __m128i s = _mm_cvtsi32_si128(24 - 8 * j);
  return {_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(_mm256_sll_epi32(q.a, s), 24)), mul.a),
          _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(_mm256_sll_epi32(q.b, s), 24)), mul.b)};
}
FPQ_INLINE VF dec_table(const float* lut, VB q, int j, int bits) {
  const __m128i s = _mm_cvtsi32_si128(8 * j);
  const __m256i m = _mm256_set1_epi32(0xFF);
  return {_mm256_i32gather_ps(lut, _mm256_and_si256(_mm256_srl_epi32(q.a, s), m), 4),
          _mm256_i32gather_ps(lut, _mm256_and_si256(_mm256_srl_epi32(q.b, s), m), 4)};
}
FPQ_INLINE VF dec_nib_table(const float* lut, VB v, int j) {
  const __m128i s = _mm_cvtsi32_si128(8 * (j & 3) + 4 * (j >> 2));
  const __m256i m = _mm256_set1_epi32(0xF);
  return {_mm256_i32gather_ps(lut, _mm256_and_si256(_mm256_srl_epi32(v.a, s), m), 4),
          _mm256_i32gather_ps(lut, _mm256_and_si256(_mm256_srl_epi32(v.b, s), m), 4)};
}

FPQ_INLINE __m256 scales8(int code, const uint8_t* p) {
  switch (code) {
    case kScaleE8M0Fast:
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p)), 23));
    case kScaleE4M3Fast:
      return _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p)), 20)),
                           _mm256_set1_ps(0x1p120f));
    case kScaleE8M0: {
      const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p));
      __m256i b = _mm256_slli_epi32(c, 23);
      b = _mm256_blendv_epi8(b, _mm256_set1_epi32(0x00400000), _mm256_cmpeq_epi32(c, _mm256_setzero_si256()));
      b = _mm256_blendv_epi8(b, _mm256_set1_epi32(0x7FC00000), _mm256_cmpeq_epi32(c, _mm256_set1_epi32(255)));
      return _mm256_castsi256_ps(b);
    }
    case kScaleE4M3: {
      const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p));
      const __m256i c7 = _mm256_and_si256(c, _mm256_set1_epi32(0x7F));
      __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(c7, 20)), _mm256_set1_ps(0x1p120f));
      v = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(v), _mm256_slli_epi32(_mm256_and_si256(c, _mm256_set1_epi32(0x80)), 24)));
      return _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)),
                              _mm256_castsi256_ps(_mm256_cmpeq_epi32(c7, _mm256_set1_epi32(0x7F))));
    }
    case kScaleF16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p));
    case kScaleBF16:
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
    case kScaleF32: return _mm256_loadu_ps((const float*)p);
    default: return _mm256_set1_ps(1.0f);
  }
}
FPQ_INLINE int scale_stride8(int code) {
  return code == kScaleF32 ? 32 : (code == kScaleF16 || code == kScaleBF16) ? 16 : 8;
}
FPQ_INLINE VF load_scales(int code, const uint8_t* p) { return {scales8(code, p), scales8(code, p + scale_stride8(code))}; }
FPQ_INLINE VF load_f16x16(const uint16_t* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(p + 8)))};
}

// VD: 16 doubles in four quarters, lane i of a VF/VI in lane i (exact float64 accumulation).
struct VD {
  __m256d q[4];
};
FPQ_INLINE VD vd_zero() { return {{_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()}}; }
FPQ_INLINE VD vd_set1(double v) {
  const __m256d b = _mm256_set1_pd(v);
  return {{b, b, b, b}};
}
FPQ_INLINE VD vd_cvt(VF f) {
  return {{_mm256_cvtps_pd(_mm256_castps256_ps128(f.a)), _mm256_cvtps_pd(_mm256_extractf128_ps(f.a, 1)),
           _mm256_cvtps_pd(_mm256_castps256_ps128(f.b)), _mm256_cvtps_pd(_mm256_extractf128_ps(f.b, 1))}};
}
FPQ_INLINE VD vd_cvti(VI v) {
  return {{_mm256_cvtepi32_pd(_mm256_castsi256_si128(v.a)), _mm256_cvtepi32_pd(_mm256_extracti128_si256(v.a, 1)),
           _mm256_cvtepi32_pd(_mm256_castsi256_si128(v.b)), _mm256_cvtepi32_pd(_mm256_extracti128_si256(v.b, 1))}};
}
FPQ_INLINE VD vd_mul(VD x, VD y) {
  for (int i = 0; i < 4; ++i) x.q[i] = _mm256_mul_pd(x.q[i], y.q[i]);
  return x;
}
FPQ_INLINE VD vd_fma_bc(VD x, const float* s, VD acc) {
  const __m256d b = _mm256_set1_pd(double(*s));
  for (int i = 0; i < 4; ++i) acc.q[i] = _mm256_fmadd_pd(x.q[i], b, acc.q[i]);
  return acc;
}
FPQ_INLINE VD vd_load(const double* p) {
  return {{_mm256_load_pd(p), _mm256_load_pd(p + 4), _mm256_load_pd(p + 8), _mm256_load_pd(p + 12)}};
}
FPQ_INLINE void vd_store(double* p, VD x) {
  for (int i = 0; i < 4; ++i) _mm256_store_pd(p + 4 * i, x.q[i]);
}
FPQ_INLINE VD vd_add(VD x, VD y) {
  for (int i = 0; i < 4; ++i) x.q[i] = _mm256_add_pd(x.q[i], y.q[i]);
  return x;
}
FPQ_INLINE VD vd_fma_bcd(VD x, const double* s, VD acc) {
  const __m256d b = _mm256_set1_pd(*s);
  for (int i = 0; i < 4; ++i) acc.q[i] = _mm256_fmadd_pd(x.q[i], b, acc.q[i]);
  return acc;
}
FPQ_INLINE VF vf_from_vd(VD d) {
  return {_mm256_set_m128(_mm256_cvtpd_ps(d.q[1]), _mm256_cvtpd_ps(d.q[0])),
          _mm256_set_m128(_mm256_cvtpd_ps(d.q[3]), _mm256_cvtpd_ps(d.q[2]))};
}

#else
// ------------------------------------------------------------------------------------------------ scalar
struct VF {
  float v[16];
};
struct VI {
  int32_t v[16];
};
struct VB {
  uint8_t v[64];
};

FPQ_INLINE VF vf_zero() {
  VF r;
  for (int i = 0; i < 16; ++i) r.v[i] = 0.0f;
  return r;
}
FPQ_INLINE VF vf_set1(float x) {
  VF r;
  for (int i = 0; i < 16; ++i) r.v[i] = x;
  return r;
}
FPQ_INLINE VF vf_bcast(const float* p) { return vf_set1(*p); }
FPQ_INLINE VF vf_add(VF a, VF b) {
  for (int i = 0; i < 16; ++i) a.v[i] = a.v[i] + b.v[i];
  return a;
}
FPQ_INLINE VF vf_sub(VF a, VF b) {
  for (int i = 0; i < 16; ++i) a.v[i] = a.v[i] - b.v[i];
  return a;
}
FPQ_INLINE VF vf_mul(VF a, VF b) {
  for (int i = 0; i < 16; ++i) a.v[i] = a.v[i] * b.v[i];
  return a;
}
FPQ_INLINE VF vf_fma(VF a, VF b, VF c) {
  for (int i = 0; i < 16; ++i) c.v[i] = __builtin_fmaf(a.v[i], b.v[i], c.v[i]);
  return c;
}
FPQ_INLINE VF vf_fma_bc(VF w, const float* x, VF acc) { return vf_fma(w, vf_bcast(x), acc); }
FPQ_INLINE VF vf_cvt(VI a) {
  VF r;
  for (int i = 0; i < 16; ++i) r.v[i] = float(a.v[i]);
  return r;
}
FPQ_INLINE VF vf_load(const float* p) {
  VF r;
  std::memcpy(r.v, p, 64);
  return r;
}
FPQ_INLINE void vf_store(float* p, VF v, int n) {
  for (int i = 0; i < n && i < 16; ++i) p[i] = v.v[i];
}
FPQ_INLINE VI vi_zero() {
  VI r;
  for (int i = 0; i < 16; ++i) r.v[i] = 0;
  return r;
}
FPQ_INLINE VI vi_set1(int32_t x) {
  VI r;
  for (int i = 0; i < 16; ++i) r.v[i] = x;
  return r;
}
FPQ_INLINE VI vi_sub(VI a, VI b) {
  for (int i = 0; i < 16; ++i) a.v[i] = int32_t(uint32_t(a.v[i]) - uint32_t(b.v[i]));
  return a;
}
FPQ_INLINE VI vi_mullo(VI a, VI b) {
  for (int i = 0; i < 16; ++i) a.v[i] = int32_t(uint32_t(a.v[i]) * uint32_t(b.v[i]));
  return a;
}
FPQ_INLINE VI vi_u8x16(const uint8_t* p) {
  VI r;
  for (int i = 0; i < 16; ++i) r.v[i] = p[i];
  return r;
}
FPQ_INLINE VB vb_load(const uint8_t* p) {
  VB r;
  std::memcpy(r.v, p, 64);
  return r;
}
FPQ_INLINE VB vb_lo4(VB a) {
  for (int i = 0; i < 64; ++i) a.v[i] &= 0x0F;
  return a;
}
FPQ_INLINE VB vb_hi4(VB a) {
  for (int i = 0; i < 64; ++i) a.v[i] = uint8_t(a.v[i] >> 4);
  return a;
}
FPQ_INLINE VB vb_xor80(VB a) {
  for (int i = 0; i < 64; ++i) a.v[i] ^= 0x80;
  return a;
}
struct Lut16B {
  const uint8_t* t;
  explicit Lut16B(const uint8_t* tab) : t(tab) {}
};
FPQ_INLINE VB lut16b(const Lut16B& l, VB idx) {
  for (int i = 0; i < 64; ++i) idx.v[i] = l.t[idx.v[i] & 15];
  return idx;
}
struct Lut64B {
  const uint8_t* t;
  explicit Lut64B(const uint8_t* tab) : t(tab) {}
};
FPQ_INLINE VB lut64b(const Lut64B& l, VB idx) {
  for (int i = 0; i < 64; ++i) idx.v[i] = l.t[idx.v[i] & 63];
  return idx;
}
FPQ_INLINE VI dpbusd(VI acc, VB w, const int8_t* x4) {
  for (int i = 0; i < 16; ++i) {
    int32_t s = 0;
    for (int j = 0; j < 4; ++j) s += int32_t(w.v[4 * i + j]) * int32_t(x4[j]);
    acc.v[i] = int32_t(uint32_t(acc.v[i]) + uint32_t(s));
  }
  return acc;
}
FPQ_INLINE VI dpwssd(VI acc, VI w, const int16_t* x2) {
  for (int i = 0; i < 16; ++i) {
    const uint32_t u = uint32_t(w.v[i]);
    const int32_t lo = int16_t(u & 0xFFFFu), hi = int16_t(u >> 16);
    const int32_t s = lo * int32_t(x2[0]) + hi * int32_t(x2[1]);
    acc.v[i] = int32_t(uint32_t(acc.v[i]) + uint32_t(s));
  }
  return acc;
}
struct LutW {
  const int16_t* t;
  int mask;
  LutW(const int16_t* tab, int bits) : t(tab), mask(bits > 5 ? 63 : 31) {}
};
FPQ_INLINE uint32_t two_words(int32_t lo, int32_t hi) { return (uint32_t(uint16_t(lo))) | (uint32_t(uint16_t(hi)) << 16); }
FPQ_INLINE void words_lut(const LutW& l, VB q, VI& even, VI& odd) {
  for (int i = 0; i < 16; ++i) {
    const uint8_t* b = q.v + 4 * i;
    even.v[i] = int32_t(two_words(l.t[b[0] & l.mask], l.t[b[2] & l.mask]));
    odd.v[i] = int32_t(two_words(l.t[b[1] & l.mask], l.t[b[3] & l.mask]));
  }
}
FPQ_INLINE void words_sint8(VB q, VI& even, VI& odd) {
  for (int i = 0; i < 16; ++i) {
    const uint8_t* b = q.v + 4 * i;
    even.v[i] = int32_t(two_words(int8_t(b[0]), int8_t(b[2])));
    odd.v[i] = int32_t(two_words(int8_t(b[1]), int8_t(b[3])));
  }
}
FPQ_INLINE void words_uint8(VB q, VI& even, VI& odd) {
  for (int i = 0; i < 16; ++i) {
    const uint8_t* b = q.v + 4 * i;
    even.v[i] = int32_t(two_words(b[0], b[2]));
    odd.v[i] = int32_t(two_words(b[1], b[3]));
  }
}
struct LutF16 {
  const float* t;
  explicit LutF16(const float* tab) : t(tab) {}
};
FPQ_INLINE VF dec_nib(const LutF16& l, VB v, int j) {
  VF r;
  const int b = j & 3, hi = j >> 2;
  for (int i = 0; i < 16; ++i) r.v[i] = l.t[(v.v[4 * i + b] >> (4 * hi)) & 15];
  return r;
}
struct FloatArith {
  const float* t;
  explicit FloatArith(const WeightView& w) : t(w.lut_f) {}
};
FPQ_INLINE VF dec_table(const float* lut, VB q, int j, int bits) {
  VF r;
  for (int i = 0; i < 16; ++i) r.v[i] = lut[q.v[4 * i + j]];
  return r;
}
FPQ_INLINE VF dec_nib_table(const float* lut, VB v, int j) { return dec_nib(LutF16(lut), v, j); }
FPQ_INLINE VF dec_float(const FloatArith& d, VB q, int j) { return dec_table(d.t, q, j, 8); }
FPQ_INLINE VF dec_sint8(VB q, int j, VF mul) {
  VF r;
  for (int i = 0; i < 16; ++i) r.v[i] = float(int8_t(q.v[4 * i + j])) * mul.v[i];
  return r;
}
FPQ_INLINE VF dec_uint8(VB q, int j, VF mul) {
  VF r;
  for (int i = 0; i < 16; ++i) r.v[i] = float(q.v[4 * i + j]) * mul.v[i];
  return r;
}
FPQ_INLINE VF load_scales(int code, const uint8_t* p) {
  VF r;
  for (int i = 0; i < 16; ++i) {
    switch (code) {
      case kScaleE8M0:
      case kScaleE8M0Fast: r.v[i] = e8m0_to_float(p[i]); break;
      case kScaleE4M3:
      case kScaleE4M3Fast: r.v[i] = e4m3_to_float(p[i]); break;
      case kScaleF16: {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        r.v[i] = half_to_float(h);
        break;
      }
      case kScaleBF16: {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        r.v[i] = u2f(uint32_t(h) << 16);
        break;
      }
      case kScaleF32: std::memcpy(&r.v[i], p + 4 * i, 4); break;
      default: r.v[i] = 1.0f;
    }
  }
  return r;
}
FPQ_INLINE VF load_f16x16(const uint16_t* p) {
  VF r;
  for (int i = 0; i < 16; ++i) r.v[i] = half_to_float(p[i]);
  return r;
}

// VD: 16 doubles, lane i of a VF/VI in lane i (exact float64 accumulation).
struct VD {
  double v[16];
};
FPQ_INLINE VD vd_set1(double x) {
  VD r;
  for (int i = 0; i < 16; ++i) r.v[i] = x;
  return r;
}
FPQ_INLINE VD vd_zero() { return vd_set1(0.0); }
FPQ_INLINE VD vd_cvt(VF f) {
  VD r;
  for (int i = 0; i < 16; ++i) r.v[i] = double(f.v[i]);
  return r;
}
FPQ_INLINE VD vd_cvti(VI a) {
  VD r;
  for (int i = 0; i < 16; ++i) r.v[i] = double(a.v[i]);
  return r;
}
FPQ_INLINE VD vd_mul(VD x, VD y) {
  for (int i = 0; i < 16; ++i) x.v[i] = x.v[i] * y.v[i];
  return x;
}
FPQ_INLINE VD vd_fma_bc(VD x, const float* s, VD acc) {
  const double b = double(*s);
  for (int i = 0; i < 16; ++i) acc.v[i] = __builtin_fma(x.v[i], b, acc.v[i]);
  return acc;
}
FPQ_INLINE VD vd_load(const double* p) {
  VD r;
  for (int i = 0; i < 16; ++i) r.v[i] = p[i];
  return r;
}
FPQ_INLINE void vd_store(double* p, VD x) {
  for (int i = 0; i < 16; ++i) p[i] = x.v[i];
}
FPQ_INLINE VD vd_add(VD x, VD y) {
  for (int i = 0; i < 16; ++i) x.v[i] = x.v[i] + y.v[i];
  return x;
}
FPQ_INLINE VD vd_fma_bcd(VD x, const double* s, VD acc) {
  const double b = *s;
  for (int i = 0; i < 16; ++i) acc.v[i] = __builtin_fma(x.v[i], b, acc.v[i]);
  return acc;
}
FPQ_INLINE VF vf_from_vd(VD d) {
  VF r;
  for (int i = 0; i < 16; ++i) r.v[i] = float(d.v[i]);
  return r;
}
#endif

}  // namespace fpq::cpu::detail::FPQ_ISA_NS
