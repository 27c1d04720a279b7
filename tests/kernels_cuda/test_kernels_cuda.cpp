// GPU tests of fpq_kernels_cuda against the CPU reference (fpq::quantize / fpq::dequantize) on the same
// operands: quantization bytes identical, matrix products within 1e-5 relative L2 of the float64 product of the
// dequantized operands. Fresh random inputs each run (seed printed), odd shapes, output buffers poisoned
// before each run. Every test skips with the reason when no Hopper GPU is visible.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "formats/ggml_blocks.h"
#include "formats/quantize.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/internal.h"
#include "test_support.h"
#include "util/error.h"
#include "util/half.h"

namespace fpq::cuda {
namespace {

class Cuda : public ::testing::Test {
 public:
  void SetUp() override {
    std::string why;
    if (!cuda_available(&why)) GTEST_SKIP() << "no usable GPU: " << why;
    rng.seed(test::fresh_seed());
  }
  std::mt19937_64 rng;

  // Random activations: per-row magnitudes over several binades, a few outliers.
  std::vector<float> random_matrix(int64_t rows, int64_t cols, bool specials = false) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_real_distribution<float> ud(-6.0f, 6.0f);
    std::vector<float> x(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      const float rs = std::exp2(std::floor(ud(rng)));
      for (int64_t c = 0; c < cols; ++c) {
        float v = nd(rng) * rs;
        if ((rng() % 97) == 0) v *= 30.0f;
        x[size_t(r * cols + c)] = v;
      }
    }
    if (specials && rows * cols >= 256) {
      // A zero group, a tiny group, a NaN, an Inf, a -0.
      for (int c = 0; c < 32 && c < cols; ++c) x[size_t(c)] = 0.0f;
      if (cols >= 64)
        for (int c = 32; c < 64; ++c) x[size_t(c)] = std::ldexp(nd(rng), -130);
      x[size_t(cols + 3 < rows * cols ? cols + 3 : 5)] = NAN;
      x[size_t(rows * cols - 7)] = INFINITY;
      x[size_t(rows * cols / 2)] = -0.0f;
    }
    return x;
  }
};

// Rounds to the input type and back (the values the kernel really sees).
std::vector<uint16_t> to_16(const std::vector<float>& x, DType t) {
  std::vector<uint16_t> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) h[i] = t == DType::BF16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
  return h;
}
std::vector<float> from_16(const std::vector<uint16_t>& h, DType t) {
  std::vector<float> x(h.size());
  for (size_t i = 0; i < h.size(); ++i) x[i] = t == DType::BF16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
  return x;
}

DeviceBuffer upload_input(const std::vector<float>& x, DType t, std::vector<float>* seen) {
  if (t == DType::F32) {
    *seen = x;
    return to_device(x.data(), x.size() * 4);
  }
  const auto h = to_16(x, t);
  *seen = from_16(h, t);
  return to_device(h.data(), h.size() * 2);
}

const char* dtype_name(DType t) { return t == DType::F32 ? "f32" : t == DType::BF16 ? "bf16" : "f16"; }

// First differing byte, or -1.
int64_t first_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return int64_t(i);
  return -1;
}

void expect_same_quantized(const QuantizedTensor& got, const QuantizedTensor& ref, const std::string& tag) {
  const int64_t dc = first_diff(got.codes, ref.codes);
  EXPECT_EQ(dc, -1) << tag << ": codes differ at byte " << dc << " of " << ref.codes.size() << " (got "
                    << (dc >= 0 && size_t(dc) < got.codes.size() ? int(got.codes[size_t(dc)]) : -1) << ", want "
                    << (dc >= 0 && size_t(dc) < ref.codes.size() ? int(ref.codes[size_t(dc)]) : -1) << ")";
  const int64_t ds = first_diff(got.scales, ref.scales);
  EXPECT_EQ(ds, -1) << tag << ": scales differ at byte " << ds << " of " << ref.scales.size() << " (got "
                    << (ds >= 0 && size_t(ds) < got.scales.size() ? int(got.scales[size_t(ds)]) : -1) << ", want "
                    << (ds >= 0 && size_t(ds) < ref.scales.size() ? int(ref.scales[size_t(ds)]) : -1) << ")";
  ASSERT_EQ(got.global_scale.size(), ref.global_scale.size()) << tag;
  for (size_t i = 0; i < ref.global_scale.size(); ++i)
    EXPECT_EQ(f32_bits(got.global_scale[i]), f32_bits(ref.global_scale[i])) << tag << ": global scale";
}

// Poisons every buffer of a DeviceQuantized of the right sizes so that unwritten bytes show.
void poison(DeviceQuantized& q, const Format& f, int64_t rows, int64_t cols, bool mma) {
  QuantizedTensor shape;
  shape.format = f;
  shape.rows = rows;
  shape.cols = cols;
  q.format = f;
  q.rows = rows;
  q.cols = cols;
  q.codes.reset(size_t(std::max<int64_t>(1, rows * shape.row_code_bytes())));
  q.codes.fill_bytes(0xA5);
  if (!f.is_ggml()) {
    q.scales.reset(size_t(std::max<int64_t>(1, rows * (cols / f.group_for(cols)) * scale_type_bytes(f.scale))));
    q.scales.fill_bytes(0x5A);
    q.global.reset(4);
    q.global.fill_bytes(0xFF);
    if (mma) {
      const int64_t ld = (cols + 63) / 64 * 64;
      q.mma.reset(size_t(rows * ld * 2));
      q.mma.fill_bytes(0xFF);  // bf16 NaN
      if (f.group_for(cols) == cols) {
        q.row_scale.reset(size_t(rows * 4));
        q.row_scale.fill_bytes(0xFF);
      }
    }
  }
}

struct ActCase {
  const char* format;
  DType xtype;
  int64_t rows, cols;
  int tblock;      // 0: no transform
  bool per_block;
  bool fixed_global;
};

