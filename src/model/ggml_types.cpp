#include "model/ggml_types.h"

#include <cmath>
#include <cstring>

#include "formats/ggml_blocks.h"
#include "util/error.h"
#include "util/half.h"

namespace fpq {

namespace {

constexpr int64_t QK_K = 256;

float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// The 4-bit non-linear grid of IQ4_NL / IQ4_XS (ggml-common.h kvalues_iq4nl).
constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
// FP4 E2M1 values doubled (ggml-common.h kvalues_mxfp4); the block scale carries the matching 1/2.
constexpr int8_t kFp4x2Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

void dequant_q5_0(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 22, y += 32) {
    const float d = load_f16(b);
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
      const uint8_t xh0 = uint8_t(((qh >> j) << 4) & 0x10);
      const uint8_t xh1 = uint8_t((qh >> (j + 12)) & 0x10);
      y[j] = float(int((qs[j] & 0x0F) | xh0) - 16) * d;
      y[j + 16] = float(int((qs[j] >> 4) | xh1) - 16) * d;
    }
  }
}

void dequant_q5_1(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 24, y += 32) {
    const float d = load_f16(b), m = load_f16(b + 2);
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
      const uint8_t xh0 = uint8_t(((qh >> j) << 4) & 0x10);
      const uint8_t xh1 = uint8_t((qh >> (j + 12)) & 0x10);
      y[j] = float((qs[j] & 0x0F) | xh0) * d + m;
      y[j + 16] = float((qs[j] >> 4) | xh1) * d + m;
    }
  }
}

// block_q2_K: scales[16] (4-bit scale | 4-bit min), qs[64], d, dmin.
void dequant_q2_k(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 84) {
    const uint8_t* scales = b;
    const uint8_t* q = b + 16;
    const float d = load_f16(b + 80), dmin = load_f16(b + 82);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = scales[is++];
          const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l + 16 * half] >> shift) & 3) - ml;
        }
        shift += 2;
      }
      q += 32;
    }
  }
}

// block_q3_K: hmask[32], qs[64], scales[12] (sixteen 6-bit scales), d.
void dequant_q3_k(const uint8_t* b, int64_t nb, float* y) {
  constexpr uint32_t kmask1 = 0x03030303u, kmask2 = 0x0f0f0f0fu;
  for (int64_t i = 0; i < nb; ++i, b += 110) {
    const uint8_t* hm = b;
    const uint8_t* q = b + 32;
    const float d_all = load_f16(b + 108);
    uint32_t aux[4];
    std::memcpy(aux, b + 96, 12);
    const uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    int8_t scales[16];
    std::memcpy(scales, aux, 16);
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * float(scales[is++] - 32);
          for (int l = 0; l < 16; ++l) {
            const int idx = l + 16 * half;
            *y++ = dl * float(int((q[idx] >> shift) & 3) - ((hm[idx] & m) ? 0 : 4));
          }
        }
        shift += 2;
        m = uint8_t(m << 1);
      }
      q += 32;
    }
  }
}

