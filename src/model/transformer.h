#pragma once
// Llama-family decoder forward pass in float32 (Llama 2/3, SmolLM/SmolLM2, Mistral, Qwen2, Qwen3): RMSNorm,
// rotate-half RoPE (with Llama-3 / linear frequency scaling), grouped-query causal attention over a KV cache,
// SwiGLU, tied or separate output embeddings. Every projection inside the decoder blocks is a QuantLinear;
// embeddings, norms and the output head stay float32.
#include <cstdint>
#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/linear.h"
#include "model/model_config.h"
#include "model/model_source.h"

namespace fpq {

struct DecoderLayer {
  std::vector<float> input_norm, post_attention_norm;  // RMSNorm weights (hidden)
  std::vector<float> q_norm, k_norm;                    // Qwen3 per-head RMSNorm weights (head_dim)
  QuantLinear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

// Keys and values of the tokens seen so far, per layer: [kv_head][position][head_dim].
class KvCache {
 public:
  KvCache(const ModelConfig& c, int64_t capacity);
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  void clear() { length_ = 0; }
  // Forgets every position from `length` on (they are overwritten by the next forward).
  void truncate(int64_t length) { length_ = std::min(length_, length); }
  float* keys(int64_t layer, int64_t kv_head) { return k_[size_t(layer)].data() + kv_head * capacity_ * head_dim_; }
  float* values(int64_t layer, int64_t kv_head) { return v_[size_t(layer)].data() + kv_head * capacity_ * head_dim_; }
  void advance(int64_t n) { length_ += n; }

 private:
  int64_t capacity_, head_dim_, length_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

// Called with each projection's input while a forward runs (calibration): (layer, projection name, x, m, in).
using LinearInputHook = std::function<void(int64_t layer, const std::string& proj, const float* x, int64_t m, int64_t in)>;

// Supplies a projection that is not stored as a float weight (a quantized checkpoint); empty when the source
// holds the projection's float weight.
using LinearLoader = std::function<std::optional<QuantLinear>(const std::string& hf_name)>;

class Transformer {
 public:
  // Loads every weight of the source as float32, or through `linears` for projections it provides.
  explicit Transformer(const ModelSource& source, const LinearLoader& linears = {});

  const ModelConfig& config() const { return config_; }
  int64_t num_layers() const { return int64_t(layers_.size()); }
  DecoderLayer& layer(int64_t i) { return layers_[size_t(i)]; }
  const DecoderLayer& layer(int64_t i) const { return layers_[size_t(i)]; }
  // Every decoder projection with its HF name ("model.layers.3.self_attn.q_proj").
  std::vector<std::pair<std::string, QuantLinear*>> linears();

  // Runs n tokens that follow the cache's contents; writes logits for every token (n x vocab) or, when
  // last_only, for the last one (vocab). Appends the tokens' keys and values to the cache.
  void forward(const int32_t* tokens, int64_t n, KvCache& cache, float* logits, bool last_only = false) const;

  // The pieces of forward, for layer-by-layer calibration: embeddings of tokens into hidden (n x hidden);
  // one decoder layer in place over hidden, at positions cache.length()..+n (the caller advances the cache once
  // all layers ran); final norm + output head.
  void embed(const int32_t* tokens, int64_t n, float* hidden) const;
  void layer_forward(int64_t layer, float* hidden, int64_t n, KvCache& cache, const LinearInputHook& hook = {}) const;
  void head(const float* hidden, int64_t n, float* logits) const;

  // Bytes of the weights as stored (quantized layers count their codes and scales).
  size_t weight_bytes() const;

  const std::vector<float>& embed_weights() const { return embed_; }
  const std::vector<float>& lm_head_weights() const { return lm_head_; }  // empty when tied to the embeddings
  const std::vector<float>& final_norm_weights() const { return final_norm_; }
  // Every decoder projection (const), with its HF name.
  std::vector<std::pair<std::string, const QuantLinear*>> linears() const;

 private:
  void attention(int64_t layer, const float* q, int64_t n, KvCache& cache, float* out) const;
  void attention_one(int64_t layer, const float* q, KvCache& cache, float* out) const;
  void rope(float* x, int64_t n, int64_t heads, int64_t pos0) const;

  ModelConfig config_;
  std::vector<float> embed_;   // vocab x hidden
  std::vector<float> lm_head_; // vocab x hidden; empty when tied
  std::vector<float> final_norm_;
  std::vector<DecoderLayer> layers_;
  std::vector<float> inv_freq_;  // head_dim / 2
};

// RMSNorm of n rows of width d: y = x / sqrt(mean(x^2) + eps) * w (x and y may alias).
void rms_norm(const float* x, const float* w, int64_t n, int64_t d, double eps, float* y);

}  // namespace fpq