void run_act_case(Cuda& t, std::mt19937_64& rng, const ActCase& c) {
  const Format f = parse_format(c.format);
  const std::string tag = fmt::format("{} {} {}x{} T{}{}{}", c.format, dtype_name(c.xtype), c.rows, c.cols, c.tblock,
                                      c.per_block ? "pb" : "", c.fixed_global ? " fixed-global" : "");
  SCOPED_TRACE(tag);
  std::vector<float> x = t.random_matrix(c.rows, c.cols, true), seen;
  DeviceBuffer dx = upload_input(x, c.xtype, &seen);

  std::vector<float> T;
  DeviceBuffer dT;
  ActQuantOptions opt;
  std::vector<float> xt = seen;
  if (c.tblock) {
    const int G = c.tblock;
    const int64_t nmat = c.per_block ? c.cols / G : 1;
    std::normal_distribution<float> nd(0.0f, 1.0f / std::sqrt(float(G)));
    T.resize(size_t(nmat * G * G));
    for (auto& v : T) v = nd(rng);
    dT = to_device(T.data(), T.size() * 4);
    opt.transform = {dT.as<float>(), G, c.per_block};
    apply_block_transform_reference(T.data(), G, c.per_block, seen.data(), c.rows, c.cols, xt.data());
  }
  QuantizeOptions qo;
  if (c.fixed_global) {
    opt.global_scale = 0.0123f;
    qo.global_scale = 0.0123f;
  }
  const bool want_mma = !f.is_ggml() && (f.group_for(c.cols) == c.cols || f.scale == ScaleType::E8M0 || f.scale == ScaleType::E4M3);
  opt.mma_operand = want_mma;
  const QuantizedTensor ref = quantize(f, xt.data(), c.rows, c.cols, qo);

  DeviceQuantized q;
  poison(q, f, c.rows, c.cols, want_mma);
  quantize_activations_cuda(f, dx.data(), c.xtype, c.rows, c.cols, q, opt);
  synchronize();
  expect_same_quantized(q.download(), ref, tag);
  if (want_mma) {  // the kernels without the operand (the int8 route's, the decode paths') are other instantiations
    ActQuantOptions plain = opt;
    plain.mma_operand = false;
    DeviceQuantized q2;
    poison(q2, f, c.rows, c.cols, false);
    quantize_activations_cuda(f, dx.data(), c.xtype, c.rows, c.cols, q2, plain);
    synchronize();
    EXPECT_FALSE(q2.has_mma);
    expect_same_quantized(q2.download(), ref, tag + " (no operand)");
  }

  if (want_mma) {
    ASSERT_TRUE(q.has_mma);
    const int64_t ld = (c.cols + 63) / 64 * 64;
    std::vector<uint16_t> mma(size_t(c.rows * ld));
    q.mma.download(mma.data(), mma.size() * 2);
    const bool per_row = f.group_for(c.cols) == c.cols;
    std::vector<float> rs;
    if (per_row) {
      rs.resize(size_t(c.rows));
      q.row_scale.download(rs.data(), rs.size() * 4);
    }
    int64_t bad = 0;
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t col = 0; col < ld; ++col) {
        float want = 0.0f;
        if (col < c.cols) {
          const float dec = f.element->decode(ref.code(r, col));
          want = per_row ? dec : dec * ref.scale(r, col / f.group_for(c.cols));
        }
        // Exact in bf16 except below bf16's smallest subnormal (2^-133), where both round the same way.
        const uint16_t w16 = f32_to_bf16(want), g16 = mma[size_t(r * ld + col)];
        const bool both_nan = std::isnan(want) && std::isnan(bf16_to_f32(g16));
        if (!both_nan && w16 != g16) ++bad;
      }
      if (per_row) {
        const float want = ref.scale(r, 0);
        if (!(f32_bits(rs[size_t(r)]) == f32_bits(want) || (std::isnan(want) && std::isnan(rs[size_t(r)])))) ++bad;
      }
    }
    EXPECT_EQ(bad, 0) << "tensor-core operand values differ from decode(code) * scale";
  }
}

TEST_F(Cuda, ActivationQuantizationMatchesCpu) {
  const ActCase cases[] = {
      {"mxfp4", DType::BF16, 3, 416, 0, false, false},
      {"mxfp4", DType::F32, 17, 2080, 0, false, false},
      {"mxfp4", DType::F16, 1, 64, 0, false, false},
      {"mxfp4", DType::BF16, 5, 256, 32, false, false},
      {"mxfp4", DType::BF16, 9, 256, 32, true, false},
      {"mxfp4", DType::F32, 4, 384, 128, false, false},
      {"nvfp4", DType::BF16, 3, 416, 0, false, false},
      {"nvfp4", DType::F32, 17, 2080, 0, false, true},
      {"nvfp4", DType::BF16, 6, 512, 16, false, false},
      {"nvfp4", DType::BF16, 6, 512, 16, true, true},
      {"nvfp4", DType::F32, 2, 256, 64, true, false},
      {"nvfp4_4o6", DType::BF16, 5, 320, 0, false, false},
      {"nvfp4_4o6", DType::F32, 3, 256, 16, false, false},
      {"mxfp8_e4m3", DType::BF16, 7, 416, 0, false, false},
      {"mxfp8_e4m3", DType::F32, 3, 256, 32, true, false},
      {"mxfp8_e5m2", DType::F16, 5, 320, 0, false, false},
      {"mxfp6_e2m3", DType::BF16, 5, 320, 0, false, false},
      {"mxfp6_e3m2", DType::F32, 3, 256, 32, false, false},
      {"fp8_e4m3", DType::BF16, 5, 2080, 0, false, false},
      {"fp8_e4m3", DType::F32, 3, 96, 0, false, false},
      {"fp8_e4m3", DType::BF16, 4, 512, 32, false, false},
      {"fp8_e5m2", DType::F16, 3, 416, 0, false, false},
      {"int8", DType::BF16, 4, 416, 0, false, false},
      {"int4/fp16/g128/ss7", DType::F32, 3, 384, 0, false, false},
      {"e2m1/e4m3/g16", DType::F16, 3, 96, 0, false, false},
      {"e3m2/bf16/g32", DType::F32, 3, 96, 0, false, false},
      {"q8_1", DType::F32, 5, 416, 0, false, false},
      {"q8_1", DType::BF16, 3, 256, 32, true, false},
      {"q8_0", DType::F16, 3, 416, 0, false, false},
  };
  for (const ActCase& c : cases) run_act_case(*this, rng, c);
}

