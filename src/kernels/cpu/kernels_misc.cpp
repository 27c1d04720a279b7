// Per-variant helpers: memory read probe and the element encoders of the activation quantizer (bit-exact with
// ElementType::encode and llama.cpp's Q8 rounding).
#include "kernels/cpu/kernel_common.h"

namespace fpq::cpu::detail::FPQ_ISA_NS {
namespace {

// Scalar reference of one encode (also the tail path of the SIMD variants).
FPQ_INLINE uint8_t encode_one(float q, const EncodeParams& p) {
  const uint32_t u = f2u(q);
  if (!p.is_float) {
    const uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return 0;
    float v = q * u2f(uint32_t(127 + p.frac_bits) << 23);
    v = __builtin_nearbyintf(v);
    if (!(v >= float(p.qmin))) v = float(p.qmin);
    if (v > float(p.qmax)) v = float(p.qmax);
    return uint8_t(uint32_t(int32_t(v)) & p.mask);
  }
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t sign = (p.is_signed && (u >> 31)) ? 1u << (p.ebits + p.mbits) : 0u;
  if (a > 0x7F800000u) return uint8_t((u >> 31) ? p.nan_neg : p.nan_pos);
  uint32_t mag;
  if (a >= p.max_mag_f32) {
    mag = p.max_mag;
  } else {
    const int emin = 1 - p.bias;
    const int e = int(a >> 23) - 127;
    if (e < emin) {
      const float v = u2f(a) * u2f(uint32_t(127 + p.mbits - emin) << 23);
      mag = uint32_t(__builtin_nearbyintf(v));
    } else {
      const int shift = 23 - p.mbits;
      const uint32_t r = a + ((1u << (shift - 1)) - 1u) + ((a >> shift) & 1u);
      mag = (r >> shift) - (uint32_t(127 - p.bias) << p.mbits);
    }
    if (mag > p.max_mag) mag = p.max_mag;
  }
  return uint8_t(sign | mag);
}

FPQ_INLINE int8_t q8_one(float x, float id) {
  return int8_t(__builtin_roundf(x * id));
}

#if FPQ_KISA == 2
FPQ_INLINE __m128i encode16(__m512 q, const EncodeParams& p) {
  const __m512i u = _mm512_castps_si512(q);
  const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
  __m512i code;
  if (!p.is_float) {
    __m512 v = _mm512_mul_ps(q, _mm512_set1_ps(u2f(uint32_t(127 + p.frac_bits) << 23)));
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_max_ps(v, _mm512_set1_ps(float(p.qmin)));  // NaN -> qmin, fixed below
    v = _mm512_min_ps(v, _mm512_set1_ps(float(p.qmax)));
    code = _mm512_and_si512(_mm512_cvtps_epi32(v), _mm512_set1_epi32(int32_t(p.mask)));
    code = _mm512_mask_mov_epi32(code, _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7F800000)), _mm512_setzero_si512());
  } else {
    const int emin = 1 - p.bias, shift = 23 - p.mbits;
    const __m512i sign = p.is_signed ? _mm512_slli_epi32(_mm512_srli_epi32(u, 31), p.ebits + p.mbits) : _mm512_setzero_si512();
    const __m512i lsb = _mm512_and_si512(_mm512_srl_epi32(a, _mm_cvtsi32_si128(shift)), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(_mm512_add_epi32(a, _mm512_set1_epi32(int32_t((1u << (shift - 1)) - 1u))), lsb);
    const __m512i magn = _mm512_sub_epi32(_mm512_srl_epi32(r, _mm_cvtsi32_si128(shift)),
                                          _mm512_set1_epi32(int32_t(uint32_t(127 - p.bias) << p.mbits)));
    const __m512 vs = _mm512_mul_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(u2f(uint32_t(127 + p.mbits - emin) << 23)));
    const __m512i mags = _mm512_cvt_roundps_epi32(vs, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __mmask16 sub = _mm512_cmplt_epi32_mask(a, _mm512_set1_epi32(int32_t(uint32_t(emin + 127) << 23)));
    __m512i mag = _mm512_mask_mov_epi32(magn, sub, mags);
    mag = _mm512_min_epu32(mag, _mm512_set1_epi32(int32_t(p.max_mag)));
    mag = _mm512_mask_mov_epi32(mag, _mm512_cmpge_epi32_mask(a, _mm512_set1_epi32(int32_t(p.max_mag_f32))),
                                _mm512_set1_epi32(int32_t(p.max_mag)));
    code = _mm512_or_si512(sign, mag);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7F800000));
    if (nan) {
      const __mmask16 neg = _mm512_cmplt_epi32_mask(u, _mm512_setzero_si512());
      code = _mm512_mask_mov_epi32(code, nan & ~neg, _mm512_set1_epi32(int32_t(p.nan_pos)));
      code = _mm512_mask_mov_epi32(code, nan & neg, _mm512_set1_epi32(int32_t(p.nan_neg)));
    }
  }
  return _mm512_cvtepi32_epi8(code);
}
#elif FPQ_KISA == 1
FPQ_INLINE __m256i encode8(__m256 q, const EncodeParams& p) {
  const __m256i u = _mm256_castps_si256(q);
  const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
  const __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000));
  __m256i code;
  if (!p.is_float) {
    __m256 v = _mm256_mul_ps(q, _mm256_set1_ps(u2f(uint32_t(127 + p.frac_bits) << 23)));
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_max_ps(v, _mm256_set1_ps(float(p.qmin)));
    v = _mm256_min_ps(v, _mm256_set1_ps(float(p.qmax)));
    code = _mm256_and_si256(_mm256_cvtps_epi32(v), _mm256_set1_epi32(int32_t(p.mask)));
    return _mm256_andnot_si256(nan, code);
  }
  const int emin = 1 - p.bias, shift = 23 - p.mbits;
  const __m256i sign = p.is_signed ? _mm256_slli_epi32(_mm256_srli_epi32(u, 31), p.ebits + p.mbits) : _mm256_setzero_si256();
  const __m256i lsb = _mm256_and_si256(_mm256_srl_epi32(a, _mm_cvtsi32_si128(shift)), _mm256_set1_epi32(1));
  const __m256i r = _mm256_add_epi32(_mm256_add_epi32(a, _mm256_set1_epi32(int32_t((1u << (shift - 1)) - 1u))), lsb);
  const __m256i magn = _mm256_sub_epi32(_mm256_srl_epi32(r, _mm_cvtsi32_si128(shift)),
                                        _mm256_set1_epi32(int32_t(uint32_t(127 - p.bias) << p.mbits)));
  const __m256 vs = _mm256_mul_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(u2f(uint32_t(127 + p.mbits - emin) << 23)));
  const __m256i mags = _mm256_cvtps_epi32(_mm256_round_ps(vs, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256i sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(uint32_t(emin + 127) << 23)), a);
  __m256i mag = _mm256_blendv_epi8(magn, mags, sub);
  mag = _mm256_min_epu32(mag, _mm256_set1_epi32(int32_t(p.max_mag)));
  const __m256i sat = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(int32_t(p.max_mag_f32 - 1)));
  mag = _mm256_blendv_epi8(mag, _mm256_set1_epi32(int32_t(p.max_mag)), sat);
  code = _mm256_or_si256(sign, mag);
  const __m256i neg = _mm256_srai_epi32(u, 31);
  const __m256i nanc = _mm256_blendv_epi8(_mm256_set1_epi32(int32_t(p.nan_pos)), _mm256_set1_epi32(int32_t(p.nan_neg)), neg);
  return _mm256_blendv_epi8(code, nanc, nan);
}
FPQ_INLINE void store8(uint8_t* out, __m256i c) {
  // 8 int32 codes (0..255) -> 8 bytes
  const __m256i b = _mm256_shuffle_epi8(c, _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
  const uint32_t lo = uint32_t(_mm256_extract_epi32(b, 0)), hi = uint32_t(_mm256_extract_epi32(b, 4));
  std::memcpy(out, &lo, 4);
  std::memcpy(out + 4, &hi, 4);
}
#endif

}  // namespace

