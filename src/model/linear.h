#pragma once
// The quantized linear module: y = T(x) · Wᵀ + b, where the weight is stored quantized (packed codes, scales,
// global scale) or as float32, activations are optionally quantized online to their own format (with a static
// calibrated global scale or a dynamic one), T is the optional input transform, and the activation quantizer and
// the matmul are chosen independently by backend name (fastest available by default; an explicit choice that
// cannot run this layer is an error). Its state saves to and loads from safetensors tensors + a JSON config
// losslessly.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/quantize.h"
#include "model/input_transform.h"
#include "model/linear_backend.h"
#include "util/safetensors.h"

namespace fpq {

struct ActivationQuant {
  Format format;
  std::optional<float> global_scale;  // a static (calibrated) tensor scale; empty: the format's own (dynamic)
  QuantizeOptions options() const {
    QuantizeOptions o;
    o.global_scale = global_scale;
    return o;
  }
};

class QuantLinear {
 public:
  QuantLinear() = default;
  // An unquantized layer: weight out x in (row-major), optional bias of length out.
  QuantLinear(int64_t out_features, int64_t in_features, std::vector<float> weight, std::vector<float> bias = {});

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  // Width the stored weight has (in_features, or more when the transform adds channels).
  int64_t weight_in_features() const { return transform_ ? transform_->out_features(in_) : in_; }

  // Replaces the weight with a quantized one (rows = out, cols = weight_in_features()).
  void set_quantized_weight(QuantizedTensor w);
  // Replaces the float weight (out x weight_in_features()); drops a quantized one.
  void set_float_weight(std::vector<float> w);
  void set_activation_quant(std::optional<ActivationQuant> a);
  // Installs T; the weight must already be expressed in the transformed space (set it afterwards).
  void set_transform(std::shared_ptr<const InputTransform> t);
  // Backend names ("" or "auto" = fastest available). Resolution happens on the next forward.
  void set_backends(const std::string& quant_backend, const std::string& matmul_backend);

  const std::optional<QuantizedTensor>& quantized_weight() const { return wq_; }
  const std::vector<float>& float_weight() const { return wf_; }  // empty when quantized
  const std::vector<float>& bias() const { return bias_; }
  const std::optional<ActivationQuant>& activation_quant() const { return act_; }
  const std::shared_ptr<const InputTransform>& transform() const { return transform_; }
  // The float weight, dequantized when quantized (out x weight_in_features()).
  std::vector<float> weight_as_float() const;

  // y (m x out) = layer(x (m x in)). Thread-compatible: concurrent forwards on one layer are not supported.
  void forward(const float* x, int64_t m, float* y) const;
  // The transformed activations as the matmul sees them (quantized when the layer quantizes activations).
  std::string describe() const;
  // Names of the backends the next forward uses (resolves them).
  std::pair<std::string, std::string> resolved_backends() const;

  // Persistence: tensors named prefix + "weight.codes" etc. and a JSON config.
  std::vector<SafetensorsTensorOut> state_tensors(const std::string& prefix) const;
  nlohmann::json state_config() const;
  static QuantLinear from_state(const nlohmann::json& config, const SafetensorsFile& file, const std::string& prefix);

 private:
  LinearSpec spec() const;
  void invalidate();
  void resolve() const;

  int64_t out_ = 0, in_ = 0;
  std::vector<float> wf_;                 // float weight (empty when quantized)
  std::optional<QuantizedTensor> wq_;
  std::vector<float> bias_;
  std::optional<ActivationQuant> act_;
  std::shared_ptr<const InputTransform> transform_;
  std::string quant_backend_name_, matmul_backend_name_;
  // Resolved lazily on first forward.
  mutable std::shared_ptr<const ActivationQuantizer> quantizer_;
  mutable std::shared_ptr<const MatmulBackend> matmul_;
  mutable std::shared_ptr<const PreparedWeight> prepared_;
};

}  // namespace fpq
