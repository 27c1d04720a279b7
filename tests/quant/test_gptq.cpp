// GPTQ against an independent numpy implementation (tests/ref/quant_gptq_ref.py) for int4 groupwise, MXFP4 and
// NVFP4, with and without act order / static groups and with dead input channels; GPTQ below RTN in layer output
// error on correlated inputs for many formats; GPTQ with H = I reproduces fpq::quantize byte for byte (so the
// group codec matches the formats layer for every format); MR-GPTQ below GPTQ on MXFP4 with heavy-tailed weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "formats/format.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "quant/report.h"
#include "quant/rtn.h"
#include "quant_test_data.h"
#include "util/error.h"
#include "test_support.h"
#include "util/parallel.h"

namespace fpq::quant {
namespace {

using test::TempDir;
using namespace testdata;

struct Layer {
  int64_t m, n, k;
  std::vector<float> x, w;
  std::vector<double> h;
};

// Correlated inputs with a few outlier channels and `dead` all-zero input channels; heavy-tailed weights.
Layer make_layer(int64_t m, int64_t n, int64_t k, uint64_t seed, int dead = 0, float dof = 4.0f) {
  Layer L{m, n, k, correlated_x(m, k, seed, 2, 8.0f), heavy_w(n, k, seed + 1, dof), {}};
  for (int d = 0; d < dead; ++d) {
    const int64_t c = (int64_t(seed % 97) + 37 * d) % k;
    for (int64_t r = 0; r < m; ++r) L.x[size_t(r * k + c)] = 0.0f;
  }
  Hessian h(k);
  h.add_rows(L.x.data(), m);
  L.h = h.matrix();
  return L;
}

TEST(Gptq, MatchesNumpyReference) {
  const uint64_t seed = test::fresh_seed();
  struct Case {
    const char* ref;
    const char* format;
    bool act_order, static_groups;
    int block;
  };
  const Case cases[] = {
      {"int4_g32", "int4/fp16/g32", false, false, 128},
      {"int4_g32", "int4/fp16/g32", true, false, 48},  // act order (static groups); block 48 -> 64
      {"mxfp4", "mxfp4", false, false, 128},
      {"mxfp4", "mxfp4", true, false, 128},
      {"nvfp4", "nvfp4", false, true, 64},
      {"nvfp4", "nvfp4", false, false, 128},
  };
  const int64_t m = 512, n = 40, k = 256;
  const Layer L = make_layer(m, n, k, seed, 3);
  // Both sides use the same float32-rounded Hessian.
  std::vector<float> h32(L.h.size());
  std::vector<double> hd(L.h.size());
  for (size_t i = 0; i < h32.size(); ++i) {
    h32[i] = float(L.h[i]);
    hd[i] = double(h32[i]);
  }
  TempDir dir;
  save(dir / "w.npy", L.w, {n, k});
  save(dir / "h.npy", h32, {k, k});
  for (const auto& c : cases) {
    const std::string tag = std::string(c.format) + (c.act_order ? " act-order" : "") + (c.static_groups ? " static" : "") +
                            " block " + std::to_string(c.block);
    test::run_python_ref("quant_gptq_ref.py", {c.ref, (dir / "w.npy").string(), (dir / "h.npy").string(),
                                               (dir / "q.npy").string(), std::to_string(c.block), "0.01",
                                               c.act_order ? "1" : "0", c.static_groups ? "1" : "0"});
    const auto ref = load(dir / "q.npy");
    GptqOptions opt;
    opt.block_size = c.block;
    opt.act_order = c.act_order;
    opt.static_groups = c.static_groups;
    const GptqResult r = gptq_quantize(parse_format(c.format), L.w.data(), n, k, hd.data(), opt);
    EXPECT_EQ(r.stats.dead_columns, 3) << tag;
    const auto q = dequantize(r.q);
    ASSERT_EQ(q.size(), ref.size());
    // Identical values expected; the float64 paths (LAPACK vs numpy Cholesky / inverse) differ by rounding only,
    // so a value that lands within ~1e-12 of a rounding boundary could flip: allow 1 in 1000.
    size_t diff = 0;
    for (size_t i = 0; i < q.size(); ++i) diff += q[i] != ref[i];
    EXPECT_LE(double(diff), 1e-3 * double(q.size())) << tag << ": " << diff << " of " << q.size() << " values differ";
    if (diff) std::printf("[info] %s: %zu of %zu values differ from the numpy reference\n", tag.c_str(), diff, q.size());
    EXPECT_LT(test::rel_l2(q, ref), 1e-3) << tag;
  }
}

TEST(Gptq, BelowRtnOnCorrelatedInputs) {
  const uint64_t seed = test::fresh_seed();
  const int64_t m = 512, n = 48, k = 256;
  const Layer L = make_layer(m, n, k, seed, 1);
  for (const char* name : {"nvfp4", "nvfp4_4o6", "mxfp4", "mxfp6_e2m3", "int4", "int4_asym", "int4/fp16/g32",
                           "q4_0", "q8_0", "fp4_e2m1", "e2m1/e4m3/g16/global"}) {
    const Format f = parse_format(name);
    for (bool act_order : {false, true}) {
      GptqOptions opt;
      opt.act_order = act_order;
      const GptqResult g = gptq_quantize(f, L.w.data(), n, k, L.h.data(), opt);
      const QuantizedTensor rtn = rtn_quantize(f, L.w.data(), n, k);
      const LayerError eg = layer_output_error(L.x.data(), m, k, L.w.data(), n, g.q);
      const LayerError er = layer_output_error(L.x.data(), m, k, L.w.data(), n, rtn);
      EXPECT_LT(eg.rel_error, er.rel_error) << name << (act_order ? " act-order" : "");
      EXPECT_LT(g.stats.rel_error, g.stats.rel_error_rtn) << name;
      // The H-weighted relative error is the relative output error squared (H = 2/n X^T X).
      EXPECT_NEAR(std::sqrt(g.stats.rel_error), eg.rel_error, 1e-3 * eg.rel_error + 1e-7) << name;
      EXPECT_NEAR(std::sqrt(g.stats.rel_error_rtn), er.rel_error, 1e-3 * er.rel_error + 1e-7) << name;
      std::printf("[info] %-22s %-9s rel. output error: GPTQ %.4f  RTN %.4f\n", name, act_order ? "act-order" : "", eg.rel_error,
                  er.rel_error);
    }
  }
}

TEST(Gptq, WithIdentityHessianEqualsRtnBytes) {
  // With H = I the error feedback vanishes: GPTQ must produce exactly fpq::quantize's bytes for every format the
  // codec supports (checks the codec's scale choice and encoding against the formats layer).
  const uint64_t seed = test::fresh_seed();
  const int64_t n = 9, k = 256;
  const auto w = heavy_w(n, k, seed, 3.0f);
  std::vector<double> eye(size_t(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i) eye[size_t(i * k + i)] = 1.0;
  int checked = 0;
  for (const auto& info : format_table()) {
    const Format& f = info.format;
    if (f.layout == Layout::GgmlQ4_1) {
      EXPECT_THROW(gptq_quantize(f, w.data(), n, k, eye.data()), Error);
      continue;
    }
    for (bool act_order : {false, true}) {
      GptqOptions opt;
      opt.act_order = act_order;
      opt.compute_error = false;
      const QuantizedTensor a = gptq_quantize(f, w.data(), n, k, eye.data(), opt).q;
      const QuantizedTensor b = quantize(f, w.data(), n, k);
      EXPECT_EQ(a.codes, b.codes) << info.name;
      EXPECT_EQ(a.scales, b.scales) << info.name;
      EXPECT_EQ(a.zeros, b.zeros) << info.name;
      EXPECT_EQ(a.global_scale, b.global_scale) << info.name;
      ++checked;
    }
  }
  EXPECT_GE(checked, 40);
}

TEST(Gptq, SameBytesForAnyThreadCount) {
  const uint64_t seed = test::fresh_seed();
  const Layer L = make_layer(256, 24, 128, seed);
  const int before = num_threads();
  std::vector<QuantizedTensor> out;
  for (int t : {1, 3}) {
    set_num_threads(t);
    GptqOptions opt;
    opt.act_order = true;
    out.push_back(gptq_quantize(parse_format("nvfp4"), L.w.data(), 24, 128, L.h.data(), opt).q);
    out.push_back(mr_gptq_quantize(parse_format("mxfp4"), L.w.data(), 24, 128, L.h.data()).q);
  }
  set_num_threads(before);
  EXPECT_EQ(out[0].codes, out[2].codes);
  EXPECT_EQ(out[0].scales, out[2].scales);
  EXPECT_EQ(out[1].codes, out[3].codes);
  EXPECT_EQ(out[1].scales, out[3].scales);
}

TEST(Gptq, BadInputs) {
  const int64_t n = 4, k = 64;
  const auto w = heavy_w(n, k, 1);
  std::vector<double> h(size_t(k * k), 0.0);
  // all-zero Hessian: every column is dead, H becomes I: still works (and zeroes the weight)
  const auto r = gptq_quantize(parse_format("mxfp4"), w.data(), n, k, h.data());
  EXPECT_EQ(r.stats.dead_columns, k);
  for (float v : dequantize(r.q)) EXPECT_EQ(v, 0.0f);
  auto wn = w;
  wn[5] = NAN;
  std::vector<double> eye(size_t(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i) eye[size_t(i * k + i)] = 1.0;
  EXPECT_THROW(gptq_quantize(parse_format("mxfp4"), wn.data(), n, k, eye.data()), Error);
  EXPECT_THROW(gptq_quantize(parse_format("mxfp4"), w.data(), n, 48, eye.data()), Error);  // 48 % 32 != 0
  // an indefinite Hessian is rescued by growing the dampening
  std::vector<double> bad = eye;
  bad[0] = -5.0;
  GptqOptions opt;
  opt.percdamp = 0.0;
  const auto rb = gptq_quantize(parse_format("mxfp4"), w.data(), n, k, bad.data(), opt);
  EXPECT_GT(rb.stats.damp_retries, 0);
}

TEST(MrGptq, BelowGptqOnMxfp4WithHeavyTails) {
  // A claim about averages: one 48-row layer can go the other way (seed 13462898087396773911: MR-GPTQ 0.0280 vs
  // GPTQ 0.0249 on MXFP4, while the typical ratio is 0.4-0.8), so the comparison is over four independent layers.
  const uint64_t seed = test::fresh_seed();
  const int64_t m = 512, n = 48, k = 256;
  constexpr int kLayers = 4;
  for (const char* name : {"mxfp4", "nvfp4"}) {
    const Format f = parse_format(name);
    double sq_mr = 0.0, sq_g = 0.0;
    for (int layer = 0; layer < kLayers; ++layer) {
      const Layer L = make_layer(m, n, k, seed + uint64_t(layer), 0, 3.0f);
      const GptqResult g = gptq_quantize(f, L.w.data(), n, k, L.h.data());
      const MrGptqResult mr = mr_gptq_quantize(f, L.w.data(), n, k, L.h.data());
      EXPECT_EQ(mr.transform.block(), f.group);
      EXPECT_EQ(mr.transform.kind(), TransformKind::Hadamard);
      // The module rotates activations online: y = T(x) deq(Q)^T.
      auto xt = L.x;
      mr.transform.forward(xt.data(), m);
      const auto wq = dequantize(mr.q);
      const LayerError emr = layer_output_error(L.x.data(), m, k, L.w.data(), n, xt.data(), wq.data(), k);
      const LayerError eg = layer_output_error(L.x.data(), m, k, L.w.data(), n, g.q);
      std::printf("[info] %s layer %d rel. output error: MR-GPTQ %.4f  GPTQ %.4f  (RTN %.4f, rotated RTN+MSE %.4f)\n", name,
                  layer, emr.rel_error, eg.rel_error, std::sqrt(g.stats.rel_error_rtn), std::sqrt(mr.stats.rel_error_rtn));
      sq_mr += emr.rel_error * emr.rel_error;
      sq_g += eg.rel_error * eg.rel_error;
      EXPECT_LT(mr.stats.rel_error, mr.stats.rel_error_rtn) << name;
      EXPECT_NEAR(std::sqrt(mr.stats.rel_error), emr.rel_error, 2e-3 * emr.rel_error) << name;
    }
    const double rms_mr = std::sqrt(sq_mr / kLayers), rms_g = std::sqrt(sq_g / kLayers);
    // The published expectation: MR-GPTQ beats GPTQ on MXFP4; on NVFP4 (16-value groups, E4M3 scales) the
    // rotation helps little and may cost a bit, so only a loose bound there.
    if (f.scale == ScaleType::E8M0) {
      EXPECT_LT(rms_mr, rms_g) << name;
    } else {
      EXPECT_LT(rms_mr, 1.25 * rms_g) << name;
    }
  }
}

}  // namespace
}  // namespace fpq::quant
