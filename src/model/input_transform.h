#pragma once
// The input-transform slot of a quantized linear layer: applied to activations online before they are
// quantized (a block Hadamard or general GxG transform, ARCQuant's reorder + residual channels). The weight is
// stored already transformed, so the layer computes T(x) · W_tᵀ = x · Wᵀ (up to quantization).
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/safetensors.h"

namespace fpq {

class InputTransform {
 public:
  virtual ~InputTransform() = default;
  virtual std::string kind() const = 0;
  // Width of the transformed activation (equal to `in` except for transforms that add channels).
  virtual int64_t out_features(int64_t in) const { return in; }
  // out (m x out_features(in)) = T(x) for x (m x in), row by row.
  virtual void apply(const float* x, int64_t m, int64_t in, float* out) const = 0;
  // Everything needed to rebuild it: a JSON description and named tensors (prefixed).
  virtual nlohmann::json config() const = 0;
  virtual std::vector<SafetensorsTensorOut> tensors(const std::string& prefix) const = 0;
};

// Rebuilds a transform saved with config()/tensors(); registered kinds only (error otherwise).
using InputTransformLoader =
    std::shared_ptr<const InputTransform> (*)(const nlohmann::json& config, const SafetensorsFile& file, const std::string& prefix);
void register_input_transform_loader(const std::string& kind, InputTransformLoader loader);
std::shared_ptr<const InputTransform> load_input_transform(const nlohmann::json& config, const SafetensorsFile& file,
                                                           const std::string& prefix);

}  // namespace fpq
