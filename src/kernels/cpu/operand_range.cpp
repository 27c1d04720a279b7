#include "kernels/cpu/operand_range.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "formats/ggml_blocks.h"
#include "util/half.h"
#include "util/parallel.h"

namespace fpq::cpu::detail {
namespace {

struct ValueSpan {
  double vmin = 0, vmax = 0;  // smallest nonzero and largest |value| of the finite codes
};

ValueSpan value_span(const CodeInfo& ci) {
  ValueSpan s;
  if (ci.has_zero_points) {  // (q - z): any nonzero difference of two codes
    s.vmin = 1;
    s.vmax = double((1 << ci.bits) - 1);
    return s;
  }
  for (int c = 0; c < (1 << ci.bits); ++c) {
    const double v = std::fabs(double(ci.values[c]));
    if (!std::isfinite(v) || v == 0) continue;
    s.vmin = s.vmin == 0 ? v : std::min(s.vmin, v);
    s.vmax = std::max(s.vmax, v);
  }
  return s;
}

void widen(OperandRange& r, double lo, double hi) {
  if (lo > 0 && std::isfinite(lo)) r.lo = r.lo == 0 ? lo : std::min(r.lo, lo);
  if (std::isfinite(hi)) r.hi = std::max(r.hi, hi);
}

}  // namespace

OperandRange operand_range(const QuantizedTensor& q, const CodeInfo& ci) {
  const Format& f = q.format;
  const ValueSpan vs = value_span(ci);
  OperandRange out;
  if (!f.is_ggml() && !q.global_scale.empty()) {
    out.glo = out.ghi = 0;
    for (float g : q.global_scale) {
      const double a = std::fabs(double(g));
      if (a == 0 || !std::isfinite(a)) continue;
      out.glo = out.glo == 0 ? a : std::min(out.glo, a);
      out.ghi = std::max(out.ghi, a);
    }
    if (out.ghi == 0) out.glo = out.ghi = 1;
  }
  const int64_t rows = q.rows;
  std::vector<OperandRange> parts(size_t(std::max<int64_t>(rows, 1)));
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(q.cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      OperandRange& p = parts[size_t(r)];
      if (f.is_ggml()) {
        const int bb = ggml_bytes(f.layout);
        const uint8_t* src = q.row_codes(r);
        for (int64_t b = 0; b < q.cols / kGgmlBlock; ++b) {
          uint16_t h;
          std::memcpy(&h, src + b * bb, 2);
          const double d = std::fabs(double(f16_to_f32(h)));
          double m = 0;
          if (f.layout == Layout::GgmlQ4_1) {  // q * d + m: the kernels add m x (sum of x) as a term of its own
            std::memcpy(&h, src + b * bb + 2, 2);
            m = std::fabs(double(f16_to_f32(h)));
            widen(p, m, m);
          }
          widen(p, vs.vmin * std::min(1.0, d), vs.vmax * std::max(1.0, d) + m);
        }
      } else {
        for (int64_t g = 0; g < q.groups_per_row(); ++g) {
          const double s = std::fabs(double(q.scale(r, g)));
          widen(p, vs.vmin * std::min(1.0, s), vs.vmax * std::max(1.0, s));
        }
      }
    }
  });
  for (const OperandRange& p : parts) widen(out, p.lo, p.hi);
  return out;
}

std::vector<OperandRange> float_row_ranges(const float* x, int64_t m, int64_t k) {
  std::vector<OperandRange> rows(size_t(std::max<int64_t>(m, 0)));
  parallel_for(m, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(k, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float lo = 0, hi = 0;
      for (const float* p = x + r * k; p < x + (r + 1) * k; ++p) {
        const float v = std::fabs(*p);
        if (v == 0 || !(v <= std::numeric_limits<float>::max())) continue;  // zeros, infinities, NaN
        lo = lo == 0 ? v : std::min(lo, v);
        hi = std::max(hi, v);
      }
      widen(rows[size_t(r)], lo, hi);
    }
  });
  return rows;
}

OperandRange merged(const std::vector<OperandRange>& parts) {
  OperandRange out;
  for (const OperandRange& p : parts) widen(out, p.lo, p.hi);
  return out;
}

bool float32_safe(const OperandRange& w, const OperandRange& x, int64_t k, bool small) {
  if (w.hi == 0 || x.hi == 0) return true;  // an all-zero operand: every sum is zero
  const double top = w.hi * x.hi * double(k) * std::max(1.0, w.ghi) * std::max(1.0, x.ghi);
  const double bottom = w.lo * x.lo * std::min(1.0, w.glo) * std::min(1.0, x.glo);
  if (!(top < 0x1p120)) return false;
  return !small || (bottom >= 0x1p-100 && w.lo >= 0x1p-106 && x.lo >= 0x1p-106);
}

}  // namespace fpq::cpu::detail
