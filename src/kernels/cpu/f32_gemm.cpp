#include "kernels/cpu/f32_gemm.h"

#include <cblas.h>

#include <algorithm>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/kernel_abi.h"
#include "util/parallel.h"

namespace fpq::cpu {
namespace {

struct F32Fns {
  void (*dot_rows)(const float*, int64_t, const float*, int64_t, int64_t, float*);
  void (*gemv_t)(const float*, int64_t, const float*, int64_t, int64_t, float*);
};

const F32Fns& fns() {
  static const F32Fns table[3] = {
      {detail::scalar::f32_dot_rows, detail::scalar::f32_gemv_t},
      {detail::avx2::f32_dot_rows, detail::avx2::f32_gemv_t},
      {detail::avx512::f32_dot_rows, detail::avx512::f32_gemv_t},
  };
  return table[int(active_isa())];
}

}  // namespace

void f32_dot_rows(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float* y) {
  if (n > 0) fns().dot_rows(w, ldw, x, k, n, y);
}

void f32_gemv_t(int64_t rows, int64_t cols, const float* v, int64_t ldv, const float* p, float* y) {
  if (cols > 0) fns().gemv_t(v, ldv, p, rows, cols, y);
}

void f32_gemv(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float* y) {
  if (n <= 0) return;
  const F32Fns& f = fns();
  // ~64 KB of weights per task (whole groups of 4 rows)
  const int64_t grain = std::max<int64_t>(4, (16384 / std::max<int64_t>(k, 1)) / 4 * 4);
  parallel_for(n, grain, [&](int64_t r0, int64_t r1) { f.dot_rows(w + r0 * ldw, ldw, x, k, r1 - r0, y + r0); });
}

void f32_gemm_nt(int64_t m, int64_t n, int64_t k, const float* x, const float* w, float* y) {
  if (m <= 0 || n <= 0) return;
  if (m == 1) f32_gemv(n, k, w, k, x, y);
  else openblas_gemm_nt(m, n, k, x, w, y);
}

void openblas_gemm_nt(int64_t m, int64_t n, int64_t k, const float* x, const float* w, float* y) {
  if (m <= 0 || n <= 0) return;
  if (m == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(n), int(k), 1.0f, w, int(k), x, 1, 0.0f, y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.0f, x, int(k), w, int(k), 0.0f, y,
                int(n));
}

}  // namespace fpq::cpu
