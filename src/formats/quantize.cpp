#include "formats/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/ggml_blocks.h"
#include "formats/packing.h"
#include "util/error.h"
#include "util/half.h"
#include "util/parallel.h"
#include "util/rng.h"

namespace fpq {
namespace {

struct Stats {
  float amax = 0, mn = 0, mx = 0;
  bool finite = true;
};

Stats group_stats(const float* x, int n) {
  Stats s;
  s.mn = INFINITY;
  s.mx = -INFINITY;
  for (int i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) {
      s.finite = false;
      continue;
    }
    s.amax = std::max(s.amax, std::fabs(v));
    s.mn = std::min(s.mn, v);
    s.mx = std::max(s.mx, v);
  }
  return s;
}

int ggml_block_bytes(Layout l) {
  switch (l) {
    case Layout::GgmlQ4_0: return kQ4_0Bytes;
    case Layout::GgmlQ4_1: return kQ4_1Bytes;
    case Layout::GgmlQ8_0: return kQ8_0Bytes;
    case Layout::GgmlQ8_1: return kQ8_1Bytes;
    case Layout::Planar: return 0;
  }
  return 0;
}

// Encodes x[0..n) against the decode scale s (and global g); returns the squared error of the result when
// `want_error` (the scale searches need it), else 0.
double encode_symmetric(const ElementType& e, const float* x, int n, float s, float g, const QuantizeOptions& opt,
                        uint64_t index0, uint8_t* codes, bool want_error = true) {
  const float s_eff = s * g;
  double sse = 0;
  if (!(s_eff > 0) || !std::isfinite(s_eff)) {
    const uint8_t zero = uint8_t(e.encode(0.0f));
    for (int i = 0; i < n; ++i) {
      codes[i] = zero;
      sse += double(x[i]) * x[i];
    }
    return sse;
  }
  if (opt.rounding == Rounding::Nearest) {
    for (int i = 0; i < n; ++i) codes[i] = uint8_t(e.encode(x[i] / s_eff));
  } else {
    for (int i = 0; i < n; ++i) codes[i] = uint8_t(e.encode_stochastic(x[i] / s_eff, random_u32(opt.seed, index0 + i)));
  }
  if (!want_error) return 0.0;
  for (int i = 0; i < n; ++i) {
    const float v = (e.decode(codes[i]) * s) * g;
    const double d = double(v) - double(x[i]);
    sse += d * d;
  }
  return sse;
}

double encode_asymmetric(const ElementType& e, const float* x, int n, float s, float g, int zero,
                         const QuantizeOptions& opt, uint64_t index0, uint8_t* codes) {
  const float s_eff = s * g;
  double sse = 0;
  for (int i = 0; i < n; ++i) {
    const float v = s_eff > 0 ? x[i] / s_eff : 0.0f;
    float r;
    if (opt.rounding == Rounding::Nearest) {
      r = std::nearbyint(v);
    } else {
      const float f = std::floor(v);
      r = f + ((float(random_u32(opt.seed, index0 + i) >> 8) * 0x1p-24f) < (v - f) ? 1.0f : 0.0f);
    }
    const int q = std::clamp(int(std::clamp(r, -1024.0f, 1024.0f)) + zero, e.qmin, e.qmax);
    codes[i] = uint8_t(q);
    const float dq = (float(q - zero) * s) * g;
    const double d = double(dq) - double(x[i]);
    sse += d * d;
  }
  return sse;
}

}  // namespace

int64_t QuantizedTensor::row_code_bytes() const {
  if (format.is_ggml()) return (cols / kGgmlBlock) * ggml_block_bytes(format.layout);
  return packed_bytes(cols, format.element->bits);
}

uint32_t QuantizedTensor::code(int64_t r, int64_t c) const {
  if (format.is_ggml()) fail("code(): not available for llama.cpp block layouts");
  uint8_t out;
  unpack_codes(row_codes(r), c, 1, format.element->bits, &out);
  return out;
}

float QuantizedTensor::scale(int64_t r, int64_t g) const {
  if (format.is_ggml()) fail("scale(): not available for llama.cpp block layouts");
  if (format.scale == ScaleType::None) return 1.0f;
  return decode_scale(format.scale, row_scales(r) + g * scale_bytes());
}

float global_scale_from_amax(const Format& f, float amax) {
  if (!(amax > 0) || !std::isfinite(amax)) return 1.0f;
  // Four-Over-Six (Cook et al., mit-han-lab/fouroversix): with E4M3 block scales the global scale is
  // amax / (6 * 256), not amax / (6 * 448), so that the "map to 4" candidate (1.5x the "map to 6" scale,
  // at most 384) never saturates E4M3.
  const float smax = f.rule == ScaleRule::FourOverSix && f.scale == ScaleType::E4M3 ? 256.0f : scale_type_max(f.scale);
  return amax / (f.effective_scale_scale() * smax);
}

