// Real CPU kernels (src/kernels/cpu) against the pseudo path (dequantize + OpenBLAS sgemm) and a float64
// product of the dequantized operands, for every (weight, activation) format pair and every instruction-set
// variant this machine runs; thread-count independence; the activation quantizer's bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "formats/format.h"
#include "formats/quantize.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matmul.h"
#include "test_support.h"
#include "util/half.h"
#include "util/error.h"
#include "util/parallel.h"

namespace fpq::cpu {
namespace {

std::vector<Isa> all_isas() {
  std::vector<Isa> v;
  for (int i = 0; i <= int(detected_isa()); ++i) v.push_back(Isa(i));
  return v;
}

struct IsaGuard {
  Isa saved = active_isa();
  ~IsaGuard() { set_isa(saved); }
};

struct ThreadGuard {
  int saved = num_threads();
  ~ThreadGuard() { set_num_threads(saved); }
};

// Weight formats: the registry plus generic spellings that reach the other code paths.
std::vector<Format> weight_formats() {
  std::vector<Format> v;
  for (const auto& info : format_table()) v.push_back(info.format);
  for (const char* s : {"e2m1/e4m3/g16", "e2m1/fp16/g16/rowglobal", "e2m3/bf16/g64", "e3m2/fp16/g32", "e2m2/e8m0/g32",
                        "e3m1/fp16/g64", "int8/fp16/g32", "uint8/bf16/g32", "uint4/fp16/g64", "e4m3/fp16/g16",
                        "e5m2/bf16/row", "e3m4_ieee/fp32/g32", "e2m1/fp32/g8", "mxint8", "e4m3/none", "e2m1/none", "int4/fp16/g4"})
    v.push_back(parse_format(s));
  return v;
}

// Activation formats (nullopt: weight-only float32 activations).
std::vector<Format> act_formats() {
  std::vector<Format> v;
  for (const auto& info : format_table()) v.push_back(info.format);
  for (const char* s : {"e2m1/e4m3/g16", "e3m2/fp16/g32", "int8/fp16/g32", "int4/fp16/row", "e2m3/bf16/g64",
                        "e2m1/fp16/g16/rowglobal", "e5m2/e8m0/g32"})
    v.push_back(parse_format(s));
  return v;
}

uint32_t f2u_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

int64_t lcm64(int64_t a, int64_t b) { return a / std::gcd(a, b) * b; }

bool cols_ok(const Format& f, int64_t k) {
  if (f.is_ggml()) return k % 32 == 0;
  if (f.group > 0 && k % f.group != 0) return false;
  return (k * f.element->bits) % 8 == 0;
}

// A K both formats accept: a multiple of both groups, sometimes a small one (tails shorter than a SIMD vector).
// At most 256: float32 sums (of both paths) then stay within a few 1e-7 of the exact product, with margin under
// the 1e-6 agreement asked of them.
int64_t pick_k(std::mt19937_64& rng, const Format& w, const Format* a) {
  const int64_t gw = w.is_ggml() ? 32 : w.group, ga = !a ? 0 : a->is_ggml() ? 32 : a->group;
  int64_t base = 1;
  if (gw > 0) base = lcm64(base, gw);
  if (ga > 0) base = lcm64(base, ga);
  for (int tries = 0; tries < 1000; ++tries) {
    int64_t k;
    if (base == 1) k = int64_t(rng() % 200) + 2;  // per-row both: any K the packing allows
    else k = base * int64_t(1 + rng() % std::max<int64_t>(1, 256 / base));
    if (cols_ok(w, k) && (!a || cols_ok(*a, k))) return k;
  }
  return 0;
}

std::vector<float> random_matrix(std::mt19937_64& rng, int64_t rows, int64_t cols) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(-4.0f, 4.0f);
  std::vector<float> x(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = std::exp2(ud(rng));
    for (int64_t c = 0; c < cols; ++c) {
      float v = nd(rng) * row_scale;
      if (rng() % 64 == 0) v *= 8.0f;  // outliers
      x[size_t(r * cols + c)] = v;
    }
  }
  return x;
}

// float64 product of the dequantized operands: y[m x n] = x . w^T.
std::vector<float> product_f64(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n, int64_t k) {
  std::vector<float> y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t c = 0; c < k; ++c) s += double(x[size_t(i * k + c)]) * double(w[size_t(j * k + c)]);
      y[size_t(i * n + j)] = float(s);
    }
  return y;
}

std::string pair_name(const Format& w, const Format* a) { return w.name + " x " + (a ? a->name : std::string("f32")); }

