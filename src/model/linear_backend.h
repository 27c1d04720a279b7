#pragma once
// The pluggable halves of a quantized linear layer: an activation quantizer and a matmul, each chosen
// independently by name ("reference"/"real"/"cuda" for quantization, "pseudo"/"real"/"cuda" for the matmul),
// the fastest available by default. A new backend registers itself here; the model never changes.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/quantize.h"

namespace fpq {

// What a backend needs to know to decide whether it can run a layer.
struct LinearSpec {
  int64_t in_features = 0, out_features = 0;
  const Format* weight_format = nullptr;      // null: float32 weight
  const Format* activation_format = nullptr;  // null: float activations (weight-only or unquantized)
};

class ActivationQuantizer {
 public:
  virtual ~ActivationQuantizer() = default;
  virtual std::string name() const = 0;
  virtual int priority() const = 0;  // higher is faster; the default choice is the highest available
  // Empty when it can quantize for this layer; otherwise why not (shown when the user asked for it).
  virtual std::string unavailable_reason(const LinearSpec& spec) const = 0;
  virtual QuantizedTensor quantize(const Format& f, const float* x, int64_t m, int64_t k,
                                   const QuantizeOptions& opt) const = 0;
};

// A weight made ready for one matmul backend (a dequantized float copy, a repacked layout, device memory...).
class PreparedWeight {
 public:
  virtual ~PreparedWeight() = default;
  virtual size_t bytes() const = 0;
};

class MatmulBackend {
 public:
  virtual ~MatmulBackend() = default;
  virtual std::string name() const = 0;
  virtual int priority() const = 0;
  virtual std::string unavailable_reason(const LinearSpec& spec) const = 0;
  // `w` is the quantized weight, or null with `w_float` (out x in) for an unquantized layer.
  virtual std::shared_ptr<const PreparedWeight> prepare(const QuantizedTensor* w, const float* w_float,
                                                        const LinearSpec& spec) const = 0;
  // y (m x out) = x · Wᵀ. `xq` is the quantized activation when the layer has an activation format, else
  // null and `x` (m x in, float32) is used.
  virtual void matmul(const PreparedWeight& w, const QuantizedTensor* xq, const float* x, int64_t m, float* y,
                      const LinearSpec& spec) const = 0;
};

void register_activation_quantizer(std::shared_ptr<const ActivationQuantizer> q);
void register_matmul_backend(std::shared_ptr<const MatmulBackend> b);
const std::vector<std::shared_ptr<const ActivationQuantizer>>& activation_quantizers();
const std::vector<std::shared_ptr<const MatmulBackend>>& matmul_backends();

// Resolves a backend: `requested` empty or "auto" = the highest-priority available one; a name = that one or
// an error saying why it cannot run this layer.
std::shared_ptr<const ActivationQuantizer> resolve_activation_quantizer(const std::string& requested, const LinearSpec& spec);
std::shared_ptr<const MatmulBackend> resolve_matmul_backend(const std::string& requested, const LinearSpec& spec);

// Registers the built-in CPU backends once (called by the linear module; backends living in other
// libraries register through static initializers or explicit calls).
void ensure_builtin_backends();

}  // namespace fpq