uint64_t stream_read(const void* p, int64_t bytes, int32_t streams) {
  // `streams` interleaved streams (1..8), 256 bytes from each per step.
  const int64_t per = bytes / streams / 256 * 256;
  const uint8_t* b = static_cast<const uint8_t*>(p);
#if FPQ_KISA == 2
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t off = 0; off < per; off += 256) {
    for (int s = 0; s < streams; ++s) {
      const __m512i* v = (const __m512i*)(b + s * per + off);
      a0 = _mm512_add_epi64(a0, _mm512_load_si512(v));
      a1 = _mm512_add_epi64(a1, _mm512_load_si512(v + 1));
      a2 = _mm512_add_epi64(a2, _mm512_load_si512(v + 2));
      a3 = _mm512_add_epi64(a3, _mm512_load_si512(v + 3));
    }
  }
  return uint64_t(_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3))));
#elif FPQ_KISA == 1
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t off = 0; off < per; off += 256) {
    for (int s = 0; s < streams; ++s) {
      const __m256i* v = (const __m256i*)(b + s * per + off);
      for (int i = 0; i < 8; i += 4) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + i));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + i + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + i + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + i + 3));
      }
    }
  }
  const __m256i t = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  return uint64_t(_mm256_extract_epi64(t, 0) + _mm256_extract_epi64(t, 1) + _mm256_extract_epi64(t, 2) +
                  _mm256_extract_epi64(t, 3));