// Runs one (weight, activation) pair on every variant (gtest expectations inside).
void check_pair(std::mt19937_64& rng, const Format& wf, const Format* af) {
  const int64_t k = pick_k(rng, wf, af);
  ASSERT_GT(k, 0) << pair_name(wf, af);
  // M in 1..17; N in 17..70, never a multiple of the 16-row tile (and at least 17 outputs, so one output whose
  // terms cancel does not dominate the relative L2 of the comparison).
  const int64_t m = 1 + int64_t(rng() % 17);
  int64_t n = 17 + int64_t(rng() % 54);
  if (n % 16 == 0) ++n;
  SCOPED_TRACE(pair_name(wf, af) + " M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k));
  const std::vector<float> wsrc = random_matrix(rng, n, k), xsrc = random_matrix(rng, m, k);
  const QuantizedTensor wq = quantize(wf, wsrc.data(), n, k);
  QuantizedTensor xq;
  if (af) xq = quantize(*af, xsrc.data(), m, k);

  std::vector<float> pseudo(size_t(m * n));
  matmul_pseudo(af ? &xq : nullptr, xsrc.data(), m, wq, pseudo.data());
  const std::vector<float> wd = dequantize(wq);
  const std::vector<float> xd = af ? dequantize(xq) : xsrc;
  const std::vector<float> ref = product_f64(xd, wd, m, n, k);
  EXPECT_LT(test::rel_l2(pseudo, ref), 1e-5) << "pseudo path vs float64";

  const auto pw = prepare_weight(wq);
  IsaGuard guard;
  // Quantized activations: both ways of summing the groups (weight-only layers have one).
  for (const Sums sums : af ? std::vector<Sums>{Sums::Exact, Sums::Float32} : std::vector<Sums>{Sums::Exact}) {
    const char* sums_name = sums == Sums::Exact ? "exact sums" : "float32 sums";
    std::vector<float> first;
    KernelKind first_kind{};
    for (Isa isa : all_isas()) {
      set_isa(isa);
      std::vector<float> y(size_t(m * n), -12345.0f);
      if (af) matmul_quantized(*pw, xq, y.data(), sums);
      else matmul_weight_only(*pw, xsrc.data(), m, y.data());
      const KernelKind kind = kernel_kind(*pw, af, isa, m, sums);
      const double e = test::rel_l2(y, pseudo);
      EXPECT_LT(e, 1e-6) << "real (" << isa_name(isa) << ", " << kernel_kind_name(kind) << ", " << sums_name
                         << ") vs pseudo";
      // Same kernel kind on another variant: the same operations in the same order, so bit-identical.
      if (first.empty()) {
        first = y;
        first_kind = kind;
      } else if (kind == first_kind && kind != KernelKind::Pseudo) {
        EXPECT_EQ(0, std::memcmp(first.data(), y.data(), first.size() * 4))
            << isa_name(isa) << " differs from scalar (" << kernel_kind_name(kind) << ", " << sums_name << ")";
      }
    }
  }
}

TEST(KernelsCpu, EveryPairEveryIsaMatchesPseudo) {
  std::mt19937_64 rng(test::fresh_seed());
  const auto wfs = weight_formats();
  const auto afs = act_formats();
  for (const Format& wf : wfs) {
    check_pair(rng, wf, nullptr);
    for (const Format& af : afs) check_pair(rng, wf, &af);
  }
}

// Operands at the largest magnitude of their codes, all of one sign: every vpmaddubsw pair sum of the AVX2 int8
// kernel is at its bound, so the int16 sums it carries over ActView::i16_chunks chunks overflow if that count is
// one chunk too many (MXFP6 E2M3: one chunk of 2 x 14400 fits, two do not; int4 x int8: four of 2 x 3810).
// Checked against the float64 product of the dequantized operands, on every variant, one row (the
// matrix-vector path) and several.
TEST(KernelsCpu, IntegerSumsAtTheirBound) {
  IsaGuard guard;
  const char* pairs[][2] = {{"mxfp6_e2m3", "mxfp6_e2m3"}, {"int4", "int8"}, {"mxfp4", "mxfp4"}, {"nvfp4", "nvfp4"}};
  const int64_t n = 33, k = 1024;
  for (const auto& pr : pairs) {
    const Format wf = parse_format(pr[0]), af = parse_format(pr[1]);
    for (const int64_t m : {int64_t(1), int64_t(8)}) {
      SCOPED_TRACE(std::string(pr[0]) + " x " + pr[1] + " M=" + std::to_string(m));
      const std::vector<float> w(size_t(n * k), 3.0f), x(size_t(m * k), 5.0f);
      const QuantizedTensor wq = quantize(wf, w.data(), n, k), xq = quantize(af, x.data(), m, k);
      const std::vector<float> ref = product_f64(dequantize(xq), dequantize(wq), m, n, k);
      const auto pw = prepare_weight(wq);
      for (Isa isa : all_isas()) {
        set_isa(isa);
        std::vector<float> y(size_t(m * n), -12345.0f);
        matmul_quantized(*pw, xq, y.data());
        EXPECT_LT(test::rel_l2(y, ref), 1e-6) << isa_name(isa) << ", " << kernel_kind_name(kernel_kind(*pw, &af, isa, m, Sums::Exact));
      }
    }
  }
}

TEST(KernelsCpu, KernelKinds) {
  const auto pick = [](const char* w, const char* a, Isa isa, Sums sums = Sums::Exact) {
    const Format wf = parse_format(w);
    const Format af = parse_format(a);
    std::mt19937_64 rng(1);
    const auto x = random_matrix(rng, 16, 256);
    const auto pw = prepare_weight(quantize(wf, x.data(), 16, 256));
    return kernel_kind(*pw, &af, isa, 0, sums);
  };
  EXPECT_EQ(pick("mxfp4", "mxfp4", Isa::Scalar), KernelKind::Int8Dot);
  EXPECT_EQ(pick("nvfp4", "nvfp4", Isa::Scalar), KernelKind::Int8Dot);
  EXPECT_EQ(pick("q4_0", "q8_1", Isa::Scalar), KernelKind::Int8Dot);
  EXPECT_EQ(pick("int8", "int8", Isa::Scalar), KernelKind::Int8Dot);
  EXPECT_EQ(pick("mxfp6_e2m3", "mxfp6_e2m3", Isa::Scalar), KernelKind::Int8Dot);
  EXPECT_EQ(pick("mxfp6_e3m2", "mxfp6_e3m2", Isa::Scalar), KernelKind::Int16Dot);
  EXPECT_EQ(pick("fp8_e4m3", "fp8_e4m3", Isa::Scalar), KernelKind::Float64);
  EXPECT_EQ(pick("fp8_e4m3", "fp8_e4m3", Isa::Scalar, Sums::Float32), KernelKind::Float);
  if (detected_isa() == Isa::Avx512) {
    EXPECT_EQ(pick("fp8_e4m3", "fp8_e4m3", Isa::Avx512), KernelKind::Float64);
    EXPECT_EQ(pick("fp8_e4m3", "fp8_e4m3", Isa::Avx512, Sums::Float32), KernelKind::Bf16Dot);
    EXPECT_EQ(pick("mxfp8_e4m3", "mxfp8_e4m3", Isa::Avx512, Sums::Float32), KernelKind::Bf16Dot);
    EXPECT_EQ(pick("mxfp4", "mxfp4", Isa::Avx512), KernelKind::Int8Dot);
    EXPECT_EQ(pick("mxfp6_e3m2", "mxfp6_e3m2", Isa::Avx512), KernelKind::Int16Dot);
  }
  EXPECT_EQ(pick("int4_asym", "int8", Isa::Scalar), KernelKind::Int8Dot);
  EXPECT_EQ(pick("int8", "int4_asym", Isa::Scalar), KernelKind::Float64);
  EXPECT_EQ(pick("int8", "int4_asym", Isa::Scalar, Sums::Float32), KernelKind::Float);
  if (detected_isa() >= Isa::Avx2) {
    EXPECT_EQ(pick("mxfp4", "mxfp4", Isa::Avx2), KernelKind::Int8Dot);
    // vpmaddubsw would saturate on these: int16 pairs (vpmaddwd) instead
    EXPECT_EQ(pick("int8", "int8", Isa::Avx2), KernelKind::Int16Dot);
    EXPECT_EQ(pick("q8_0", "q8_0", Isa::Avx2), KernelKind::Int16Dot);
    EXPECT_EQ(pick("mxfp6_e3m2", "mxfp6_e3m2", Isa::Avx2), KernelKind::Int16Dot);
  }
  EXPECT_FALSE(has_real_kernel(parse_format("int4/fp16/g4"), nullptr));
  EXPECT_TRUE(has_real_kernel(parse_format("nvfp4"), nullptr));
}

// Larger shapes over the main kernel kinds: several register tiles, tasks, units; every thread count gives
// the same bits.
TEST(KernelsCpu, ThreadCountIndependent) {
  std::mt19937_64 rng(test::fresh_seed());
  ThreadGuard tg;
  IsaGuard ig;
  struct Case {
    const char* w;
    const char* a;
  };
  const Case cases[] = {{"mxfp4", "mxfp4"}, {"nvfp4", "nvfp4"}, {"q4_0", "q8_1"},          {"mxfp6_e3m2", "mxfp6_e3m2"},
                        {"fp8_e4m3", "fp8_e4m3"}, {"fp6_e3m2", nullptr}, {"int4_asym", "int8"}, {"q4_1", nullptr}};
  int index = 0;
  for (const Case& c : cases) {
    const Format wf = parse_format(c.w);
    const Format af = c.a ? parse_format(c.a) : Format{};
    // Every other case has more than one block of activation rows (the driver splits M in blocks of 64).
    const int64_t m = (index++ % 2) ? 97 + int64_t(rng() % 64) : 1 + int64_t(rng() % 40);
    const int64_t n = 150 + int64_t(rng() % 200), k = 128 * (1 + int64_t(rng() % 2));
    SCOPED_TRACE(std::string(c.w) + " x " + (c.a ? c.a : "f32") + " M=" + std::to_string(m) + " N=" + std::to_string(n));
    const auto w = random_matrix(rng, n, k), x = random_matrix(rng, m, k);
    const QuantizedTensor wq = quantize(wf, w.data(), n, k);
    const QuantizedTensor xq = c.a ? quantize(af, x.data(), m, k) : QuantizedTensor{};
    const auto pw = prepare_weight(wq);
    for (Isa isa : all_isas()) {
      set_isa(isa);
      std::vector<std::vector<float>> ys;
      for (int t : {1, 2, 3, 5}) {
        set_num_threads(t);
        std::vector<float> y(size_t(m * n)), yf(size_t(m * n));
        if (c.a) {
          matmul_quantized(*pw, xq, y.data());
          matmul_quantized(*pw, xq, yf.data(), Sums::Float32);
        } else {
          matmul_weight_only(*pw, x.data(), m, y.data());
          yf = y;
        }
        ys.push_back(std::move(y));
        ys.push_back(std::move(yf));
      }
      for (size_t i = 2; i < ys.size(); ++i)
        EXPECT_EQ(0, std::memcmp(ys[i % 2].data(), ys[i].data(), ys[0].size() * 4))
            << isa_name(isa) << " thread count (" << (i % 2 ? "float32" : "exact") << " sums)";
      // and close to the pseudo path
      std::vector<float> ref(size_t(m * n));
      matmul_pseudo(c.a ? &xq : nullptr, x.data(), m, wq, ref.data());
      EXPECT_LT(test::rel_l2(ys[0], ref), 1e-6) << isa_name(isa);
    }
  }
}

// With exact sums (the default) the real path computes the exact product of the dequantized operands: float64
// sums of exact terms, finished as float(S * (g_x * g_w)) — the model's pseudo path. Here S comes from a plain
// float64 loop over the operands dequantized without their tensor scales, and the real path must give the same
// bits (K up to 4096, long enough for float32 sums to differ in the last bit).
// - The integer kernels: wherever code x group scale is exact in float32 (FP elements with E8M0/E4M3/FP16
//   scales, llama.cpp blocks), so the pseudo path's dequantized operands are the exact values; integer formats
//   with float32 scales (int4, int8) round there and agree to ~1e-7 instead (EveryPairEveryIsaMatchesPseudo).
// - The float64 kernel (FP8 activations, asymmetric ones): for any weight format, as it multiplies the very
//   float32 dequantized values (E4M3 activations: E5M2's wider exponent range can make even a float64 sum of
//   random data round, in the reference loop as much as in the kernel).
// x . w^T as the pseudo path finishes it: float64 sums of the operands dequantized without their tensor scales,
// then float(S * (g_x * g_w)).
std::vector<float> exact_product(const QuantizedTensor& xq, const QuantizedTensor& wq) {
  const int64_t m = xq.rows, n = wq.rows, k = xq.cols;
  std::vector<float> wu(size_t(n * k)), xu(size_t(m * k));
  dequantize_rows(wq, 0, n, wu.data(), false);
  dequantize_rows(xq, 0, m, xu.data(), false);
  std::vector<float> want(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t q = 0; q < k; ++q) s += double(xu[size_t(i * k + q)]) * double(wu[size_t(j * k + q)]);
      want[size_t(i * n + j)] = float(s * (double(xq.global(i)) * double(wq.global(j))));
    }
  return want;
}