// ------------------------------------------------------------------------------------------------------------
// Matrix products
// ------------------------------------------------------------------------------------------------------------

std::vector<double> reference_product(const std::vector<float>& a, const std::vector<float>& w, int64_t m, int64_t n,
                                      int64_t k) {
  std::vector<double> y(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      const float* ar = a.data() + i * k;
      const float* wr = w.data() + j * k;
      for (int64_t q = 0; q < k; ++q) s += double(ar[q]) * double(wr[q]);
      y[size_t(i * n + j)] = s;
    }
  return y;
}

// Relative L2 error; NaN (an unwritten, poisoned element) fails.
double rel_err(const std::vector<float>& y, const std::vector<double>& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(y[i])) return INFINITY;
    const double d = double(y[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct WeightCase {
  const char* format;
  int64_t n, k;
};

// The weight-only product of activations x (M x K, uploaded as xt; *seen gets the values the kernel sees) into
// a NaN-poisoned float32 output, downloaded.
std::vector<float> weight_only_product(const PreparedWeight& pw, const std::vector<float>& x, DType xt, int64_t m,
                                       std::vector<float>* seen) {
  DeviceBuffer dx = upload_input(x, xt, seen);
  DeviceBuffer dy(size_t(m * pw.n * 4));
  dy.fill_bytes(0xFF);  // NaN
  matmul_weight_only_cuda(pw, dx.data(), xt, m, dy.data(), DType::F32);
  synchronize();
  std::vector<float> y(size_t(m * pw.n));
  dy.download(y.data(), y.size() * 4);
  return y;
}

// A random weight of this format, quantized, prepared, and multiplied by fresh bf16 activations of each M:
// relative L2 error < 1e-5 against the float64 product of what the kernel saw.
void expect_weight_only_matches(Cuda& t, const char* format, int64_t n, int64_t k, std::initializer_list<int64_t> ms) {
  const QuantizedTensor wq = quantize(parse_format(format), t.random_matrix(n, k).data(), n, k);
  const std::vector<float> wd = dequantize(wq);
  const PreparedWeight pw = prepare_weight_cuda(wq);
  for (int64_t m : ms) {
    const std::string tag = fmt::format("W {} {}x{} M={}", format, n, k, m);
    SCOPED_TRACE(tag);
    std::vector<float> seen;
    const std::vector<float> y = weight_only_product(pw, t.random_matrix(m, k), DType::BF16, m, &seen);
    EXPECT_LT(rel_err(y, reference_product(seen, wd, m, n, k)), 1e-5) << tag;
  }
}

TEST_F(Cuda, WeightOnlyMatmulMatchesFloat64) {
  const WeightCase weights[] = {
      {"mxfp4", 72, 416},
      {"nvfp4", 200, 2080},
      {"int4", 136, 384},
      {"q4_0", 40, 416},
      {"fp6_e3m2", 72, 416},
      {"fp6_e2m3", 24, 2080},
      {"mxfp6_e3m2", 56, 416},
      {"fp5_e2m2", 40, 416},
      {"fp5_e3m1", 33, 96},
      {"fp8_e4m3", 72, 416},
      {"mxfp8_e4m3", 136, 416},
      {"int8", 50, 416},
      {"q8_0", 40, 416},
      {"e2m1/e4m3/g16/ss6/rowglobal", 48, 256},
      // K a multiple of 64: the decode kernel's fast paths (groups of 16, 32, 64+; 1- and 2-byte scales)
      {"mxfp4", 72, 512},
      {"nvfp4", 40, 1024},
      {"e2m1/e8m0/g128", 40, 512},
      {"mxfp6_e3m2", 56, 256},
      {"fp5_e2m2", 40, 512},  // 5-bit codes on the decode kernel's fast paths (K a multiple of 64)
      {"fp5_e3m1", 24, 1024},
      {"fp6_e3m2", 72, 384},
      {"fp6_e3m2", 40, 8192},  // M = 1: the activation row in shared memory beside a ring of half the stages
      {"mxfp8_e4m3", 24, 512},
      {"q4_0", 40, 256},
      {"int4/fp16/g64", 33, 320},
      {"mxfp4", 72, 1152},  // 18 tiles: the split kernel's 4 K splits hold 4, 5, 4 and 5 (cluster buffers after the largest)
  };
  const int64_t ms[] = {1, 5, 16, 32, 40, 130};
  for (const WeightCase& wc : weights) {
    const Format f = parse_format(wc.format);
    const std::vector<float> wf = random_matrix(wc.n, wc.k);
    const QuantizedTensor wq = quantize(f, wf.data(), wc.n, wc.k);
    const std::vector<float> wd = dequantize(wq);
    const PreparedWeight pw = prepare_weight_cuda(wq);
    for (DType xt : {DType::BF16, DType::F16}) {
      for (int64_t m : ms) {
        if (xt == DType::F16 && m == 130) continue;
        const std::string tag = fmt::format("W {} {}x{} x {} M={}", wc.format, wc.n, wc.k, dtype_name(xt), m);
        SCOPED_TRACE(tag);
        std::vector<float> seen;
        const std::vector<float> y = weight_only_product(pw, random_matrix(m, wc.k), xt, m, &seen);
        const double err = rel_err(y, reference_product(seen, wd, m, wc.n, wc.k));
        EXPECT_LT(err, 1e-5) << tag;
      }
    }
  }
}

// A tall weight (more row tiles than 8 per SM): the decode kernel's two-row-tiles-per-fragment path at M <= 8;
// at 70000 rows the split kernel's warps (2 CTAs of 8 per SM) each serve several row-tile units, one after the
// other through the same ring and partial-sum slots.
TEST_F(Cuda, WeightOnlyMatmulTallWeight) {
  const struct {
    const char* name;
    int64_t n;
  } cases[] = {{"mxfp4", 17000}, {"fp6_e3m2", 17000}, {"mxfp4", 70000}};
  for (const auto& c : cases) {
    const char* name = c.name;
    const int64_t n = c.n, k = 128;
    const Format f = parse_format(name);
    const QuantizedTensor wq = quantize(f, random_matrix(n, k).data(), n, k);
    const std::vector<float> wd = dequantize(wq);
    const PreparedWeight pw = prepare_weight_cuda(wq);
    for (int64_t m : {1, 7, 12, 16}) {
      const std::string tag = fmt::format("W {} {}x{} M={}", name, n, k, m);
      SCOPED_TRACE(tag);
      std::vector<float> seen;
      const std::vector<float> y = weight_only_product(pw, random_matrix(m, k), DType::BF16, m, &seen);
      EXPECT_LT(rel_err(y, reference_product(seen, wd, m, n, k)), 1e-5) << tag;
    }
  }
}

// The split kernel as one 16-warp CTA per SM (FPQ_GEMV_SPLIT_WIDE): on a 132-SM GPU, 1063 row tiles of K = 4096
// take it at M 5..16 with S = 1 (every warp one whole row tile, sums stored directly); M = 7 and 16 repeat the
// last activation row into the unused B columns. (Under FPQ_GEMV_SPLIT_WIDE=2 every split launch of this file
// takes it, S > 1 included.)
TEST_F(Cuda, WeightOnlyMatmulWideSplit) {
  for (const char* name : {"mxfp4", "fp6_e3m2"}) expect_weight_only_matches(*this, name, 17000, 4096, {7, 16});
}

// Warps' K ranges (KT * w / warps tiles) that start mid-group: at K = 2304 (36 tiles) a 4-tile stage of a
// 128-column group can touch 3 scale groups, the split kernel's ranges (M = 8) likewise; N = 6000 (375 row
// tiles) also makes CTAs take a second row tile through the same rings.
TEST_F(Cuda, WeightOnlyMatmulStagesAcrossGroups) {
  for (const char* name : {"int4", "e2m1/e8m0/g128", "int4/fp16/g64", "mxfp4", "nvfp4", "q4_0", "fp6_e3m2"})
    expect_weight_only_matches(*this, name, 6000, 2304, {1, 3, 8});
}

// Prefill (M > 32) of weights whose group scales cannot be folded into the bf16 operand exactly (INT4 / Q4_0 /
// Q8_0 with fp16 scales, E8M0 scales on integer codes, E2M1 with fp16 scales): the tensor-core kernel's
// per-group promotion. K = 2304 (36 tiles) at N = 136 makes the prefill kernel split K four ways, at tile 9,
// 18 and 27: mid-group for 128-column groups, so a split starts and ends inside a group. Groups of 16 and 32
// end inside a tile (the kernel waits there); 64 and 128 end with a tile or beyond it.
TEST_F(Cuda, WeightOnlyPrefillPromotesGroupScales) {
  const WeightCase weights[] = {
      {"int4", 136, 2304},          {"q4_0", 136, 2304},           {"q8_0", 136, 2304},
      {"int4/fp16/g128", 136, 2304}, {"int4/fp16/g64", 200, 512},  {"int4/fp16/g16", 72, 384},
      {"int4/e8m0/g32", 136, 2304}, {"e2m1/fp16/g32", 40, 1024},    {"int8/fp16/g128", 72, 2304},
  };
  for (const WeightCase& wc : weights) expect_weight_only_matches(*this, wc.format, wc.n, wc.k, {33, 130, 257});
}

// The split kernel's scratch buffer (per stream, reused): a launch for a short weight between two for a tall
// one asks for fewer counters than the buffer holds; its partial sums must not land on the counters the tall
// weight's launches use (they did: the second tall launch then left row tiles unwritten).
TEST_F(Cuda, SplitKernelScratchAcrossWeightShapes) {
  const Format f = parse_format("mxfp4");
  const int64_t k = 128, m = 7;
  struct W {
    int64_t n;
    std::vector<float> wd;
    PreparedWeight pw;
  };
  std::vector<W> ws;
  for (int64_t n : {17000, 64}) {
    const QuantizedTensor wq = quantize(f, random_matrix(n, k).data(), n, k);
    ws.push_back(W{n, dequantize(wq), prepare_weight_cuda(wq)});
  }
  for (int i : {0, 1, 0, 1, 0}) {
    const W& w = ws[size_t(i)];
    const std::string tag = fmt::format("call with {} rows", w.n);
    std::vector<float> seen;
    const std::vector<float> y = weight_only_product(w.pw, random_matrix(m, k), DType::BF16, m, &seen);
    EXPECT_LT(rel_err(y, reference_product(seen, w.wd, m, w.n, k)), 1e-5) << tag;
  }
}

// The decode kernel's fused fold (one multiply decodes a code pair and applies its group scale, exact only
// within bf16's range): weights whose rows span many binades take it with a matching power-of-two shift, a
// span too wide for bf16 falls back to per-group float32 sums; both match float64 row by row, and forcing the
// fallback on a foldable weight gives the same products.
TEST_F(Cuda, WeightOnlyFusedFoldScaleRanges) {
  struct Span {
    const char* format;
    int lo, step;  // row r is scaled by 2^(lo + (r % 8) * step)
    bool fold;
  };
  const Span spans[] = {
      {"mxfp4", -50, 12, true},      // 2^-50 .. 2^34
      {"mxfp4", 60, 4, true},        // large scales: a positive shift
      {"mxfp4", -100, 28, false},    // 2^-100 .. 2^96: products leave bf16's range
      {"nvfp4", -20, 6, true},       // E4M3 group scales under a global scale
      {"mxfp6_e2m3", -40, 10, true},
      {"e2m1/e8m0/g128", -30, 9, true},
  };
  const int64_t n = 64, k = 1024;
  for (const Span& sp : spans) {
    const Format f = parse_format(sp.format);
    std::vector<float> wf = random_matrix(n, k);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) wf[size_t(r * k + c)] = std::ldexp(wf[size_t(r * k + c)], sp.lo + int(r % 8) * sp.step);
    const QuantizedTensor wq = quantize(f, wf.data(), n, k);
    const std::vector<float> wd = dequantize(wq);
    PreparedWeight pw = prepare_weight_cuda(wq);
    const std::string tag0 = fmt::format("W {} rows 2^{}..2^{}", sp.format, sp.lo, sp.lo + 7 * sp.step);
    EXPECT_EQ(pw.fold_ok, sp.fold) << tag0;
    for (const bool force_off : {false, true}) {
      if (force_off) pw.fold_ok = false;
      for (int64_t m : {1, 3}) {
        const std::string tag = fmt::format("{}{} M={}", tag0, force_off ? " (fold off)" : "", m);
        SCOPED_TRACE(tag);
        std::vector<float> seen;
        const std::vector<float> y = weight_only_product(pw, random_matrix(m, k), DType::BF16, m, &seen);
        const std::vector<double> ref = reference_product(seen, wd, m, n, k);
        for (int cls = 0; cls < 8; ++cls) {  // rows differ by up to 2^196: compare rows of one magnitude together
          std::vector<float> yr;
          std::vector<double> rr;
          for (int64_t r = cls; r < n; r += 8)
            for (int64_t i = 0; i < m; ++i) yr.push_back(y[size_t(i * n + r)]), rr.push_back(ref[size_t(i * n + r)]);
          EXPECT_LT(rel_err(yr, rr), 1e-5) << tag << " rows " << cls << " mod 8";
        }
      }
    }
  }
}

struct QmmCase {
  const char* act;
  const char* weight;
  int64_t m, n, k;
};

TEST_F(Cuda, QuantizedMatmulMatchesFloat64) {
  const QmmCase cases[] = {
      {"mxfp4", "mxfp4", 130, 136, 416},
      {"mxfp4", "mxfp4", 257, 300, 2080},
      {"mxfp4", "mxfp4", 1, 40, 256},
      {"nvfp4", "nvfp4", 128, 200, 416},
      {"nvfp4", "nvfp4", 300, 136, 2080},
      {"nvfp4_4o6", "nvfp4", 129, 72, 256},
      {"mxfp8_e4m3", "mxfp8_e4m3", 130, 136, 416},
      {"fp8_e4m3", "fp8_e4m3", 200, 100, 416},
      {"mxfp4", "mxfp8_e4m3", 64, 64, 128},
  };
  for (const QmmCase& c : cases) {
    const std::string tag = fmt::format("A {} x W {} M={} N={} K={}", c.act, c.weight, c.m, c.n, c.k);
    SCOPED_TRACE(tag);
    const Format fa = parse_format(c.act), fw = parse_format(c.weight);
    const std::vector<float> wf = random_matrix(c.n, c.k);
    const QuantizedTensor wq = quantize(fw, wf.data(), c.n, c.k);
    const PreparedWeight pw = prepare_weight_cuda(wq);
    std::vector<float> x = random_matrix(c.m, c.k), seen;
    DeviceBuffer dx = upload_input(x, DType::BF16, &seen);
    DeviceQuantized q;
    poison(q, fa, c.m, c.k, true);
    ActQuantOptions opt;
    opt.mma_operand = true;
    quantize_activations_cuda(fa, dx.data(), DType::BF16, c.m, c.k, q, opt);
    DeviceBuffer dy(size_t(c.m * c.n * 4));
    dy.fill_bytes(0xFF);
    matmul_quantized_cuda(q, pw, dy.data(), DType::F32);
    synchronize();
    const QuantizedTensor aq = q.download();
    expect_same_quantized(aq, quantize(fa, seen.data(), c.m, c.k), tag);
    std::vector<float> y(size_t(c.m * c.n));
    dy.download(y.data(), y.size() * 4);
    const double err = rel_err(y, reference_product(dequantize(aq), dequantize(wq), c.m, c.n, c.k));
    EXPECT_LT(err, 1e-5) << tag;
  }
}

// Rows whose group exponents span more than the int8 route folds: every fourth row of `x` gets groups scaled
// by 2^0, 2^-5, 2^-10, ... (a span of up to 20 binades); row 1 one group 2^9 above the rest.
void widen_spans(std::vector<float>& x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      if (r % 4 == 3) x[size_t(r * cols + c)] *= std::ldexp(1.0f, -5 * int((c / 32) % 5));
      if (r == 1 && c / 32 == 1) x[size_t(r * cols + c)] *= 512.0f;
    }
}

