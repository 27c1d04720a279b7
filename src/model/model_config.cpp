#include "model/model_config.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "util/error.h"
#include "util/file_io.h"

namespace fpq {

using json = nlohmann::json;

const char* model_arch_name(ModelArch a) {
  switch (a) {
    case ModelArch::llama: return "llama";
    case ModelArch::qwen2: return "qwen2";
    case ModelArch::qwen3: return "qwen3";
  }
  return "?";
}

std::vector<double> ModelConfig::rope_inverse_frequencies() const {
  const int64_t half = head_dim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv[size_t(i)] = 1.0 / std::pow(rope_theta, double(2 * i) / double(head_dim));
  if (has_llama3_rope_scaling) {
    // transformers' _compute_llama3_parameters.
    const auto& s = llama3_rope_scaling;
    const double old_ctx = double(s.original_max_position_embeddings);
    const double low_freq_wavelen = old_ctx / s.low_freq_factor;
    const double high_freq_wavelen = old_ctx / s.high_freq_factor;
    for (auto& f : inv) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  if (linear_rope_factor != 1.0)
    for (auto& f : inv) f /= linear_rope_factor;
  if (!rope_freq_factors.empty()) {
    if (int64_t(rope_freq_factors.size()) != half)
      fail("rope frequency factors have {} entries for head_dim {}", rope_freq_factors.size(), head_dim);
    for (int64_t i = 0; i < half; ++i) inv[size_t(i)] /= double(rope_freq_factors[size_t(i)]);
  }
  return inv;
}

std::string ModelConfig::summary() const {
  return fmt::format("{}: {} layers, hidden {}, {} heads ({} kv) x {}, ffn {}, vocab {}", model_arch_name(arch),
                     num_layers, hidden_size, num_heads, num_kv_heads, head_dim, intermediate_size, vocab_size);
}

namespace {

void check_config(const ModelConfig& c, const std::string& where) {
  auto positive = [&](int64_t v, const char* name) {
    if (v <= 0) fail("{}: {} is {} (must be positive)", where, name, v);
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_layers, "num_layers");
  positive(c.num_heads, "num_heads");
  positive(c.num_kv_heads, "num_kv_heads");
  positive(c.head_dim, "head_dim");
  if (c.num_heads % c.num_kv_heads != 0)
    fail("{}: {} attention heads is not a multiple of {} key/value heads", where, c.num_heads, c.num_kv_heads);
  if (c.head_dim % 2 != 0) fail("{}: head_dim {} is odd (RoPE needs pairs)", where, c.head_dim);
  if (!(c.rope_theta > 0)) fail("{}: rope_theta {} must be positive", where, c.rope_theta);
  if (!(c.rms_norm_eps >= 0)) fail("{}: rms_norm_eps {} must not be negative", where, c.rms_norm_eps);
}

int64_t json_int(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer()) fail("{}: '{}' is missing or not an integer", where, key);
  return j[key].get<int64_t>();
}

int64_t json_int_or(const json& j, const char* key, int64_t fallback) {
  return j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : fallback;
}

double json_float_or(const json& j, const char* key, double fallback) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

void parse_rope_scaling(ModelConfig& c, const json& rs, const std::string& where) {
  if (!rs.is_object()) return;
  std::string type = rs.value("rope_type", rs.value("type", std::string("default")));
  if (type == "default") return;
  if (type == "llama3") {
    c.has_llama3_rope_scaling = true;
    auto& s = c.llama3_rope_scaling;
    s.factor = json_float_or(rs, "factor", s.factor);
    s.low_freq_factor = json_float_or(rs, "low_freq_factor", s.low_freq_factor);
    s.high_freq_factor = json_float_or(rs, "high_freq_factor", s.high_freq_factor);
    s.original_max_position_embeddings =
        json_int_or(rs, "original_max_position_embeddings", s.original_max_position_embeddings);
    if (!(s.factor > 0) || !(s.high_freq_factor > s.low_freq_factor))
      fail("{}: llama3 rope_scaling has invalid factors", where);
    return;
  }
  if (type == "linear") {
    c.linear_rope_factor = json_float_or(rs, "factor", 1.0);
    if (!(c.linear_rope_factor > 0)) fail("{}: linear rope_scaling factor must be positive", where);
    return;
  }
  fail("{}: rope scaling type '{}' is not supported (fpq supports llama3 and linear)", where, type);
}

}  // namespace

ModelConfig model_config_from_hf_json(const std::filesystem::path& path) {
  const std::string where = "'" + path.string() + "'";
  json j;
  try {
    j = json::parse(read_file_text(path));
  } catch (const json::exception& e) {
    fail("{} is not valid JSON: {}", where, e.what());
  }
  if (!j.is_object()) fail("{} is not a JSON object", where);
  ModelConfig c;
  c.model_type = j.value("model_type", std::string());
  if (c.model_type == "llama" || c.model_type == "mistral") c.arch = ModelArch::llama;
  else if (c.model_type == "qwen2") c.arch = ModelArch::qwen2;
  else if (c.model_type == "qwen3") c.arch = ModelArch::qwen3;
  else fail("{}: model_type '{}' is not supported (fpq runs llama, mistral, qwen2, qwen3)", where, c.model_type);

  c.vocab_size = json_int(j, "vocab_size", where);
  c.hidden_size = json_int(j, "hidden_size", where);
  c.intermediate_size = json_int(j, "intermediate_size", where);
  c.num_layers = json_int(j, "num_hidden_layers", where);
  c.num_heads = json_int(j, "num_attention_heads", where);
  c.num_kv_heads = json_int_or(j, "num_key_value_heads", c.num_heads);
  c.head_dim = json_int_or(j, "head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.max_position_embeddings = json_int_or(j, "max_position_embeddings", 2048);
  c.rms_norm_eps = json_float_or(j, "rms_norm_eps", 1e-6);
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  // transformers 5 moved rope_theta and the scaling into rope_parameters.
  const json rope_params = j.value("rope_parameters", json());
  c.rope_theta = json_float_or(j, "rope_theta", rope_params.is_object() ? json_float_or(rope_params, "rope_theta", 1e4) : 1e4);
  parse_rope_scaling(c, j.value("rope_scaling", json()), where);
  if (!c.has_llama3_rope_scaling && c.linear_rope_factor == 1.0) parse_rope_scaling(c, rope_params, where);

  const bool attention_bias = j.value("attention_bias", false);
  switch (c.arch) {
    case ModelArch::llama:
      c.qkv_bias = c.o_bias = attention_bias;
      c.mlp_bias = j.value("mlp_bias", false);
      break;
    case ModelArch::qwen2: c.qkv_bias = true; break;
    case ModelArch::qwen3:
      c.qkv_bias = c.o_bias = attention_bias;
      c.qk_norm = true;
      break;
  }
  if (c.model_type == "mistral") c.sliding_window = json_int_or(j, "sliding_window", 0);
  else if (j.value("use_sliding_window", false)) c.sliding_window = json_int_or(j, "sliding_window", 0);

  c.bos_token_id = json_int_or(j, "bos_token_id", -1);
  if (j.contains("eos_token_id")) {
    const json& e = j["eos_token_id"];
    if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
    else if (e.is_array())
      for (const auto& x : e)
        if (x.is_number_integer()) c.eos_token_ids.push_back(x.get<int64_t>());
  }
  check_config(c, where);
  return c;
}

ModelConfig model_config_from_gguf(const GgufFile& g) {
  const std::string where = "'" + g.path().string() + "'";
  ModelConfig c;
  c.model_type = g.get_string("general.architecture");
  if (c.model_type == "llama") c.arch = ModelArch::llama;
  else if (c.model_type == "qwen2") c.arch = ModelArch::qwen2;
  else if (c.model_type == "qwen3") c.arch = ModelArch::qwen3;
  else fail("{}: GGUF architecture '{}' is not supported (fpq runs llama, qwen2, qwen3)", where, c.model_type);
  const std::string k = c.model_type + ".";
  if (g.get_int(k + "expert_count", 0) > 0) fail("{}: mixture-of-experts models are not supported", where);

  c.num_layers = g.get_int(k + "block_count");
  c.hidden_size = g.get_int(k + "embedding_length");
  if (const GgufValue* ff = g.find(k + "feed_forward_length"); ff && !ff->is_integer())
    fail("{}: per-layer feed_forward_length is not supported", where);
  c.intermediate_size = g.get_int(k + "feed_forward_length");
  c.num_heads = g.get_int(k + "attention.head_count");
  c.num_kv_heads = g.get_int(k + "attention.head_count_kv", c.num_heads);
  c.head_dim = g.get_int(k + "attention.key_length", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  if (g.get_int(k + "attention.value_length", c.head_dim) != c.head_dim)
    fail("{}: different key and value head sizes are not supported", where);
  if (g.get_int(k + "rope.dimension_count", c.head_dim) != c.head_dim)
    fail("{}: partial rotary embeddings (rope.dimension_count {} < head_dim {}) are not supported", where,
         g.get_int(k + "rope.dimension_count"), c.head_dim);
  c.max_position_embeddings = g.get_int(k + "context_length", 2048);
  c.rope_theta = g.get_float(k + "rope.freq_base", 10000.0);
  c.rms_norm_eps = g.get_float(k + "attention.layer_norm_rms_epsilon", 1e-6);
  c.sliding_window = g.get_int(k + "attention.sliding_window", 0);

  const std::string scaling = g.get_string(k + "rope.scaling.type", "none");
  if (scaling == "linear") {
    c.linear_rope_factor = g.get_float(k + "rope.scaling.factor", 1.0);
    if (!(c.linear_rope_factor > 0)) fail("{}: rope.scaling.factor must be positive", where);
  } else if (scaling != "none") {
    fail("{}: rope scaling type '{}' is not supported (fpq supports linear, and llama3 via rope_freqs)", where, scaling);
  }
  if (const auto* rf = g.find_tensor("rope_freqs.weight")) c.rope_freq_factors = g.dequantize(*rf);

  if (g.has(k + "vocab_size")) c.vocab_size = g.get_int(k + "vocab_size");
  else if (g.has("tokenizer.ggml.tokens")) c.vocab_size = int64_t(g.get_string_array("tokenizer.ggml.tokens").size());
  else if (const auto* e = g.find_tensor("token_embd.weight"); e && e->ne.size() == 2) c.vocab_size = e->ne[1];

  c.tie_word_embeddings = g.find_tensor("output.weight") == nullptr;
  c.qkv_bias = g.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.o_bias = g.find_tensor("blk.0.attn_output.bias") != nullptr;
  c.mlp_bias = g.find_tensor("blk.0.ffn_up.bias") != nullptr;
  c.qk_norm = g.find_tensor("blk.0.attn_q_norm.weight") != nullptr;

  c.bos_token_id = g.get_int("tokenizer.ggml.bos_token_id", -1);
  // llama.cpp stops generation at any end-of-generation token: eos, eot (end of turn), eom (end of message).
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    const int64_t id = g.get_int(key, -1);
    if (id >= 0 && std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end())
      c.eos_token_ids.push_back(id);
  }
  check_config(c, where);
  return c;
}

}  // namespace fpq
