#include "quant/group_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/ggml_blocks.h"
#include "formats/packing.h"
#include "util/error.h"
#include "util/half.h"

namespace fpq::quant {
namespace {

bool symmetric_planar(const Format& f) {
  return !f.is_ggml() && f.scale != ScaleType::None && !f.asymmetric();
}

// The smallest representable scale >= v (saturating at the type's largest finite value), with its bytes.
float representable_ceil(ScaleType t, float v, uint8_t* bytes) {
  encode_scale(t, v, bytes);
  float r = decode_scale(t, bytes);
  if (r >= v) return r;
  switch (t) {
    case ScaleType::E8M0:
      if (bytes[0] < 254) ++bytes[0];
      break;
    case ScaleType::E4M3:
      if (bytes[0] < 0x7E) ++bytes[0];
      break;
    case ScaleType::F16:
    case ScaleType::BF16: {
      uint16_t h;
      std::memcpy(&h, bytes, 2);
      const uint16_t top = t == ScaleType::F16 ? 0x7BFF : 0x7F7F;
      if (h < top) ++h;
      std::memcpy(bytes, &h, 2);
      break;
    }
    default: break;
  }
  return decode_scale(t, bytes);
}

}  // namespace

void check_codec_format(const Format& f, int64_t cols) {
  check_format_cols(f, cols);
  if (f.is_ggml() && f.layout != Layout::GgmlQ4_0 && f.layout != Layout::GgmlQ8_0 && f.layout != Layout::GgmlQ8_1)
    fail("format '{}': the quantization algorithms support llama.cpp's q4_0, q8_0 and q8_1 blocks, not this one", f.name);
}

GroupCodec::GroupCodec(const Format& f, ScaleSearch search, MseOptions mse) : f_(f), search_(search), mse_(mse) {
  if (mse_.grid < 1) fail("mse search: the grid must have at least one step (got {})", mse_.grid);
  if (!(mse_.max_shrink >= 0.0f && mse_.max_shrink < 1.0f))
    fail("mse search: max shrink must be in [0, 1) (got {})", mse_.max_shrink);
  if (!(mse_.norm > 0.0f)) fail("mse search: the error norm must be positive (got {})", mse_.norm);
  if (f.is_ggml() && f.layout != Layout::GgmlQ4_0 && f.layout != Layout::GgmlQ8_0 && f.layout != Layout::GgmlQ8_1)
    fail("format '{}': the quantization algorithms support llama.cpp's q4_0, q8_0 and q8_1 blocks, not this one", f.name);
}

GroupParams GroupCodec::fit_format(const float* x, int n, float g) const {
  GroupParams p;
  if (f_.layout == Layout::GgmlQ4_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8.0f;
    const uint16_t h = f32_to_f16(d);
    std::memcpy(p.bytes, &h, 2);
    p.s_q = d;
    p.s = f16_to_f32(h);
    return p;
  }
  if (f_.layout == Layout::GgmlQ8_0 || f_.layout == Layout::GgmlQ8_1) {
    float amax = 0.0f;
    for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const uint16_t h = f32_to_f16(d);
    std::memcpy(p.bytes, &h, 2);
    p.s_q = d;
    p.s = f16_to_f32(h);
    return p;
  }
  if (f_.scale == ScaleType::None) return p;
  uint8_t small[256];
  std::vector<uint8_t> big(n > 256 ? size_t(n) : 0);
  uint8_t zero = 0;
  static const QuantizeOptions opt;
  quantize_group(f_, x, n, g, opt, 0, n > 256 ? big.data() : small, p.bytes, f_.asymmetric() ? &zero : nullptr);
  p.s = p.s_q = decode_scale(f_.scale, p.bytes);
  p.zero = zero;
  return p;
}

GroupParams GroupCodec::fit(const float* x, int n, float g) const {
  GroupParams best = fit_format(x, n, g);
  if (search_ != ScaleSearch::Mse || !symmetric_planar(f_)) return best;
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  if (!(amax > 0.0f)) return best;
  const float ss = f_.effective_scale_scale();
  double best_err = group_error(x, n, best, g, mse_.norm);
  float tried[512];
  int ntried = 0;
  tried[ntried++] = best.s;
  auto consider = [&](const GroupParams& c) {
    if (std::find(tried, tried + ntried, c.s) != tried + ntried) return;
    if (ntried < 512) tried[ntried++] = c.s;
    const double e = group_error(x, n, c, g, mse_.norm, best_err);
    if (e < best_err) {
      best_err = e;
      best = c;
    }
  };
  GroupParams c;
  c.s = c.s_q = representable_ceil(f_.scale, amax / ss / g, c.bytes);
  consider(c);
  const int steps = std::max(1, int(float(mse_.grid) * mse_.max_shrink));
  if (f_.scale == ScaleType::E4M3 || f_.scale == ScaleType::E8M0) {
    // One-byte scales with monotonic codes: every representable scale from the no-clip one down to the first
    // below the grid's smallest target (a superset of the rounded grid targets).
    const float lo = amax * (1.0f - float(steps - 1) / float(mse_.grid)) / ss / g;
    for (int code = int(c.bytes[0]) - 1; code >= 1; --code) {
      GroupParams t;
      t.bytes[0] = uint8_t(code);
      t.s = t.s_q = decode_scale(f_.scale, t.bytes);
      consider(t);
      if (t.s < lo) break;
    }
    return best;
  }
  for (int i = 0; i < steps; ++i) {
    GroupParams t;
    encode_scale(f_.scale, amax * (1.0f - float(i) / float(mse_.grid)) / ss / g, t.bytes);
    t.s = t.s_q = decode_scale(f_.scale, t.bytes);
    consider(t);
  }
  return best;
}

uint8_t GroupCodec::quantize(float x, const GroupParams& p, float g, float* value) const {
  const ElementType& e = *f_.element;
  switch (f_.layout) {
    case Layout::GgmlQ4_0: {
      const float id = p.s_q != 0.0f ? 1.0f / p.s_q : 0.0f;
      const float v = x * id + 8.5f;
      const int q = v >= 15.0f ? 15 : (v <= 0.0f ? 0 : int(v));
      *value = float(q - 8) * p.s;
      return uint8_t(q);
    }
    case Layout::GgmlQ8_0:
    case Layout::GgmlQ8_1: {
      const float id = p.s_q != 0.0f ? 1.0f / p.s_q : 0.0f;
      const float r = std::clamp(std::roundf(x * id), -128.0f, 127.0f);
      const int8_t q = int8_t(r);
      *value = float(q) * p.s;
      return uint8_t(q);
    }
    case Layout::GgmlQ4_1: fail("internal: q4_0/q8_0 only");
    case Layout::Planar: break;
  }
  if (f_.scale == ScaleType::None) {
    const uint32_t c = e.encode(x);
    *value = e.decode(c);
    return uint8_t(c);
  }
  const float s_eff = p.s * g;
  if (f_.asymmetric()) {
    const float v = s_eff > 0 ? x / s_eff : 0.0f;
    const float r = std::nearbyint(v);
    const int q = std::clamp(int(std::clamp(r, -1024.0f, 1024.0f)) + p.zero, e.qmin, e.qmax);
    *value = (float(q - p.zero) * p.s) * g;
    return uint8_t(q);
  }
  const uint32_t c = (!(s_eff > 0) || !std::isfinite(s_eff)) ? e.encode(0.0f) : e.encode(x / s_eff);
  *value = (e.decode(c) * p.s) * g;
  return uint8_t(c);
}

double GroupCodec::group_error(const float* x, int n, const GroupParams& p, float g, float norm, double stop_at) const {
  double err = 0.0;
  const bool squared = norm == 2.0f;
  for (int j = 0; j < n; ++j) {
    float v;
    quantize(x[j], p, g, &v);
    const double d = std::fabs(double(v) - double(x[j]));
    err += squared ? d * d : (d > 0 ? double(std::pow(float(d), norm)) : 0.0);
    if (err >= stop_at) return err;  // the terms are >= 0: already no better than stop_at
  }
  return err;
}

std::vector<float> global_scales_for(const Format& f, const float* x, int64_t rows, int64_t cols,
                                     std::optional<float> fixed) {
  if (fixed && !(*fixed > 0 && std::isfinite(*fixed))) fail("the global scale must be positive and finite (got {})", *fixed);
  if (f.global == GlobalScale::None || f.is_ggml()) return {};
  auto row_amax = [&](int64_t r) {
    float a = 0.0f;
    for (int64_t c = 0; c < cols; ++c)
      if (std::isfinite(x[r * cols + c])) a = std::max(a, std::fabs(x[r * cols + c]));
    return a;
  };
  if (f.global == GlobalScale::PerTensor) {
    if (fixed) return {*fixed};
    float amax = 0.0f;
    for (int64_t r = 0; r < rows; ++r) amax = std::max(amax, row_amax(r));
    return {global_scale_from_amax(f, amax)};
  }
  std::vector<float> g(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) g[size_t(r)] = fixed ? *fixed : global_scale_from_amax(f, row_amax(r));
  return g;
}

QuantizedTensor assemble_quantized(const Format& f, int64_t rows, int64_t cols, const std::vector<uint8_t>& codes,
                                   const std::vector<GroupParams>& params, std::vector<float> global) {
  QuantizedTensor q;
  q.format = f;
  q.rows = rows;
  q.cols = cols;
  const int64_t rcb = q.row_code_bytes();
  const int gsz = f.group_for(cols);
  const int64_t groups = cols / gsz;
  if (int64_t(codes.size()) != rows * cols || int64_t(params.size()) != rows * groups)
    fail("internal: assemble_quantized got {} codes / {} groups for {} x {}", codes.size(), params.size(), rows, cols);
  q.codes.assign(size_t(rows * rcb), 0);
  if (f.is_ggml()) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < groups; ++b) {
        const GroupParams& p = params[size_t(r * groups + b)];
        const uint8_t* c = codes.data() + r * cols + b * kGgmlBlock;
        if (f.layout == Layout::GgmlQ4_0) {
          uint8_t* o = q.codes.data() + r * rcb + b * kQ4_0Bytes;
          std::memcpy(o, p.bytes, 2);
          for (int j = 0; j < 16; ++j) o[2 + j] = uint8_t((c[j] & 0xF) | (c[j + 16] << 4));
        } else if (f.layout == Layout::GgmlQ8_0) {
          uint8_t* o = q.codes.data() + r * rcb + b * kQ8_0Bytes;
          std::memcpy(o, p.bytes, 2);
          std::memcpy(o + 2, c, kGgmlBlock);
        } else {  // Q8_1: s = d * sum(qs) with the f32 d, stored f16
          uint8_t* o = q.codes.data() + r * rcb + b * kQ8_1Bytes;
          std::memcpy(o, p.bytes, 2);
          int sum = 0;
          for (int j = 0; j < kGgmlBlock; ++j) sum += int8_t(c[j]);
          const uint16_t h = f32_to_f16(float(sum) * p.s_q);
          std::memcpy(o + 2, &h, 2);
          std::memcpy(o + 4, c, kGgmlBlock);
        }
      }
    return q;
  }
  for (int64_t r = 0; r < rows; ++r) pack_codes(codes.data() + r * cols, cols, f.element->bits, q.codes.data() + r * rcb);
  const int sb = scale_type_bytes(f.scale);
  q.scales.assign(size_t(rows * groups * sb), 0);
  for (int64_t i = 0; i < rows * groups; ++i) std::memcpy(q.scales.data() + i * sb, params[size_t(i)].bytes, size_t(sb));
  if (f.rule == ScaleRule::MinMax) {
    q.zeros.resize(size_t(rows * groups));
    for (int64_t i = 0; i < rows * groups; ++i) q.zeros[size_t(i)] = uint8_t(params[size_t(i)].zero);
  }
  q.global_scale = std::move(global);
  return q;
}

}  // namespace fpq::quant