// The int8 image of a weight holds exactly its dequantized values: sum over a row's virtual rows of
// int8 x 2^band. On the CPU (no GPU needed): rows with wide spans (several bands), a zero group, a zero row.
TEST(CudaInt8Image, HoldsTheDequantizedValues) {
  std::mt19937_64 rng(test::fresh_seed());
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto& [n, k, fmt_name] : {std::tuple<int64_t, int64_t, const char*>{37, 416, "mxfp4"},
                                       {16, 2080, "mxfp4"}, {9, 128, "e2m1/e8m0/g64"}}) {
    std::vector<float> w(size_t(n * k));
    for (auto& v : w) v = nd(rng) * 0.02f;
    widen_spans(w, n, k);
    for (int64_t c = 0; c < 32; ++c) w[size_t(2 * k + c)] = 0.0f;  // a zero group
    for (int64_t c = 0; c < k; ++c) w[size_t(5 * k + c)] = 0.0f;   // a zero row
    const QuantizedTensor q = quantize(parse_format(fmt_name), w.data(), n, k);
    ASSERT_EQ(int8_image_unsupported(q), "");
    const Int8Image im = build_int8_image(q);
    const std::vector<float> d = dequantize(q);
    ASSERT_EQ(im.rows, int64_t(im.scale.size()));
    ASSERT_EQ(im.codes.size(), size_t(im.rows * k));
    // Row r of an image: its top band (virtual row r) plus its other bands (rows >= n).
    auto check_row = [&](const Int8Image& m, int64_t r, int64_t weight_row) {
      ASSERT_GE(m.extra_first[size_t(r)], m.n);
      ASSERT_LE(m.extra_first[size_t(r)], m.extra_first[size_t(r + 1)]);
      for (int64_t c = 0; c < k; ++c) {
        double v = double(m.codes[size_t(r * k + c)]) * m.scale[size_t(r)];
        ASSERT_LE(std::abs(int(m.codes[size_t(r * k + c)])), 96);
        for (int32_t b = m.extra_first[size_t(r)]; b < m.extra_first[size_t(r + 1)]; ++b) {
          const int8_t i = m.codes[size_t(b * k + c)];
          ASSERT_LE(std::abs(int(i)), 96);
          v += double(i) * m.scale[size_t(b)];
        }
        ASSERT_EQ(v, double(d[size_t(weight_row * k + c)])) << fmt_name << " row " << weight_row << " col " << c;
      }
    };
    int64_t wide = 0;
    for (int64_t r = 0; r < n; ++r) {
      wide += im.extra_first[size_t(r + 1)] > im.extra_first[size_t(r)];
      check_row(im, r, r);
    }
    ASSERT_EQ(im.extra_first[size_t(n)], im.rows);
    // The banded rows' own image: the same values, row by row.
    std::vector<int32_t> rows;
    const Int8Image banded = banded_rows(im, rows);
    ASSERT_EQ(banded.n, wide);
    ASSERT_EQ(int64_t(rows.size()), wide);
    ASSERT_EQ(banded.rows, wide + (im.rows - n));
    for (int64_t j = 0; j < banded.n; ++j) {
      ASSERT_GT(banded.extra_first[size_t(j + 1)], banded.extra_first[size_t(j)]);
      check_row(banded, j, rows[size_t(j)]);
    }
    EXPECT_GT(wide, 0) << "no row took several bands";
  }
  const QuantizedTensor nv = quantize(parse_format("nvfp4"), std::vector<float>(64, 1.0f).data(), 2, 32);
  EXPECT_NE(int8_image_unsupported(nv), "");
  EXPECT_EQ(int8_route_unsupported(parse_format("mxfp4")), "");
  for (const char* f : {"nvfp4", "mxfp8_e4m3", "e2m1/e8m0/g64", "q8_0"})
    EXPECT_NE(int8_route_unsupported(parse_format(f)), "") << f;
}

