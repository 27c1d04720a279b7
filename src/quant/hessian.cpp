#include "quant/hessian.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace fpq::quant {

Hessian::Hessian(int64_t dim) : dim_(dim) {
  if (dim <= 0) fail("hessian: dimension must be positive (got {})", dim);
  upper_.assign(size_t(dim * dim), 0.0);
}

void Hessian::add_rows(const float* x, int64_t rows) {
  if (dim_ <= 0) fail("hessian: not initialised");
  if (rows <= 0) return;
  for (int64_t i = 0; i < rows * dim_; ++i)
    if (!std::isfinite(x[i])) fail("hessian: calibration input has a non-finite value (row {}, column {})", i / dim_, i % dim_);
  const int64_t K = dim_;
  std::vector<float> c(size_t(K * K));
  for (int64_t r0 = 0; r0 < rows; r0 += 4096) {
    const int64_t m = std::min<int64_t>(4096, rows - r0);
    // C = X^T X (upper triangle), X is m x K row-major.
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, int(K), int(m), 1.0f, x + r0 * K, int(K), 0.0f, c.data(), int(K));
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = i; j < K; ++j) upper_[size_t(i * K + j)] += double(c[size_t(i * K + j)]);
  }
  samples_ += rows;
}

void Hessian::merge(const Hessian& o) {
  if (o.dim_ != dim_) fail("hessian: cannot merge dimension {} into {}", o.dim_, dim_);
  for (size_t i = 0; i < upper_.size(); ++i) upper_[i] += o.upper_[i];
  samples_ += o.samples_;
}

std::vector<double> Hessian::sum() const {
  const int64_t K = dim_;
  std::vector<double> h(size_t(K * K));
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = i; j < K; ++j) h[size_t(i * K + j)] = h[size_t(j * K + i)] = upper_[size_t(i * K + j)];
  return h;
}

std::vector<double> Hessian::matrix() const {
  if (samples_ == 0) fail("hessian: no calibration samples were added");
  auto h = sum();
  const double s = 2.0 / double(samples_);
  for (auto& v : h) v *= s;
  return h;
}

ChannelStats::ChannelStats(int64_t dim) : dim_(dim) {
  if (dim <= 0) fail("channel stats: dimension must be positive (got {})", dim);
  absmax_.assign(size_t(dim), 0.0f);
  sumsq_.assign(size_t(dim), 0.0);
}

void ChannelStats::add_rows(const float* x, int64_t rows, float row_fraction) {
  if (dim_ <= 0) fail("channel stats: not initialised");
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim_;
    float rmax = 0.0f;
    for (int64_t c = 0; c < dim_; ++c) {
      const float a = std::fabs(xr[c]);
      if (!std::isfinite(a)) fail("channel stats: calibration input has a non-finite value (row {}, column {})", r, c);
      rmax = std::max(rmax, a);
      absmax_[size_t(c)] = std::max(absmax_[size_t(c)], a);
      sumsq_[size_t(c)] += double(xr[c]) * double(xr[c]);
    }
    const float thr = rmax * row_fraction;
    for (int64_t c = 0; c < dim_; ++c) outliers_ += std::fabs(xr[c]) > thr ? 1 : 0;
  }
  rows_ += rows;
}

void ChannelStats::merge(const ChannelStats& o) {
  if (o.dim_ != dim_) fail("channel stats: cannot merge dimension {} into {}", o.dim_, dim_);
  for (int64_t c = 0; c < dim_; ++c) {
    absmax_[size_t(c)] = std::max(absmax_[size_t(c)], o.absmax_[size_t(c)]);
    sumsq_[size_t(c)] += o.sumsq_[size_t(c)];
  }
  rows_ += o.rows_;
  outliers_ += o.outliers_;
}

std::vector<float> ChannelStats::rms() const {
  std::vector<float> r(size_t(dim_), 0.0f);
  if (rows_ == 0) return r;
  for (int64_t c = 0; c < dim_; ++c) r[size_t(c)] = float(std::sqrt(sumsq_[size_t(c)] / double(rows_)));
  return r;
}

double ChannelStats::outlier_fraction() const {
  return rows_ == 0 ? 0.0 : double(outliers_) / (double(rows_) * double(dim_));
}

}  // namespace fpq::quant
