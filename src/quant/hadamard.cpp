#include "quant/hadamard.h"

#include <cmath>
#include <map>
#include <mutex>

#include "util/error.h"

namespace fpq::quant {
namespace {

bool is_prime(int64_t q) {
  if (q < 2) return false;
  for (int64_t d = 2; d * d <= q; ++d)
    if (q % d == 0) return false;
  return true;
}

bool is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// Quadratic character of a mod q (q an odd prime): 0, 1 (nonzero square) or -1.
std::vector<int> quadratic_character(int64_t q) {
  std::vector<int> chi(size_t(q), -1);
  chi[0] = 0;
  for (int64_t x = 1; x < q; ++x) chi[size_t((x * x) % q)] = 1;
  return chi;
}

enum class Paley { None, One, Two };

Paley paley_kind(int64_t h) {
  if (h < 4 || h % 4 != 0) return Paley::None;
  if (is_prime(h - 1) && (h - 1) % 4 == 3) return Paley::One;
  if (h % 2 == 0 && is_prime(h / 2 - 1) && (h / 2 - 1) % 4 == 1) return Paley::Two;
  return Paley::None;
}

std::vector<int8_t> build_base(int64_t h) {
  std::vector<int8_t> H(size_t(h * h), 0);
  if (h == 1) {
    H[0] = 1;
    return H;
  }
  if (h == 2) {
    H = {1, 1, 1, -1};
    return H;
  }
  const Paley kind = paley_kind(h);
  if (kind == Paley::One) {
    // H = I + S, S = [[0, 1^T], [-1, Q]], Q[i][j] = chi(j - i): a skew Hadamard matrix.
    const int64_t q = h - 1;
    const auto chi = quadratic_character(q);
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < h; ++j) {
        int v;
        if (i == 0 && j == 0) v = 0;
        else if (i == 0) v = 1;
        else if (j == 0) v = -1;
        else v = chi[size_t(((j - i) % q + q) % q)];
        if (i == j) v += 1;
        H[size_t(i * h + j)] = int8_t(v);
      }
  } else if (kind == Paley::Two) {
    // C = [[0, 1^T], [1, Q]] (symmetric conference matrix); each 0 -> [[1, -1], [-1, -1]], each +-1 -> +-[[1, 1], [1, -1]].
    const int64_t q = h / 2 - 1, m = q + 1;
    const auto chi = quadratic_character(q);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < m; ++j) {
        int c;
        if (i == 0 && j == 0) c = 0;
        else if (i == 0 || j == 0) c = 1;
        else c = chi[size_t(((j - i) % q + q) % q)];
        const int blk[2][2] = {{c == 0 ? 1 : c, c == 0 ? -1 : c}, {c == 0 ? -1 : c, c == 0 ? -1 : -c}};
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) H[size_t((2 * i + a) * h + 2 * j + b)] = int8_t(blk[a][b]);
      }
  } else {
    fail("no Hadamard matrix of order {} (fpq builds orders 1, 2 and Paley orders)", h);
  }
  // Check H H^T = h I (cheap; guards the constructions).
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < h; ++j) {
      int64_t s = 0;
      for (int64_t k = 0; k < h; ++k) s += int64_t(H[size_t(i * h + k)]) * H[size_t(j * h + k)];
      if (s != (i == j ? h : 0)) fail("internal: Hadamard construction of order {} is not orthogonal", h);
    }
  return H;
}

const std::vector<int8_t>& cached_base(int64_t h) {
  // Per-thread memo of the last order (map nodes never move), so row loops do not take the lock.
  thread_local int64_t last_h = 0;
  thread_local const std::vector<int8_t>* last = nullptr;
  if (h == last_h && last) return *last;
  static std::mutex m;
  static std::map<int64_t, std::vector<int8_t>> cache;
  std::lock_guard<std::mutex> lk(m);
  auto it = cache.find(h);
  if (it == cache.end()) it = cache.emplace(h, build_base(h)).first;
  last_h = h;
  last = &it->second;
  return it->second;
}

template <typename T>
void fwht_impl(T* x, int64_t n) {
  for (int64_t len = 1; len < n; len <<= 1)
    for (int64_t i = 0; i < n; i += 2 * len)
      for (int64_t j = i; j < i + len; ++j) {
        const T a = x[j], b = x[j + len];
        x[j] = a + b;
        x[j + len] = a - b;
      }
}

template <typename T>
void apply_impl(T* x, int64_t n, bool transpose, T* scratch) {
  const int64_t h = hadamard_base_order(n);
  if (h == 0) fail("no Hadamard transform of size {} (sizes are h * 2^k with h = 1, 2 or a Paley order)", n);
  const int64_t p = n / h;
  // x viewed as an h x p matrix X (row-major): (H_h (x) H_p) x = vec(H_h X H_p^T); H_p is symmetric.
  for (int64_t a = 0; a < h; ++a) fwht_impl(x + a * p, p);
  if (h > 1) {
    const auto& H = cached_base(h);
    for (int64_t i = 0; i < n; ++i) scratch[i] = T(0);
    for (int64_t a = 0; a < h; ++a) {
      T* y = scratch + a * p;
      for (int64_t b = 0; b < h; ++b) {
        const int8_t s = transpose ? H[size_t(b * h + a)] : H[size_t(a * h + b)];
        const T* z = x + b * p;
        if (s > 0)
          for (int64_t j = 0; j < p; ++j) y[j] += z[j];
        else
          for (int64_t j = 0; j < p; ++j) y[j] -= z[j];
      }
    }
    for (int64_t i = 0; i < n; ++i) x[i] = scratch[i];
  }
  const T scale = T(1.0 / std::sqrt(double(n)));
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

}  // namespace

int64_t hadamard_base_order(int64_t n) {
  if (n <= 0) return 0;
  if (is_pow2(n)) return 1;
  int64_t m = n, k = 0;
  while (m % 2 == 0) {
    m /= 2;
    ++k;
  }
  for (int64_t j = 0, h = m; j <= k && h <= kMaxHadamardBase; ++j, h *= 2)
    if (paley_kind(h) != Paley::None) return h;
  return 0;
}

std::vector<int8_t> hadamard_base(int64_t h) { return cached_base(h); }

void fwht(float* x, int64_t n) {
  if (!is_pow2(n)) fail("the Walsh-Hadamard transform needs a power-of-two size (got {})", n);
  fwht_impl(x, n);
}
void fwht(double* x, int64_t n) {
  if (!is_pow2(n)) fail("the Walsh-Hadamard transform needs a power-of-two size (got {})", n);
  fwht_impl(x, n);
}

void hadamard_apply(float* x, int64_t n, bool transpose, float* scratch) { apply_impl(x, n, transpose, scratch); }
void hadamard_apply(double* x, int64_t n, bool transpose, double* scratch) { apply_impl(x, n, transpose, scratch); }

std::vector<double> hadamard_matrix(int64_t n) {
  std::vector<double> M(static_cast<size_t>(n * n)), e(static_cast<size_t>(n)), s(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    std::fill(e.begin(), e.end(), 0.0);
    e[size_t(j)] = 1.0;
    hadamard_apply(e.data(), n, false, s.data());
    for (int64_t i = 0; i < n; ++i) M[size_t(i * n + j)] = e[size_t(i)];
  }
  return M;
}

}  // namespace fpq::quant
