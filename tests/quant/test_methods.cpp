// RTN observers (the format-aware MSE scale search), Four-Over-Six (the paper's definition, via a numpy
// re-implementation; never worse than plain NVFP4 block scales under the same global scale), ARCQuant
// (reorder + residual channels: structure and accuracy on outlier-heavy data), the per-layer error report.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <string>

#include "formats/format.h"
#include "quant/arc.h"
#include "quant/hessian.h"
#include "quant/method.h"
#include "quant/report.h"
#include "quant/rtn.h"
#include "quant_test_data.h"
#include "util/error.h"
#include "test_support.h"

namespace fpq::quant {
namespace {

using test::TempDir;
using namespace testdata;

std::vector<double> sse_per_group(const std::vector<float>& x, const std::vector<float>& y, int group) {
  std::vector<double> e(x.size() / size_t(group), 0.0);
  for (size_t i = 0; i < x.size(); ++i) e[i / size_t(group)] += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
  return e;
}

double total(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

TEST(Rtn, FormatRuleIsFpqQuantize) {
  const uint64_t seed = test::fresh_seed();
  const auto w = heavy_w(16, 128, seed);
  for (const char* name : {"nvfp4", "mxfp4", "int4", "q4_0"}) {
    const Format f = parse_format(name);
    const auto a = rtn_quantize(f, w.data(), 16, 128), b = quantize(f, w.data(), 16, 128);
    EXPECT_EQ(a.codes, b.codes) << name;
    EXPECT_EQ(a.scales, b.scales) << name;
  }
}

TEST(Rtn, MseSearchNeverWorsePerGroup) {
  const uint64_t seed = test::fresh_seed();
  const int64_t rows = 32, cols = 256;
  const auto w = heavy_w(rows, cols, seed, 3.0f);
  for (const char* name : {"mxfp4", "nvfp4", "nvfp4_4o6", "int4/fp16/g32", "mxfp6_e2m3", "e2m1/e8m0/g32", "fp4_e2m1"}) {
    const Format f = parse_format(name);
    RtnOptions mse;
    mse.scale_search = ScaleSearch::Mse;
    const auto qa = rtn_quantize(f, w.data(), rows, cols), qm = rtn_quantize(f, w.data(), rows, cols, mse);
    EXPECT_EQ(qa.global_scale, qm.global_scale) << name;
    const int g = f.group_for(cols);
    const auto ea = sse_per_group(w, dequantize(qa), g), em = sse_per_group(w, dequantize(qm), g);
    int better = 0;
    for (size_t i = 0; i < ea.size(); ++i) {
      ASSERT_LE(em[i], ea[i] * (1 + 1e-12) + 1e-30) << name << " group " << i;
      better += em[i] < ea[i];
    }
    EXPECT_GT(better, 0) << name;
    std::printf("[info] %-14s squared error: format rule %.4e  MSE search %.4e  (%d of %zu groups better)\n", name, total(ea),
                total(em), better, ea.size());
  }
  // Asymmetric formats fall back to their own rule.
  RtnOptions mse;
  mse.scale_search = ScaleSearch::Mse;
  const Format fa = parse_format("int4_asym");
  EXPECT_EQ(rtn_quantize(fa, w.data(), rows, cols, mse).codes, quantize(fa, w.data(), rows, cols).codes);
}

TEST(FourOverSix, MatchesThePaperDefinition) {
  const uint64_t seed = test::fresh_seed();
  const int64_t rows = 48, cols = 256;
  // activation-like (outlier channels) and weight-like inputs
  for (int which = 0; which < 2; ++which) {
    const auto x = which == 0 ? correlated_x(rows, cols, seed, 3, 20.0f) : heavy_w(rows, cols, seed, 3.0f);
    const QuantizedTensor q = quantize(parse_format("nvfp4_4o6"), x.data(), rows, cols);
    float amax = 0;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    ASSERT_EQ(q.global_scale.size(), 1u);
    EXPECT_EQ(q.global_scale[0], amax / (6.0f * 256.0f));
    TempDir dir;
    save(dir / "x.npy", x, {rows, cols});
    test::run_python_ref("quant_4o6_ref.py", {(dir / "x.npy").string(), (dir / "s.npy").string(), (dir / "d.npy").string()});
    const auto rs = load(dir / "s.npy"), rd = load(dir / "d.npy");
    const auto d = dequantize(q);
    size_t scale_diff = 0, value_diff = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < cols / 16; ++b) scale_diff += q.scale(r, b) != rs[size_t(r * (cols / 16) + b)];
    for (size_t i = 0; i < d.size(); ++i) value_diff += std::fabs(d[i] - rd[i]) > 1e-6f * std::fabs(rd[i]) + 1e-30f;
    // The paper's code forms block_amax * 256 / amax where fpq forms block_amax / 6 / g: the float32 results can
    // differ by an ulp, which changes an E4M3 / E2M1 rounding only at an exact tie: allow 1 in 1000.
    EXPECT_LE(double(scale_diff), 1e-3 * double(rows * cols / 16)) << which;
    EXPECT_LE(double(value_diff), 1e-3 * double(d.size())) << which;
  }
}

TEST(FourOverSix, NeverWorseThanNvfp4PerBlock) {
  const uint64_t seed = test::fresh_seed();
  const int64_t rows = 64, cols = 512;
  for (int which = 0; which < 2; ++which) {
    const auto x = which == 0 ? correlated_x(rows, cols, seed, 3, 20.0f) : heavy_w(rows, cols, seed, 3.0f);
    const QuantizedTensor q46 = quantize(parse_format("nvfp4_4o6"), x.data(), rows, cols);
    QuantizeOptions same;
    same.global_scale = q46.global_scale[0];
    const auto e46 = sse_per_group(x, dequantize(q46), 16);
    const auto e6 = sse_per_group(x, dequantize(quantize(parse_format("nvfp4"), x.data(), rows, cols, same)), 16);
    const auto estd = sse_per_group(x, dequantize(quantize(parse_format("nvfp4"), x.data(), rows, cols)), 16);
    int four = 0;
    for (size_t i = 0; i < e46.size(); ++i) {
      ASSERT_LE(e46[i], e6[i] * (1 + 1e-12) + 1e-30) << "block " << i;
      four += e46[i] < e6[i];
    }
    EXPECT_GT(four, 0);
    // and over the tensor, better than standard NVFP4 (global amax / (6 * 448))
    EXPECT_LT(total(e46), total(estd)) << which;
    std::printf("[info] %s: NVFP4 squared error %.4e, 4o6 %.4e (%d of %zu blocks mapped to 4)\n",
                which == 0 ? "activations" : "weights", total(estd), total(e46), four, e46.size());
  }
}

// ---- ARCQuant -------------------------------------------------------------------------------------------

struct ArcData {
  int64_t m = 256, n = 64, k = 256;
  std::vector<float> x, w;
};

ArcData arc_data(uint64_t seed) {
  ArcData d;
  d.x = correlated_x(d.m, d.k, seed, 6, 30.0f);
  std::mt19937_64 rng(seed + 5);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  d.w.resize(size_t(d.n * d.k));
  for (auto& v : d.w) v = nd(rng);
  return d;
}

TEST(Arc, PlanFromChannelStats) {
  const uint64_t seed = test::fresh_seed();
  const ArcData d = arc_data(seed);
  ChannelStats st(d.k);
  st.add_rows(d.x.data(), d.m);
  const Format f = parse_format("nvfp4");
  const ArcPlan p = arc_plan(st, f);
  ASSERT_EQ(int64_t(p.perm.size()), d.k);
  for (int64_t i = 1; i < d.k; ++i) EXPECT_LE(st.absmax()[size_t(p.perm[size_t(i - 1)])], st.absmax()[size_t(p.perm[size_t(i)])]);
  std::vector<int32_t> sorted = p.perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < d.k; ++i) ASSERT_EQ(sorted[size_t(i)], i);
  EXPECT_EQ(p.residual, arc_residual_count(d.k, st.outlier_fraction(), 64, 16));
  EXPECT_EQ(p.residual % 64, 0);
  EXPECT_EQ(int64_t(p.residual_channels.size()), p.residual);
  EXPECT_EQ(p.k_aug(), d.k + p.residual);
  EXPECT_EQ(arc_residual_count(4096, 0.01, 64, 16), 64);
  EXPECT_EQ(arc_residual_count(4096, 0.0157, 64, 16), 128);
  EXPECT_EQ(arc_residual_count(4096, 0.0, 64, 16), 0);
  EXPECT_EQ(arc_residual_count(256, 1.0, 64, 16), 256);
  EXPECT_THROW(arc_plan(st.absmax(), 24, f), Error);  // not a multiple of the group
  // the outlier channels carry the residual
  const auto ch = p.residual_channels;
  for (int32_t c : ch) EXPECT_GE(st.absmax()[size_t(c)], st.absmax()[size_t(p.perm[0])]);
}

TEST(Arc, AugmentedTensorsHaveTheDocumentedStructure) {
  const uint64_t seed = test::fresh_seed();
  const ArcData d = arc_data(seed);
  ChannelStats st(d.k);
  st.add_rows(d.x.data(), d.m);
  for (const char* name : {"nvfp4", "mxfp4"}) {
    const Format f = parse_format(name);
    ArcOptions o;
    o.residual_channels = 64;
    o.weight_residual = true;  // both kinds: [x_p | r_x | x_top] and [W_p | W_top | r_w]
    const ArcPlan p = arc_plan(st, f, o);
    const int64_t k = d.k, R = 64, ka = p.k_aug();
    ASSERT_EQ(ka, k + 2 * R);
    std::vector<float> xp(d.x.size()), wp(d.w.size());
    arc_reorder_rows(p, d.x.data(), d.m, xp.data());
    arc_reorder_rows(p, d.w.data(), d.n, wp.data());
    // activations
    const QuantizedTensor qa = arc_quantize_activations(p, f, d.x.data(), d.m);
    const QuantizedTensor qx = quantize(f, xp.data(), d.m, k);
    EXPECT_EQ(qa.global_scale, qx.global_scale) << name;
    const auto da = dequantize(qa), dx = dequantize(qx);
    // residual channel j carries r = x_p[top j] - q(x_p)[top j], quantized in its own groups, same global scale
    std::vector<float> res(size_t(d.m * R));
    for (int64_t r = 0; r < d.m; ++r)
      for (int64_t j = 0; j < R; ++j) res[size_t(r * R + j)] = xp[size_t(r * k + k - R + j)] - dx[size_t(r * k + k - R + j)];
    QuantizeOptions same;
    if (!qx.global_scale.empty()) same.global_scale = qx.global_scale[0];
    const auto dres = dequantize(quantize(f, res.data(), d.m, R, same));
    double rn = 0, re = 0;
    for (int64_t r = 0; r < d.m; ++r) {
      for (int64_t c = 0; c < k; ++c) ASSERT_EQ(da[size_t(r * ka + c)], dx[size_t(r * k + c)]) << name;
      for (int64_t j = 0; j < R; ++j) {
        ASSERT_EQ(da[size_t(r * ka + k + j)], dres[size_t(r * R + j)]) << name;
        ASSERT_EQ(da[size_t(r * ka + k + R + j)], dx[size_t(r * k + k - R + j)]) << name;  // q(x_top) duplicate
        const double e = double(dres[size_t(r * R + j)]) - res[size_t(r * R + j)];
        re += e * e;
        rn += double(res[size_t(r * R + j)]) * res[size_t(r * R + j)];
      }
    }
    EXPECT_LT(std::sqrt(re / rn), 0.25) << name << ": the residual is itself quantized to 4-bit accuracy";
    // weights
    const QuantizedTensor qw = arc_quantize_weight(f, d.w.data(), d.n, p);
    const auto dw = dequantize(qw), dwp = dequantize(quantize(f, wp.data(), d.n, k));
    for (int64_t r = 0; r < d.n; ++r)
      for (int64_t c = 0; c < k; ++c) {
        ASSERT_EQ(dw[size_t(r * ka + c)], dwp[size_t(r * k + c)]) << name;
        if (c >= k - R) {
          ASSERT_EQ(dw[size_t(r * ka + c + R)], dwp[size_t(r * k + c)]) << name;
        }
      }
    // reordering alone preserves the product
    double num = 0, den = 0;
    for (int64_t a = 0; a < d.m; ++a)
      for (int64_t b = 0; b < d.n; ++b) {
        double y = 0, yp = 0;
        for (int64_t c = 0; c < k; ++c) {
          y += double(d.x[size_t(a * k + c)]) * d.w[size_t(b * k + c)];
          yp += double(xp[size_t(a * k + c)]) * wp[size_t(b * k + c)];
        }
        num += (y - yp) * (y - yp);
        den += y * y;
      }
    EXPECT_LT(std::sqrt(num / den), 1e-12);
  }
}

TEST(Arc, ResidualChannelsReduceTheOutputError) {
  const uint64_t seed = test::fresh_seed();
  const ArcData d = arc_data(seed);
  ChannelStats st(d.k);
  st.add_rows(d.x.data(), d.m);
  for (const char* name : {"nvfp4", "mxfp4"}) {
    const Format f = parse_format(name);
    // plain W4A4 without ARC
    const auto xq = dequantize(quantize(f, d.x.data(), d.m, d.k));
    const auto wq = dequantize(quantize(f, d.w.data(), d.n, d.k));
    const LayerError plain = layer_output_error(d.x.data(), d.m, d.k, d.w.data(), d.n, xq.data(), wq.data(), d.k);
    double prev = INFINITY;
    for (int64_t R : {0, 64, 128}) {
      ArcOptions o;
      o.residual_channels = R;
      const ArcPlan p = arc_plan(st, f, o);
      const auto xa = dequantize(arc_quantize_activations(p, f, d.x.data(), d.m));
      const auto wa = dequantize(arc_quantize_weight(f, d.w.data(), d.n, p));
      const LayerError e = layer_output_error(d.x.data(), d.m, d.k, d.w.data(), d.n, xa.data(), wa.data(), p.k_aug());
      std::printf("[info] %s W4A4: plain %.4f, ARC with %3lld residual channels %.4f\n", name, plain.rel_error,
                  (long long)R, e.rel_error);
      if (R > 0) {
        // Residual channels lower the error of the reordered layer; past the outlier channels (R = 128 here) the
        // gain is nil and single draws land a hair either side (1e-4 relative), hence the margin.
        EXPECT_LT(e.rel_error, R == 64 ? prev : prev * 1.001) << name << " R=" << R;
        // Against plain quantization: MXFP4's 32-wide power-of-two groups gain a lot (0.14 vs 0.20). NVFP4's
        // 16-wide E4M3-scaled groups already isolate outliers, and gathering the outlier channels into one group
        // (the reorder) costs more than the residual channels win back on some draws (~2%: up to 1.25x plain);
        // on the real model ARC beats RTN at NVFP4 W4A4 (docs/RESULTS.md), so here only MXFP4 is held to it.
        if (std::string(name) == "mxfp4") {
          EXPECT_LT(e.rel_error, plain.rel_error) << name << " R=" << R;
        }
      }
      prev = e.rel_error;
    }
    // weight-only (W4A16) with weight residual channels
    ArcOptions o;
    o.residual_channels = 64;
    o.activation_residual = false;
    o.weight_residual = true;
    const ArcPlan p = arc_plan(st, f, o);
    std::vector<float> xa(size_t(d.m * p.k_aug()));
    arc_augment_activations(p, f, d.x.data(), d.m, xa.data());
    const auto wa = dequantize(arc_quantize_weight(f, d.w.data(), d.n, p));
    const LayerError ew = layer_output_error(d.x.data(), d.m, d.k, d.w.data(), d.n, xa.data(), wa.data(), p.k_aug());
    const LayerError er = layer_output_error(d.x.data(), d.m, d.k, d.w.data(), d.n, quantize(f, d.w.data(), d.n, d.k));
    std::printf("[info] %s W4A16: RTN %.4f, ARC weight residual %.4f\n", name, er.rel_error, ew.rel_error);
    EXPECT_LT(ew.rel_error, er.rel_error) << name;
  }
}

// What the quantized linear module computes with a QuantizedLinearWeights: transform or ARC-augment x,
// quantize it with the activation format (when given), multiply by the dequantized weight.
LayerError module_error(const QuantizedLinearWeights& q, const std::vector<float>& x, const std::vector<float>& w, int64_t m,
                        int64_t n, int64_t k) {
  std::vector<float> xa;
  int64_t ka = k;
  if (q.arc) {
    ka = q.arc->k_aug();
    xa.resize(size_t(m * ka));
    arc_augment_activations(*q.arc, q.activation_format ? *q.activation_format : q.weight_format, x.data(), m, xa.data());
  } else {
    xa = x;
    if (q.transform) q.transform->forward(xa.data(), m);
  }
  if (q.activation_format) fake_quantize(*q.activation_format, xa.data(), m, ka, xa.data());
  const auto wq = dequantize(q.weight);
  return layer_output_error(x.data(), m, k, w.data(), n, xa.data(), wq.data(), ka);
}

TEST(Methods, EveryMethodThroughOneEntryPoint) {
  const uint64_t seed = test::fresh_seed();
  const int64_t m = 384, n = 48, k = 256;
  const auto x = correlated_x(m, k, seed, 4, 25.0f);
  const auto w = heavy_w(n, k, seed + 1, 3.0f);
  EXPECT_EQ(parse_method("mr-gptq"), Method::MrGptq);
  EXPECT_EQ(parse_method("4o6"), Method::FourOverSix);
  EXPECT_THROW(parse_method("awq"), Error);
  for (const char* fname : {"nvfp4", "mxfp4"}) {
    const Format f = parse_format(fname);
    for (bool w4a4 : {false, true}) {
      const std::optional<Format> af = w4a4 ? std::optional<Format>(f) : std::nullopt;
      std::map<std::string, double> err;
      for (Method meth : {Method::Rtn, Method::Gptq, Method::MrGptq, Method::FourOverSix, Method::Arc}) {
        if (meth == Method::FourOverSix && f.scale != ScaleType::E4M3) {
          EXPECT_THROW(quantize_linear_weights(w.data(), n, k, f, af, nullptr, method_defaults(meth)), Error);
          continue;
        }
        LayerCalibration cal(k, meth);
        cal.add_rows(x.data(), m / 2);
        cal.add_rows(x.data() + (m / 2) * k, m - m / 2);
        if (meth == Method::Gptq || meth == Method::MrGptq) {
          EXPECT_THROW(quantize_linear_weights(w.data(), n, k, f, af, nullptr, method_defaults(meth)), Error);
        }
        const QuantizedLinearWeights q = quantize_linear_weights(w.data(), n, k, f, af, &cal, method_defaults(meth));
        EXPECT_EQ(q.transform.has_value(), meth == Method::MrGptq);
        EXPECT_EQ(q.arc.has_value(), meth == Method::Arc);
        err[std::string(method_name(meth))] = module_error(q, x, w, m, n, k).rel_error;
      }
      std::string line;
      for (const auto& [name, e] : err) line += " " + name + " " + std::to_string(e);
      std::printf("[info] %s %s:%s\n", fname, w4a4 ? "W4A4" : "W4A16", line.c_str());
      // Weight-only, the calibration rows are the evaluation rows: MR-GPTQ and ARC lower the layer's output error
      // (over 100 seeds at most 0.19x / 0.39x RTN's); GPTQ nearly always (0.96x at most over 100 seeds, 1.007x
      // once in 250 at NVFP4 on these heavy-tailed weights, so a 2% margin here; Gptq.BelowRtnOnCorrelatedInputs
      // checks it strictly on inputs where it always holds). With 4-bit activations
      // the error measured includes the activations' own rounding, which GPTQ's Hessian does not see and which a
      // rotation or residual channels can make worse for some draws (NVFP4 W4A4: MR-GPTQ up to 1.5x, ARC 1.12x
      // RTN's on single seeds); there the best of them must still beat RTN and none may be far off.
      if (!w4a4) {
        EXPECT_LT(err["gptq"], 1.02 * err["rtn"]) << fname;
        EXPECT_LT(err["mr-gptq"], err["rtn"]) << fname;
        EXPECT_LT(err["arc"], err["rtn"]) << fname;
      } else {
        EXPECT_LT(std::min({err["gptq"], err["mr-gptq"], err["arc"]}), err["rtn"]) << fname;
        for (const char* meth : {"gptq", "mr-gptq", "arc"}) EXPECT_LT(err[meth], 2.0 * err["rtn"]) << fname << " " << meth;
      }
      if (f.scale == ScaleType::E4M3) {
        // 4o6 lowers the weight's squared error block by block (FourOverSix tests); the layer output error on
        // a few hundred rows is only expected to be about as good (up to 1.16x RTN's over 100 seeds).
        EXPECT_LT(err["4o6"], 1.3 * err["rtn"]) << fname;
      }
    }
  }
}

TEST(Methods, FusedGlobalScaleIsTheLargest) {
  const uint64_t seed = test::fresh_seed();
  const int64_t k = 64;
  auto a = heavy_w(8, k, seed), b = heavy_w(16, k, seed + 1);
  b[3] = 5.0f;
  const Format f = parse_format("nvfp4");
  const float g = fused_weight_global_scale(f, {a.data(), b.data()}, {8, 16}, k);
  EXPECT_EQ(g, global_scales_for(f, b.data(), 16, k)[0]);
  EXPECT_THROW(fused_weight_global_scale(parse_format("mxfp4"), {a.data()}, {8}, k), Error);
}

TEST(Report, LayerErrorAndTable) {
  const int64_t m = 8, n = 5, k = 32;
  std::vector<float> x(size_t(m * k)), w(size_t(n * k));
  std::mt19937_64 rng(3);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng);
  const LayerError same = layer_output_error(x.data(), m, k, w.data(), n, nullptr, w.data(), k);
  EXPECT_EQ(same.rel_error, 0.0);
  EXPECT_TRUE(std::isinf(same.sqnr_db));
  auto w2 = w;
  for (auto& v : w2) v *= 1.1f;
  const LayerError e = layer_output_error(x.data(), m, k, w.data(), n, nullptr, w2.data(), k);
  EXPECT_NEAR(e.rel_error, 0.1, 1e-5);
  EXPECT_NEAR(e.sqnr_db, 20.0, 1e-3);
  LayerReport rep;
  rep.add("layers.0.q_proj", "gptq", e, 1.5);
  rep.add("layers.0.k_proj", "gptq", same, 0.5);
  const std::string md = rep.markdown();
  EXPECT_NE(md.find("layers.0.q_proj"), std::string::npos);
  EXPECT_NEAR(rep.mean_rel_error(), 0.05, 1e-5);
  EXPECT_THROW(layer_output_error(x.data(), m, k, w.data(), n, nullptr, w.data(), k + 1), Error);
}

}  // namespace
}  // namespace fpq::quant