TEST(KernelsCpu, ExactSumsBitIdenticalToExactProduct) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  struct Case {
    const char* w;
    const char* a;
  };
  const Case cases[] = {{"nvfp4", "nvfp4"},           {"mxfp4", "mxfp4"},  {"q4_0", "q8_1"},
                        {"mxfp6_e2m3", "mxfp6_e2m3"}, {"mxfp6_e3m2", "mxfp6_e3m2"}, {"q8_0", "q8_1"},
                        {"e2m1/fp16/g16/rowglobal", "nvfp4"}, {"e2m3/e8m0/g16", "e2m1/e8m0/g64"},
                        {"mxfp8_e4m3", "mxfp8_e4m3"}, {"fp8_e4m3", "fp8_e4m3"}, {"nvfp4", "mxfp8_e4m3"},
                        {"e5m2/e8m0/g32", "mxfp8_e4m3"}, {"q4_1", "fp8_e4m3"}, {"int4_asym", "mxfp8_e4m3"},
                        {"int8", "int4_asym"}, {"fp6_e3m2", "e4m3/fp16/g16/rowglobal"}};
  for (const Case& c : cases) for (const bool one_row : {true, false}) {
    const Format wf = parse_format(c.w), af = parse_format(c.a);
    // (one row: the matrix-vector loops; N of 32 to 36 tiles, so that a task gets whole groups of four tiles
    // and one may get the rest)
    const int64_t m = one_row ? 1 : 2 + int64_t(rng() % 39), n = (one_row ? 497 : 17) + int64_t(rng() % 80),
                  k = 256 * (1 + int64_t(rng() % 16));
    SCOPED_TRACE(std::string(c.w) + " x " + c.a + " M=" + std::to_string(m) + " N=" + std::to_string(n) +
                 " K=" + std::to_string(k));
    const auto w = random_matrix(rng, n, k), x = random_matrix(rng, m, k);
    const QuantizedTensor wq = quantize(wf, w.data(), n, k), xq = quantize(af, x.data(), m, k);
    const std::vector<float> want = exact_product(xq, wq);
    const auto pw = prepare_weight(wq);
    int exact_runs = 0;
    for (Isa isa : all_isas()) {
      set_isa(isa);
      const KernelKind kind = kernel_kind(*pw, &af, isa, m);
      if (kind != KernelKind::Int8Dot && kind != KernelKind::Int16Dot && kind != KernelKind::Float64) continue;
      ++exact_runs;
      std::vector<float> y(size_t(m * n), -1.0f);
      matmul_quantized(*pw, xq, y.data());
      int64_t differ = 0;
      for (size_t i = 0; i < y.size(); ++i) differ += f2u_bits(y[i]) != f2u_bits(want[i]);
      EXPECT_EQ(differ, 0) << isa_name(isa) << " (" << kernel_kind_name(kind) << "): " << differ << " of " << y.size()
                           << " outputs differ from the exact product";
    }
    EXPECT_GT(exact_runs, 0) << "no variant ran an exact kernel";  // the scalar variant always should
  }
}

