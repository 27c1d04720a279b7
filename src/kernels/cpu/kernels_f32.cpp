// Float32 matrix-vector products for the runtime's unquantized parts (the output layer, the attention of one
// query): y[r] = w_r . x and y = Vᵀ p. Each output is summed in one fixed order (two 8-lane accumulators over
// 16-column steps, an 8-column step, a fixed lane reduction, then the scalar tail), the same code whichever rows
// a call gets: the bits do not depend on how the rows are split among threads.
#include "kernels/cpu/simd.h"

namespace fpq::cpu::detail::FPQ_ISA_NS {
namespace {

// s + a * b: one rounding where the variant has FMA, two in the scalar one (fmaf would be a library call there).
FPQ_INLINE float madd(float a, float b, float s) {
#if FPQ_KISA >= 1
  return __builtin_fmaf(a, b, s);
#else
  return s + a * b;
#endif
}

#if FPQ_KISA >= 1
FPQ_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Rows w[0..R) against x; R = 4 keeps 8 accumulators and 2 activation vectors in registers.
template <int R>
FPQ_INLINE void dot_rows(const float* w, int64_t ldw, const float* x, int64_t k, float* y) {
  __m256 a[R], b[R];
  for (int r = 0; r < R; ++r) a[r] = b[r] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= k; c += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
    for (int r = 0; r < R; ++r) {
      a[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * ldw + c), x0, a[r]);
      b[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * ldw + c + 8), x1, b[r]);
    }
  }
  if (c + 8 <= k) {
    const __m256 x0 = _mm256_loadu_ps(x + c);
    for (int r = 0; r < R; ++r) a[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * ldw + c), x0, a[r]);
    c += 8;
  }
  for (int r = 0; r < R; ++r) {
    float s = hsum8(_mm256_add_ps(a[r], b[r]));
    for (int64_t j = c; j < k; ++j) s = madd(w[r * ldw + j], x[j], s);
    y[r] = s;
  }
}
#endif

}  // namespace

void f32_dot_rows(const float* w, int64_t ldw, const float* x, int64_t k, int64_t rows, float* y) {
  int64_t r = 0;
#if FPQ_KISA >= 1
  for (; r + 4 <= rows; r += 4) dot_rows<4>(w + r * ldw, ldw, x, k, y + r);
  for (; r < rows; ++r) dot_rows<1>(w + r * ldw, ldw, x, k, y + r);
#else
  for (; r < rows; ++r) {
    const float* wr = w + r * ldw;
    float s = 0.0f;
    for (int64_t j = 0; j < k; ++j) s = madd(wr[j], x[j], s);
    y[r] = s;
  }
#endif
}

void f32_gemv_t(const float* v, int64_t ldv, const float* p, int64_t rows, int64_t cols, float* y) {
  int64_t c = 0;
#if FPQ_KISA >= 1
  for (; c + 32 <= cols; c += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t r = 0; r < rows; ++r) {
      const __m256 pr = _mm256_broadcast_ss(p + r);
      const float* vr = v + r * ldv + c;
      a0 = _mm256_fmadd_ps(pr, _mm256_loadu_ps(vr), a0);
      a1 = _mm256_fmadd_ps(pr, _mm256_loadu_ps(vr + 8), a1);
      a2 = _mm256_fmadd_ps(pr, _mm256_loadu_ps(vr + 16), a2);
      a3 = _mm256_fmadd_ps(pr, _mm256_loadu_ps(vr + 24), a3);
    }
    _mm256_storeu_ps(y + c, a0);
    _mm256_storeu_ps(y + c + 8, a1);
    _mm256_storeu_ps(y + c + 16, a2);
    _mm256_storeu_ps(y + c + 24, a3);
  }
  for (; c + 8 <= cols; c += 8) {
    __m256 a0 = _mm256_setzero_ps();
    for (int64_t r = 0; r < rows; ++r) a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + r), _mm256_loadu_ps(v + r * ldv + c), a0);
    _mm256_storeu_ps(y + c, a0);
  }
#endif
  for (; c < cols; ++c) {
    float s = 0.0f;
    for (int64_t r = 0; r < rows; ++r) s = madd(p[r], v[r * ldv + c], s);
    y[c] = s;
  }
}

}  // namespace fpq::cpu::detail::FPQ_ISA_NS