// W4A4 mxfp4 on the int8 tensor cores: without the bf16 mma operand (so the int8 route must be taken), against
// the float64 product to 1e-5 and bit for bit against the exact float64 kernel (float(S) both). Weights with
// one band per row and with several (the rows with several then also go through their own image), on the CUTLASS
// GEMM with the scaling fused where the output rows are 16-byte aligned and on cuBLASLt and the separate
// epilogue where not (N = 300 in 16-bit; FPQ_INT8_GEMM=cublas takes it everywhere); activation rows that do not
// fold (the fix-up through the exact kernel), NaN / Inf / zero groups, every output type; M, N and K not
// multiples of the GEMM's tiles.
TEST_F(Cuda, W4A4Int8RouteIsExact) {
  const struct {
    int64_t m, n, k;
    bool wide_weights;
  } cases[] = {{256, 40, 256, true},   {300, 136, 416, true}, {257, 300, 2080, true}, {512, 24, 64, true},
               {256, 40, 256, false},  {300, 136, 416, false}, {257, 300, 2080, false}, {640, 392, 1056, false},
               {512, 24, 64, false}};
  const Format fa = parse_format("mxfp4");
  for (const auto& c : cases) {
    const std::string tag = fmt::format("M={} N={} K={} {} weight", c.m, c.n, c.k, c.wide_weights ? "banded" : "one-band");
    SCOPED_TRACE(tag);
    std::vector<float> wf = random_matrix(c.n, c.k);
    if (c.wide_weights) {
      widen_spans(wf, c.n, c.k);
    } else {
      // One band per row: uniform values times a power of two per row (a group's largest magnitude lies in
      // [rs / 2, rs) all but surely: one scale exponent per row), a zero group in row 0.
      std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
      for (int64_t r = 0; r < c.n; ++r) {
        const float rs = std::ldexp(1.0f, int(r % 9) - 4);
        for (int64_t j = 0; j < c.k; ++j) wf[size_t(r * c.k + j)] = r == 0 && j < 32 ? 0.0f : ud(rng) * rs;
      }
    }
    const QuantizedTensor wq = quantize(fa, wf.data(), c.n, c.k);
    PreparedWeight pw = prepare_weight_cuda(wq);
    ASSERT_TRUE(quantized_matmul_needs_mma_operand(fa, pw, c.m));
    prepare_int8_prefill(pw, wq);
    // Banded weights have rows that the fused route multiplies apart; one-band weights none.
    ASSERT_EQ(pw.i8_band_n != 0, c.wide_weights);
    ASSERT_FALSE(quantized_matmul_needs_mma_operand(fa, pw, c.m));
    ASSERT_TRUE(quantized_matmul_needs_mma_operand(fa, pw, 128));  // below 256 rows: the bf16 route
    std::vector<float> x = random_matrix(c.m, c.k, true), seen;
    widen_spans(x, c.m, c.k);
    DeviceBuffer dx = upload_input(x, DType::BF16, &seen);
    DeviceQuantized q;
    poison(q, fa, c.m, c.k, false);
    quantize_activations_cuda(fa, dx.data(), DType::BF16, c.m, c.k, q);
    const QuantizedTensor aq = q.download();
    const std::vector<double> ref = reference_product(dequantize(aq), dequantize(wq), c.m, c.n, c.k);
    DeviceBuffer dexact(size_t(c.m * c.n * 4));
    matmul_exact_cuda(q, pw, dexact.as<float>());
    std::vector<float> ye(size_t(c.m * c.n));
    synchronize();
    dexact.download(ye.data(), ye.size() * 4);
    for (DType yt : {DType::F32, DType::BF16, DType::F16}) {
      const size_t eb = yt == DType::F32 ? 4 : 2;
      DeviceBuffer dy(size_t(c.m * c.n) * eb);
      dy.fill_bytes(0xFF);
      matmul_quantized_cuda(q, pw, dy.data(), yt);
      synchronize();
      std::vector<float> y(size_t(c.m * c.n));
      if (yt == DType::F32) {
        dy.download(y.data(), y.size() * 4);
      } else {
        std::vector<uint16_t> h(y.size());
        dy.download(h.data(), h.size() * 2);
        y = from_16(h, yt);
      }
      // NaN rows (a NaN input makes its group's scale NaN) must come out NaN; the rest are compared.
      std::vector<float> yf;
      std::vector<double> rf;
      int64_t nan_rows = 0;
      for (int64_t i = 0; i < c.m; ++i) {
        const bool nan_row = std::isnan(ref[size_t(i * c.n)]);
        nan_rows += nan_row;
        for (int64_t j = 0; j < c.n; ++j) {
          const size_t o = size_t(i * c.n + j);
          if (nan_row) {
            ASSERT_TRUE(std::isnan(y[o])) << "row " << i;
            continue;
          }
          if (yt == DType::F32) ASSERT_EQ(y[o], ye[o]) << "not the exact kernel's bits at " << i << ", " << j;
          else if (yt == DType::BF16) ASSERT_EQ(y[o], bf16_to_f32(f32_to_bf16(ye[o]))) << i << ", " << j;
          else ASSERT_EQ(y[o], f16_to_f32(f32_to_f16(ye[o]))) << i << ", " << j;
          if (std::isinf(y[o]) && yt == DType::F16) continue;  // past fp16's range: the bits are checked above
          yf.push_back(y[o]);
          rf.push_back(ref[o]);
        }
      }
      EXPECT_GT(nan_rows, 0);
      EXPECT_LT(rel_err(yf, rf), yt == DType::F32 ? 1e-6 : 1e-2) << tag;
    }
  }
}