#else
  uint64_t a0 = 0, a1 = 0;
  for (int64_t off = 0; off < per; off += 256)
    for (int s = 0; s < streams; ++s) {
      const uint64_t* v = (const uint64_t*)(b + s * per + off);
      for (int i = 0; i < 32; i += 2) {
        a0 += v[i];
        a1 += v[i + 1];
      }
    }
  return a0 + a1;
#endif
}

void row_amax(const float* x, int64_t n, int32_t group, float* amax, uint8_t* finite) {
  for (int64_t g = 0; g < n / group; ++g) {
    const float* p = x + g * group;
    int64_t i = 0;
    float m = 0.0f;
    bool fin = true;
#if FPQ_KISA == 2
    __m512 vm = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (; i + 16 <= group; i += 16) {
      const __m512 v = _mm512_abs_ps(_mm512_loadu_ps(p + i));
      const __mmask16 f = _mm512_cmplt_epi32_mask(_mm512_castps_si512(v), _mm512_set1_epi32(0x7F800000));
      bad |= __mmask16(~f);
      vm = _mm512_mask_max_ps(vm, f, vm, v);
    }
    m = _mm512_reduce_max_ps(vm);
    fin = bad == 0;
#elif FPQ_KISA == 1
    __m256 vm = _mm256_setzero_ps();
    __m256i bad = _mm256_setzero_si256();
    for (; i + 8 <= group; i += 8) {
      const __m256i u = _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(p + i)), _mm256_set1_epi32(0x7FFFFFFF));
      const __m256i nf = _mm256_cmpgt_epi32(u, _mm256_set1_epi32(0x7F7FFFFF));
      bad = _mm256_or_si256(bad, nf);
      vm = _mm256_max_ps(vm, _mm256_castsi256_ps(_mm256_andnot_si256(nf, u)));
    }
    alignas(32) float t[8];
    _mm256_store_ps(t, vm);
    for (int k = 0; k < 8; ++k) m = m > t[k] ? m : t[k];
    fin = _mm256_testz_si256(bad, bad);
#endif
    for (; i < group; ++i) {
      const uint32_t a = f2u(p[i]) & 0x7FFFFFFFu;
      if (a >= 0x7F800000u) {
        fin = false;
        continue;
      }
      const float v = u2f(a);
      m = m > v ? m : v;
    }
    amax[g] = m;
    finite[g] = fin ? 1 : 0;
  }
}

void encode_row(const float* x, int64_t n, int32_t group, const float* s_eff, const EncodeParams& p, uint8_t* codes) {
  for (int64_t g = 0; g < n / group; ++g) {
    const float* xp = x + g * group;
    uint8_t* cp = codes + g * group;
    const float s = s_eff[g];
    int64_t i = 0;
#if FPQ_KISA == 2
    const __m512 vs = _mm512_set1_ps(s);
    for (; i + 16 <= group; i += 16) _mm_storeu_si128((__m128i*)(cp + i), encode16(_mm512_div_ps(_mm512_loadu_ps(xp + i), vs), p));
#elif FPQ_KISA == 1
    const __m256 vs = _mm256_set1_ps(s);
    for (; i + 8 <= group; i += 8) store8(cp + i, encode8(_mm256_div_ps(_mm256_loadu_ps(xp + i), vs), p));
#endif
    for (; i < group; ++i) cp[i] = encode_one(xp[i] / s, p);
  }
}

void encode_q8_row(const float* x, int64_t n, const float* id, int8_t* qs) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = id[b];
    int64_t i = 0;
#if FPQ_KISA == 2
    const __m512 vd = _mm512_set1_ps(d);
    for (; i < 32; i += 16) {
      const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + b * 32 + i), vd);
      // roundf: half away from zero
      const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m512 fr = _mm512_abs_ps(_mm512_sub_ps(v, t));
      const __mmask16 up = _mm512_cmp_ps_mask(fr, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
      const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1.0f)),
                                                              _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(int32_t(0x80000000u)))));
      const __m512 r = _mm512_mask_add_ps(t, up, t, one);
      _mm_storeu_si128((__m128i*)(qs + b * 32 + i), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
    }
#endif
    for (; i < 32; ++i) qs[b * 32 + i] = q8_one(x[b * 32 + i], d);
  }
}

}  // namespace fpq::cpu::detail::FPQ_ISA_NS
