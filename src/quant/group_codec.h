#pragma once
// Per-group quantization with a scale fixed in advance: what GPTQ needs (choose a group's scale, then quantize
// its columns one at a time as error feedback changes them) and what the MSE observer searches over.
//
// Every planar format of the registry is supported (any element, E8M0/E4M3/F16/BF16/F32 scales, per-tensor or
// per-row global scales, the minmax zero point), plus llama.cpp's Q4_0 and Q8_0 blocks. Values are computed
// exactly as fpq::quantize / fpq::dequantize do, so an assembled QuantizedTensor dequantizes to the values the
// codec reported:
//   planar, symmetric:  code = encode(x / (s * g)),  value = (decode(code) * s) * g         (float32)
//   planar, minmax:     code = clamp(rint(x / (s * g)) + z),  value = ((code - z) * s) * g
//   Q4_0:  d = max / -8 (max: the value of largest magnitude), code = clamp(trunc(x / d + 8.5), 0, 15),
//          value = (code - 8) * f16(d)         (llama.cpp quantizes with the f32 d and stores f16(d))
//   Q8_0:  d = amax / 127, code = round(x / d), value = code * f16(d)
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "formats/format.h"
#include "formats/quantize.h"

namespace fpq::quant {

// How a group's scale is chosen.
enum class ScaleSearch : uint8_t {
  Format,  // the format's own rule (mx, absmax, mse, 4o6, minmax; llama.cpp's rules for Q4_0 / Q8_0)
  Mse,     // format-aware search over representable scales: the format rule's own choice, the smallest
           // representable scale that does not clip, and smaller ones down to (1 - max_shrink) x the absmax
           // scale (E8M0 / E4M3: every representable value in that range; other scale types: the targets of a
           // `grid`-step grid rounded to the type); the lowest sum |x - q(x)|^norm wins (ties: the format rule's
           // scale, then the larger scale). Symmetric planar formats only; others fall back to Format.
};

struct MseOptions {
  int grid = 100;            // candidate targets amax * (1 - i / grid) / scale_scale, rounded to the scale type
  float max_shrink = 0.8f;   // ... for i < grid * max_shrink
  float norm = 2.0f;         // error exponent (FP-Quant's MSE observer uses 2.4)
};

struct GroupParams {
  float s = 1.0f;    // decoded scale used at dequantization (without the global scale)
  float s_q = 1.0f;  // scale used at quantization (differs from s only for Q4_0 / Q8_0: the f32 d before f16)
  int zero = 0;      // minmax zero point
  uint8_t bytes[4] = {0, 0, 0, 0};  // the stored scale (planar) or f16 d (ggml)
};

class GroupCodec {
 public:
  GroupCodec(const Format& f, ScaleSearch search = ScaleSearch::Format, MseOptions mse = {});
  const Format& format() const { return f_; }
  ScaleSearch search() const { return search_; }
  int group(int64_t cols) const { return f_.group_for(cols); }
  bool ggml() const { return f_.is_ggml(); }

  // Chooses the scale of the group x[0..n) (n = the group size) under global scale g. Values must be finite.
  GroupParams fit(const float* x, int n, float g) const;
  // Quantizes one value with fixed parameters: returns the code (planar: element code; Q4_0: 0..15; Q8_0: the
  // int8 bit pattern) and writes the dequantized value.
  uint8_t quantize(float x, const GroupParams& p, float g, float* value) const;
  // Sum |x - q(x)|^norm of a group under fixed parameters (norm 2: squared error), in float64. Stops early (with
  // a partial sum >= stop_at) once the sum reaches stop_at.
  double group_error(const float* x, int n, const GroupParams& p, float g, float norm = 2.0f,
                     double stop_at = INFINITY) const;

 private:
  GroupParams fit_format(const float* x, int n, float g) const;
  Format f_;
  ScaleSearch search_;
  MseOptions mse_;
};

// The global scale a format uses for a whole matrix (per tensor: from the amax of all values; per row: one per
// row; none: empty), or the fixed value when given.
std::vector<float> global_scales_for(const Format& f, const float* x, int64_t rows, int64_t cols,
                                     std::optional<float> fixed = std::nullopt);

// Builds a QuantizedTensor from unpacked codes (rows x cols, one per value), per-group parameters
// (rows x groups) and global scales: packs codes, stores scale bytes and zero points (planar), or writes
// llama.cpp blocks (Q4_0, Q8_0).
QuantizedTensor assemble_quantized(const Format& f, int64_t rows, int64_t cols, const std::vector<uint8_t>& codes,
                                   const std::vector<GroupParams>& params, std::vector<float> global);

// Checks that a format can be produced through GroupCodec (planar, Q4_0 or Q8_0) for rows of `cols` values.
void check_codec_format(const Format& f, int64_t cols);

}  // namespace fpq::quant