// Many rows through the AVX2 kernels' own many-row paths: a table-decoded weight's tile decoded once per K
// block for all row tiles (decode_once: 5-6-bit codes into bytes; decode_once_words: codes into int16 words),
// E2M3 x E2M3 widening its int16 sums every chunk (rows_f1), the float64 kernel's panels (FP8). M = 45 (row
// tiles of 5 to 8 rows), K = 2112 (two full K blocks and a part), N = 50 (a partial tile): the same bits as the
// exact product on every variant.
TEST(KernelsCpu, ManyRowsExactKernels) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  const char* pairs[][2] = {{"mxfp6_e2m3", "mxfp6_e2m3"}, {"mxfp6_e3m2", "mxfp6_e3m2"}, {"mxfp4", "mxfp6_e3m2"},
                            {"fp6_e3m2", "mxfp6_e2m3"}, {"e2m3/e8m0/g64", "mxfp6_e2m3"},
                            {"fp8_e4m3", "fp8_e4m3"},     {"mxfp8_e4m3", "mxfp8_e4m3"}};
  const int64_t m = 45, n = 50, k = 2112;
  for (const auto& pr : pairs) {
    SCOPED_TRACE(std::string(pr[0]) + " x " + pr[1]);
    const Format wf = parse_format(pr[0]), af = parse_format(pr[1]);
    const auto w = random_matrix(rng, n, k), x = random_matrix(rng, m, k);
    const QuantizedTensor wq = quantize(wf, w.data(), n, k), xq = quantize(af, x.data(), m, k);
    const std::vector<float> want = exact_product(xq, wq);
    const auto pw = prepare_weight(wq);
    for (Isa isa : all_isas()) {
      set_isa(isa);
      const KernelKind kind = kernel_kind(*pw, &af, isa, m);
      EXPECT_TRUE(kind == KernelKind::Int8Dot || kind == KernelKind::Int16Dot || kind == KernelKind::Float64)
          << isa_name(isa) << ": " << kernel_kind_name(kind);
      std::vector<float> y(size_t(m * n), -1.0f);
      matmul_quantized(*pw, xq, y.data());
      int64_t differ = 0;
      for (size_t i = 0; i < y.size(); ++i) differ += f2u_bits(y[i]) != f2u_bits(want[i]);
      EXPECT_EQ(differ, 0) << isa_name(isa) << " (" << kernel_kind_name(kind) << "): " << differ << " of "
                           << y.size() << " outputs differ from the exact product";
    }
  }
}

