#include "quant/transform.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "quant/hadamard.h"
#include "util/error.h"
#include "util/parallel.h"
#include "util/rng.h"

namespace fpq::quant {

BlockTransform BlockTransform::identity(int64_t dim) {
  if (dim <= 0) fail("transform: dimension must be positive (got {})", dim);
  BlockTransform t;
  t.kind_ = TransformKind::Identity;
  t.dim_ = dim;
  t.block_ = dim;
  return t;
}

BlockTransform BlockTransform::hadamard(int64_t dim, int64_t block, std::optional<uint64_t> sign_seed) {
  if (dim <= 0) fail("transform: dimension must be positive (got {})", dim);
  if (block == 0) block = dim;
  if (block < 0 || dim % block != 0)
    fail("hadamard transform: block size {} does not divide the dimension {}", block, dim);
  if (!hadamard_supported(block))
    fail("hadamard transform: no Hadamard matrix of size {} (use a power of two, or 12/20/28/36/44/60... times one; "
         "or a smaller block size)", block);
  BlockTransform t;
  t.kind_ = TransformKind::Hadamard;
  t.dim_ = dim;
  t.block_ = block;
  if (sign_seed) {
    t.sign_seed_ = sign_seed;
    t.signs_.resize(size_t(dim));
    for (int64_t i = 0; i < dim; ++i) t.signs_[size_t(i)] = (hash_u64(*sign_seed, uint64_t(i)) & 1u) ? -1.0f : 1.0f;
  }
  return t;
}

BlockTransform BlockTransform::dense(int64_t dim, int64_t block, std::vector<float> matrices) {
  if (dim <= 0) fail("transform: dimension must be positive (got {})", dim);
  if (block <= 0 || dim % block != 0) fail("dense transform: block size {} does not divide the dimension {}", block, dim);
  const int64_t g2 = block * block, nb = dim / block;
  BlockTransform t;
  t.kind_ = TransformKind::Dense;
  t.dim_ = dim;
  t.block_ = block;
  if (int64_t(matrices.size()) == g2) {
    t.shared_dense_ = true;
  } else if (int64_t(matrices.size()) != nb * g2) {
    fail("dense transform: expected {} values (one {}x{} matrix) or {} ({} blocks), got {}", g2, block, block, nb * g2,
         nb, matrices.size());
  }
  for (float v : matrices)
    if (!std::isfinite(v)) fail("dense transform: the matrix has a non-finite value");
  const int64_t count = t.shared_dense_ ? 1 : nb;
  t.mat_.assign(matrices.begin(), matrices.end());
  t.inv_ = t.mat_;
  std::vector<lapack_int> ipiv(static_cast<size_t>(block));
  for (int64_t c = 0; c < count; ++c) {
    double* a = t.inv_.data() + c * g2;
    lapack_int info = LAPACKE_dgetrf(LAPACK_ROW_MAJOR, lapack_int(block), lapack_int(block), a, lapack_int(block), ipiv.data());
    if (info == 0) info = LAPACKE_dgetri(LAPACK_ROW_MAJOR, lapack_int(block), a, lapack_int(block), ipiv.data());
    if (info != 0) fail("dense transform: block {} is singular (LAPACK info {})", c, int(info));
  }
  return t;
}

bool BlockTransform::shared() const {
  switch (kind_) {
    case TransformKind::Identity: return true;
    case TransformKind::Hadamard: return signs_.empty() || block_ == dim_;
    case TransformKind::Dense: return shared_dense_ || block_ == dim_;
  }
  return false;
}

bool BlockTransform::orthogonal() const { return kind_ != TransformKind::Dense; }

std::string BlockTransform::describe() const {
  switch (kind_) {
    case TransformKind::Identity: return "identity";
    case TransformKind::Hadamard:
      return fmt::format("hadamard({}{}{})", block_ == dim_ ? "full=" : "g=", block_, signs_.empty() ? "" : ", signs");
    case TransformKind::Dense:
      return fmt::format("dense(g={}, {})", block_, shared_dense_ ? "shared" : "per-block");
  }
  return "?";
}

template <typename T>
void BlockTransform::apply_row(T* x, Op op, T* scratch) const {
  const int64_t G = block_;
  for (int64_t c = 0; c < dim_ / G; ++c) {
    T* xc = x + c * G;
    if (kind_ == TransformKind::Hadamard) {
      const float* s = signs_.empty() ? nullptr : signs_.data() + c * G;
      if (op == Op::Inverse) {
        hadamard_apply(xc, G, true, scratch);
        if (s)
          for (int64_t i = 0; i < G; ++i) xc[i] *= T(s[i]);
      } else {  // Forward and Fold are the same for an orthogonal transform
        if (s)
          for (int64_t i = 0; i < G; ++i) xc[i] *= T(s[i]);
        hadamard_apply(xc, G, false, scratch);
      }
    } else if (kind_ == TransformKind::Dense) {
      const int64_t g2 = G * G;
      const double* M = (op == Op::Forward ? mat_.data() : inv_.data()) + (shared_dense_ ? 0 : c * g2);
      double* acc = reinterpret_cast<double*>(scratch);  // scratch holds >= 2 * G doubles (see apply)
      for (int64_t i = 0; i < G; ++i) acc[i] = 0.0;
      if (op == Op::Fold) {  // row w -> w T^-1: out[j] = sum_i w[i] Tinv[i][j]
        for (int64_t i = 0; i < G; ++i) {
          const double wi = double(xc[i]);
          const double* row = M + i * G;
          for (int64_t j = 0; j < G; ++j) acc[j] += wi * row[j];
        }
      } else {  // column x -> M x
        for (int64_t i = 0; i < G; ++i) {
          const double* row = M + i * G;
          double s = 0.0;
          for (int64_t j = 0; j < G; ++j) s += row[j] * double(xc[j]);
          acc[i] = s;
        }
      }
      for (int64_t i = 0; i < G; ++i) xc[i] = T(acc[i]);
    }
  }
}

template <typename T>
void BlockTransform::apply(T* x, int64_t rows, Op op) const {
  if (kind_ == TransformKind::Identity || rows <= 0) return;
  const int64_t grain = std::max<int64_t>(1, 16384 / dim_);
  parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<double> scratch(size_t(2 * block_ + 2));  // enough for T = float or double, and the dense accumulator
    for (int64_t r = r0; r < r1; ++r) apply_row(x + r * dim_, op, reinterpret_cast<T*>(scratch.data()));
  });
}

