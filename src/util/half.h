#pragma once
// IEEE binary16 and bfloat16 conversions, round-to-nearest-even, exact for every input (NaN stays NaN).
#include <bit>
#include <cstdint>
#include <cstring>

namespace fpq {

inline uint32_t f32_bits(float x) { return std::bit_cast<uint32_t>(x); }
inline float f32_from_bits(uint32_t u) { return std::bit_cast<float>(u); }

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

inline uint16_t f32_to_bf16(float x) {
  uint32_t u = f32_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x0040u);  // quiet NaN, sign kept
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t man = h & 0x3FFu;
  if (exp == 0x1F) return f32_from_bits(sign | 0x7F800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    // subnormal: man * 2^-24, exact in float32
    const float v = float(man) * 0x1p-24f;
    return sign ? -v : v;
  }
  return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

inline uint16_t f32_to_f16(float x) {
  const uint32_t u = f32_bits(x);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return uint16_t(sign | 0x7E00u | ((a >> 13) & 0x3FFu));  // NaN
  if (a >= 0x477FF000u) return uint16_t(sign | 0x7C00u);  // rounds to >= 65536: inf
  if (a >= 0x38800000u) {  // normal half
    uint32_t t = a + 0xFFFu + ((a >> 13) & 1u);
    t -= (112u << 23);
    return uint16_t(sign | (t >> 13));
  }
  // subnormal half (or zero): value / 2^-24 rounded to an integer, ties to even
  const float v = f32_from_bits(a) * 0x1p24f;
  uint32_t q = uint32_t(v);
  const float rem = v - float(q);
  if (rem > 0.5f || (rem == 0.5f && (q & 1u))) ++q;
  return uint16_t(sign | q);
}

}  // namespace fpq