// A row of the product does not depend on the other rows of the batch: one call with M rows (register tiles,
// decoded weight panels, row blocks) gives the same bits as M calls of one row, where both run the same kernel
// kind (the bf16 kernel serves 8 rows or more), else agrees to rounding.
TEST(KernelsCpu, RowsIndependentOfBatch) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  for (const char* wname : {"fp6_e3m2", "mxfp4", "fp8_e4m3", "q4_1", "int4_asym", "nvfp4"}) {
    for (const char* aname : {"f32", "mxfp4", "fp8_e4m3", "q8_1"}) {
      // K beyond 1024 columns makes the float kernel walk K in more than one span.
      const int64_t m = 16 + int64_t(rng() % 90), n = 40, k = (rng() % 2) ? 128 : 1152;
      SCOPED_TRACE(std::string(wname) + " x " + aname + " M=" + std::to_string(m) + " K=" + std::to_string(k));
      const auto w = random_matrix(rng, n, k), x = random_matrix(rng, m, k);
      const QuantizedTensor wq = quantize(parse_format(wname), w.data(), n, k);
      const bool wo = std::string(aname) == "f32";
      const QuantizedTensor xq = wo ? QuantizedTensor{} : quantize(parse_format(aname), x.data(), m, k);
      const auto pw = prepare_weight(wq);
      for (Isa isa : all_isas()) {
        set_isa(isa);
        std::vector<float> all(static_cast<size_t>(m * n)), one(static_cast<size_t>(n));
        if (wo) matmul_weight_only(*pw, x.data(), m, all.data());
        else matmul_quantized(*pw, xq, all.data());
        for (int64_t r = 0; r < m; ++r) {
          if (wo) {
            matmul_weight_only(*pw, x.data() + r * k, 1, one.data());
          } else {
            const QuantizedTensor xr = quantize(parse_format(aname), x.data() + r * k, 1, k,
                                                xq.global_scale.size() == 1 ? QuantizeOptions{.global_scale = xq.global_scale[0]}
                                                                            : QuantizeOptions{});
            matmul_quantized(*pw, xr, one.data());
          }
          const Format af = wo ? Format{} : parse_format(aname);
          if (kernel_kind(*pw, wo ? nullptr : &af, isa, m) == kernel_kind(*pw, wo ? nullptr : &af, isa, 1))
            ASSERT_EQ(0, std::memcmp(one.data(), all.data() + r * n, size_t(n) * 4)) << isa_name(isa) << " row " << r;
          else
            ASSERT_LT(test::rel_l2(one.data(), all.data() + r * n, size_t(n)), 1e-6) << isa_name(isa) << " row " << r;
        }
      }
    }
  }
}

// matmul_weight_only on every variant: within 1e-6 (relative L2) of ref where given, and the same bits as the
// first (scalar) variant.
void check_weight_only_every_isa(const PreparedWeight& pw, const std::vector<float>& x, int64_t m, int64_t n,
                                 const std::vector<float>* ref, const std::string& what) {
  std::vector<float> first;
  for (Isa isa : all_isas()) {
    set_isa(isa);
    std::vector<float> y(size_t(m * n), -12345.0f);
    matmul_weight_only(pw, x.data(), m, y.data());
    SCOPED_TRACE(what + " M=" + std::to_string(m) + " " + isa_name(isa));
    if (ref) {
      EXPECT_LT(test::rel_l2(y, *ref), 1e-6);
    }
    if (first.empty()) {
      first = y;
    } else {
      EXPECT_EQ(0, std::memcmp(first.data(), y.data(), first.size() * 4)) << "differs from scalar";
    }
  }
}

// Weight-only E2M1 with group scales down at FLT_MIN: the AVX2 float kernel decodes E2M1 codes as int8 =
// 2 x value with the scales halved, which is exact only while a halved scale stays normal or is a power of two
// (E8M0); float32 scales that would lose bits take the table decoder. Against float64 and bit-identical on
// every variant, one row and several.
TEST(KernelsCpu, WeightOnlyTinyScales) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  for (const char* fname : {"mxfp4", "e2m1/fp32/g32"})
  for (int e : {-100, -124, -127}) {
    const int64_t n = 37, k = 256;
    std::vector<float> w = random_matrix(rng, n, k);
    for (float& v : w) v = std::ldexp(v, e);
    const QuantizedTensor wq = quantize(parse_format(fname), w.data(), n, k);
    const std::vector<float> wd = dequantize(wq);
    const auto pw = prepare_weight(wq);
    for (int64_t m : {1, 5}) {
      const std::vector<float> x = random_matrix(rng, m, k);
      const std::vector<float> ref = product_f64(x, wd, m, n, k);
      check_weight_only_every_isa(*pw, x, m, n, &ref, std::string(fname) + " weights x 2^" + std::to_string(e));
    }
  }
}

