// The backends every build has: "reference" activation quantization (fpq::quantize) and the "pseudo" matmul
// (dequantize both operands, GEMM through OpenBLAS) — the fake-quantization reference that every real kernel is
// compared with.
//
// With quantized activations the pseudo product is computed exactly: both operands are dequantized without
// their tensor scales (code x group scale, exact in float32 for every registry format), multiplied with a
// float64 GEMM whose sums are exact for realistic scale ranges, and finished as
//   y = float(S * (double(g_x) * double(g_w))).
// The real kernels finish the same way, so the two paths give the same bits and a W4A4 model's activation
// quantizers see identical inputs whichever path ran the layer before (float32 GEMMs would differ in the last
// bit, and a last-bit difference that moves a value across a rounding boundary of the next activation quantizer
// grows through the remaining layers). Weight-only products (no quantizer downstream of the GEMM's rounding)
// use float32 sgemm on fully dequantized weights.
#include <cblas.h>

#include <cstring>
#include <mutex>

#include "kernels/cpu/f32_gemm.h"
#include "model/linear_backend.h"
#include "util/error.h"
#include "util/parallel.h"

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
  std::vector<float> owned;   // weight-only: the dequantized weight (with its tensor scale)
  const float* w = nullptr;   // out x in: owned.data(), or the layer's own float weight (not copied)
  std::vector<double> exact;  // quantized activations: code x group scale, without the tensor scale
  std::vector<double> w_global;  // the weight's tensor scale per output row (empty: 1)
  size_t bytes() const override { return owned.size() * sizeof(float) + exact.size() * sizeof(double); }
};

class PseudoMatmul final : public MatmulBackend {
 public:
  std::string name() const override { return "pseudo"; }
  int priority() const override { return 0; }
  std::string unavailable_reason(const LinearSpec&) const override { return ""; }
  std::shared_ptr<const PreparedWeight> prepare(const QuantizedTensor* w, const float* w_float,
                                                const LinearSpec& spec) const override {
    auto p = std::make_shared<DequantizedWeight>();
    if (w && spec.activation_format) {
      std::vector<float> unscaled(size_t(w->rows * w->cols));
      dequantize_rows(*w, 0, w->rows, unscaled.data(), false);
      p->exact.assign(unscaled.begin(), unscaled.end());
      if (!w->global_scale.empty()) {
        p->w_global.resize(size_t(w->rows));
        for (int64_t r = 0; r < w->rows; ++r) p->w_global[size_t(r)] = double(w->global(r));
      }
    } else if (w) {
      p->owned = dequantize(*w);
      p->w = p->owned.data();
    } else {
      p->w = w_float;
    }
    return p;
  }
  void matmul(const PreparedWeight& pw, const QuantizedTensor* xq, const float* x, int64_t m, float* y,
              const LinearSpec& spec) const override {
    const auto& d = static_cast<const DequantizedWeight&>(pw);
    const int64_t n = spec.out_features, k = spec.in_features;
    if (xq && !d.exact.empty()) {
      std::vector<float> xs(size_t(m * k));
      dequantize_rows(*xq, 0, m, xs.data(), false);
      const std::vector<double> xd(xs.begin(), xs.end());
      std::vector<double> s(size_t(m * n));
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.0, xd.data(), int(k), d.exact.data(),
                  int(k), 0.0, s.data(), int(n));
      parallel_for(m, 16, [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; ++i) {
          const double gx = double(xq->global(i));
          for (int64_t j = 0; j < n; ++j) {
            const double gw = d.w_global.empty() ? 1.0 : d.w_global[size_t(j)];
            y[i * n + j] = float(s[size_t(i * n + j)] * (gx * gw));
          }
        }
      });
      return;
    }
    std::vector<float> xd;
    if (xq) {
      xd = dequantize(*xq);
      x = xd.data();
    }
    if (!d.w) fail("internal: pseudo matmul prepared for quantized activations got float ones");
    cpu::f32_gemm_nt(m, n, k, x, d.w, y);
  }
};

}  // namespace

void register_cpu_real_backends();  // kernels/cpu adapters (model/real_cpu_backends.cpp)
void register_cuda_backends();      // kernels/cuda adapters (model/cuda_backends.cpp)

void ensure_builtin_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_activation_quantizer(std::make_shared<ReferenceQuantizer>());
    register_matmul_backend(std::make_shared<PseudoMatmul>());
    register_cpu_real_backends();
    register_cuda_backends();
  });
}

}  // namespace fpq
