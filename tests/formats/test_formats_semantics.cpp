// Properties of the numerics core checked against independent float64 computations: generic EyMz decoding and
// brute-force nearest-even encoding, stochastic rounding, NaN/Inf handling, scale rules, thread independence.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "formats/element_type.h"
#include "formats/quantize.h"
#include "formats/quantized_io.h"
#include "test_support.h"
#include "util/error.h"
#include "util/half.h"
#include "util/parallel.h"

namespace fpq {
namespace {

// Independent decode: sign, exponent, mantissa fields by the textbook formula, in float64.
double textbook_value(int y, int z, Specials sp, uint32_t code) {
  const uint32_t mag = code & ((1u << (y + z)) - 1u);
  const bool neg = (code >> (y + z)) & 1u;
  const uint32_t e = mag >> z, m = mag & ((1u << z) - 1u);
  const int bias = (1 << (y - 1)) - 1;
  double v;
  if (sp == Specials::Ieee && e == (1u << y) - 1u) v = m ? NAN : INFINITY;
  else if (sp == Specials::Fn && mag == (1u << (y + z)) - 1u) v = NAN;
  else if (e == 0) v = m * std::pow(2.0, 1 - bias - z);
  else v = (1.0 + m / std::pow(2.0, z)) * std::pow(2.0, int(e) - bias);
  return neg ? -v : v;
}

TEST(GenericFloat, EveryEyMzDecodesByTheTextbookFormula) {
  int checked = 0;
  for (int y = 1; y <= 7; ++y)
    for (int z = 0; 1 + y + z <= 8; ++z) {
      const std::string name = "e" + std::to_string(y) + "m" + std::to_string(z);
      const ElementType& t = element_type(name);
      const Specials sp = t.specials;
      for (uint32_t c = 0; c < (1u << t.bits); ++c) {
        const double ref = textbook_value(y, z, sp, c);
        const float v = t.decode(c);
        if (std::isnan(ref)) EXPECT_TRUE(std::isnan(v)) << name << " " << c;
        else EXPECT_EQ(double(v), ref) << name << " code " << c;
      }
      ++checked;
    }
  EXPECT_EQ(checked, 28);
}

// Independent encode: nearest representable finite value by exhaustive search, ties to the even code
// (mantissa LSB 0), saturating at the largest finite value.
uint32_t brute_force_encode(const ElementType& t, float x) {
  uint32_t best = 0;
  double best_d = INFINITY;
  const double xd = std::clamp(double(x), -double(t.max_value), double(t.max_value));
  for (uint32_t c = 0; c < (1u << t.bits); ++c) {
    const double v = t.decode(c);
    if (!std::isfinite(v)) continue;
    const double d = std::fabs(v - xd);
    const bool same_sign_zero = v == 0 && std::signbit(v) != std::signbit(xd);
    if (same_sign_zero) continue;  // keep the sign of zero
    if (d < best_d || (d == best_d && (c & 1u) == 0 && (best & 1u) == 1)) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

TEST(GenericFloat, EncodingIsNearestEvenWithSaturationForEveryEyMz) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int y = 1; y <= 6; ++y)
    for (int z = 0; 1 + y + z <= 8; ++z) {
      const ElementType& t = element_type("e" + std::to_string(y) + "m" + std::to_string(z));
      SCOPED_TRACE(t.name);
      std::uniform_int_distribution<int> expo(floor_log2(t.max_value) - (1 << y) - z - 2, floor_log2(t.max_value) + 2);
      std::vector<float> pos;
      for (uint32_t c = 0; c < (1u << (t.bits - 1)); ++c)
        if (std::isfinite(t.decode(c))) pos.push_back(t.decode(c));
      std::sort(pos.begin(), pos.end());
      for (int i = 0; i < 20000; ++i) {
        float x = normal(rng) * std::ldexp(1.0f, expo(rng));
        if (i % 4 == 0) {  // an exact tie between neighbours
          const size_t k = rng() % (pos.size() - 1);
          x = (pos[k] + pos[k + 1]) * 0.5f * ((rng() & 1) ? 1.0f : -1.0f);
        }
        const uint32_t ours = t.encode(x), ref = brute_force_encode(t, x);
        if (ours != ref) {
          // Equal values (e.g. +0/-0 chosen differently) are fine; anything else is a bug.
          ASSERT_EQ(t.decode(ours), t.decode(ref)) << std::hexfloat << x;
        }
      }
    }
}

TEST(Rounding, StochasticIsUnbiasedBetweenNeighboursAndReproducible) {
  const uint64_t seed = test::fresh_seed();
  const ElementType& t = element_type("e2m1");
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 6.0f);
  for (int trial = 0; trial < 50; ++trial) {
    const float x = u(rng);
    std::vector<float> row(4096, x), out(4096);
    QuantizeOptions opt;
    opt.rounding = Rounding::Stochastic;
    opt.seed = rng();
    fake_quantize(parse_format("e2m1/none"), row.data(), 1, 4096, out.data(), opt);
    float lo = 0, hi = 6;
    for (uint32_t c = 0; c < 8; ++c) {
      const float v = t.decode(c);
      if (v <= x) lo = std::max(lo, v);
      if (v >= x) hi = std::min(hi, v);
    }
    double mean = 0;
    for (float v : out) {
      ASSERT_TRUE(v == lo || v == hi) << x << " -> " << v;
      mean += v;
    }
    mean /= 4096;
    const double p = hi > lo ? (x - lo) / (hi - lo) : 0;
    const double sd = (hi - lo) * std::sqrt(p * (1 - p) / 4096) + 1e-9;
    EXPECT_NEAR(mean, x, 5 * sd + 1e-6) << "x=" << x;
    std::vector<float> again(4096);
    fake_quantize(parse_format("e2m1/none"), row.data(), 1, 4096, again.data(), opt);
    EXPECT_EQ(out, again);
  }
}

TEST(Threads, ResultsAreBitIdenticalForAnyThreadCount) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(96 * 512));
  for (auto& v : x) v = normal(rng);
  QuantizeOptions opt;
  opt.rounding = Rounding::Stochastic;
  opt.seed = seed;
  const int saved = num_threads();
  for (const char* f : {"nvfp4", "mxfp4", "int4_asym", "e3m2/fp16/row/mse"}) {
    set_num_threads(1);
    const QuantizedTensor a = quantize(parse_format(f), x.data(), 96, 512, opt);
    set_num_threads(4);
    const QuantizedTensor b = quantize(parse_format(f), x.data(), 96, 512, opt);
    EXPECT_EQ(a.codes, b.codes) << f;
    EXPECT_EQ(a.scales, b.scales) << f;
    EXPECT_EQ(a.zeros, b.zeros) << f;
    EXPECT_EQ(a.global_scale, b.global_scale) << f;
  }
  set_num_threads(saved);
}

