#pragma once
// Float32 products for the runtime's unquantized parts (the output layer, the unquantized baseline's linear
// layers, attention); openblas_gemm_nt for the pseudo reference and the benchmarks' baseline.
#include <cstdint>

namespace fpq::cpu {

// y (m x n) = x (m x k) · wᵀ, w an n x k row-major matrix. Several rows: OpenBLAS sgemm. One row: fpq's own
// matrix-vector product on fpq's thread pool (f32_gemv). Debian's OpenBLAS 0.3.21 sgemm packs the whole of w
// for a single row (3x slower than its sgemv: 4096x14336 17.8 vs 5.9 ms on the 2-core Zen 3), and its sgemv
// runs on OpenBLAS's own threads, which then spin beside fpq's pinned ones through the next quantized layers.
void f32_gemm_nt(int64_t m, int64_t n, int64_t k, const float* x, const float* w, float* y);

// The same product by OpenBLAS alone (sgemv for one row, sgemm otherwise): the pseudo reference, which stays
// independent of fpq's kernels, and the benchmarks' float32 baseline.
void openblas_gemm_nt(int64_t m, int64_t n, int64_t k, const float* x, const float* w, float* y);

// y (n) = w (n x k, row stride ldw) · x, split over fpq's threads by rows; the same bits for any thread count.
void f32_gemv(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float* y);

// Single-threaded, for callers already inside a parallel region (attention, one head per task):
// y[r] = w_r · x for r < n, and y[c] = sum over r < rows of p[r] * v[r * ldv + c] for c < cols.
void f32_dot_rows(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float* y);
void f32_gemv_t(int64_t rows, int64_t cols, const float* v, int64_t ldv, const float* p, float* y);

}  // namespace fpq::cpu
