// The llama.cpp-compatible API (quantize_q4_0, quantize_q8_1, dequantize_q4_0, gemm_q4_0_q8_1) against
// gguf-py's quantizers and a float64 numpy product (tests/ref/kernels_cpu_ref.py).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "formats/ggml_blocks.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/quant_gemm.h"
#include "test_support.h"
#include "util/npy.h"

namespace fpq::cpu {
namespace {

std::vector<float> randn(std::mt19937_64& rng, size_t n) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

std::vector<float> as_float(const std::vector<uint8_t>& b) { return std::vector<float>(b.begin(), b.end()); }

TEST(QuantGemm, MatchesGgufPyAndFloat64) {
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t M = 1 + int64_t(rng() % 70), N = 1 + int64_t(rng() % 17), K = 32 * (1 + int64_t(rng() % 12));
  SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
  const auto w = randn(rng, size_t(M * K)), a = randn(rng, size_t(N * K));
  test::TempDir dir;
  write_npy(dir / "w.npy", {M, K}, w.data());
  write_npy(dir / "a.npy", {N, K}, a.data());
  test::run_python_ref("kernels_cpu_ref.py", {"q4_0_q8_1", (dir / "w.npy").string(), (dir / "a.npy").string(),
                                               (dir / "wq.npy").string(), (dir / "aq.npy").string(),
                                               (dir / "c.npy").string()});
  const NpyArray wq_ref = read_npy(dir / "wq.npy"), aq_ref = read_npy(dir / "aq.npy"), c_ref = read_npy(dir / "c.npy");

  const std::vector<uint8_t> wq = quantize_q4_0(w.data(), M, K), aq = quantize_q8_1(a.data(), N, K);
  ASSERT_EQ(wq.size(), size_t(M * (K / 32) * 18));
  ASSERT_EQ(aq.size(), size_t(N * (K / 32) * 36));
  EXPECT_EQ(as_float(wq), wq_ref.data) << "Q4_0 bytes differ from gguf-py";
  EXPECT_EQ(as_float(aq), aq_ref.data) << "Q8_1 bytes differ from the reference";

  const std::vector<float> wd = dequantize_q4_0(wq.data(), M, K);
  std::vector<float> wd_ref(size_t(M * K));
  for (int64_t r = 0; r < M; ++r) dequantize_row_q4_0(wq.data() + r * (K / 32) * 18, K, wd_ref.data() + r * K);
  EXPECT_EQ(wd, wd_ref);

  for (int i = 0; i <= int(detected_isa()); ++i) {
    const Isa saved = active_isa();
    set_isa(Isa(i));
    const std::vector<float> c = gemm_q4_0_q8_1(wq.data(), aq.data(), M, N, K);
    set_isa(saved);
    ASSERT_EQ(c.size(), size_t(M * N));
    EXPECT_LT(test::rel_l2(c, c_ref.data), 1e-6) << isa_name(Isa(i));
  }
}

TEST(QuantGemm, BadShapes) {
  std::vector<float> x(40, 1.0f);
  EXPECT_THROW(quantize_q4_0(x.data(), 1, 40), std::exception);
  EXPECT_THROW(quantize_q8_1(x.data(), 1, 0), std::exception);
}

}  // namespace
}  // namespace fpq::cpu
