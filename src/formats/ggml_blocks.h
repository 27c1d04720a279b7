#pragma once
// llama.cpp's block formats, byte for byte as ggml-quants.c's reference quantizers write them (the numpy
// quantizers of gguf-py's gguf.quants give the same bytes). NaN/Inf in a block: the block's scale d is stored
// as f16 NaN and its codes as zero (llama.cpp leaves this undefined).
#include <cstdint>

namespace fpq {

constexpr int kGgmlBlock = 32;
constexpr int kQ4_0Bytes = 18, kQ4_1Bytes = 20, kQ8_0Bytes = 34, kQ8_1Bytes = 36, kMxfp4GgmlBytes = 17;

// n must be a multiple of 32; out receives n / 32 blocks.
void quantize_row_q4_0(const float* x, int64_t n, uint8_t* out);
void quantize_row_q4_1(const float* x, int64_t n, uint8_t* out);
void quantize_row_q8_0(const float* x, int64_t n, uint8_t* out);
void quantize_row_q8_1(const float* x, int64_t n, uint8_t* out);

void dequantize_row_q4_0(const uint8_t* blocks, int64_t n, float* y);
void dequantize_row_q4_1(const uint8_t* blocks, int64_t n, float* y);
void dequantize_row_q8_0(const uint8_t* blocks, int64_t n, float* y);
void dequantize_row_q8_1(const uint8_t* blocks, int64_t n, float* y);

// ggml's MXFP4 block {u8 e; u8 qs[16]} with qs[j] = code[j] | code[j + 16] << 4, from and to fpq's planar
// MXFP4 (codes two per byte in element order, one E8M0 byte per 32).
void mxfp4_planar_to_ggml(const uint8_t* codes, const uint8_t* scales, int64_t n, uint8_t* blocks);
void mxfp4_ggml_to_planar(const uint8_t* blocks, int64_t n, uint8_t* codes, uint8_t* scales);

}  // namespace fpq