// Weight-only products with activations near float32's ends: decoders whose values carry a power of two (AVX2's
// int8 views, 2 or 2^24 x the value; the half patterns, 2^(bias - 15)) move the group sums by it, so they must
// step aside where a group sum could overflow or where the unscaled sums would round below FLT_MIN.
// Bit-identical on every variant; against float64 where the products are normal floats (2^-140: subnormal
// products, which no variant computes to 1e-6).
TEST(KernelsCpu, WeightOnlyActivationRange) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  for (const char* fname : {"mxfp4", "int4", "q4_0", "nvfp4", "q8_0", "mxint8", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp8_e4m3"})
    for (int e : {60, 95, 110, -110, -140}) {
      // 520 rows: tasks of 4 or 8 tiles, so M = 1 takes four-tile register tiles, and a last single tile
      const int64_t n = 520, k = 512;
      const std::vector<float> w = random_matrix(rng, n, k);
      const QuantizedTensor wq = quantize(parse_format(fname), w.data(), n, k);
      const std::vector<float> wd = dequantize(wq);
      const auto pw = prepare_weight(wq);
      for (int64_t m : {1, 3}) {
        std::vector<float> x = random_matrix(rng, m, k);
        for (float& v : x) v = std::ldexp(v, e);
        const std::vector<float> ref = product_f64(x, wd, m, n, k);
        check_weight_only_every_isa(*pw, x, m, n, e > -140 ? &ref : nullptr,
                                    std::string(fname) + " activations x 2^" + std::to_string(e));
      }
    }
}

// NVFP4 weights store value * s per group and apply the global scale (~amax / 2688) last, so activations near
// 2^118 make the unscaled products overflow float32 although the product itself (~2^123) is finite: such
// activations take the float64 kernel. (A random seed of WeightOnlyActivationRange hit this as inf.)
TEST(KernelsCpu, WeightOnlyHugeActivationsGlobalScale) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const char* fname : {"nvfp4", "mxfp4", "fp6_e3m2"}) {
    const int64_t n = 37, k = 512;
    std::vector<float> w(size_t(n * k));
    for (float& v : w) v = nd(rng);
    const QuantizedTensor wq = quantize(parse_format(fname), w.data(), n, k);
    const std::vector<float> wd = dequantize(wq);
    const auto pw = prepare_weight(wq);
    for (int64_t m : {1, 3}) {
      std::vector<float> x(size_t(m * k));
      for (float& v : x) v = std::ldexp(nd(rng) > 0 ? 1.0f : -1.0f, 118 - int(rng() % 3));
      const std::vector<float> ref = product_f64(x, wd, m, n, k);
      for (float v : ref) ASSERT_TRUE(std::isfinite(v));
      check_weight_only_every_isa(*pw, x, m, n, &ref, std::string(fname) + " activations ~2^118");
    }
  }
}

// Weight-only rows of tiny activations (all of a row near or below FLT_MIN: 2^-112 .. 2^-140, next to ordinary
// rows): the float kernels multiply decoded values carrying powers of two and apply scales after the sums, so
// such rows lost most of their bits. Each output must be the float64 product rounded to float32 within 1e-5 of
// its row's size, give or take the subnormal grid's own rounding, and the same bits on every variant.
TEST(KernelsCpu, WeightOnlyTinyActivationRows) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  for (const Format& wf : weight_formats()) {
    const int64_t m = 4, n = 21, k = wf.group > 0 ? std::max<int64_t>(256, wf.group * 2) : 256;
    const std::vector<float> w = random_matrix(rng, n, k);
    std::vector<float> x = random_matrix(rng, m, k);
    const int exps[4] = {-112, 0, -128 - int(rng() % 13), -140};
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < k; ++c) x[size_t(r * k + c)] = std::ldexp(x[size_t(r * k + c)], exps[r]);
    const QuantizedTensor wq = quantize(wf, w.data(), n, k);
    const std::vector<float> wd = dequantize(wq);
    const auto pw = prepare_weight(wq);
    const std::vector<float> ref = product_f64(x, wd, m, n, k);
    std::vector<float> first;
    for (Isa isa : all_isas()) {
      set_isa(isa);
      SCOPED_TRACE(wf.name + " " + isa_name(isa));
      std::vector<float> y(size_t(m * n), -12345.0f);
      matmul_weight_only(*pw, x.data(), m, y.data());
      for (int64_t r = 0; r < m; ++r) {
        double num = 0, den = 0;
        for (int64_t j = 0; j < n; ++j) {
          const double d = double(y[size_t(r * n + j)]) - double(ref[size_t(r * n + j)]);
          num += d * d;
          den += double(ref[size_t(r * n + j)]) * double(ref[size_t(r * n + j)]);
        }
        EXPECT_LE(std::sqrt(num), 1e-5 * std::sqrt(den) + 2 * std::sqrt(double(n)) * 0x1p-149)
            << "row " << r << " (x ~ 2^" << exps[r] << ")";
      }
      if (first.empty()) {
        first = y;
      } else {
        EXPECT_EQ(0, std::memcmp(first.data(), y.data(), first.size() * 4)) << "differs from the first variant";
      }
    }
  }
}