TEST(SpecialValues, NanOrInfPoisonsItsGroupOnly) {
  for (const char* f : {"mxfp4", "nvfp4", "mxfp8_e4m3", "int4", "q4_0", "q8_0", "fp6_e3m2"}) {
    SCOPED_TRACE(f);
    const Format fmt = parse_format(f);
    const int64_t cols = 128;
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      std::vector<float> x(size_t(2 * cols));
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i)) * 3.0f;
      x[5] = bad;  // row 0, first group
      const auto y = dequantize(quantize(fmt, x.data(), 2, cols));
      const int g = fmt.group_for(cols);
      for (int64_t i = 0; i < 2 * cols; ++i) {
        const bool in_poisoned_group = i < g;
        EXPECT_EQ(std::isnan(y[size_t(i)]), in_poisoned_group) << "index " << i;
      }
    }
  }
}

TEST(ScaleRules, MseAndFourOverSixNeverWorseThanAbsmax) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> heavy(3.0f);
  const int64_t rows = 64, cols = 256;
  std::vector<float> x(size_t(rows * cols));
  for (auto& v : x) v = heavy(rng);
  auto sse_per_group = [&](const Format& f, int group, const QuantizeOptions& opt = {}) {
    const auto y = dequantize(quantize(f, x.data(), rows, cols, opt));
    std::vector<double> e(size_t(rows * cols / group), 0.0);
    for (size_t i = 0; i < x.size(); ++i) e[i / size_t(group)] += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    return e;
  };
  // MSE search includes the absmax candidate (shrink 1.0), so per group it can only be better or equal.
  for (const char* base : {"int4/fp16/g32", "e2m1/fp16/g32", "e3m2/bf16/g64"}) {
    const Format a = parse_format(base);
    const Format m = with_options(a, std::nullopt, ScaleRule::Mse, std::nullopt);
    const auto ea = sse_per_group(a, a.group), em = sse_per_group(m, m.group);
    for (size_t i = 0; i < ea.size(); ++i) ASSERT_LE(em[i], ea[i] * (1 + 1e-12) + 1e-30) << base << " group " << i;
  }
  // Four-Over-Six picks per block the better of "map to 6" and "map to 4" under its own global scale
  // (amax / (6 * 256)), so compare it with plain NVFP4 block scales under that same global scale.
  const QuantizedTensor q46 = quantize(parse_format("nvfp4_4o6"), x.data(), rows, cols);
  QuantizeOptions same_global;
  same_global.global_scale = q46.global_scale.at(0);
  const auto e6 = sse_per_group(parse_format("nvfp4"), 16, same_global), e46 = sse_per_group(parse_format("nvfp4_4o6"), 16);
  int better = 0;
  for (size_t i = 0; i < e6.size(); ++i) {
    ASSERT_LE(e46[i], e6[i] * (1 + 1e-12) + 1e-30) << "block " << i;
    better += e46[i] < e6[i];
  }
  EXPECT_GT(better, 0);
}

