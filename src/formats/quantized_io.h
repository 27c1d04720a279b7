#pragma once
// A quantized tensor as a safetensors file: tensors "codes" (U8, rows x row bytes), "scales" (rows x groups,
// in the scale type's safetensors dtype: U8 for E8M0, F8_E4M3, F16, BF16, F32), "zeros" (U8, minmax formats)
// and "global_scale" (F32), with the format spelling and the original shape in the metadata.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "formats/quantize.h"
#include "util/safetensors.h"

namespace fpq {

// Tensors of `q`, named with `prefix` ("codes" -> prefix + "codes"), for embedding in larger checkpoints.
std::vector<SafetensorsTensorOut> quantized_tensors(const QuantizedTensor& q, const std::string& prefix = "");
// Reads back what quantized_tensors wrote; `format` is the format it was written with.
QuantizedTensor quantized_from_file(const SafetensorsFile& file, const Format& format, int64_t rows, int64_t cols,
                                    const std::string& prefix = "");

void save_quantized(const std::filesystem::path& path, const QuantizedTensor& q, const std::vector<int64_t>& shape);
// Loads a file written by save_quantized; returns the tensor and its original shape.
QuantizedTensor load_quantized(const std::filesystem::path& path, std::vector<int64_t>* shape);

std::string scale_safetensors_dtype(ScaleType s);

}  // namespace fpq