// The 6-bit (scale, min) pairs of Q4_K / Q5_K (ggml-quants.c get_scale_min_k4).
inline void scale_min_k4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// block_q4_K: d, dmin, scales[12], qs[128].
void dequant_q4_k(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 144) {
    const float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* q = b + 16;
    for (int is = 0; is < 8; is += 2, q += 32) {
      uint8_t sc, m;
      scale_min_k4(is, scales, sc, m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      scale_min_k4(is + 1, scales, sc, m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

// block_q5_K: d, dmin, scales[12], qh[32], qs[128].
void dequant_q5_k(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 176) {
    const float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, ql += 32) {
      uint8_t sc, m;
      scale_min_k4(is, scales, sc, m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      scale_min_k4(is + 1, scales, sc, m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      u1 = uint8_t(u1 << 2);
      u2 = uint8_t(u2 << 2);
    }
  }
}

// block_q6_K: ql[128], qh[64], scales[16] (int8), d.
void dequant_q6_k(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 210) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = load_f16(b + 208);
    for (int n = 0; n < QK_K; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * float(sc[is]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void dequant_iq4_nl(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 18, y += 32) {
    const float d = load_f16(b);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float(kIq4nlValues[b[2 + j] & 0xF]);
      y[j + 16] = d * float(kIq4nlValues[b[2 + j] >> 4]);
    }
  }
}

// block_iq4_xs: d, scales_h (u16), scales_l[4], qs[128].
void dequant_iq4_xs(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 136) {
    const float d = load_f16(b);
    uint16_t scales_h;
    std::memcpy(&scales_h, b + 2, 2);
    const uint8_t* scales_l = b + 4;
    const uint8_t* qs = b + 8;
    for (int ib = 0; ib < 8; ++ib, qs += 16, y += 32) {
      const int ls = ((scales_l[ib / 2] >> 4 * (ib % 2)) & 0xF) | (((scales_h >> 2 * ib) & 3) << 4);
      const float dl = d * float(ls - 32);
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * float(kIq4nlValues[qs[j] & 0xF]);
        y[j + 16] = dl * float(kIq4nlValues[qs[j] >> 4]);
      }
    }
  }
}

// ggml_e8m0_to_fp32_half: 2^(e - 128), the E8M0 scale halved to match the doubled FP4 grid.
float e8m0_half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (uint32_t(e - 1) << 23);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void dequant_mxfp4(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 17, y += 32) {
    const float d = e8m0_half(b[0]);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(kFp4x2Values[b[1 + j] & 0xF]) * d;
      y[j + 16] = float(kFp4x2Values[b[1 + j] >> 4]) * d;
    }
  }
}

// Unsigned E4M3 block scale of ggml's NVFP4, halved (the FP4 grid is doubled); 0 and 0x7F decode to 0.
float ue4m3_half(uint8_t x) {
  if (x == 0 || x == 0x7F) return 0.0f;
  const int exp = (x >> 3) & 0xF;
  const float man = float(x & 7);
  const float v = exp == 0 ? man * 0x1p-9f : std::ldexp(1.0f + man / 8.0f, exp - 7);
  return v * 0.5f;
}

// block_nvfp4: d[4] (UE4M3, one per 16 elements), qs[32] (8 bytes per 16: low nibbles first, then high).
void dequant_nvfp4(const uint8_t* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, b += 36) {
    for (int s = 0; s < 4; ++s, y += 16) {
      const float d = ue4m3_half(b[s]);
      const uint8_t* qs = b + 4 + 8 * s;
      for (int j = 0; j < 8; ++j) {
        y[j] = d * float(kFp4x2Values[qs[j] & 0xF]);
        y[j + 8] = d * float(kFp4x2Values[qs[j] >> 4]);
      }
    }
  }
}

