#pragma once
// fpq's real-quant checkpoints: a folder with
//   config.json        the model's Hugging Face config plus "quantization_config" {"quant_method": "fpq", the whole
//                      recipe and method, and per projection its weight/activation formats and transform}
//   model.safetensors  embeddings, norms and output head (F32) and, per projection, the packed codes, scales,
//                      global scales, zero points, transform matrices / signs and ARC channel indices
//   tokenizer files    tokenizer.json (+ config) copied from a Hugging Face source; for a GGUF source,
//                      tokenizer.json + tokenizer_config.json written from its tokenizer (model/tokenizer_export.h)
//                      and tokenizer.gguf holding its tokenizer metadata as it was (for GGUF exports)
// Written atomically (temporary folder, then rename). Loading runs the stored codes as they are: no
// re-quantization.
#include <filesystem>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "model/model_source.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace fpq {

void save_checkpoint(const Transformer& model, const ModelSource& source, const std::filesystem::path& dir,
                     const nlohmann::json& quantization_config);

bool is_fpq_checkpoint(const std::filesystem::path& path);

// A model ready to run: from a GGUF file, a Hugging Face folder or an fpq checkpoint.
struct LoadedModel {
  std::unique_ptr<ModelSource> source;
  std::unique_ptr<Transformer> model;
  std::optional<Tokenizer> own_tokenizer;  // checkpoints of GGUF sources
  std::optional<nlohmann::json> quantization_config;  // fpq checkpoints
  const Tokenizer& tokenizer() const { return own_tokenizer ? *own_tokenizer : source->tokenizer(); }
  bool is_checkpoint() const { return quantization_config.has_value(); }
  std::string recipe_name() const;  // the checkpoint's recipe, e.g. "nvfp4 W4A4 gptq"
};

LoadedModel load_model(const std::filesystem::path& path);

// The Hugging Face config.json of a model config.
nlohmann::json hf_config_json(const ModelConfig& c);

}  // namespace fpq