TEST(Dequantize, FollowsTheDocumentedFormulaInFloat64) {
  // value = decode(code) * scale * global: for E2M1 x E4M3 the product code*scale is exact, so a float64
  // product rounded once to float32 must equal our float32 result.
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(8 * 64));
  for (auto& v : x) v = normal(rng);
  const QuantizedTensor q = quantize(parse_format("nvfp4"), x.data(), 8, 64);
  const auto y = dequantize(q);
  const ElementType& e2m1 = element_type("e2m1");
  for (int64_t r = 0; r < 8; ++r)
    for (int64_t c = 0; c < 64; ++c) {
      const double ref = double(e2m1.decode(q.code(r, c))) * double(q.scale(r, c / 16)) * double(q.global_scale[0]);
      EXPECT_EQ(y[size_t(r * 64 + c)], float(ref));
    }
}

TEST(Asymmetric, ZeroIsExactAndRangeIsCovered) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-0.5f, 3.0f);
  std::vector<float> x(size_t(4 * 128));
  for (auto& v : x) v = u(rng);
  x[7] = 0.0f;
  const auto y = dequantize(quantize(parse_format("int4_asym"), x.data(), 4, 128));
  EXPECT_EQ(y[7], 0.0f);
  double max_err = 0;
  for (size_t i = 0; i < x.size(); ++i) max_err = std::max(max_err, std::fabs(double(y[i]) - x[i]));
  EXPECT_LT(max_err, 3.5 / 15 * 0.5 * 1.01);  // half a step of (max - min) / 15
}

TEST(Bf16Input, EqualsFloat32InputOfTheSameValues) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<uint16_t> xb(size_t(4 * 64));
  std::vector<float> xf(xb.size());
  for (size_t i = 0; i < xb.size(); ++i) {
    xb[i] = f32_to_bf16(normal(rng));
    xf[i] = bf16_to_f32(xb[i]);
  }
  const auto a = quantize_bf16(parse_format("mxfp4"), xb.data(), 4, 64);
  const auto b = quantize(parse_format("mxfp4"), xf.data(), 4, 64);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
}

TEST(Formats, SpellingsRoundTripAndBadInputIsRejected) {
  for (const auto& info : format_table()) EXPECT_EQ(parse_format(info.format.spec()).spec(), info.name);
  const Format f = parse_format("e3m2/fp16/row");
  EXPECT_EQ(f.element->name, "e3m2");
  EXPECT_EQ(parse_format(f.spec()).spec(), f.spec());
  const Format g = with_options(parse_format("nvfp4"), 32, std::nullopt, std::nullopt);
  EXPECT_EQ(parse_format(g.spec()).group, 32);
  EXPECT_THROW(parse_format("nvfp5"), Error);
  EXPECT_THROW(parse_format("e9m9/fp16/g32"), Error);
  EXPECT_THROW(parse_format("e2m1/fp16/g32/mx"), Error);   // the mx rule needs an e8m0 scale
  EXPECT_THROW(parse_format("e3m2/e4m3/g16/4o6"), Error);  // four-over-six is for e2m1
  EXPECT_THROW(parse_format("e2m1/fp16/g7"), Error);       // 7 x 4 bits is not whole bytes
  EXPECT_THROW(with_options(parse_format("q4_0"), 64, std::nullopt, std::nullopt), Error);
  EXPECT_THROW(check_format_cols(parse_format("mxfp4"), 48), Error);
  std::vector<float> x(48, 1.0f);
  EXPECT_THROW(quantize(parse_format("mxfp4"), x.data(), 1, 48), Error);
}

TEST(QuantizedIo, SafetensorsRoundTripIsLossless) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(6 * 256));
  for (auto& v : x) v = normal(rng);
  test::TempDir dir;
  for (const auto& info : format_table()) {
    const QuantizedTensor q = quantize(info.format, x.data(), 6, 256);
    save_quantized(dir / "q.safetensors", q, {2, 3, 256});
    std::vector<int64_t> shape;
    const QuantizedTensor back = load_quantized(dir / "q.safetensors", &shape);
    EXPECT_EQ(shape, (std::vector<int64_t>{2, 3, 256}));
    EXPECT_EQ(back.format.spec(), info.name);
    EXPECT_EQ(back.codes, q.codes) << info.name;
    EXPECT_EQ(back.scales, q.scales) << info.name;
    EXPECT_EQ(back.zeros, q.zeros) << info.name;
    EXPECT_EQ(back.global_scale, q.global_scale) << info.name;
  }
}

}  // namespace
}  // namespace fpq