double quantize_group(const Format& f, const float* x, int n, float g, const QuantizeOptions& opt, uint64_t index0,
                      uint8_t* codes, uint8_t* scale_bytes, uint8_t* zero) {
  const ElementType& e = *f.element;
  if (f.scale == ScaleType::None) {
    for (int i = 0; i < n; ++i)
      codes[i] = uint8_t(e.encode(x[i], opt.rounding, random_u32(opt.seed, index0 + i)));
    return 0.0;
  }
  const Stats st = group_stats(x, n);
  if (zero) *zero = 0;
  if (!st.finite) {
    encode_scale_nan(f.scale, scale_bytes);
    std::memset(codes, int(e.kind == NumberKind::Int ? 0 : e.encode(0.0f)), size_t(n));
    return NAN;
  }
  const float ss = f.effective_scale_scale();
  switch (f.rule) {
    case ScaleRule::Mx: {
      int code = 0;
      if (st.amax > 0) code = std::clamp(floor_log2(st.amax) - e.emax, -127, 127) + 127;
      scale_bytes[0] = uint8_t(code);
      return encode_symmetric(e, x, n, e8m0_decode(uint8_t(code)), 1.0f, opt, index0, codes, false);
    }
    case ScaleRule::Absmax: {
      encode_scale(f.scale, st.amax / ss / g, scale_bytes);
      return encode_symmetric(e, x, n, decode_scale(f.scale, scale_bytes), g, opt, index0, codes, false);
    }
    case ScaleRule::Mse:
    case ScaleRule::FourOverSix: {
      // Try each candidate scale; keep the first with the lowest squared error.
      std::vector<float> targets;
      if (f.rule == ScaleRule::FourOverSix) {
        targets = {st.amax / ss / g, st.amax / (ss * (4.0f / 6.0f)) / g};
      } else {
        const int steps = std::max(1, int(float(opt.mse_grid) * opt.mse_max_shrink));
        for (int i = 0; i < steps; ++i) targets.push_back(st.amax * (1.0f - float(i) / float(opt.mse_grid)) / ss / g);
      }
      uint8_t best_scale[4] = {0, 0, 0, 0}, cand[4] = {0, 0, 0, 0};
      std::vector<uint8_t> tmp(static_cast<size_t>(n));
      double best = INFINITY;
      float last_s = -1;
      for (float t : targets) {
        encode_scale(f.scale, t, cand);
        const float s = decode_scale(f.scale, cand);
        if (s == last_s) continue;  // rounding to the scale type repeats candidates
        last_s = s;
        const double err = encode_symmetric(e, x, n, s, g, opt, index0, tmp.data());
        if (err < best) {
          best = err;
          std::memcpy(best_scale, cand, 4);
          std::memcpy(codes, tmp.data(), size_t(n));
        }
      }
      std::memcpy(scale_bytes, best_scale, size_t(scale_type_bytes(f.scale)));
      return best;
    }
    case ScaleRule::MinMax: {
      const float mn = std::min(st.mn, 0.0f), mx = std::max(st.mx, 0.0f);
      float s;
      int z = 0;
      if (mx > mn) {
        encode_scale(f.scale, (mx - mn) / float(e.qmax) / g, scale_bytes);
        s = decode_scale(f.scale, scale_bytes);
        const float s_eff = s * g;
        z = s_eff > 0 ? std::clamp(int(std::nearbyint(-mn / s_eff)), 0, e.qmax) : 0;
      } else {
        encode_scale(f.scale, 1.0f, scale_bytes);
        s = decode_scale(f.scale, scale_bytes);
      }
      if (zero) *zero = uint8_t(z);
      return encode_asymmetric(e, x, n, s, g, z, opt, index0, codes);
    }
    default: fail("internal: scale rule {} is not a planar rule", scale_rule_name(f.rule));
  }
}