void BlockTransform::forward(float* x, int64_t rows) const { apply(x, rows, Op::Forward); }
void BlockTransform::forward(double* x, int64_t rows) const { apply(x, rows, Op::Forward); }
void BlockTransform::inverse(float* y, int64_t rows) const { apply(y, rows, Op::Inverse); }
void BlockTransform::inverse(double* y, int64_t rows) const { apply(y, rows, Op::Inverse); }
void BlockTransform::fold_weight(float* w, int64_t rows) const { apply(w, rows, Op::Fold); }
void BlockTransform::fold_weight(double* w, int64_t rows) const { apply(w, rows, Op::Fold); }

void BlockTransform::transform_hessian(double* H) const {
  if (kind_ == TransformKind::Identity) return;
  const int64_t n = dim_;
  apply(H, n, Op::Forward);  // H T^T
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) std::swap(H[i * n + j], H[j * n + i]);  // (H T^T)^T = T H
  apply(H, n, Op::Forward);  // T H T^T
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) {
      const double m = 0.5 * (H[i * n + j] + H[j * n + i]);
      H[i * n + j] = H[j * n + i] = m;
    }
}

std::vector<float> BlockTransform::block_matrix(int64_t c) const {
  const int64_t G = block_;
  if (c < 0 || c >= blocks()) fail("transform: block {} out of range ({} blocks)", c, blocks());
  std::vector<float> M(size_t(G * G), 0.0f);
  if (kind_ == TransformKind::Identity) {
    for (int64_t i = 0; i < G; ++i) M[size_t(i * G + i)] = 1.0f;
    return M;
  }
  if (kind_ == TransformKind::Dense) {
    const double* src = mat_.data() + (shared_dense_ ? 0 : c * G * G);
    for (int64_t i = 0; i < G * G; ++i) M[size_t(i)] = float(src[i]);
    return M;
  }
  // Hadamard: column j of T_c = H (D_c e_j), computed in float64.
  std::vector<double> e(static_cast<size_t>(G)), scratch(static_cast<size_t>(G));
  for (int64_t j = 0; j < G; ++j) {
    std::fill(e.begin(), e.end(), 0.0);
    e[size_t(j)] = signs_.empty() ? 1.0 : double(signs_[size_t(c * G + j)]);
    hadamard_apply(e.data(), G, false, scratch.data());
    for (int64_t i = 0; i < G; ++i) M[size_t(i * G + j)] = float(e[size_t(i)]);
  }
  return M;
}

std::vector<float> BlockTransform::matrices() const {
  if (shared()) return block_matrix(0);
  std::vector<float> all;
  all.reserve(size_t(dim_ * block_));
  for (int64_t c = 0; c < blocks(); ++c) {
    const auto m = block_matrix(c);
    all.insert(all.end(), m.begin(), m.end());
  }
  return all;
}

}  // namespace fpq::quant