TEST_F(Cuda, Q4_0TimesQ8_1MatchesFloat64) {
  const Format q4 = parse_format("q4_0"), q8 = parse_format("q8_1");
  // M <= 16: the dp4a kernel; beyond: the tensor-core kernel (K = 416 and 2080 end in half a 64-column tile;
  // N = 136, K = 2304 splits K four ways).
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 40, 416}, {7, 33, 2080}, {9, 40, 416}, {17, 40, 416},
                         {33, 100, 256}, {130, 136, 2304}, {257, 72, 2080}, {16, 200, 1024}}) {
    const std::string tag = fmt::format("q4_0 x q8_1 M={} N={} K={}", m, n, k);
    SCOPED_TRACE(tag);
    const std::vector<float> wf = random_matrix(n, k), xf = random_matrix(m, k);
    const QuantizedTensor wq = quantize(q4, wf.data(), n, k);
    // Activations quantized on the GPU (checked against the CPU bytes), then the product.
    DeviceBuffer dx = to_device(xf.data(), xf.size() * 4);
    DeviceQuantized aq;
    poison(aq, q8, m, k, false);
    quantize_activations_cuda(q8, dx.data(), DType::F32, m, k, aq);
    DeviceBuffer dw = to_device(wq.codes.data(), wq.codes.size());
    DeviceBuffer dy(size_t(m * n * 4));
    dy.fill_bytes(0xFF);
    matmul_q4_0_q8_1_cuda(dw.data(), aq.codes.data(), n, m, k, dy.as<float>());
    synchronize();
    const QuantizedTensor a_host = aq.download();
    expect_same_quantized(a_host, quantize(q8, xf.data(), m, k), tag);
    std::vector<float> y(size_t(m * n));
    dy.download(y.data(), y.size() * 4);
    const double err = rel_err(y, reference_product(dequantize(a_host), dequantize(wq), m, n, k));
    EXPECT_LT(err, 1e-5) << tag;
  }
}

