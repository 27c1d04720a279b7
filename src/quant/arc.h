#pragma once
// ARCQuant (Meng et al., 2026, "Boosting NVFP4 Quantization with Augmented Residual Channels"; code:
// github.com/actypedef/ARCQuant): input channels are reordered by a calibration statistic (per-channel max |x|,
// ascending, so the R outlier channels come last), and the matrix product gets R extra reduction channels:
//
//   activation residual (the published method):
//     x_aug = [ x_p | x_p[top] - deq(q(x_p))[top] ]          (x_p = x reordered, top = the last R positions)
//     W_aug = [ W_p | W_p[:, top] ]
//     q(x_aug) deq(q(W_aug))^T = q(x_p) q(W_p)^T + q(r_x) q(W_top)^T  ~  x W^T with the activation error of
//     the outlier channels compensated (a second NVFP4 stage on their residual);
//   weight residual (an fpq extension for weight-only quantization, same structure):
//     x_aug = [ x_p | x_p[top] ],  W_aug = [ W_p | W_p[:, top] - deq(q(W_p))[:, top] ].
// Both may be enabled (activation residual channels first, then weight residual channels). R is a multiple
// of the format's group (ARCQuant rounds to 64), so the residual channels form whole groups and the first K
// columns of q(x_aug) / q(W_aug) are exactly q(x_p) / q(W_p). The number of residual channels follows ARCQuant's
// rule unless given: the fraction of calibration entries above 1/8 of their row's max |x|, times K, rounded up.
#include <cstdint>
#include <vector>

#include "formats/format.h"
#include "formats/quantize.h"
#include "quant/hessian.h"
#include "quant/rtn.h"

namespace fpq::quant {

struct ArcOptions {
  int64_t residual_channels = -1;   // -1: ARCQuant's rule from ChannelStats::outlier_fraction()
  int64_t round_to = 64;            // the residual count is rounded up to a multiple of this (and of the group)
  bool activation_residual = true;  // ARCQuant (W4A4)
  bool weight_residual = false;     // weight-only residual channels (W4A16)
};

struct ArcPlan {
  int64_t k = 0;                     // original input channels
  int64_t residual = 0;              // R
  bool activation_residual = true, weight_residual = false;
  std::vector<int32_t> perm;         // position p of the reordered input holds original channel perm[p]
  std::vector<int32_t> residual_channels;  // original channels of the residual channels: perm[k - R .. k)
  int64_t k_aug() const { return k + residual * ((activation_residual ? 1 : 0) + (weight_residual ? 1 : 0)); }
};

// Plans from a per-channel metric (larger = more outlying; ARCQuant: max |x|) and a residual count (-1: error).
ArcPlan arc_plan(const std::vector<float>& channel_metric, int64_t residual, const Format& f, const ArcOptions& opt = {});
// Plans from calibration statistics: metric = absmax, residual count from opt or ARCQuant's rule.
ArcPlan arc_plan(const ChannelStats& stats, const Format& f, const ArcOptions& opt = {});
// ARCQuant's residual count for K channels and an outlier fraction.
int64_t arc_residual_count(int64_t k, double outlier_fraction, int64_t round_to, int group);

// The reordered + augmented quantized weight (N x k_aug), RTN with `wopt` (its global scale comes from W).
QuantizedTensor arc_quantize_weight(const Format& f, const float* w, int64_t n, const ArcPlan& plan,
                                    const RtnOptions& wopt = {});

// Online activation side. Writes x_aug (rows x k_aug) for x (rows x k). The activation residual is computed
// with format f and aopt (same global scale rule as the final quantization): quantizing x_aug with
// (f, aopt) then gives [q(x_p) | q(r_x) | q(x_top)] exactly. With a per-tensor global scale computed from
// the data, quantize x_aug as one tensor with these same rows (amax(x_aug) = amax(x), so the scale is equal).
void arc_augment_activations(const ArcPlan& plan, const Format& f, const float* x, int64_t rows, float* x_aug,
                             const QuantizeOptions& aopt = {});
// Augments and quantizes in one step (the global scale is computed once from x unless aopt fixes it).
QuantizedTensor arc_quantize_activations(const ArcPlan& plan, const Format& f, const float* x, int64_t rows,
                                         const QuantizeOptions& aopt = {});
// Reorders the columns of a row-major matrix (rows x k) by plan.perm into out (rows x k).
void arc_reorder_rows(const ArcPlan& plan, const float* x, int64_t rows, float* out);

}  // namespace fpq::quant
