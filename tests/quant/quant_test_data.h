#pragma once
// Shared inputs for the quant tests: correlated calibration activations with outlier channels, heavy-tailed
// weights, .npy helpers.
#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "util/npy.h"

namespace fpq::quant::testdata {

inline std::vector<float> load(const std::filesystem::path& p) { return read_npy(p).data; }
inline void save(const std::filesystem::path& p, const std::vector<float>& v, std::vector<int64_t> shape) {
  write_npy(p, shape, v.data());
}

// m x k activations X = Z A with Z Gaussian and A a random mixing matrix with a decaying spectrum (strongly
// correlated channels), plus `outliers` channels scaled by `outlier_scale` (LLM-style massive channels).
inline std::vector<float> correlated_x(int64_t m, int64_t k, uint64_t seed, int outliers = 0, float outlier_scale = 20.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t r = std::max<int64_t>(4, k / 4);
  std::vector<float> A(size_t(r * k)), Z(size_t(m * r)), X(size_t(m * k), 0.0f);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < k; ++j) A[size_t(i * k + j)] = nd(rng) / std::sqrt(float(i + 1));
  for (auto& z : Z) z = nd(rng);
  for (int64_t a = 0; a < m; ++a)
    for (int64_t i = 0; i < r; ++i) {
      const float z = Z[size_t(a * r + i)];
      for (int64_t j = 0; j < k; ++j) X[size_t(a * k + j)] += z * A[size_t(i * k + j)];
    }
  for (auto& v : X) v += 0.05f * nd(rng);
  std::uniform_int_distribution<int64_t> pick(0, k - 1);
  for (int o = 0; o < outliers; ++o) {
    const int64_t c = pick(rng);
    for (int64_t a = 0; a < m; ++a) X[size_t(a * k + c)] *= outlier_scale;
  }
  return X;
}

// n x k weights with Student-t(dof) entries (heavy tails), scaled by 0.02.
inline std::vector<float> heavy_w(int64_t n, int64_t k, uint64_t seed, float dof = 4.0f) {
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> t(dof);
  std::vector<float> w(size_t(n * k));
  for (auto& v : w) v = 0.02f * t(rng);
  return w;
}

}  // namespace fpq::quant::testdata
