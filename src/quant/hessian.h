#pragma once
// Calibration statistics of a linear layer's inputs, accumulated batch by batch so memory stays bounded by
// the layer's input dimension K (never the number of calibration tokens):
//   Hessian       sum of X^T X (float64 K x K) and the sample count, for GPTQ / MR-GPTQ;
//   ChannelStats  per-channel absmax / mean square and the outlier-entry count, for ARCQuant.
#include <cstdint>
#include <vector>

namespace fpq::quant {

class Hessian {
 public:
  Hessian() = default;
  explicit Hessian(int64_t dim);
  int64_t dim() const { return dim_; }
  int64_t samples() const { return samples_; }
  // Adds rows x[0 .. rows * dim) (row-major): S += X^T X. Each call's product is formed with float32 BLAS
  // (ssyrk, as GPTQ's float32 accumulation) in chunks of at most 4096 rows and summed into float64.
  void add_rows(const float* x, int64_t rows);
  void merge(const Hessian& other);
  // GPTQ's normalisation H = (2 / n) * sum X^T X, full symmetric, row-major K x K float64 (the scale does not
  // change GPTQ's result, dampening being relative). Error when no sample was added.
  std::vector<double> matrix() const;
  // The raw sum (upper and lower triangles both filled).
  std::vector<double> sum() const;

 private:
  int64_t dim_ = 0, samples_ = 0;
  std::vector<double> upper_;  // row-major, upper triangle valid
};

// GPTQ's add_batch: accumulates the rows of one calibration batch.
inline void accumulate_hessian(Hessian& h, const float* x, int64_t rows) { h.add_rows(x, rows); }

class ChannelStats {
 public:
  ChannelStats() = default;
  explicit ChannelStats(int64_t dim);
  int64_t dim() const { return dim_; }
  int64_t rows() const { return rows_; }
  // Per channel: max |x| and sum x^2; per row, the entries with |x| > row_fraction * max_row |x| are counted
  // (ARCQuant's outlier proportion, with row_fraction = 1/8). Non-finite entries are an error.
  void add_rows(const float* x, int64_t rows, float row_fraction = 0.125f);
  void merge(const ChannelStats& other);
  const std::vector<float>& absmax() const { return absmax_; }
  std::vector<float> rms() const;
  // Fraction of entries counted as outliers over everything added (0 when nothing was added).
  double outlier_fraction() const;

 private:
  int64_t dim_ = 0, rows_ = 0, outliers_ = 0;
  std::vector<float> absmax_;
  std::vector<double> sumsq_;
};

}  // namespace fpq::quant
