#pragma once
// Per-layer error report: how far the quantized layer's output is from the original on calibration rows.
//   y = X W^T (original),  y_q = X_q W_q^T (what the quantized module computes: X_q the transformed and / or
//   quantized activations, possibly augmented, W_q the dequantized stored weight, both with Kq columns).
//   rel_error = ||y_q - y|| / ||y||,  sqnr_db = 10 log10(||y||^2 / ||y_q - y||^2),  Frobenius norms in float64.
#include <cstdint>
#include <string>
#include <vector>

#include "formats/quantize.h"
#include "util/table.h"

namespace fpq::quant {

struct LayerError {
  double rel_error = 0;
  double sqnr_db = 0;
  double max_abs_error = 0;
  int64_t rows = 0;
};

// The error of outputs yq against reference outputs y (n values each).
LayerError output_error(const float* y, const float* yq, int64_t n);
// X: m x k, W: n x k (original); Xq: m x kq (nullptr: X itself, then kq must equal k), Wq: n x kq.
LayerError layer_output_error(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* xq,
                              const float* wq, int64_t kq);
// Convenience: weight-only error with a QuantizedTensor (dequantized; its cols must be k).
LayerError layer_output_error(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const QuantizedTensor& q);

// Collects one row per layer and prints a markdown table (fpq::Table): layer, method, rel. error, SQNR, seconds.
class LayerReport {
 public:
  void add(const std::string& layer, const std::string& method, const LayerError& e, double seconds = 0.0);
  std::string markdown() const;
  size_t size() const { return rows_.size(); }
  // Mean relative error and mean SQNR over the layers added.
  double mean_rel_error() const;
  double mean_sqnr_db() const;

 private:
  struct Row {
    std::string layer, method;
    LayerError e;
    double seconds;
  };
  std::vector<Row> rows_;
};

}  // namespace fpq::quant
