#pragma once
// One entry point per linear layer for the model runtime: quantize a weight with a named method and get back
// everything the quantized linear module needs (the stored weight in the transformed space, the input transform
// or ARC plan for the activation side, the formats actually used, statistics).
//
//   method   weights                                            activation side (applied online by the module)
//   rtn      round to nearest, format rule or MSE observer      optional Hadamard transform
//   gptq     GPTQ (optionally in a Hadamard-rotated space)      optional Hadamard transform
//   mr-gptq  MR-GPTQ: block Hadamard (= group size), MSE scales, Hadamard transform x -> x T^T
//            act order with static groups (FP-Quant's harness)
//   4o6      RTN with Four-Over-Six block scales (NVFP4 only)   activations quantized with 4o6 block scales too
//   arc      ARCQuant: reorder + residual channels, RTN         reorder + residual channels (arc_augment_...)
//
// Calibration (sequential, layer by layer, done by the model runtime): feed each layer's raw inputs (before any
// transform) to a LayerCalibration, which keeps only X^T X (gptq / mr-gptq) or per-channel statistics (arc).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "formats/format.h"
#include "formats/quantize.h"
#include "quant/arc.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "quant/transform.h"

namespace fpq::quant {

enum class Method : uint8_t { Rtn, Gptq, MrGptq, FourOverSix, Arc };

Method parse_method(std::string_view name);  // rtn, gptq, mr-gptq (mrgptq, mr_gptq), 4o6 (fouroversix), arc (arcquant)
std::string_view method_name(Method m);
bool method_needs_hessian(Method m);
bool method_needs_channel_stats(Method m);

struct MethodOptions {
  Method method = Method::Rtn;
  // Input transform for rtn / gptq: Identity or Hadamard (mr-gptq always uses Hadamard).
  TransformKind transform = TransformKind::Identity;
  int64_t transform_block = 0;          // 0: the weight format's group size; -1: the full input dimension
  std::optional<uint64_t> sign_seed;    // random +-1 signs in the Hadamard transform
  ScaleSearch observer = ScaleSearch::Format;  // weight scales for rtn / arc (gptq / mr-gptq: gptq.scale_search)
  MseOptions mse;
  GptqOptions gptq;                     // gptq / mr-gptq
  ArcOptions arc;                       // arc
  std::optional<float> weight_global_scale;  // fixed weight global scale (e.g. fused across q/k/v)
};

// The defaults of each method (mr-gptq: MrGptqOptions::defaults(), Hadamard at the group size; others: as above).
MethodOptions method_defaults(Method m);

// Statistics of one linear layer's raw inputs.
class LayerCalibration {
 public:
  LayerCalibration(int64_t in_features, Method m);
  void add_rows(const float* x, int64_t rows);
  int64_t rows() const { return rows_; }
  const std::optional<Hessian>& hessian() const { return hessian_; }
  const std::optional<ChannelStats>& channel_stats() const { return stats_; }

 private:
  int64_t rows_ = 0;
  std::optional<Hessian> hessian_;
  std::optional<ChannelStats> stats_;
};

struct QuantizedLinearWeights {
  QuantizedTensor weight;                     // out x in (ARC: out x k_aug), in the transformed space
  std::optional<BlockTransform> transform;    // activations: x -> x T^T before quantization (absent = identity)
  std::optional<ArcPlan> arc;                 // activations: arc_augment_activations(plan, activation format, ...)
  Format weight_format;                       // the format of `weight` (4o6: the Four-Over-Six rule)
  std::optional<Format> activation_format;    // the activation format to use (4o6: with the 4o6 rule)
  std::optional<GptqStats> gptq;              // gptq / mr-gptq statistics
  double seconds = 0;
};

// w: out x in row-major float32. activation_format: empty for weight-only quantization (then arc uses weight
// residual channels). calib may be null for rtn and 4o6. Errors name the missing piece (e.g. no Hessian).
QuantizedLinearWeights quantize_linear_weights(const float* w, int64_t out, int64_t in, const Format& weight_format,
                                               const std::optional<Format>& activation_format,
                                               const LayerCalibration* calib, const MethodOptions& opt);

// The Four-Over-Six variant of an NVFP4-style format (E2M1 elements, E4M3 scales); error for other formats.
Format four_over_six_variant(const Format& f);

// One global scale for several weights that share their input (fused q/k/v or gate/up kernels): the largest
// of their own global scales (FP-Quant's fuse_global_scale), each computed after `transform` (when given).
float fused_weight_global_scale(const Format& f, const std::vector<const float*>& weights, const std::vector<int64_t>& rows,
                                int64_t in, const BlockTransform* transform = nullptr);

}  // namespace fpq::quant
