// Adapters from the CUDA kernels (src/kernels/cuda) to the linear module's backends:
//
// * "cuda" activation quantization: the row block is uploaded, quantized on the GPU (byte-identical to
//   fpq::quantize: same codes, scales and global scales) and handed back as a host QuantizedTensor. The
//   linear module applies the layer's input transform (Hadamard butterflies, ARC) on the CPU before calling
//   the quantizer, so the GPU sees the same transformed values as the CPU path.
// * "cuda" matmul: the weight is re-laid out once and stays resident in device memory (PreparedWeight).
//   With quantized activations it computes the pseudo path's exact product y = float(S * (g_x * g_w))
//   (S: float64 sum of code x group-scale products; bit-identical to the CPU for FP4/INT4/FP6 pairs, see
//   matmul_exact_cuda; W4A4 mxfp4 row blocks of 256 or more take the int8 tensor cores with the same bits);
//   weight-only layers multiply float32 activations split exactly into three bf16 parts
//   (matmul_weight_only_f32_cuda), as close to the CPU's float32 sgemm as two float32 GEMMs are.
#include "model/linear_backend.h"

#ifdef FPQ_HAVE_CUDA_KERNELS
#include <mutex>

#include "kernels/cuda/cuda_kernels.h"
#include "util/error.h"
#endif

namespace fpq {

#ifdef FPQ_HAVE_CUDA_KERNELS
namespace {

// Whether a usable GPU is visible (checked once).
const std::string& gpu_missing_reason() {
  static std::once_flag once;
  static std::string why;
  std::call_once(once, [] {
    if (!cuda::cuda_available(&why) && why.empty()) why = "no usable CUDA device";
  });
  return why;
}

// Device scratch reused across calls of one thread (the linear module runs one layer at a time).
struct Scratch {
  cuda::DeviceBuffer x, y;
  cuda::DeviceQuantized q;
  void need(cuda::DeviceBuffer& b, size_t bytes) {
    if (b.size() < bytes) b.reset(bytes);
  }
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

class CudaQuantizer final : public ActivationQuantizer {
 public:
  std::string name() const override { return "cuda"; }
  // Below the CPU's SIMD encoders: a row block makes a round trip to the device, which costs more than
  // quantizing it on the CPU at decode sizes; chosen when asked for by name.
  int priority() const override { return 5; }
  std::string unavailable_reason(const LinearSpec& spec) const override {
    if (const std::string& why = gpu_missing_reason(); !why.empty()) return why;
    if (!spec.activation_format) return "";
    return cuda::act_quant_unsupported(*spec.activation_format);
  }
  QuantizedTensor quantize(const Format& f, const float* x, int64_t m, int64_t k, const QuantizeOptions& opt) const override {
    if (opt.rounding != Rounding::Nearest) fail("cuda activation quantization rounds to nearest only (format '{}')", f.name);
    if (const std::string why = cuda::act_quant_unsupported(f); !why.empty()) fail("cuda activation quantization: {}", why);
    Scratch& s = scratch();
    s.need(s.x, size_t(std::max<int64_t>(1, m * k)) * sizeof(float));
    s.x.upload(x, size_t(m * k) * sizeof(float));
    cuda::ActQuantOptions o;
    o.global_scale = opt.global_scale;
    cuda::quantize_activations_cuda(f, s.x.data(), cuda::DType::F32, m, k, s.q, o);
    return s.q.download();
  }
};

class CudaPrepared final : public PreparedWeight {
 public:
  cuda::PreparedWeight w;
  size_t bytes() const override { return w.device_bytes(); }
};

class CudaMatmul final : public MatmulBackend {
 public:
  std::string name() const override { return "cuda"; }
  int priority() const override { return 20; }
  std::string unavailable_reason(const LinearSpec& s) const override {
    if (const std::string& why = gpu_missing_reason(); !why.empty()) return why;
    if (!s.weight_format) return "the layer's weight is not quantized";
    if (std::string why = cuda::weight_unsupported(*s.weight_format); !why.empty()) return why;
    if (s.in_features % 16 != 0) return fmt::format("{} input features are not a multiple of 16", s.in_features);
    if (s.activation_format) {
      // The exact product's conditions depend on the prepared weight's group; check them on a stand-in.
      cuda::PreparedWeight probe;
      probe.format = *s.weight_format;
      probe.n = s.out_features;
      probe.k = s.in_features;
      const Format& wf = *s.weight_format;
      const ElementType& e = wf.layout == Layout::GgmlQ4_0 ? element_type("int4")
                             : wf.layout == Layout::GgmlQ8_0 ? element_type("int8")
                                                             : *wf.element;
      probe.bits = e.bits;
      probe.is_int = e.kind == NumberKind::Int;
      probe.ebits = e.ebits;
      probe.mbits = e.mbits;
      probe.bias = e.bias;
      probe.scale = wf.is_ggml() ? ScaleType::F16 : wf.scale == ScaleType::None ? ScaleType::E8M0 : wf.scale;
      probe.group = wf.is_ggml() ? 32 : wf.scale == ScaleType::None ? int(s.in_features) : wf.group_for(s.in_features);
      return cuda::exact_matmul_unsupported(*s.activation_format, probe);
    }
    return "";
  }
  std::shared_ptr<const PreparedWeight> prepare(const QuantizedTensor* w, const float*, const LinearSpec& spec) const override {
    if (!w) fail("cuda matmul: the layer's weight is not quantized");
    auto p = std::make_shared<CudaPrepared>();
    p->w = cuda::prepare_weight_cuda(*w);
    // W4A4 mxfp4 layers: the int8 image too, so that row blocks of 256+ (prefill, perplexity windows) take the
    // int8 tensor cores -- the same bits as the exact kernel (Cuda.W4A4Int8RouteIsExact).
    if (spec.activation_format && cuda::int8_route_unsupported(*spec.activation_format).empty() &&
        cuda::int8_image_unsupported(*w).empty())
      cuda::prepare_int8_prefill(p->w, *w);
    return p;
  }
  void matmul(const PreparedWeight& pw, const QuantizedTensor* xq, const float* x, int64_t m, float* y,
              const LinearSpec& spec) const override {
    const auto& w = static_cast<const CudaPrepared&>(pw).w;
    const int64_t n = spec.out_features, k = spec.in_features;
    if (m == 0) return;
    Scratch& s = scratch();
    s.need(s.y, size_t(m * n) * sizeof(float));
    if (xq) {
      cuda::upload_quantized(*xq, s.q);
      if (!cuda::quantized_matmul_needs_mma_operand(xq->format, w, m)) cuda::matmul_quantized_cuda(s.q, w, s.y.data(), cuda::DType::F32);
      else cuda::matmul_exact_cuda(s.q, w, s.y.as<float>());
    } else {
      s.need(s.x, size_t(m * k) * sizeof(float));
      s.x.upload(x, size_t(m * k) * sizeof(float));
      cuda::matmul_weight_only_f32_cuda(w, s.x.as<float>(), m, s.y.as<float>());
    }
    s.y.download(y, size_t(m * n) * sizeof(float));  // synchronous: waits for the kernels
  }
};

}  // namespace

void register_cuda_backends() {
  register_activation_quantizer(std::make_shared<CudaQuantizer>());
  register_matmul_backend(std::make_shared<CudaMatmul>());
}
#else
void register_cuda_backends() {}
#endif

}  // namespace fpq
