#include "kernels/cpu/quant_gemm.h"

#include <cstring>

#include "formats/ggml_blocks.h"
#include "kernels/cpu/matmul.h"
#include "util/error.h"
#include "util/parallel.h"

namespace fpq::cpu {
namespace {

void check_k(int64_t rows, int64_t k, const char* fn) {
  if (rows < 0 || k <= 0 || k % kGgmlBlock != 0)
    fail("{}: need rows >= 0 and K a positive multiple of 32 (got {} x {})", fn, rows, k);
}

QuantizedTensor wrap(const char* format, const uint8_t* bytes, int64_t rows, int64_t k) {
  QuantizedTensor q;
  q.format = parse_format(format);
  q.rows = rows;
  q.cols = k;
  q.codes.assign(bytes, bytes + rows * q.row_code_bytes());
  return q;
}

}  // namespace

std::vector<uint8_t> quantize_q4_0(const float* x, int64_t rows, int64_t k) {
  check_k(rows, k, "quantize_q4_0");
  std::vector<uint8_t> out(static_cast<size_t>(rows * (k / kGgmlBlock) * kQ4_0Bytes));
  const int64_t rb = (k / kGgmlBlock) * kQ4_0Bytes;
  parallel_for(rows, std::max<int64_t>(1, 16384 / k), [&](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) quantize_row_q4_0(x + r * k, k, out.data() + r * rb);
  });
  return out;
}

std::vector<uint8_t> quantize_q8_1(const float* x, int64_t rows, int64_t k) {
  check_k(rows, k, "quantize_q8_1");
  QuantizedTensor q = quantize_activations(parse_format("q8_1"), x, rows, k);
  return std::move(q.codes);
}

std::vector<float> dequantize_q4_0(const uint8_t* q, int64_t rows, int64_t k) {
  check_k(rows, k, "dequantize_q4_0");
  std::vector<float> out(static_cast<size_t>(rows * k));
  const int64_t rb = (k / kGgmlBlock) * kQ4_0Bytes;
  parallel_for(rows, std::max<int64_t>(1, 16384 / k), [&](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) dequantize_row_q4_0(q + r * rb, k, out.data() + r * k);
  });
  return out;
}

std::vector<float> gemm_q4_0_q8_1(const uint8_t* weight_q, const uint8_t* activation_q, int64_t M, int64_t N,
                                  int64_t K) {
  check_k(M, K, "gemm_q4_0_q8_1");
  check_k(N, K, "gemm_q4_0_q8_1");
  const QuantizedTensor w = wrap("q4_0", weight_q, M, K);
  const QuantizedTensor a = wrap("q8_1", activation_q, N, K);
  const auto pw = prepare_weight(w);
  std::vector<float> yt(static_cast<size_t>(N * M));  // [N x M]
  matmul_quantized(*pw, a, yt.data());
  std::vector<float> c(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) c[size_t(i * N + j)] = yt[size_t(j * M + i)];
  return c;
}

}  // namespace fpq::cpu
