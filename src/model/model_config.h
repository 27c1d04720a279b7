#pragma once
// The hyper-parameters of a Llama / Qwen2 / Qwen3 decoder, read from a Hugging Face config.json or from
// GGUF metadata, in Hugging Face's terms.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fpq {

class GgufFile;

enum class ModelArch { llama, qwen2, qwen3 };  // Mistral is llama (plus an optional sliding window)
const char* model_arch_name(ModelArch a);

// Llama 3's frequency-dependent RoPE scaling (HF rope_type "llama3").
struct Llama3RopeScaling {
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  ModelArch arch = ModelArch::llama;
  std::string model_type;  // as the source names it: "llama", "mistral", "qwen2", "qwen3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  // RoPE scaling: at most one of these applies.
  bool has_llama3_rope_scaling = false;
  Llama3RopeScaling llama3_rope_scaling;
  double linear_rope_factor = 1.0;          // HF rope_type "linear": every frequency divided by this
  std::vector<float> rope_freq_factors;     // GGUF rope_freqs.weight: frequency i divided by factor i
  bool tie_word_embeddings = false;         // lm_head.weight is model.embed_tokens.weight
  bool qkv_bias = false;                    // q/k/v_proj have biases (Qwen2)
  bool o_bias = false;                      // o_proj has a bias
  bool mlp_bias = false;                    // gate/up/down_proj have biases
  bool qk_norm = false;                     // per-head RMSNorm on q and k before RoPE (Qwen3)
  int64_t sliding_window = 0;               // 0: full attention
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  // HF's inverse RoPE frequencies for dimension pairs i = 0..head_dim/2-1 (rotate-half layout), with any
  // scaling above applied, in float64.
  std::vector<double> rope_inverse_frequencies() const;
  // One line, e.g. "llama: 30 layers, hidden 576, 9 heads (3 kv) x 64, ffn 1536, vocab 49152".
  std::string summary() const;
};

// From a Hugging Face config.json; unsupported architectures or options are an error naming them.
ModelConfig model_config_from_hf_json(const std::filesystem::path& config_json);
// From GGUF metadata ("<arch>.*" keys, tokenizer.ggml.* ids); bias / qk-norm flags from the tensors present.
ModelConfig model_config_from_gguf(const GgufFile& gguf);

}  // namespace fpq
