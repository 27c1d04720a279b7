#pragma once
// Hadamard matrices and the fast Walsh-Hadamard transform.
//
// Sizes: n = h * 2^k where h = 1 (a power of two: Sylvester's construction, H[i][j] = (-1)^popcount(i & j)) or h
// is a multiple of 4 for which Paley's constructions give a Hadamard matrix: Paley I for h = q + 1 with q a prime
// = 3 mod 4 (12, 20, 44, 60, 68, 72, 80, 84, 104, 108, ...), Paley II for h = 2 (q + 1) with q a prime = 1 mod 4
// (12, 28, 36, 60, 76, 108, ...). The size-n matrix is the Kronecker product H_h (x) H_{2^k} scaled by 1/sqrt(n)
// (orthonormal), the construction QuaRot uses for 12 * 2^k and 20 * 2^k. fpq picks the smallest h that works,
// so 576 = 36 * 16, 1536 = 12 * 128, 2560 = 20 * 128, 14336 = 28 * 512. A size with no such factorisation
// (n odd; 11008 = 43 * 256, whose 172 QuaRot takes from a table) is an error naming the size: use a block size.
//
// Cost of one vector: n log2(2^k) additions for the Walsh-Hadamard part plus n * h for the dense H_h part, so h
// is capped at kMaxHadamardBase (QuaRot's largest is 172).
#include <cstdint>
#include <vector>

namespace fpq::quant {

constexpr int64_t kMaxHadamardBase = 256;

// The order h of the dense factor used for size n (1 for powers of two), or 0 when fpq cannot build H_n.
int64_t hadamard_base_order(int64_t n);
inline bool hadamard_supported(int64_t n) { return hadamard_base_order(n) > 0; }

// The +-1 Hadamard matrix of order h (1, 2, or a Paley order), row-major. Error when h is not constructible.
std::vector<int8_t> hadamard_base(int64_t h);

// In-place unnormalised Walsh-Hadamard transform of x[0..n), n a power of two (Sylvester order).
void fwht(float* x, int64_t n);
void fwht(double* x, int64_t n);

// In place x <- H_n x (orthonormal), or x <- H_n^T x with transpose (H_n is symmetric for powers of two and
// Paley II bases; Paley I bases are not). `scratch` must hold n values (used only when h > 1).
void hadamard_apply(float* x, int64_t n, bool transpose, float* scratch);
void hadamard_apply(double* x, int64_t n, bool transpose, double* scratch);

// The dense orthonormal H_n (row-major, float64), for tests and exports.
std::vector<double> hadamard_matrix(int64_t n);

}  // namespace fpq::quant