namespace {

QuantizedTensor quantize_impl(const Format& f, const float* x, int64_t rows, int64_t cols, const QuantizeOptions& opt) {
  check_format_cols(f, cols);
  if (rows < 0) fail("negative row count");
  QuantizedTensor q;
  q.format = f;
  q.rows = rows;
  q.cols = cols;
  const int64_t rcb = q.row_code_bytes();
  q.codes.assign(size_t(rows * rcb), 0);
  const int64_t grain = std::max<int64_t>(1, 32768 / cols);

  if (f.is_ggml()) {
    if (opt.rounding != Rounding::Nearest) fail("format '{}' has llama.cpp's fixed rounding (no stochastic rounding)", f.name);
    parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * cols;
        uint8_t* o = q.codes.data() + r * rcb;
        switch (f.layout) {
          case Layout::GgmlQ4_0: quantize_row_q4_0(xr, cols, o); break;
          case Layout::GgmlQ4_1: quantize_row_q4_1(xr, cols, o); break;
          case Layout::GgmlQ8_0: quantize_row_q8_0(xr, cols, o); break;
          case Layout::GgmlQ8_1: quantize_row_q8_1(xr, cols, o); break;
          case Layout::Planar: break;
        }
      }
    });
    return q;
  }

  // Global scale: fixed, per tensor or per row, from the amax of finite values.
  if (f.global == GlobalScale::PerTensor) {
    if (opt.global_scale) {
      q.global_scale = {*opt.global_scale};
    } else {
      std::vector<float> row_amax(size_t(rows), 0.0f);
      parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) row_amax[size_t(r)] = group_stats(x + r * cols, int(cols)).amax;
      });
      float amax = 0;
      for (float a : row_amax) amax = std::max(amax, a);
      q.global_scale = {global_scale_from_amax(f, amax)};
    }
  } else if (f.global == GlobalScale::PerRow) {
    q.global_scale.assign(size_t(rows), 1.0f);
  }
  if (opt.global_scale && !(*opt.global_scale > 0 && std::isfinite(*opt.global_scale)))
    fail("the global scale must be positive and finite (got {})", *opt.global_scale);

  const int gsz = q.group();
  const int64_t groups = q.groups_per_row();
  const int sb = q.scale_bytes();
  q.scales.assign(size_t(rows * groups * sb), 0);
  if (f.rule == ScaleRule::MinMax) q.zeros.assign(size_t(rows * groups), 0);

  parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      if (f.global == GlobalScale::PerRow)
        q.global_scale[size_t(r)] = opt.global_scale ? *opt.global_scale
                                                     : global_scale_from_amax(f, group_stats(xr, int(cols)).amax);
      const float g = q.global(r);
      for (int64_t gi = 0; gi < groups; ++gi) {
        quantize_group(f, xr + gi * gsz, gsz, g, opt, uint64_t(r * cols + gi * gsz), codes.data() + gi * gsz,
                       q.scales.data() + (r * groups + gi) * sb,
                       q.zeros.empty() ? nullptr : q.zeros.data() + r * groups + gi);
      }
      pack_codes(codes.data(), cols, f.element->bits, q.codes.data() + r * rcb);
    }
  });
  return q;
}

}  // namespace

QuantizedTensor quantize(const Format& f, const float* x, int64_t rows, int64_t cols, const QuantizeOptions& opt) {
  return quantize_impl(f, x, rows, cols, opt);
}

QuantizedTensor quantize_bf16(const Format& f, const uint16_t* x, int64_t rows, int64_t cols,
                              const QuantizeOptions& opt) {
  std::vector<float> xf(static_cast<size_t>(rows * cols));
  parallel_for(rows * cols, 1 << 16, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) xf[size_t(i)] = bf16_to_f32(x[i]);
  });
  return quantize_impl(f, xf.data(), rows, cols, opt);
}

void dequantize_rows(const QuantizedTensor& q, int64_t r0, int64_t r1, float* out, bool with_global_scale) {
  const Format& f = q.format;
  const int64_t cols = q.cols;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, cols));
  parallel_for(r1 - r0, grain, [&](int64_t a, int64_t b) {
    std::vector<uint8_t> codes(static_cast<size_t>(cols));
    for (int64_t i = a; i < b; ++i) {
      const int64_t r = r0 + i;
      float* y = out + i * cols;
      const uint8_t* rc = q.row_codes(r);
      switch (f.layout) {
        case Layout::GgmlQ4_0: dequantize_row_q4_0(rc, cols, y); continue;
        case Layout::GgmlQ4_1: dequantize_row_q4_1(rc, cols, y); continue;
        case Layout::GgmlQ8_0: dequantize_row_q8_0(rc, cols, y); continue;
        case Layout::GgmlQ8_1: dequantize_row_q8_1(rc, cols, y); continue;
        case Layout::Planar: break;
      }
      const ElementType& e = *f.element;
      unpack_codes(rc, 0, cols, e.bits, codes.data());
      if (f.scale == ScaleType::None) {
        for (int64_t c = 0; c < cols; ++c) y[c] = e.decode(codes[size_t(c)]);
        continue;
      }
      const int gsz = q.group();
      const int64_t groups = q.groups_per_row();
      const float g = with_global_scale ? q.global(r) : 1.0f;
      const uint8_t* sc = q.row_scales(r);
      for (int64_t gi = 0; gi < groups; ++gi) {
        const float s = decode_scale(f.scale, sc + gi * q.scale_bytes());
        const uint8_t* cg = codes.data() + gi * gsz;
        float* yg = y + gi * gsz;
        if (!q.zeros.empty()) {
          const int z = q.zeros[size_t(r * groups + gi)];
          for (int k = 0; k < gsz; ++k) yg[k] = (static_cast<float>(static_cast<int>(cg[k]) - z) * s) * g;
        } else {
          for (int k = 0; k < gsz; ++k) yg[k] = (e.decode(cg[k]) * s) * g;
        }
      }
    }
  });
}

std::vector<float> dequantize(const QuantizedTensor& q) {
  std::vector<float> out(static_cast<size_t>(q.rows * q.cols));
  dequantize_rows(q, 0, q.rows, out.data());
  return out;
}

void fake_quantize(const Format& f, const float* x, int64_t rows, int64_t cols, float* out, const QuantizeOptions& opt) {
  const QuantizedTensor q = quantize(f, x, rows, cols, opt);
  dequantize_rows(q, 0, rows, out);
}

}  // namespace fpq