// Batch-1 decode fusions (matmul_decode_fused_cuda): an RMSNorm prologue computed by every CTA, a SwiGLU
// epilogue over interleaved gate / up rows, an accumulating (residual) epilogue, and programmatic dependent
// launch, each against float64 references.
TEST_F(Cuda, DecodeFusionsMatchFloat64) {
  const WeightCase weights[] = {
      {"mxfp4", 72, 512}, {"nvfp4", 40, 1024}, {"int4/fp16/g64", 34, 320}, {"fp8_e4m3", 24, 448},
      {"mxfp6_e2m3", 56, 256}, {"e2m1/e8m0/g128", 17000, 128},  // tall: two row tiles per CTA
      {"fp6_e3m2", 40, 8192},  // one scale per row; the row beside a ring of half the stages
  };
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const WeightCase& wc : weights) {
    const Format f = parse_format(wc.format);
    const QuantizedTensor wq = quantize(f, random_matrix(wc.n, wc.k).data(), wc.n, wc.k);
    const std::vector<float> wd = dequantize(wq);
    const PreparedWeight pw = prepare_weight_cuda(wq);
    const int64_t n = wc.n, k = wc.k;
    for (bool pdl : {false, true}) {
      const std::string tag = fmt::format("{} {}x{} programmatic={}", wc.format, n, k, pdl);
      SCOPED_TRACE(tag);
      DecodeFusion fu;
      fu.programmatic = pdl;
      // SwiGLU epilogue on a plain bf16 row.
      std::vector<float> seen;
      DeviceBuffer dx = upload_input(random_matrix(1, k), DType::BF16, &seen);
      const std::vector<double> ref = reference_product(seen, wd, 1, n, k);
      {
        DecodeFusion g = fu;
        g.swiglu = true;
        DeviceBuffer dy(size_t(n / 2 * 4));
        dy.fill_bytes(0xFF);
        matmul_decode_fused_cuda(pw, dx.data(), dy.data(), DType::F32, g);
        synchronize();
        std::vector<float> y(size_t(n / 2));
        dy.download(y.data(), y.size() * 4);
        std::vector<double> r(size_t(n / 2));
        for (int64_t i = 0; i < n / 2; ++i) {
          const double gate = ref[size_t(2 * i)], up = ref[size_t(2 * i + 1)];
          r[size_t(i)] = gate / (1.0 + std::exp(-gate)) * up;
        }
        EXPECT_LT(rel_err(y, r), 1e-5) << tag << " swiglu";
      }
      // Accumulating epilogue: y = base + X W^T.
      {
        DecodeFusion a = fu;
        a.accumulate = true;
        std::vector<float> base(static_cast<size_t>(n));
        for (float& v : base) v = nd(rng) * 10.0f;
        DeviceBuffer dy = to_device(base.data(), base.size() * 4);
        matmul_decode_fused_cuda(pw, dx.data(), dy.data(), DType::F32, a);
        synchronize();
        std::vector<float> y(static_cast<size_t>(n));
        dy.download(y.data(), y.size() * 4);
        std::vector<double> r(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) r[size_t(i)] = double(base[size_t(i)]) + ref[size_t(i)];
        EXPECT_LT(rel_err(y, r), 1e-5) << tag << " accumulate";
      }
      // RMSNorm prologue: y = inv * (W . bf16(x * w)) with inv = rsqrt(mean(x^2) + eps) in float64 (the row
      // rounded as the kernel rounds it; its inv differs by rsqrtf's few ulp).
      {
        std::vector<float> res(static_cast<size_t>(k)), nw(static_cast<size_t>(k));
        const float rs = std::exp2(float(int(rng() % 12)) - 6.0f);
        for (int64_t i = 0; i < k; ++i) res[size_t(i)] = nd(rng) * rs, nw[size_t(i)] = 0.5f + std::abs(nd(rng));
        DecodeFusion r = fu;
        r.rms_x = r.rms_w = reinterpret_cast<const float*>(uintptr_t(256));  // for the check only
        if (!decode_fusion_unsupported(pw, r, DType::F32).empty()) {  // 6-bit codes without the exact fold only
          EXPECT_TRUE(pw.bits == 6 && !pw.fold_ok) << tag;
          continue;
        }
        DeviceBuffer dres = to_device(res.data(), res.size() * 4), dnw = to_device(nw.data(), nw.size() * 4);
        r.rms_x = dres.as<float>();
        r.rms_w = dnw.as<float>();
        r.rms_eps = 1e-5f;
        double ss = 0.0;
        for (float v : res) ss += double(v) * double(v);
        const double inv = 1.0 / std::sqrt(ss / double(k) + 1e-5);
        std::vector<float> xr(static_cast<size_t>(k));
        for (int64_t i = 0; i < k; ++i) xr[size_t(i)] = bf16_to_f32(f32_to_bf16(res[size_t(i)] * nw[size_t(i)]));
        DeviceBuffer dy(size_t(n * 4));
        dy.fill_bytes(0xFF);
        matmul_decode_fused_cuda(pw, nullptr, dy.data(), DType::F32, r);
        synchronize();
        std::vector<float> y(static_cast<size_t>(n));
        dy.download(y.data(), y.size() * 4);
        std::vector<double> yr = reference_product(xr, wd, 1, n, k);
        for (double& v : yr) v *= inv;
        EXPECT_LT(rel_err(y, yr), 1e-5) << tag << " rmsnorm";
      }
    }
  }
  // What the fusions cannot do is refused by name.
  const Format f5 = parse_format("fp5_e2m2");
  const PreparedWeight p5 = prepare_weight_cuda(quantize(f5, random_matrix(8, 256).data(), 8, 256));
  DeviceBuffer row(256 * 4);
  DecodeFusion r;
  r.rms_x = row.as<float>();
  r.rms_w = row.as<float>();
  EXPECT_FALSE(decode_fusion_unsupported(p5, r, DType::F32).empty());
  EXPECT_THROW(matmul_decode_fused_cuda(p5, nullptr, row.data(), DType::F32, r), Error);
  const PreparedWeight p4 = prepare_weight_cuda(quantize(parse_format("mxfp4"), random_matrix(9, 256).data(), 9, 256));
  DecodeFusion s;
  s.swiglu = true;
  EXPECT_FALSE(decode_fusion_unsupported(p4, s, DType::F32).empty());  // odd N
  DecodeFusion a;
  a.accumulate = true;
  EXPECT_FALSE(decode_fusion_unsupported(p4, a, DType::BF16).empty());
}

