// Adapters from the CPU kernels (src/kernels/cpu) to the linear module's backends: "real" activation
// quantization (SIMD encoders, byte-identical to fpq::quantize) and the "real" matmul (low-bit kernels reading
// packed codes and scales; the integer kernels sum groups exactly, so W4A4-style layers give the pseudo path's
// bits). "real-fast" is the same kernels with float32 group sums: faster prefill, agreement with pseudo only to
// float32 rounding (which 4-bit activation quantization in the next layers can amplify); chosen by name only.
#include "model/linear_backend.h"

#ifdef FPQ_HAVE_CPU_KERNELS
#include "kernels/cpu/matmul.h"
#endif

namespace fpq {

#ifdef FPQ_HAVE_CPU_KERNELS
namespace {

class RealQuantizer final : public ActivationQuantizer {
 public:
  std::string name() const override { return "real"; }
  int priority() const override { return 10; }
  std::string unavailable_reason(const LinearSpec&) const override { return ""; }
  QuantizedTensor quantize(const Format& f, const float* x, int64_t m, int64_t k, const QuantizeOptions& opt) const override {
    return cpu::quantize_activations(f, x, m, k, opt);
  }
};

class RealPrepared final : public PreparedWeight {
 public:
  std::shared_ptr<const cpu::PreparedWeight> w;
  size_t bytes() const override { return cpu::weight_bytes(*w); }
};

class RealMatmul final : public MatmulBackend {
 public:
  explicit RealMatmul(cpu::Sums sums) : sums_(sums) {}
  std::string name() const override { return sums_ == cpu::Sums::Exact ? "real" : "real-fast"; }
  int priority() const override { return sums_ == cpu::Sums::Exact ? 10 : -1; }
  std::string unavailable_reason(const LinearSpec& s) const override {
    if (!s.weight_format) return "the layer's weight is not quantized";
    if (!cpu::has_real_kernel(*s.weight_format, s.activation_format))
      return "no CPU kernel for weights " + s.weight_format->name + " with " +
             (s.activation_format ? "activations " + s.activation_format->name : std::string("float activations")) +
             " (ISA " + cpu::active_isa_name() + ")";
    return "";
  }
  std::shared_ptr<const PreparedWeight> prepare(const QuantizedTensor* w, const float*, const LinearSpec&) const override {
    auto p = std::make_shared<RealPrepared>();
    p->w = cpu::prepare_weight(*w);
    return p;
  }
  void matmul(const PreparedWeight& pw, const QuantizedTensor* xq, const float* x, int64_t m, float* y,
              const LinearSpec&) const override {
    const auto& w = *static_cast<const RealPrepared&>(pw).w;
    if (xq) cpu::matmul_quantized(w, *xq, y, sums_);
    else cpu::matmul_weight_only(w, x, m, y);
  }

 private:
  cpu::Sums sums_;
};

}  // namespace

void register_cpu_real_backends() {
  register_activation_quantizer(std::make_shared<RealQuantizer>());
  register_matmul_backend(std::make_shared<RealMatmul>(cpu::Sums::Exact));
  register_matmul_backend(std::make_shared<RealMatmul>(cpu::Sums::Float32));
}
#else
void register_cpu_real_backends() {}
#endif

}  // namespace fpq
