#include "quant/arc.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "quant/group_codec.h"
#include "util/error.h"
#include "util/parallel.h"

namespace fpq::quant {
namespace {

int64_t lcm64(int64_t a, int64_t b) { return a / std::gcd(a, b) * b; }

}  // namespace

int64_t arc_residual_count(int64_t k, double outlier_fraction, int64_t round_to, int group) {
  if (round_to <= 0) fail("arc: round_to must be positive (got {})", round_to);
  const int64_t step = lcm64(round_to, int64_t(group));
  const double want = double(k) * std::clamp(outlier_fraction, 0.0, 1.0);
  int64_t r = int64_t(std::ceil(want / double(step) - 1e-12)) * step;
  if (r > k) r = (k / step) * step;
  return std::max<int64_t>(0, r);
}

ArcPlan arc_plan(const std::vector<float>& metric, int64_t residual, const Format& f, const ArcOptions& opt) {
  const int64_t k = int64_t(metric.size());
  if (k <= 0) fail("arc: no channels");
  check_format_cols(f, k);
  if (f.group == 0) fail("arc: format '{}' has one scale per row; residual channels need a group size", f.name);
  if (!opt.activation_residual && !opt.weight_residual && residual > 0)
    fail("arc: residual channels requested but neither the activation nor the weight residual is enabled");
  const int group = f.group_for(k);
  if (residual < 0 || residual > k) fail("arc: residual channel count {} is outside 0..{}", residual, k);
  if (residual % group != 0) fail("arc: residual channel count {} is not a multiple of the group size {}", residual, group);
  for (float v : metric)
    if (!std::isfinite(v)) fail("arc: the channel metric has a non-finite value");
  ArcPlan p;
  p.k = k;
  p.residual = (opt.activation_residual || opt.weight_residual) ? residual : 0;
  p.activation_residual = opt.activation_residual;
  p.weight_residual = opt.weight_residual;
  p.perm.resize(size_t(k));
  std::iota(p.perm.begin(), p.perm.end(), 0);
  std::stable_sort(p.perm.begin(), p.perm.end(), [&](int32_t a, int32_t b) { return metric[size_t(a)] < metric[size_t(b)]; });
  p.residual_channels.assign(p.perm.end() - p.residual, p.perm.end());
  return p;
}

ArcPlan arc_plan(const ChannelStats& stats, const Format& f, const ArcOptions& opt) {
  const int64_t k = stats.dim();
  int64_t r = opt.residual_channels;
  if (r < 0) r = arc_residual_count(k, stats.outlier_fraction(), opt.round_to, f.group_for(k));
  return arc_plan(stats.absmax(), r, f, opt);
}

void arc_reorder_rows(const ArcPlan& plan, const float* x, int64_t rows, float* out) {
  const int64_t k = plan.k;
  parallel_for(rows, std::max<int64_t>(1, 16384 / k), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < k; ++c) out[r * k + c] = x[r * k + plan.perm[size_t(c)]];
  });
}

QuantizedTensor arc_quantize_weight(const Format& f, const float* w, int64_t n, const ArcPlan& plan, const RtnOptions& wopt) {
  const int64_t k = plan.k, R = plan.residual, ka = plan.k_aug();
  std::vector<float> wp(size_t(n * k));
  arc_reorder_rows(plan, w, n, wp.data());
  RtnOptions o = wopt;
  const std::vector<float> g = global_scales_for(f, wp.data(), n, k, wopt.global_scale);
  if (g.size() == 1) o.global_scale = g[0];
  std::vector<float> deq;
  if (plan.weight_residual && R > 0) deq = dequantize(rtn_quantize(f, wp.data(), n, k, o));
  std::vector<float> wa(size_t(n * ka));
  for (int64_t r = 0; r < n; ++r) {
    const float* src = wp.data() + r * k;
    float* dst = wa.data() + r * ka;
    std::copy(src, src + k, dst);
    int64_t at = k;
    if (plan.activation_residual && R > 0) {
      std::copy(src + (k - R), src + k, dst + at);
      at += R;
    }
    if (plan.weight_residual && R > 0)
      for (int64_t j = 0; j < R; ++j) dst[at + j] = src[k - R + j] - deq[size_t(r * k + k - R + j)];
  }
  // amax(W_aug) = amax(W_p) row by row (|w - q(w)| <= |w|), so per-row global scales are unchanged too.
  return rtn_quantize(f, wa.data(), n, ka, o);
}

void arc_augment_activations(const ArcPlan& plan, const Format& f, const float* x, int64_t rows, float* x_aug,
                             const QuantizeOptions& aopt) {
  const int64_t k = plan.k, R = plan.residual, ka = plan.k_aug();
  std::vector<float> xp(size_t(rows * k));
  arc_reorder_rows(plan, x, rows, xp.data());
  std::vector<float> deq;
  if (plan.activation_residual && R > 0) {
    deq.resize(xp.size());
    fake_quantize(f, xp.data(), rows, k, deq.data(), aopt);
  }
  parallel_for(rows, std::max<int64_t>(1, 16384 / ka), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = xp.data() + r * k;
      float* dst = x_aug + r * ka;
      std::copy(src, src + k, dst);
      int64_t at = k;
      if (plan.activation_residual && R > 0) {
        for (int64_t j = 0; j < R; ++j) dst[at + j] = src[k - R + j] - deq[size_t(r * k + k - R + j)];
        at += R;
      }
      if (plan.weight_residual && R > 0) std::copy(src + (k - R), src + k, dst + at);
    }
  });
}

QuantizedTensor arc_quantize_activations(const ArcPlan& plan, const Format& f, const float* x, int64_t rows,
                                         const QuantizeOptions& aopt) {
  QuantizeOptions o = aopt;
  if (f.global == GlobalScale::PerTensor && !o.global_scale) {
    const auto g = global_scales_for(f, x, rows, plan.k);
    o.global_scale = g.at(0);
  }
  std::vector<float> xa(size_t(rows * plan.k_aug()));
  arc_augment_activations(plan, f, x, rows, xa.data(), o);
  return quantize(f, xa.data(), rows, plan.k_aug(), o);
}

}  // namespace fpq::quant