TEST(KernelsCpu, WeightOnlyBf16) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  for (const char* name : {"fp6_e3m2", "mxfp4", "int4", "q8_0", "fp8_e5m2"}) {
    const int64_t m = 1 + int64_t(rng() % 9), n = 33, k = 256;
    const auto w = random_matrix(rng, n, k), x = random_matrix(rng, m, k);
    std::vector<uint16_t> xb(x.size());
    std::vector<float> xr(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      xb[i] = f32_to_bf16(x[i]);
      xr[i] = bf16_to_f32(xb[i]);
    }
    const QuantizedTensor wq = quantize(parse_format(name), w.data(), n, k);
    const auto pw = prepare_weight(wq);
    std::vector<float> ref(size_t(m * n));
    matmul_pseudo(nullptr, xr.data(), m, wq, ref.data());
    for (Isa isa : all_isas()) {
      set_isa(isa);
      std::vector<float> y(size_t(m * n));
      matmul_weight_only_bf16(*pw, xb.data(), m, y.data());
      EXPECT_LT(test::rel_l2(y, ref), 1e-6) << name << " " << isa_name(isa);
    }
  }
}

// Non-finite values: a NaN activation poisons its group's scale, so whole output rows are NaN; a NaN code in
// FP8 weights (decoded through the table path) poisons its output column. Real and pseudo agree on where.
TEST(KernelsCpu, NonFiniteValues) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  const int64_t m = 5, n = 37, k = 64;
  for (const char* wname : {"mxfp4", "fp8_e4m3", "nvfp4", "q4_0"}) {
    for (const char* aname : {"mxfp4", "mxfp8_e4m3", "q8_1", "nvfp4"}) {
      auto w = random_matrix(rng, n, k), x = random_matrix(rng, m, k);
      x[size_t(2 * k + 5)] = NAN;
      QuantizedTensor wq = quantize(parse_format(wname), w.data(), n, k);
      if (std::string(wname) == "fp8_e4m3") wq.codes[size_t(7 * k + 3)] = 0x7F;  // NaN code in row 7
      const QuantizedTensor xq = quantize(parse_format(aname), x.data(), m, k);
      std::vector<float> ref(size_t(m * n));
      matmul_pseudo(&xq, nullptr, m, wq, ref.data());
      const auto pw = prepare_weight(wq);
      for (Isa isa : all_isas()) {
        set_isa(isa);
        std::vector<float> y(size_t(m * n));
        matmul_quantized(*pw, xq, y.data());
        std::vector<float> a, b;
        for (size_t i = 0; i < y.size(); ++i) {
          EXPECT_EQ(std::isnan(y[i]), std::isnan(ref[i])) << wname << " x " << aname << " " << isa_name(isa) << " at " << i;
          if (!std::isnan(ref[i])) {
            a.push_back(y[i]);
            b.push_back(ref[i]);
          }
        }
        EXPECT_LT(test::rel_l2(a, b), 1e-6) << wname << " x " << aname << " " << isa_name(isa);
      }
    }
  }
}

void expect_same_bytes(const QuantizedTensor& a, const QuantizedTensor& b, const std::string& what) {
  EXPECT_EQ(a.codes, b.codes) << what << ": codes";
  EXPECT_EQ(a.scales, b.scales) << what << ": scales";
  EXPECT_EQ(a.zeros, b.zeros) << what << ": zero points";
  ASSERT_EQ(a.global_scale.size(), b.global_scale.size()) << what;
  for (size_t i = 0; i < a.global_scale.size(); ++i)
    EXPECT_EQ(f32_bits(a.global_scale[i]), f32_bits(b.global_scale[i])) << what << ": global scale " << i;
}

// Data with the cases encoders get wrong: ties, subnormals, zeros, huge values, an all-zero group, NaN/Inf.
std::vector<float> nasty_matrix(std::mt19937_64& rng, int64_t rows, int64_t cols, bool non_finite) {
  auto x = random_matrix(rng, rows, cols);
  const float specials[] = {0.0f, -0.0f, 0.25f, 0.75f, -1.25f, 2.5f, 3.0f, 5.0f, 1e-40f, -3e-39f, 1e30f, -1e30f,
                            6.0f, 448.0f, 0.5f, 1.5f};
  for (auto& v : x)
    if (rng() % 8 == 0) v = specials[rng() % 16] * (rng() % 2 ? 1.0f : 0.0625f);
  if (rows > 1 && cols >= 32)
    for (int64_t c = 0; c < 32; ++c) x[size_t(cols + c)] = 0.0f;  // an all-zero group in row 1
  if (non_finite && rows > 2) {
    x[size_t(2 * cols + 1)] = NAN;
    x[size_t(2 * cols + cols - 1)] = -INFINITY;
  }
  return x;
}

TEST(KernelsCpu, ActivationQuantizerBytesEqualQuantize) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard ig;
  std::vector<Format> fs = act_formats();
  for (const char* s : {"e3m2/e8m0/g32", "e5m2/fp16/row", "int8/bf16/g16", "mxint8", "e2m1/e4m3/g16/rowglobal",
                        "e2m0/fp16/g32", "e3m4_ieee/fp32/g32"})
    fs.push_back(parse_format(s));
  for (const Format& f : fs) {
    for (bool non_finite : {false, true}) {
      const int64_t m = 1 + int64_t(rng() % 9);
      int64_t k = 0;
      for (int t = 0; t < 100 && !k; ++t) {
        const int64_t cand = 32 * (1 + int64_t(rng() % 8));
        if (cols_ok(f, cand)) k = cand;
      }
      ASSERT_GT(k, 0);
      const auto x = nasty_matrix(rng, m, k, non_finite);
      const QuantizedTensor ref = quantize(f, x.data(), m, k);
      for (Isa isa : all_isas()) {
        set_isa(isa);
        expect_same_bytes(quantize_activations(f, x.data(), m, k), ref,
                          f.name + " " + isa_name(isa) + (non_finite ? " (non-finite)" : ""));
      }
    }
    // a fixed (calibrated) global scale
    if (f.global != GlobalScale::None) {
      QuantizeOptions o;
      o.global_scale = 0.01f;
      const auto x = nasty_matrix(rng, 3, 64, false);
      for (Isa isa : all_isas()) {
        set_isa(isa);
        expect_same_bytes(quantize_activations(f, x.data(), 3, 64, o), quantize(f, x.data(), 3, 64, o),
                          f.name + " fixed global " + isa_name(isa));
      }
    }
  }
}