TEST_F(Cuda, RejectsWhatItCannotDo) {
  EXPECT_FALSE(act_quant_unsupported(parse_format("int4_asym")).empty());
  EXPECT_FALSE(weight_unsupported(parse_format("q4_1")).empty());
  EXPECT_FALSE(weight_unsupported(parse_format("int4_asym")).empty());
  const Format f = parse_format("mxfp4");
  DeviceBuffer dx(64 * 4);
  DeviceQuantized q;
  EXPECT_THROW(quantize_activations_cuda(f, dx.data(), DType::F32, 1, 48, q), Error);  // 48 % 32 != 0
}

}  // namespace
}  // namespace fpq::cuda

// Runs without a GPU too: availability must answer, with a reason, and never crash.
TEST(CudaAvailability, AnswersWithReason) {
  std::string why;
  const bool ok = fpq::cuda::cuda_available(&why);
  if (!ok) {
    EXPECT_FALSE(why.empty());
    std::printf("cuda_available() = false: %s\n", why.c_str());
  } else {
    std::printf("cuda_available() = true: %s\n", fpq::cuda::device_description().c_str());
  }
}

// Runs without a GPU too: the A/B switches read from the environment take their listed values and name the
// variable on anything else (a typo used to fall back to the default silently).
TEST(CudaEnvChoice, RejectsUnknownValues) {
  using fpq::cuda::detail::env_choice;
  ::unsetenv("FPQ_TEST_CHOICE");
  EXPECT_EQ(env_choice("FPQ_TEST_CHOICE", {"a", "b"}), "");
  ::setenv("FPQ_TEST_CHOICE", "b", 1);
  EXPECT_EQ(env_choice("FPQ_TEST_CHOICE", {"a", "b"}), "b");
  ::setenv("FPQ_TEST_CHOICE", "rowz", 1);
  try {
    env_choice("FPQ_TEST_CHOICE", {"a", "b"});
    ADD_FAILURE() << "an unknown value was accepted";
  } catch (const fpq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("FPQ_TEST_CHOICE=rowz"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("a, b"), std::string::npos) << e.what();
  }
  ::unsetenv("FPQ_TEST_CHOICE");
}
