#pragma once
// ggml's tensor element types as GGUF files store them (ids from ggml.h), with their block geometry and a
// dequantizer to float32 for the ones fpq reads. Byte layouts follow ggml-common.h / ggml-quants.c.
#include <cstdint>
#include <optional>
#include <string>

namespace fpq {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
  MXFP4 = 39, NVFP4 = 40,
};

struct GgmlTypeInfo {
  const char* name;     // "Q4_K"
  int64_t block_size;   // elements per block (1 for plain types)
  int64_t block_bytes;  // bytes per block
  bool can_dequantize;  // fpq has a float32 dequantizer for it
};

// Geometry of a ggml type id; nullopt for an id ggml does not define (or no longer defines).
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type_id);
std::string ggml_type_name(GgmlType type);

// Dequantizes n elements (a multiple of the type's block size) from `src` to `dst`. Single-threaded; callers
// split work on block boundaries. Types without a dequantizer are an error naming the type.
void ggml_dequantize(GgmlType type, const uint8_t* src, int64_t n, float* dst);

}  // namespace fpq