TEST(KernelsCpu, LinearQuantizesThenMultiplies) {
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t m = 7, n = 45, k = 128;
  const auto w = random_matrix(rng, n, k), x = random_matrix(rng, m, k);
  const Format wf = parse_format("nvfp4");
  const QuantizedTensor wq = quantize(wf, w.data(), n, k);
  const auto pw = prepare_weight(wq);
  std::vector<float> y(size_t(m * n)), ref(size_t(m * n));
  linear(*pw, &wf, x.data(), m, y.data());
  const QuantizedTensor xq = quantize(wf, x.data(), m, k);
  matmul_pseudo(&xq, nullptr, m, wq, ref.data());
  EXPECT_LT(test::rel_l2(y, ref), 1e-6);
  linear(*pw, nullptr, x.data(), m, y.data());
  matmul_pseudo(nullptr, x.data(), m, wq, ref.data());
  EXPECT_LT(test::rel_l2(y, ref), 1e-6);
}

TEST(KernelsCpu, BadInputIsAnError) {
  const Format f = parse_format("mxfp4");
  std::vector<float> w(64 * 32, 1.0f), x(64, 1.0f), y(64);
  const auto pw = prepare_weight(quantize(f, w.data(), 32, 64));
  const QuantizedTensor xq = quantize(f, x.data(), 1, 64);
  QuantizedTensor bad = quantize(f, w.data(), 2, 32);
  EXPECT_THROW(matmul_quantized(*pw, bad, y.data()), Error);
  bad.codes.pop_back();
  EXPECT_THROW(prepare_weight(bad), Error);
  EXPECT_THROW(parse_isa("sse9"), Error);
}

TEST(KernelsCpu, IsaSelection) {
  IsaGuard ig;
  EXPECT_EQ(set_isa(Isa::Scalar), Isa::Scalar);
  EXPECT_STREQ(isa_name(active_isa()), "scalar");
  EXPECT_EQ(set_isa(Isa::Avx512), detected_isa());
  EXPECT_NE(std::string(active_isa_name()).find(isa_name(detected_isa())), std::string::npos);
}

// Activations scaled to 2^112 and 2^-100, every pair, both sums: the kernels' float32 intermediates (sums of
// values before their scales, unit scales carrying the integer views' powers of two) would leave float32's range
// where the product does not (an E5M2 code is up to 57344 before its per-row scale, an NVFP4 one 2688 before
// the global scale); the driver sends such operands to the float64 kernel (operand_range.h). Against the
// float64 product of the dequantized operands, and the pseudo path where its own float32 products stay finite.
// (Not below 2^-100: NVFP4 activations would dequantize to subnormals, and the reference would be the inexact one.)
TEST(KernelsCpu, ExtremeMagnitudesEveryPair) {
  std::mt19937_64 rng(test::fresh_seed());
  IsaGuard guard;
  static const std::vector<Format> afs = act_formats();
  std::vector<const Format*> acts{nullptr};
  for (const Format& af : afs) acts.push_back(&af);
  for (const int e : {112, -100})
    for (const Format& wf : weight_formats())
      for (const Format* af : acts) {
        const int64_t k = pick_k(rng, wf, af), m = 1 + int64_t(rng() % 4), n = 37;
        const std::vector<float> w = random_matrix(rng, n, k);
        std::vector<float> x = random_matrix(rng, m, k);
        for (float& v : x) v = std::ldexp(v, e);
        const QuantizedTensor wq = quantize(wf, w.data(), n, k);
        const QuantizedTensor xq = af ? quantize(*af, x.data(), m, k) : QuantizedTensor{};
        const std::vector<float> ref = product_f64(af ? dequantize(xq) : x, dequantize(wq), m, n, k);
        if (!std::all_of(ref.begin(), ref.end(), [](float v) { return std::isfinite(v); })) continue;
        std::vector<float> pseudo(size_t(m * n));
        matmul_pseudo(af ? &xq : nullptr, x.data(), m, wq, pseudo.data());
        const bool pseudo_finite = std::all_of(pseudo.begin(), pseudo.end(), [](float v) { return std::isfinite(v); });
        const auto pw = prepare_weight(wq);
        for (const Sums sums : af ? std::vector<Sums>{Sums::Exact, Sums::Float32} : std::vector<Sums>{Sums::Exact})
          for (Isa isa : all_isas()) {
            set_isa(isa);
            SCOPED_TRACE(pair_name(wf, af) + " x 2^" + std::to_string(e) + " M=" + std::to_string(m) + " " +
                         isa_name(isa) + (sums == Sums::Exact ? " exact" : " float32 sums"));
            std::vector<float> y(size_t(m * n), -12345.0f);
            if (af) {
              matmul_quantized(*pw, xq, y.data(), sums);
            } else {
              matmul_weight_only(*pw, x.data(), m, y.data());
            }
            EXPECT_LT(test::rel_l2(y, ref), 1e-5);
            if (pseudo_finite) {  // (few outputs: the pseudo path's float32 sums alone reach 1e-6 at times)
              EXPECT_LT(test::rel_l2(y, pseudo), 1e-5);
            }
          }
      }
}

}  // namespace
}  // namespace fpq::cpu
