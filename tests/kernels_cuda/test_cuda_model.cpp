// GPU tests of the model runtime's CUDA pieces: per-row global scales in activation quantization (byte-identical
// to fpq::quantize), the exact quantized product (bit-identical to the float64 definition the CPU pseudo path
// uses, for the pairs whose group sums are exact), float32 weight-only products, and the linear module's
// "cuda" backends against "pseudo" / "reference" on the same layer. Fresh random inputs each run (seed
// printed); output buffers poisoned; skips with the reason when no Hopper GPU is visible.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/quantize.h"
#include "kernels/cuda/cuda_kernels.h"
#include "model/linear.h"
#include "model/quant_recipe.h"
#include "test_support.h"
#include "util/error.h"
#include "util/half.h"

namespace fpq::cuda {
namespace {

class CudaModel : public ::testing::Test {
 public:
  void SetUp() override {
    std::string why;
    if (!cuda_available(&why)) GTEST_SKIP() << "no usable GPU: " << why;
    rng.seed(test::fresh_seed());
  }
  std::mt19937_64 rng;
  std::vector<float> random_matrix(int64_t rows, int64_t cols) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_real_distribution<float> ud(-5.0f, 5.0f);
    std::vector<float> x(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      const float rs = std::exp2(std::floor(ud(rng)));
      for (int64_t c = 0; c < cols; ++c) {
        float v = nd(rng) * rs;
        if (rng() % 89 == 0) v *= 20.0f;
        x[size_t(r * cols + c)] = v;
      }
    }
    return x;
  }
};

// The CPU pseudo path's definition: S = sum over k of the unscaled dequantized operands in float64 (summed
// in long double here, so that it is exact for the ranges drawn), y = float(S * (g_x * g_w)).
std::vector<float> exact_reference(const QuantizedTensor& xq, const QuantizedTensor& wq) {
  const int64_t m = xq.rows, n = wq.rows, k = xq.cols;
  std::vector<float> xs(size_t(m * k)), ws(size_t(n * k));
  dequantize_rows(xq, 0, m, xs.data(), false);
  dequantize_rows(wq, 0, n, ws.data(), false);
  std::vector<float> y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      long double s = 0;
      for (int64_t q = 0; q < k; ++q) s += (long double)(double(xs[size_t(i * k + q)]) * double(ws[size_t(j * k + q)]));
      const double gw = wq.global_scale.empty() ? 1.0 : double(wq.global(j));
      y[size_t(i * n + j)] = float(double(s) * (double(xq.global(i)) * gw));
    }
  return y;
}

