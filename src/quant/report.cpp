#include "quant/report.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "util/error.h"

namespace fpq::quant {

LayerError layer_output_error(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* xq,
                              const float* wq, int64_t kq) {
  if (!xq && kq != k) fail("layer error: the quantized weight has {} columns but the input {}", kq, k);
  if (!xq) xq = x;
  LayerError e;
  e.rows = m;
  if (m <= 0 || n <= 0) return e;
  std::vector<float> y(size_t(m * n)), yq(size_t(m * n));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.0f, x, int(k), w, int(k), 0.0f, y.data(), int(n));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(kq), 1.0f, xq, int(kq), wq, int(kq), 0.0f, yq.data(),
              int(n));
  const int64_t rows = e.rows;
  e = output_error(y.data(), yq.data(), m * n);
  e.rows = rows;
  return e;
}

LayerError output_error(const float* y, const float* yq, int64_t n) {
  LayerError e;
  double num = 0, den = 0, mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(yq[i]) - double(y[i]);
    num += d * d;
    den += double(y[i]) * double(y[i]);
    mx = std::max(mx, std::fabs(d));
  }
  e.rel_error = den > 0 ? std::sqrt(num / den) : (num == 0 ? 0.0 : INFINITY);
  e.sqnr_db = num > 0 ? 10.0 * std::log10(den / num) : INFINITY;
  e.max_abs_error = mx;
  return e;
}

LayerError layer_output_error(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const QuantizedTensor& q) {
  if (q.rows != n || q.cols != k) fail("layer error: quantized weight is {} x {}, expected {} x {}", q.rows, q.cols, n, k);
  const auto wq = dequantize(q);
  return layer_output_error(x, m, k, w, n, nullptr, wq.data(), k);
}

void LayerReport::add(const std::string& layer, const std::string& method, const LayerError& e, double seconds) {
  rows_.push_back({layer, method, e, seconds});
}

std::string LayerReport::markdown() const {
  Table t({"layer", "method", "rel. error", "SQNR (dB)", "max |err|", "time (s)"}, {false, false, true, true, true, true});
  for (const auto& r : rows_)
    t.add({r.layer, r.method, fmt::format("{:.4e}", r.e.rel_error), fmt::format("{:.2f}", r.e.sqnr_db),
           fmt::format("{:.3e}", r.e.max_abs_error), fmt::format("{:.2f}", r.seconds)});
  return t.markdown();
}

double LayerReport::mean_rel_error() const {
  if (rows_.empty()) return 0;
  double s = 0;
  for (const auto& r : rows_) s += r.e.rel_error;
  return s / double(rows_.size());
}

double LayerReport::mean_sqnr_db() const {
  if (rows_.empty()) return 0;
  double s = 0;
  for (const auto& r : rows_) s += r.e.sqnr_db;
  return s / double(rows_.size());
}

}  // namespace fpq::quant
