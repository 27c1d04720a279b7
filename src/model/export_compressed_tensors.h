#pragma once
// Export of an NVFP4 model in the compressed-tensors layout that vLLM loads ("nvfp4-pack-quantized", as
// llm-compressor writes it): a Hugging Face folder with config.json (+ quantization_config), model.safetensors and
// the tokenizer files. Per decoder projection:
//   weight_packed        U8 [out, in/2]       two E2M1 codes per byte, low nibble first (fpq's packing as is)
//   weight_scale         F8_E4M3 [out, in/16] the block scales (fpq's E4M3 bytes as is)
//   weight_global_scale  F32 [1]              compressed-tensors divides by it: 1 / fpq's global (= 448*6/amax)
//   input_global_scale   F32 [1]              W4A4 only: 448*6 / (static activation amax), or 1 / fpq's static scale
// so that code x weight_scale / weight_global_scale is fpq's code x scale x global. Embeddings, norms and lm_head
// are BF16 (as HF checkpoints); unquantized projections stay BF16 "weight" tensors and are listed in `ignore`.
// vLLM runs W4A4 with one static input scale per layer and fuses q/k/v and gate/up, taking one global scale for
// each fused group: layers without a static activation scale need calibrated amax values, and fused layers must
// share their weight global scale (fpq's default). Other formats, transforms (Hadamard, ARC) or mixed W4A4/W4A16
// layers are refused with an error naming the layer.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "model/checkpoint.h"

namespace fpq {

struct CompressedTensorsExportOptions {
  // Largest |input| per projection (HF name, e.g. "model.layers.0.self_attn.q_proj") for W4A4 layers whose fpq
  // activation scale is dynamic; see calibrate_input_amax.
  std::map<std::string, float> input_amax;
};

struct CompressedTensorsExportReport {
  std::string scheme;           // "NVFP4" (W4A4) or "NVFP4A16" (W4A16)
  int64_t quantized_layers = 0;
  int64_t ignored_layers = 0;   // unquantized projections (BF16)
  bool tokenizer = false;       // tokenizer files written
};

// Whether compressed-tensors' NVFP4 layout holds weights of format `f` (E2M1 codes, E4M3 scales per 16, symmetric,
// no per-row tensor scale): fpq's nvfp4 and nvfp4_4o6.
bool compressed_tensors_holds(const Format& f);

// True when the model quantizes activations to NVFP4 without a static scale in some layer (the export then needs
// input_amax for it).
bool compressed_tensors_needs_calibration(const Transformer& model);

// Runs the model (as it is, quantized) over the windows and returns each projection's largest |input|.
std::map<std::string, float> calibrate_input_amax(const Transformer& model, const std::vector<std::vector<int32_t>>& windows);

// Writes the folder `dir` atomically (temporary folder, then rename).
CompressedTensorsExportReport export_compressed_tensors(const LoadedModel& lm, const std::filesystem::path& dir,
                                                        const CompressedTensorsExportOptions& opt = {});

}  // namespace fpq