double rel_err(const std::vector<float>& y, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(y[i])) return INFINITY;
    const double d = double(y[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

int64_t mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t c = 0;
  for (size_t i = 0; i < a.size(); ++i) c += f32_bits(a[i]) != f32_bits(b[i]);
  return c;
}

TEST_F(CudaModel, PerRowGlobalScaleQuantizationMatchesCpu) {
  for (const char* name : {"nvfp4", "nvfp4_4o6", "e2m1/e4m3/g16/ss6/global"}) {
    const Format f = activation_variant(parse_format(name));
    ASSERT_EQ(f.global, GlobalScale::PerRow) << name;
    for (auto [m, k] : {std::pair<int64_t, int64_t>{1, 64}, {37, 576}, {9, 2080}}) {
      for (bool fixed : {false, true}) {
        SCOPED_TRACE(fmt::format("{} {}x{} fixed={}", f.spec(), m, k, fixed));
        std::vector<float> x = random_matrix(m, k);
        if (m > 2) {
          for (int64_t c = 0; c < k; ++c) x[size_t(k + c)] = 0.0f;  // an all-zero row: global 1
          x[size_t(2 * k + 5)] = NAN;                                  // a NaN: its group poisoned, amax finite
        }
        QuantizeOptions o;
        ActQuantOptions co;
        if (fixed) o.global_scale = co.global_scale = 0.37f;
        const QuantizedTensor ref = quantize(f, x.data(), m, k, o);
        DeviceBuffer dx = to_device(x.data(), x.size() * 4);
        DeviceQuantized dq;
        dq.global.reset(4);
        quantize_activations_cuda(f, dx.data(), DType::F32, m, k, dq, co);
        const QuantizedTensor got = dq.download();
        EXPECT_EQ(got.codes, ref.codes);
        EXPECT_EQ(got.scales, ref.scales);
        ASSERT_EQ(got.global_scale.size(), ref.global_scale.size());
        for (size_t i = 0; i < ref.global_scale.size(); ++i)
          EXPECT_EQ(f32_bits(got.global_scale[i]), f32_bits(ref.global_scale[i])) << "row " << i;
      }
    }
  }
}

struct ExactCase {
  const char* weight;
  const char* act;
  bool row_global_act;
  int64_t n, k;
};

TEST_F(CudaModel, ExactProductIsTheCpuDefinition) {
  const ExactCase cases[] = {
      {"mxfp4", "mxfp4", false, 72, 512},
      {"mxfp4", "mxfp4", false, 40, 416},
      {"nvfp4", "nvfp4", true, 48, 576},
      {"nvfp4", "nvfp4", false, 33, 256},
      {"nvfp4_4o6", "nvfp4_4o6", true, 40, 320},
      {"mxfp6_e2m3", "mxfp6_e2m3", false, 24, 384},
      {"int4", "int4/fp16/g32", false, 40, 256},
      {"mxfp4", "mxfp8_e4m3", false, 24, 256},    // FP4 x FP8 code products span 22 bits: sums may round
      {"mxfp8_e4m3", "mxfp8_e4m3", false, 40, 256},  // FP8 x FP8 group sums may round: close, not bit-exact
      {"fp8_e4m3", "fp8_e4m3", true, 24, 192},
      {"int8", "int8", true, 24, 192},
      {"int8", "int8", true, 40, 1088},             // a weight row longer than one warp's range of tiles
  };
  for (const ExactCase& c : cases) {
    const Format wf = parse_format(c.weight);
    Format af = parse_format(c.act);
    if (c.row_global_act) af = activation_variant(af);
    const QuantizedTensor wq = quantize(wf, random_matrix(c.n, c.k).data(), c.n, c.k);
    const PreparedWeight pw = prepare_weight_cuda(wq);
    ASSERT_EQ(exact_matmul_unsupported(af, pw), "") << c.weight << " x " << c.act;
    const bool bit_exact = exact_matmul_bit_exact(af, pw);
    for (int64_t m : {1, 7, 40}) {
      SCOPED_TRACE(fmt::format("W {} x A {} {}x{} M={} (bit-exact: {})", c.weight, af.spec(), c.n, c.k, m, bit_exact));
      const std::vector<float> x = random_matrix(m, c.k);
      const QuantizedTensor xq = quantize(af, x.data(), m, c.k);
      DeviceQuantized dq;
      upload_quantized(xq, dq);
      DeviceBuffer dy(size_t(m * c.n) * 4);
      dy.fill_bytes(0xFF);
      matmul_exact_cuda(dq, pw, dy.as<float>());
      synchronize();
      std::vector<float> y(size_t(m * c.n));
      dy.download(y.data(), y.size() * 4);
      const std::vector<float> ref = exact_reference(xq, wq);
      if (bit_exact) EXPECT_EQ(mismatches(y, ref), 0) << "rel err " << rel_err(y, ref);
      else EXPECT_LT(rel_err(y, ref), 1e-6);
    }
  }
  // Which pairs are bit-exact (the cuda backend's documentation relies on these).
  const auto pw = prepare_weight_cuda(quantize(parse_format("mxfp4"), random_matrix(16, 64).data(), 16, 64));
  EXPECT_TRUE(exact_matmul_bit_exact(parse_format("mxfp4"), pw));
  const auto pn = prepare_weight_cuda(quantize(parse_format("nvfp4"), random_matrix(16, 64).data(), 16, 64));
  EXPECT_TRUE(exact_matmul_bit_exact(activation_variant(parse_format("nvfp4")), pn));
  const auto p8 = prepare_weight_cuda(quantize(parse_format("mxfp8_e4m3"), random_matrix(16, 64).data(), 16, 64));
  EXPECT_FALSE(exact_matmul_bit_exact(parse_format("mxfp8_e4m3"), p8));
}

TEST_F(CudaModel, Float32WeightOnlyProduct) {
  for (const char* name : {"mxfp4", "nvfp4", "fp6_e3m2", "int4", "q4_0", "mxfp8_e4m3"}) {
    const Format f = parse_format(name);
    for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 72, 512}, {9, 40, 384}, {45, 33, 256}}) {
      SCOPED_TRACE(fmt::format("{} {}x{} M={}", name, n, k, m));
      const QuantizedTensor wq = quantize(f, random_matrix(n, k).data(), n, k);
      const std::vector<float> wd = dequantize(wq);
      const std::vector<float> x = random_matrix(m, k);
      const PreparedWeight pw = prepare_weight_cuda(wq);
      DeviceBuffer dx = to_device(x.data(), x.size() * 4);
      DeviceBuffer dy(size_t(m * n) * 4);
      dy.fill_bytes(0xFF);
      matmul_weight_only_f32_cuda(pw, dx.as<float>(), m, dy.as<float>());
      synchronize();
      std::vector<float> y(size_t(m * n)), ref(size_t(m * n));
      dy.download(y.data(), y.size() * 4);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t q = 0; q < k; ++q) s += double(x[size_t(i * k + q)]) * double(wd[size_t(j * k + q)]);
          ref[size_t(i * n + j)] = float(s);
        }
      EXPECT_LT(rel_err(y, ref), 1e-6);
    }
  }
}

