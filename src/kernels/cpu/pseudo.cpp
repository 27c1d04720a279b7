// The pseudo path (the reference): dequantize both operands exactly as fpq::dequantize does, then OpenBLAS
// sgemm, Y = X . W^T.


#include <vector>

#include "kernels/cpu/f32_gemm.h"
#include "kernels/cpu/matmul.h"
#include "util/error.h"

namespace fpq::cpu {

void matmul_pseudo(const QuantizedTensor* x_q, const float* x_float, int64_t m, const QuantizedTensor& w, float* y) {
  const int64_t n = w.rows, k = w.cols;
  if (x_q) {
    if (x_q->cols != k) fail("matmul_pseudo: activations have {} columns, the weight {}", x_q->cols, k);
    m = x_q->rows;
  } else if (!x_float && m > 0) {
    fail("matmul_pseudo: no activations");
  }
  if (m < 0) fail("matmul_pseudo: negative row count {}", m);
  if (m == 0 || n == 0) return;
  const std::vector<float> wf = dequantize(w);
  std::vector<float> xf;
  if (x_q) xf = dequantize(*x_q);
  const float* xp = x_q ? xf.data() : x_float;
  // (OpenBLAS, not fpq's own matrix-vector product: the reference stays independent of fpq's kernels)
  openblas_gemm_nt(m, n, k, xp, wf.data(), y);
}

}  // namespace fpq::cpu