template <typename T>
void convert_plain(const uint8_t* src, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * int64_t(sizeof(T)), sizeof(T));
    y[i] = float(v);
  }
}

}  // namespace

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id) {
  switch (GgmlType(id)) {
    case GgmlType::F32: return GgmlTypeInfo{"F32", 1, 4, true};
    case GgmlType::F16: return GgmlTypeInfo{"F16", 1, 2, true};
    case GgmlType::Q4_0: return GgmlTypeInfo{"Q4_0", 32, 18, true};
    case GgmlType::Q4_1: return GgmlTypeInfo{"Q4_1", 32, 20, true};
    case GgmlType::Q5_0: return GgmlTypeInfo{"Q5_0", 32, 22, true};
    case GgmlType::Q5_1: return GgmlTypeInfo{"Q5_1", 32, 24, true};
    case GgmlType::Q8_0: return GgmlTypeInfo{"Q8_0", 32, 34, true};
    case GgmlType::Q8_1: return GgmlTypeInfo{"Q8_1", 32, 36, false};
    case GgmlType::Q2_K: return GgmlTypeInfo{"Q2_K", 256, 84, true};
    case GgmlType::Q3_K: return GgmlTypeInfo{"Q3_K", 256, 110, true};
    case GgmlType::Q4_K: return GgmlTypeInfo{"Q4_K", 256, 144, true};
    case GgmlType::Q5_K: return GgmlTypeInfo{"Q5_K", 256, 176, true};
    case GgmlType::Q6_K: return GgmlTypeInfo{"Q6_K", 256, 210, true};
    case GgmlType::Q8_K: return GgmlTypeInfo{"Q8_K", 256, 292, false};
    case GgmlType::IQ2_XXS: return GgmlTypeInfo{"IQ2_XXS", 256, 66, false};
    case GgmlType::IQ2_XS: return GgmlTypeInfo{"IQ2_XS", 256, 74, false};
    case GgmlType::IQ3_XXS: return GgmlTypeInfo{"IQ3_XXS", 256, 98, false};
    case GgmlType::IQ1_S: return GgmlTypeInfo{"IQ1_S", 256, 50, false};
    case GgmlType::IQ4_NL: return GgmlTypeInfo{"IQ4_NL", 32, 18, true};
    case GgmlType::IQ3_S: return GgmlTypeInfo{"IQ3_S", 256, 110, false};
    case GgmlType::IQ2_S: return GgmlTypeInfo{"IQ2_S", 256, 82, false};
    case GgmlType::IQ4_XS: return GgmlTypeInfo{"IQ4_XS", 256, 136, true};
    case GgmlType::I8: return GgmlTypeInfo{"I8", 1, 1, true};
    case GgmlType::I16: return GgmlTypeInfo{"I16", 1, 2, true};
    case GgmlType::I32: return GgmlTypeInfo{"I32", 1, 4, true};
    case GgmlType::I64: return GgmlTypeInfo{"I64", 1, 8, false};
    case GgmlType::F64: return GgmlTypeInfo{"F64", 1, 8, true};
    case GgmlType::IQ1_M: return GgmlTypeInfo{"IQ1_M", 256, 56, false};
    case GgmlType::BF16: return GgmlTypeInfo{"BF16", 1, 2, true};
    case GgmlType::TQ1_0: return GgmlTypeInfo{"TQ1_0", 256, 54, false};
    case GgmlType::TQ2_0: return GgmlTypeInfo{"TQ2_0", 256, 66, false};
    case GgmlType::MXFP4: return GgmlTypeInfo{"MXFP4", 32, 17, true};
    case GgmlType::NVFP4: return GgmlTypeInfo{"NVFP4", 64, 36, true};
  }
  return std::nullopt;
}

std::string ggml_type_name(GgmlType type) {
  const auto info = ggml_type_info(uint32_t(type));
  return info ? info->name : "type#" + std::to_string(uint32_t(type));
}

void ggml_dequantize(GgmlType type, const uint8_t* src, int64_t n, float* dst) {
  const auto info = ggml_type_info(uint32_t(type));
  if (!info || !info->can_dequantize) fail("fpq cannot dequantize ggml type {} yet", ggml_type_name(type));
  if (n % info->block_size != 0)
    fail("internal: {} elements is not a whole number of {} blocks", n, info->name);
  const int64_t nb = n / info->block_size;
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load_f16(src + 2 * i);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case GgmlType::F64: convert_plain<double>(src, n, dst); return;
    case GgmlType::I8: convert_plain<int8_t>(src, n, dst); return;
    case GgmlType::I16: convert_plain<int16_t>(src, n, dst); return;
    case GgmlType::I32: convert_plain<int32_t>(src, n, dst); return;
    case GgmlType::Q4_0: dequantize_row_q4_0(src, n, dst); return;
    case GgmlType::Q4_1: dequantize_row_q4_1(src, n, dst); return;
    case GgmlType::Q8_0: dequantize_row_q8_0(src, n, dst); return;
    case GgmlType::Q5_0: dequant_q5_0(src, nb, dst); return;
    case GgmlType::Q5_1: dequant_q5_1(src, nb, dst); return;
    case GgmlType::Q2_K: dequant_q2_k(src, nb, dst); return;
    case GgmlType::Q3_K: dequant_q3_k(src, nb, dst); return;
    case GgmlType::Q4_K: dequant_q4_k(src, nb, dst); return;
    case GgmlType::Q5_K: dequant_q5_k(src, nb, dst); return;
    case GgmlType::Q6_K: dequant_q6_k(src, nb, dst); return;
    case GgmlType::IQ4_NL: dequant_iq4_nl(src, nb, dst); return;
    case GgmlType::IQ4_XS: dequant_iq4_xs(src, nb, dst); return;
    case GgmlType::MXFP4: dequant_mxfp4(src, nb, dst); return;
    case GgmlType::NVFP4: dequant_nvfp4(src, nb, dst); return;
    default: break;
  }
  fail("fpq cannot dequantize ggml type {} yet", info->name);
}

}  // namespace fpq
