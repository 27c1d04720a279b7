#pragma once
// llama.cpp-compatible quantized GEMM as C++ functions, with the shapes of the quant_gemm bindings
// (shared/seeds/quant-gemm-q4_0-bindings.md): Q4_0 weights (18-byte blocks), Q8_1 activations (36-byte
// blocks), byte for byte as ggml's reference quantizers write them. Buffers are row-major and contiguous.
// For repeated products with one weight, prepare it once (matmul.h: prepare_weight + matmul_quantized).
#include <cstdint>
#include <vector>

namespace fpq::cpu {

// x[rows x k] (k a multiple of 32) -> rows x (k / 32) x 18 bytes.
std::vector<uint8_t> quantize_q4_0(const float* x, int64_t rows, int64_t k);
// x[rows x k] -> rows x (k / 32) x 36 bytes ({f16 d, f16 s = d * sum(qs), int8 qs[32]}).
std::vector<uint8_t> quantize_q8_1(const float* x, int64_t rows, int64_t k);
// rows x (k / 32) x 18 bytes -> rows x k floats.
std::vector<float> dequantize_q4_0(const uint8_t* q, int64_t rows, int64_t k);
// C[M x N] = W[M x K] . A[N x K]^T with W in Q4_0 (M x K/32 x 18 bytes) and A in Q8_1 (N x K/32 x 36 bytes).
std::vector<float> gemm_q4_0_q8_1(const uint8_t* weight_q, const uint8_t* activation_q, int64_t M, int64_t N,
                                  int64_t K);

}  // namespace fpq::cpu
