// The quantized linear module: the pseudo path against a float64 product of the dequantized operands, state
// round trips, and backend routing (explicit unknown or unavailable choices are refused with a clear error).
#include <gtest/gtest.h>

#include <random>

#include "formats/quantize.h"
#include "model/linear.h"
#include "model/quant_recipe.h"
#include "test_support.h"
#include "util/error.h"

namespace fpq {
namespace {

std::vector<float> randn(size_t n, std::mt19937_64& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<double> matmul_f64(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n, int64_t k) {
  std::vector<double> y(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t t = 0; t < k; ++t) s += double(x[size_t(i * k + t)]) * double(w[size_t(j * k + t)]);
      y[size_t(i * n + j)] = s;
    }
  return y;
}

double rel(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

TEST(QuantLinear, UnquantizedWithBiasMatchesFloat64) {
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t m = 5, n = 24, k = 64;
  auto w = randn(size_t(n * k), rng), b = randn(size_t(n), rng), x = randn(size_t(m * k), rng);
  QuantLinear l(n, k, w, b);
  std::vector<float> y(size_t(m * n));
  l.forward(x.data(), m, y.data());
  auto ref = matmul_f64(x, w, m, n, k);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) ref[size_t(i * n + j)] += b[size_t(j)];
  EXPECT_LT(rel(y, ref), 1e-6);
}

TEST(QuantLinear, PseudoPathIsTheProductOfDequantizedOperands) {
  std::mt19937_64 rng(test::fresh_seed());
  for (const char* fmt : {"nvfp4", "mxfp4", "mxfp6_e3m2", "q4_0"}) {
    SCOPED_TRACE(fmt);
    const int64_t m = 7, n = 40, k = 128;
    auto w = randn(size_t(n * k), rng, 0.05f), x = randn(size_t(m * k), rng);
    const QuantRecipe r = make_recipe(fmt, 0, 8, 0, 0, std::string(fmt) == "q4_0" ? "" : "fp8_e4m3");
    QuantLinear l(n, k, w);
    l.set_quantized_weight(quantize(*r.weight, w.data(), n, k));
    l.set_activation_quant(ActivationQuant{*r.activation, std::nullopt});
    l.set_backends("reference", "pseudo");
    std::vector<float> y(size_t(m * n));
    l.forward(x.data(), m, y.data());
    const auto xd = dequantize(quantize(*r.activation, x.data(), m, k));
    const auto wd = dequantize(*l.quantized_weight());
    EXPECT_LT(rel(y, matmul_f64(xd, wd, m, n, k)), 1e-6);
  }
}

TEST(QuantLinear, StateRoundTripIsLossless) {
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t m = 3, n = 32, k = 64;
  auto w = randn(size_t(n * k), rng, 0.1f), b = randn(size_t(n), rng), x = randn(size_t(m * k), rng);
  QuantLinear l(n, k, w, b);
  l.set_quantized_weight(quantize(parse_format("nvfp4"), w.data(), n, k));
  l.set_activation_quant(ActivationQuant{activation_variant(parse_format("nvfp4")), 0.0123f});
  std::vector<float> y0(size_t(m * n));
  l.forward(x.data(), m, y0.data());
  test::TempDir dir;
  write_safetensors(dir / "l.safetensors", l.state_tensors("layer."));
  SafetensorsFile f(dir / "l.safetensors");
  const QuantLinear back = QuantLinear::from_state(l.state_config(), f, "layer.");
  EXPECT_EQ(back.quantized_weight()->codes, l.quantized_weight()->codes);
  EXPECT_EQ(back.quantized_weight()->scales, l.quantized_weight()->scales);
  EXPECT_EQ(back.quantized_weight()->global_scale, l.quantized_weight()->global_scale);
  EXPECT_EQ(back.bias(), l.bias());
  EXPECT_EQ(*back.activation_quant()->global_scale, 0.0123f);
  EXPECT_EQ(back.state_config(), l.state_config());
  std::vector<float> y1(size_t(m * n));
  back.forward(x.data(), m, y1.data());
  EXPECT_EQ(y0, y1);
}

TEST(QuantLinear, ExplicitBackendChoicesAreHonouredOrRefused) {
  std::mt19937_64 rng(test::fresh_seed());
  auto w = randn(16 * 32, rng);
  QuantLinear l(16, 32, w);
  l.set_backends("", "no-such-backend");
  std::vector<float> x(32, 1.0f), y(16);
  try {
    l.forward(x.data(), 1, y.data());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown matmul backend 'no-such-backend'"), std::string::npos) << e.what();
  }
  l.set_backends("", "pseudo");
  l.forward(x.data(), 1, y.data());
  EXPECT_EQ(l.resolved_backends().second, "pseudo");
}

// The CPU kernels' two summations as backends: "real" (exact, the default) gives the pseudo path's bits,
// "real-fast" (float32 group sums) is only chosen by name and agrees to float32 rounding.
TEST(QuantLinear, RealBackendsExactByDefaultFastByName) {
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t m = 9, n = 40, k = 4096;  // long K: many groups, several K blocks of the kernels
  auto w = randn(size_t(n * k), rng, 0.05f), x = randn(size_t(m * k), rng);
  QuantLinear l(n, k, w);
  const Format f = parse_format("nvfp4");
  l.set_quantized_weight(quantize(f, w.data(), n, k));
  l.set_activation_quant(ActivationQuant{activation_variant(f), std::nullopt});
  std::vector<float> yp(size_t(m * n)), yr(yp.size()), yf(yp.size());
  l.set_backends("real", "pseudo");
  l.forward(x.data(), m, yp.data());
  l.set_backends("real", "");
  l.forward(x.data(), m, yr.data());
  if (l.resolved_backends().second != "real") GTEST_SKIP() << "no real CPU kernels in this build";
  EXPECT_EQ(yr, yp) << "exact sums: the pseudo path's bits";
  l.set_backends("real", "real-fast");
  l.forward(x.data(), m, yf.data());
  EXPECT_EQ(l.resolved_backends().second, "real-fast");
  const std::vector<double> yd(yp.begin(), yp.end());
  EXPECT_LT(rel(yf, yd), 1e-6);
}

TEST(QuantRecipes, NaturalActivationFormats) {
  EXPECT_EQ(make_recipe("nvfp4", 4, 4).activation->global, GlobalScale::PerRow);
  EXPECT_EQ(make_recipe("nvfp", 4, 4).weight->name, "nvfp4");
  EXPECT_EQ(make_recipe("mxfp", 4, 4).activation->name, "mxfp4");
  EXPECT_EQ(make_recipe("mxfp6_e3m2", 6, 6).activation->name, "mxfp6_e2m3");
  EXPECT_EQ(make_recipe("q4_0", 4, 8).activation->name, "q8_1");
  EXPECT_FALSE(make_recipe("fp6_e3m2", 6, 16).activation.has_value());
  EXPECT_THROW(make_recipe("nvfp4", 8, 4), Error);
  EXPECT_THROW(make_recipe("q4_0", 4, 4), Error);
  EXPECT_THROW(make_recipe("mxfp4", 4, 5), Error);
}

}  // namespace
}  // namespace fpq
