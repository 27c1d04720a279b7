// The backends every build has: "reference" activation quantization (fpq::quantize) and the "pseudo" matmul
// (dequantize both operands, float32 GEMM through OpenBLAS) — the fake-quantization reference that every
// real kernel is compared with.
#include <cblas.h>

#include <cstring>
#include <mutex>

#include "model/linear_backend.h"
#include "util/error.h"

namespace fpq {
namespace {

class ReferenceQuantizer final : public ActivationQuantizer {
 public:
  std::string name() const override { return "reference"; }
  int priority() const override { return 0; }
  std::string unavailable_reason(const LinearSpec&) const override { return ""; }
  QuantizedTensor quantize(const Format& f, const float* x, int64_t m, int64_t k, const QuantizeOptions& opt) const override {
    return fpq::quantize(f, x, m, k, opt);
  }
};

class DequantizedWeight final : public PreparedWeight {
 public:
  std::vector<float> owned;       // dequantized copy of a quantized weight
  const float* w = nullptr;       // out x in: owned.data(), or the layer's own float weight (not copied)
  size_t bytes() const override { return owned.size() * sizeof(float); }
};

class PseudoMatmul final : public MatmulBackend {
 public:
  std::string name() const override { return "pseudo"; }
  int priority() const override { return 0; }
  std::string unavailable_reason(const LinearSpec&) const override { return ""; }
  std::shared_ptr<const PreparedWeight> prepare(const QuantizedTensor* w, const float* w_float,
                                                const LinearSpec& spec) const override {
    auto p = std::make_shared<DequantizedWeight>();
    if (w) {
      p->owned = dequantize(*w);
      p->w = p->owned.data();
    } else {
      p->w = w_float;
    }
    return p;
  }
  void matmul(const PreparedWeight& pw, const QuantizedTensor* xq, const float* x, int64_t m, float* y,
              const LinearSpec& spec) const override {
    const float* w = static_cast<const DequantizedWeight&>(pw).w;
    std::vector<float> xd;
    if (xq) {
      xd = dequantize(*xq);
      x = xd.data();
    }
    const int64_t n = spec.out_features, k = spec.in_features;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.0f, x, int(k), w, int(k),
                0.0f, y, int(n));
  }
};

}  // namespace

void register_cpu_real_backends();  // kernels/cpu adapters (model/real_cpu_backends.cpp)

void ensure_builtin_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_activation_quantizer(std::make_shared<ReferenceQuantizer>());
    register_matmul_backend(std::make_shared<PseudoMatmul>());
    register_cpu_real_backends();
  });
}

}  // namespace fpq
