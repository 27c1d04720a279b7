// The float32 matrix-vector products of the runtime (f32_gemm.h) against a float64 computation: every
// instruction-set variant this machine runs, row counts that are not multiples of the 4-row block, K tails
// shorter than the SIMD width, row strides wider than K, and the same bits for any thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/f32_gemm.h"
#include "kernels/cpu/isa.h"
#include "test_support.h"
#include "util/parallel.h"

namespace fpq::cpu {
namespace {

struct Restore {
  Isa isa = active_isa();
  int threads = num_threads();
  ~Restore() {
    set_isa(isa);
    set_num_threads(threads);
  }
};

std::vector<float> random_vec(std::mt19937_64& rng, size_t n) {
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Float32 sums of k products carry a relative error up to ~k * 2^-24 of the sum of magnitudes; the bound below
// compares against that sum, so cancellation cannot fail a correct kernel and a wrong term still does.
void expect_close(const std::vector<double>& ref, const std::vector<double>& mag, const float* got, size_t n,
                  double k, const std::string& what) {
  for (size_t i = 0; i < n; ++i)
    ASSERT_LE(std::abs(double(got[i]) - ref[i]), 2.0 * k * 0x1p-24 * mag[i] + 1e-30) << what << ", output " << i;
}

TEST(F32Gemm, RowDotsMatchFloat64) {
  Restore restore;
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  for (int i = 0; i <= int(detected_isa()); ++i) {
    set_isa(Isa(i));
    for (int64_t k : {1, 7, 8, 15, 16, 17, 64, 100, 576}) {
      for (int64_t n : {1, 3, 4, 5, 13, 64, 130}) {
        const int64_t ldw = k + int64_t(rng() % 3);  // (a row stride wider than K: the attention's key rows)
        const auto w = random_vec(rng, size_t(n * ldw)), x = random_vec(rng, size_t(k));
        std::vector<double> ref(static_cast<size_t>(n)), mag(static_cast<size_t>(n));
        for (int64_t r = 0; r < n; ++r)
          for (int64_t j = 0; j < k; ++j) {
            ref[size_t(r)] += double(w[size_t(r * ldw + j)]) * double(x[size_t(j)]);
            mag[size_t(r)] += std::abs(double(w[size_t(r * ldw + j)]) * double(x[size_t(j)]));
          }
        const std::string what = std::string(isa_name(Isa(i))) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
        std::vector<float> y(size_t(n), std::nanf(""));
        f32_dot_rows(n, k, w.data(), ldw, x.data(), y.data());
        expect_close(ref, mag, y.data(), size_t(n), double(k), what + " (dot rows)");
        std::vector<float> y2(size_t(n), std::nanf(""));
        f32_gemv(n, k, w.data(), ldw, x.data(), y2.data());
        expect_close(ref, mag, y2.data(), size_t(n), double(k), what + " (gemv)");
        if (ldw == k) {
          std::vector<float> y3(size_t(n), std::nanf(""));
          f32_gemm_nt(1, n, k, x.data(), w.data(), y3.data());
          expect_close(ref, mag, y3.data(), size_t(n), double(k), what + " (gemm_nt, one row)");
        }
      }
    }
  }
}

TEST(F32Gemm, TransposedProductMatchesFloat64) {
  Restore restore;
  std::mt19937_64 rng(test::fresh_seed());
  for (int i = 0; i <= int(detected_isa()); ++i) {
    set_isa(Isa(i));
    for (int64_t rows : {1, 2, 9, 100})
      for (int64_t cols : {1, 5, 8, 13, 32, 40, 64, 71}) {
        const int64_t ldv = cols + int64_t(rng() % 3);
        const auto v = random_vec(rng, size_t(rows * ldv)), p = random_vec(rng, size_t(rows));
        std::vector<double> ref(static_cast<size_t>(cols)), mag(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            ref[size_t(c)] += double(p[size_t(r)]) * double(v[size_t(r * ldv + c)]);
            mag[size_t(c)] += std::abs(double(p[size_t(r)]) * double(v[size_t(r * ldv + c)]));
          }
        std::vector<float> y(size_t(cols), std::nanf(""));
        f32_gemv_t(rows, cols, v.data(), ldv, p.data(), y.data());
        expect_close(ref, mag, y.data(), size_t(cols), double(rows),
                     std::string(isa_name(Isa(i))) + " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
      }
  }
}

TEST(F32Gemm, SameBitsForAnyThreadCountAndRowGrouping) {
  Restore restore;
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t n = 1003, k = 333;
  const auto w = random_vec(rng, size_t(n * k)), x = random_vec(rng, size_t(k));
  for (int i = 0; i <= int(detected_isa()); ++i) {
    set_isa(Isa(i));
    std::vector<float> first;
    for (int threads : {1, 2, 3, 7}) {
      set_num_threads(threads);
      std::vector<float> y(static_cast<size_t>(n));
      f32_gemv(n, k, w.data(), k, x.data(), y.data());
      if (first.empty()) first = y;
      else EXPECT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float))) << threads << " threads";
    }
    // A row's bits do not depend on the rows that share its call (4-row blocks or single rows).
    for (int64_t r = 0; r < n; r += 37) {
      float one = 0;
      f32_dot_rows(1, k, w.data() + r * k, k, x.data(), &one);
      EXPECT_EQ(0, std::memcmp(&one, &first[size_t(r)], sizeof(float))) << isa_name(Isa(i)) << " row " << r;
    }
  }
}

}  // namespace
}  // namespace fpq::cpu
