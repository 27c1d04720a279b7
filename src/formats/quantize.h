#pragma once
// The quantized tensor and the reference quantize / dequantize / fake-quantize of row-major matrices. Rows
// are independent (the quantization axis is the last one); work is spread over threads by rows, with results
// identical for any thread count (stochastic rounding draws from a counter-based generator keyed by the
// element's index).
//
// Semantics, per group of `group` values along a row:
//   value = decode(code) * scale * global              (symmetric, float elements)
//   value = (code - zero) * scale * global             (asymmetric ints, the minmax rule)
// Each product is computed in float32, left to right; for FP4/FP6/FP8 elements times E8M0/E4M3 scales the
// first product is exact. Quantization divides by (scale * global) in float32 and rounds the quotient to the
// element type. A NaN or Inf input poisons its group: the stored scale is NaN and the group dequantizes to
// NaN (the OCP MX reference does this for the shared exponent; we do it for every scale type). With no
// scale type (a plain cast) values are encoded one by one, saturating.
#include <cstdint>
#include <optional>
#include <vector>

#include "formats/format.h"

namespace fpq {

struct QuantizeOptions {
  Rounding rounding = Rounding::Nearest;
  uint64_t seed = 0;
  // A fixed global scale (a calibrated activation scale, say) instead of one computed from the data.
  std::optional<float> global_scale;
  // The MSE observer's grid: candidate scales amax * (1 - i / grid) / scale_scale for i < grid * max_shrink.
  int mse_grid = 100;
  float mse_max_shrink = 0.8f;
};

struct QuantizedTensor {
  Format format;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> codes;   // Planar: rows x row_code_bytes(); ggml layouts: rows x blocks x block bytes
  std::vector<uint8_t> scales;  // Planar: rows x groups x scale bytes (row-major); empty for ggml layouts
  std::vector<uint8_t> zeros;   // Planar minmax: rows x groups uint8 zero points; else empty
  std::vector<float> global_scale;  // empty (none), 1 value (per tensor) or `rows` values (per row)

  int group() const { return format.group_for(cols); }
  int64_t groups_per_row() const { return cols / group(); }
  int64_t row_code_bytes() const;  // bytes of one row in `codes`
  int scale_bytes() const { return scale_type_bytes(format.scale); }
  float global(int64_t row) const {
    return global_scale.empty() ? 1.0f : global_scale.size() == 1 ? global_scale[0] : global_scale[size_t(row)];
  }
  const uint8_t* row_codes(int64_t r) const { return codes.data() + r * row_code_bytes(); }
  const uint8_t* row_scales(int64_t r) const { return scales.data() + r * groups_per_row() * scale_bytes(); }
  // Element code of (row, col) (planar layouts) and decoded scale of (row, group).
  uint32_t code(int64_t r, int64_t c) const;
  float scale(int64_t r, int64_t g) const;
  size_t storage_bytes() const { return codes.size() + scales.size() + zeros.size() + global_scale.size() * 4; }
};

// The global scale the format derives from data: amax over finite values / (scale_scale * scale type max);
// 1 when amax is 0. (NVFP4: amax / (6 * 448), multiplied in at decode; NVFP4 with Four-Over-Six block
// scales: amax / (6 * 256), as the Four-Over-Six paper and code define it.)
float global_scale_from_amax(const Format& f, float amax);

QuantizedTensor quantize(const Format& f, const float* x, int64_t rows, int64_t cols, const QuantizeOptions& opt = {});
QuantizedTensor quantize_bf16(const Format& f, const uint16_t* x, int64_t rows, int64_t cols,
                              const QuantizeOptions& opt = {});
// Dequantizes rows [r0, r1) into out (row-major, (r1 - r0) x cols). With with_global_scale = false the
// tensor scale is left out: decode(code) x scale, which is exact for FP4/FP6/FP8 x E8M0/E4M3 and INT x FP16.
void dequantize_rows(const QuantizedTensor& q, int64_t r0, int64_t r1, float* out, bool with_global_scale = true);
std::vector<float> dequantize(const QuantizedTensor& q);
// quantize then dequantize ("fake quantization"), into out (may alias x).
void fake_quantize(const Format& f, const float* x, int64_t rows, int64_t cols, float* out, const QuantizeOptions& opt = {});

// One group, the building block shared by every planar rule: quantizes x[0..n) with global scale g, writes
// n unpacked codes, the scale bytes and the zero point. `index0` is the element index of x[0] in its tensor
// (for stochastic rounding). Returns the group's squared error for the
// searching rules (mse, 4o6, minmax), 0 for the others.
double quantize_group(const Format& f, const float* x, int n, float g, const QuantizeOptions& opt, uint64_t index0,
                      uint8_t* codes, uint8_t* scale_bytes, uint8_t* zero);

}  // namespace fpq
