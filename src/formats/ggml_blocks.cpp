#include "formats/ggml_blocks.h"

#include <cmath>
#include <cstring>

#include "util/half.h"

namespace fpq {
namespace {

inline void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}
inline float get_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
inline bool all_finite(const float* x) {
  for (int j = 0; j < kGgmlBlock; ++j)
    if (!std::isfinite(x[j])) return false;
  return true;
}

}  // namespace

void quantize_row_q4_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kGgmlBlock; ++b, x += kGgmlBlock, out += kQ4_0Bytes) {
    if (!all_finite(x)) {
      put_f16(out, NAN);
      std::memset(out + 2, 0x88, 16);
      continue;
    }
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kGgmlBlock; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    for (int j = 0; j < 16; ++j) {
      const float x0 = x[j] * id, x1 = x[16 + j] * id;
      const int q0 = std::min(15, int(int8_t(x0 + 8.5f)));
      const int q1 = std::min(15, int(int8_t(x1 + 8.5f)));
      out[2 + j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q4_1(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kGgmlBlock; ++b, x += kGgmlBlock, out += kQ4_1Bytes) {
    if (!all_finite(x)) {
      put_f16(out, NAN);
      put_f16(out + 2, 0.0f);
      std::memset(out + 4, 0, 16);
      continue;
    }
    float mn = x[0], mx = x[0];
    for (int j = 1; j < kGgmlBlock; ++j) {
      mn = std::min(mn, x[j]);
      mx = std::max(mx, x[j]);
    }
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    put_f16(out + 2, mn);
    for (int j = 0; j < 16; ++j) {
      const float x0 = (x[j] - mn) * id, x1 = (x[16 + j] - mn) * id;
      const int q0 = std::min(15, int(int8_t(x0 + 0.5f)));
      const int q1 = std::min(15, int(int8_t(x1 + 0.5f)));
      out[4 + j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

namespace {
// Shared by Q8_0 and Q8_1: d = amax / 127, q = roundf(x / d) (half away from zero). Returns sum(q).
int quantize_block_q8(const float* x, uint8_t* d_out, int8_t* qs, float* d_value) {
  if (!all_finite(x)) {
    put_f16(d_out, NAN);
    std::memset(qs, 0, kGgmlBlock);
    *d_value = NAN;
    return 0;
  }
  float amax = 0.0f;
  for (int j = 0; j < kGgmlBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(d_out, d);
  int sum = 0;
  for (int j = 0; j < kGgmlBlock; ++j) {
    qs[j] = int8_t(std::roundf(x[j] * id));
    sum += qs[j];
  }
  *d_value = d;
  return sum;
}
}  // namespace

void quantize_row_q8_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kGgmlBlock; ++b, x += kGgmlBlock, out += kQ8_0Bytes) {
    float d;
    quantize_block_q8(x, out, reinterpret_cast<int8_t*>(out + 2), &d);
  }
}

void quantize_row_q8_1(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kGgmlBlock; ++b, x += kGgmlBlock, out += kQ8_1Bytes) {
    float d;
    const int sum = quantize_block_q8(x, out, reinterpret_cast<int8_t*>(out + 4), &d);
    // llama.cpp: s = d * sum(qs), with d the float32 value before its f16 rounding.
    put_f16(out + 2, float(sum) * d);
  }
}

void dequantize_row_q4_0(const uint8_t* b, int64_t n, float* y) {
  for (int64_t i = 0; i < n / kGgmlBlock; ++i, b += kQ4_0Bytes, y += kGgmlBlock) {
    const float d = get_f16(b);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(int(b[2 + j] & 0xF) - 8) * d;
      y[j + 16] = float(int(b[2 + j] >> 4) - 8) * d;
    }
  }
}

void dequantize_row_q4_1(const uint8_t* b, int64_t n, float* y) {
  for (int64_t i = 0; i < n / kGgmlBlock; ++i, b += kQ4_1Bytes, y += kGgmlBlock) {
    const float d = get_f16(b), m = get_f16(b + 2);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(b[4 + j] & 0xF) * d + m;
      y[j + 16] = float(b[4 + j] >> 4) * d + m;
    }
  }
}

void dequantize_row_q8_0(const uint8_t* b, int64_t n, float* y) {
  for (int64_t i = 0; i < n / kGgmlBlock; ++i, b += kQ8_0Bytes, y += kGgmlBlock) {
    const float d = get_f16(b);
    for (int j = 0; j < kGgmlBlock; ++j) y[j] = float(int8_t(b[2 + j])) * d;
  }
}

void dequantize_row_q8_1(const uint8_t* b, int64_t n, float* y) {
  for (int64_t i = 0; i < n / kGgmlBlock; ++i, b += kQ8_1Bytes, y += kGgmlBlock) {
    const float d = get_f16(b);
    for (int j = 0; j < kGgmlBlock; ++j) y[j] = float(int8_t(b[4 + j])) * d;
  }
}

void mxfp4_planar_to_ggml(const uint8_t* codes, const uint8_t* scales, int64_t n, uint8_t* blocks) {
  for (int64_t b = 0; b < n / kGgmlBlock; ++b) {
    uint8_t* o = blocks + b * kMxfp4GgmlBytes;
    const uint8_t* c = codes + b * 16;
    o[0] = scales[b];
    for (int j = 0; j < 16; ++j) {
      const int lo = (c[j / 2] >> ((j & 1) * 4)) & 0xF;           // element j
      const int hi = (c[(j + 16) / 2] >> (((j + 16) & 1) * 4)) & 0xF;  // element j + 16
      o[1 + j] = uint8_t(lo | (hi << 4));
    }
  }
}

void mxfp4_ggml_to_planar(const uint8_t* blocks, int64_t n, uint8_t* codes, uint8_t* scales) {
  for (int64_t b = 0; b < n / kGgmlBlock; ++b) {
    const uint8_t* i = blocks + b * kMxfp4GgmlBytes;
    uint8_t* c = codes + b * 16;
    scales[b] = i[0];
    uint8_t e[32];
    for (int j = 0; j < 16; ++j) {
      e[j] = i[1 + j] & 0xF;
      e[j + 16] = i[1 + j] >> 4;
    }
    for (int j = 0; j < 16; ++j) c[j] = uint8_t(e[2 * j] | (e[2 * j + 1] << 4));
  }
}

}  // namespace fpq