// Activations at the edges of float32's range: the weight-only kernels sum x times element x group scale before
// the global scales (NVFP4: codes x E4M3 scales reach 2688), so 2^112 overflowed where the product is finite. The
// range guard splits such rows as x * 2^-e and scales the sums back: powers of two, so the result must equal the
// unscaled run's times 2^e bit for bit, and the float64 product to float32 rounding.
TEST_F(CudaModel, Float32WeightOnlyProductAtExtremeMagnitudes) {
  for (const char* name : {"mxfp4", "nvfp4", "fp6_e3m2", "int4", "q4_0", "q8_0", "mxfp8_e4m3", "fp8_e4m3"}) {
    const Format f = parse_format(name);
    const int64_t m = 1 + int64_t(rng() % 4), n = 40, k = 512;
    const QuantizedTensor wq = quantize(f, random_matrix(n, k).data(), n, k);
    const std::vector<float> wd = dequantize(wq);
    const std::vector<float> x = random_matrix(m, k);
    const PreparedWeight pw = prepare_weight_cuda(wq);
    auto run = [&](const std::vector<float>& xs) {
      DeviceBuffer dx = to_device(xs.data(), xs.size() * 4);
      DeviceBuffer dy(size_t(m * n) * 4);
      dy.fill_bytes(0xFF);
      matmul_weight_only_f32_cuda(pw, dx.as<float>(), m, dy.as<float>());
      synchronize();
      std::vector<float> y(size_t(m * n));
      dy.download(y.data(), y.size() * 4);
      return y;
    };
    const std::vector<float> y0 = run(x);
    for (const int e : {112, -100}) {
      SCOPED_TRACE(fmt::format("{} x 2^{} M={}", name, e, m));
      std::vector<float> xs(x.size());
      for (size_t i = 0; i < x.size(); ++i) xs[i] = std::ldexp(x[i], e);
      std::vector<float> ref(size_t(m * n));
      bool finite = true;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t q = 0; q < k; ++q) acc += double(xs[size_t(i * k + q)]) * double(wd[size_t(j * k + q)]);
          ref[size_t(i * n + j)] = float(acc);
          finite = finite && std::isfinite(ref[size_t(i * n + j)]);
        }
      const std::vector<float> y = run(xs);
      if (finite) {
        EXPECT_LT(rel_err(y, ref), 1e-6);
      }
      int64_t bad = 0, checked = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        const float want = std::ldexp(y0[i], e);
        if (!std::isnormal(want) && want != 0.0f) continue;  // (2^e times a result outside the normal range rounds)
        ++checked;
        bad += f32_bits(y[i]) != f32_bits(want);
      }
      EXPECT_EQ(bad, 0) << "of " << checked << " outputs differ from 2^e times the unscaled run";
    }
  }
}

// The linear module with the "cuda" backends against the CPU's pseudo path on the same layer.
TEST_F(CudaModel, LinearModuleCudaBackendsMatchPseudo) {
  struct Case {
    const char* weight;
    int a_bits;
  };
  for (const Case& c : {Case{"mxfp4", 4}, Case{"nvfp4", 4}, Case{"mxfp6_e3m2", 6}, Case{"mxfp4", 16}, Case{"fp6_e3m2", 16}}) {
    const QuantRecipe r = make_recipe(c.weight, 0, c.a_bits, 0, 0, "");
    const int64_t out = 96, in = 576;
    QuantLinear lin(out, in, random_matrix(out, in));
    lin.set_quantized_weight(quantize(*r.weight, lin.weight_as_float().data(), out, in));
    if (r.activation) lin.set_activation_quant(ActivationQuant{*r.activation, std::nullopt});
    for (int64_t m : {1, 13, 130, 300}) {  // 300: W4A4 mxfp4 on the int8 route
      SCOPED_TRACE(fmt::format("{} M={}", r.name, m));
      const std::vector<float> x = random_matrix(m, in);
      std::vector<float> y_pseudo(size_t(m * out)), y_cuda(size_t(m * out), NAN);
      lin.set_backends("reference", "pseudo");
      lin.forward(x.data(), m, y_pseudo.data());
      lin.set_backends("cuda", "cuda");
      EXPECT_EQ(lin.resolved_backends().second, "cuda");
      lin.forward(x.data(), m, y_cuda.data());
      if (r.activation) EXPECT_EQ(mismatches(y_cuda, y_pseudo), 0) << "rel err " << rel_err(y_cuda, y_pseudo);
      else EXPECT_LT(rel_err(y_cuda, y_pseudo), 1e-6);
    }
  }
}

}  // namespace
}  // namespace fpq::cuda
