#pragma once
// Export of a (quantized) model as a GGUF file that llama.cpp loads: architecture llama / qwen2 / qwen3 with
// every "<arch>.*" hyper-parameter, tokenizer.ggml.* metadata and general.file_type; decoder projections in their
// ggml block layout byte for byte (Q4_0, Q4_1, Q8_0 as fpq stores them; MXFP4 re-packed into ggml's nibble order)
// or F32 when unquantized; embeddings, output head and norms in F32 (embeddings / head F16 on request); for llama,
// the Q/K rows permuted into llama.cpp's interleaved-RoPE order (the inverse of what ModelSource undoes).
// GGUF holds weights only: llama.cpp quantizes activations its own way (Q8 for these types), and a projection with
// an input transform (Hadamard, ARC) or another weight format is refused with an error naming the layer.
#include <filesystem>
#include <optional>
#include <string>

#include "formats/format.h"
#include "model/checkpoint.h"
#include "model/ggml_types.h"

namespace fpq {

struct GgufExportOptions {
  bool f16 = false;  // token embeddings and output head in F16 (norms stay F32)
  std::string name;  // general.name ("" = the source's file or folder name)
};

struct GgufExportReport {
  std::string file_type;  // e.g. "Q4_0"
  int64_t tensors = 0;
  std::string tensor_types;  // e.g. "Q4_0 x210, F32 x61"
  bool dropped_activation_quant = false;  // some layer quantized its activations, which GGUF cannot say
};

// The ggml type a weight format is stored as in GGUF, or nullopt when GGUF cannot hold it.
std::optional<GgmlType> gguf_weight_type(const Format& f);

// Writes `lm` (a quantized checkpoint, or a model quantized in memory) to `out` atomically.
GgufExportReport export_gguf(const LoadedModel& lm, const std::filesystem::path& out, const GgufExportOptions& opt = {});

}  // namespace fpq
