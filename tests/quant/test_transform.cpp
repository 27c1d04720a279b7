// Transforms: Walsh-Hadamard (power-of-two and Paley-based sizes) against an independent numpy construction,
// orthonormality / invertibility, and the fold identity x W^T == T(x) fold(W)^T for Hadamard and dense
// (shared and per-block) transforms; Hessian rotation; the Hessian accumulator.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "quant/hadamard.h"
#include "quant/hessian.h"
#include "quant/transform.h"
#include "quant_test_data.h"
#include "util/error.h"
#include "test_support.h"

namespace fpq::quant {
namespace {

using test::TempDir;
using namespace testdata;

std::vector<float> gaussian(int64_t n, uint64_t seed, float sd = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

// y = x W^T in float64 (m x k times (n x k)^T).
std::vector<double> matmul_t(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n, int64_t k) {
  std::vector<double> y(size_t(m * n), 0.0);
  for (int64_t a = 0; a < m; ++a)
    for (int64_t b = 0; b < n; ++b) {
      double s = 0;
      for (int64_t c = 0; c < k; ++c) s += double(x[size_t(a * k + c)]) * double(w[size_t(b * k + c)]);
      y[size_t(a * n + b)] = s;
    }
  return y;
}

double rel(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

const std::vector<int64_t> kSizes = {16, 32, 64, 128, 12, 20, 24, 28, 36, 44, 48, 60, 96, 576, 1536};

TEST(Hadamard, SupportedSizes) {
  EXPECT_EQ(hadamard_base_order(128), 1);
  EXPECT_EQ(hadamard_base_order(576), 36);
  EXPECT_EQ(hadamard_base_order(1536), 12);
  EXPECT_EQ(hadamard_base_order(2560), 20);
  EXPECT_EQ(hadamard_base_order(14336), 28);
  EXPECT_EQ(hadamard_base_order(11008), 0);
  EXPECT_EQ(hadamard_base_order(7), 0);
  EXPECT_THROW(BlockTransform::hadamard(11008), Error);
  EXPECT_THROW(BlockTransform::hadamard(96, 40), Error);  // 40 does not divide 96
  EXPECT_NO_THROW(BlockTransform::hadamard(11008, 128));
}

TEST(Hadamard, OrthonormalAndInvertible) {
  const uint64_t seed = test::fresh_seed();
  for (int64_t n : kSizes) {
    if (n > 600) continue;  // the O(n^3) check; larger sizes are covered by the inverse check below
    const auto H = hadamard_matrix(n);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t c = 0; c < n; ++c) s += H[size_t(i * n + c)] * H[size_t(j * n + c)];
        worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
      }
    EXPECT_LT(worst, 1e-12) << "H H^T != I for n = " << n;
  }
  for (int64_t n : kSizes) {
    // float32: forward then inverse gives the input back to float32 precision, and norms are preserved.
    for (bool signs : {false, true}) {
      const auto T = signs ? BlockTransform::hadamard(n, 0, seed) : BlockTransform::hadamard(n);
      const int64_t rows = 5;
      auto x = gaussian(rows * n, seed + uint64_t(n));
      auto y = x;
      T.forward(y.data(), rows);
      double nx = 0, ny = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        nx += double(x[i]) * x[i];
        ny += double(y[i]) * y[i];
      }
      EXPECT_NEAR(ny / nx, 1.0, 1e-5) << n;
      T.inverse(y.data(), rows);
      EXPECT_LT(test::rel_l2(y, x), 2e-6) << "inverse(forward(x)) != x for n = " << n << " signs " << signs;
    }
  }
}

TEST(Hadamard, MatchesNumpyConstruction) {
  const uint64_t seed = test::fresh_seed();
  TempDir dir;
  const int64_t rows = 7;
  std::vector<std::string> args = {"batch", dir.path().string()};
  for (int64_t n : kSizes) {
    save(dir / ("x_" + std::to_string(n) + ".npy"), gaussian(rows * n, seed ^ uint64_t(n)), {rows, n});
    args.push_back(std::to_string(n));
  }
  test::run_python_ref("quant_hadamard_ref.py", args);
  for (int64_t n : kSizes) {
    auto y = load(dir / ("x_" + std::to_string(n) + ".npy"));
    BlockTransform::hadamard(n).forward(y.data(), rows);
    EXPECT_LT(test::rel_l2(y, load(dir / ("y_" + std::to_string(n) + ".npy"))), 1e-6) << "n = " << n;
    if (n > 600) continue;
    // the dense matrix too (float64 vs float32 reference)
    const auto Hr = load(dir / ("h_" + std::to_string(n) + ".npy"));
    const auto H = hadamard_matrix(n);
    double worst = 0;
    for (size_t i = 0; i < H.size(); ++i) worst = std::max(worst, std::fabs(H[i] - double(Hr[i])));
    EXPECT_LT(worst, 1e-6) << "n = " << n;
  }
  // A block transform applies H_G (checked above) to each block of a row.
  const int64_t n = 96, G = 32, r3 = 3;
  const auto x = gaussian(r3 * n, seed + 1);
  auto y = x, yb = x;
  BlockTransform::hadamard(n, G).forward(y.data(), r3);
  BlockTransform::hadamard(G).forward(yb.data(), r3 * n / G);
  EXPECT_EQ(y, yb);
}

TEST(Transform, FoldIdentityAndMatrices) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  struct Case {
    const char* name;
    BlockTransform t;
  };
  const int64_t k = 96, m = 9, n = 11;
  std::vector<float> shared(32 * 32), per((k / 32) * 32 * 32);
  // I + 0.5 N / sqrt(G): invertible and well conditioned, far from orthogonal.
  for (size_t i = 0; i < shared.size(); ++i) shared[i] = 0.5f * nd(rng) / std::sqrt(32.0f) + (i % 33 == 0 ? 1.0f : 0.0f);
  for (size_t i = 0; i < per.size(); ++i) per[i] = 0.5f * nd(rng) / std::sqrt(32.0f) + ((i % 1024) % 33 == 0 ? 1.0f : 0.0f);
  std::vector<Case> cases = {
      {"hadamard g16", BlockTransform::hadamard(k, 16)},
      {"hadamard g32 signs", BlockTransform::hadamard(k, 32, seed)},
      {"hadamard full 96", BlockTransform::hadamard(k)},
      {"hadamard full 96 signs", BlockTransform::hadamard(k, 0, seed + 7)},
      {"dense shared g32", BlockTransform::dense(k, 32, shared)},
      {"dense per-block g32", BlockTransform::dense(k, 32, per)},
      {"identity", BlockTransform::identity(k)},
  };
  const auto x = gaussian(m * k, seed + 2), w = gaussian(n * k, seed + 3);
  const auto y = matmul_t(x, w, m, n, k);
  for (const auto& c : cases) {
    auto xt = x, wt = w;
    c.t.forward(xt.data(), m);
    c.t.fold_weight(wt.data(), n);
    EXPECT_LT(rel(matmul_t(xt, wt, m, n, k), y), 2e-6) << c.name << ": x W^T != T(x) fold(W)^T";
    // forward == x @ M_c^T per block, with the exported matrices
    const auto M = c.t.matrices();
    const int64_t G = c.t.block();
    ASSERT_EQ(int64_t(M.size()), (c.t.shared() ? 1 : k / G) * G * G) << c.name;
    std::vector<float> xm(x.size(), 0.0f);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t b = 0; b < k / G; ++b) {
        const float* Mb = M.data() + (c.t.shared() ? 0 : b * G * G);
        for (int64_t i = 0; i < G; ++i) {
          double s = 0;
          for (int64_t j = 0; j < G; ++j) s += double(Mb[i * G + j]) * x[size_t(r * k + b * G + j)];
          xm[size_t(r * k + b * G + i)] = float(s);
        }
      }
    EXPECT_LT(test::rel_l2(xt, xm), 2e-6) << c.name << ": forward != x @ matrices^T";
    auto back = xt;
    c.t.inverse(back.data(), m);
    EXPECT_LT(test::rel_l2(back, x), 2e-5) << c.name << ": inverse";
  }
  EXPECT_THROW(BlockTransform::dense(k, 32, std::vector<float>(32 * 32, 0.0f)), Error);  // singular
  EXPECT_THROW(BlockTransform::dense(k, 32, std::vector<float>(7, 1.0f)), Error);
}

TEST(Transform, HessianRotationMatchesTransformedInputs) {
  const uint64_t seed = test::fresh_seed();
  const int64_t k = 64, m = 200;
  const auto x = correlated_x(m, k, seed);
  std::vector<float> per((k / 16) * 16 * 16);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.25f);
  for (size_t i = 0; i < per.size(); ++i) per[i] = nd(rng) + ((i % 17) == 0 ? 1.0f : 0.0f);
  for (const auto& t : {BlockTransform::hadamard(k, 16, seed), BlockTransform::dense(k, 16, per)}) {
    Hessian h(k), ht(k);
    h.add_rows(x.data(), m);
    auto xt = x;
    t.forward(xt.data(), m);
    ht.add_rows(xt.data(), m);
    auto H = h.matrix();
    t.transform_hessian(H.data());
    const auto Ht = ht.matrix();
    double num = 0, den = 0;
    for (size_t i = 0; i < H.size(); ++i) {
      num += (H[i] - Ht[i]) * (H[i] - Ht[i]);
      den += Ht[i] * Ht[i];
    }
    EXPECT_LT(std::sqrt(num / den), 1e-5) << t.describe();
  }
}

TEST(Hessian, AccumulatesXtXInBatches) {
  const uint64_t seed = test::fresh_seed();
  const int64_t k = 48, m = 300;
  const auto x = correlated_x(m, k, seed);
  Hessian a(k), b(k), c(k);
  a.add_rows(x.data(), 100);
  b.add_rows(x.data() + 100 * k, 200);
  a.merge(b);
  accumulate_hessian(c, x.data(), m);
  EXPECT_EQ(a.samples(), m);
  const auto Ha = a.matrix(), Hc = c.matrix();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      double ref = 0;
      for (int64_t r = 0; r < m; ++r) ref += double(x[size_t(r * k + i)]) * x[size_t(r * k + j)];
      ref *= 2.0 / double(m);
      EXPECT_NEAR(Ha[size_t(i * k + j)], ref, 1e-4 * (std::fabs(ref) + 1)) << i << "," << j;
      EXPECT_NEAR(Hc[size_t(i * k + j)], ref, 1e-4 * (std::fabs(ref) + 1)) << i << "," << j;
    }
  EXPECT_THROW(Hessian(k).matrix(), Error);
  std::vector<float> bad(size_t(k), 1.0f);
  bad[3] = NAN;
  EXPECT_THROW(c.add_rows(bad.data(), 1), Error);
}

}  // namespace
}  // namespace fpq::quant
