#include "model/checkpoint.h"

#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/quant_transforms.h"
#include "model/tokenizer_export.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/safetensors.h"

namespace fpq {
namespace fs = std::filesystem;
using json = nlohmann::json;

json hf_config_json(const ModelConfig& c) {
  json j;
  const bool qwen2 = c.arch == ModelArch::qwen2, qwen3 = c.arch == ModelArch::qwen3;
  j["architectures"] = {qwen2 ? "Qwen2ForCausalLM" : qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = qwen2 ? "qwen2" : qwen3 ? "qwen3" : (c.model_type == "mistral" ? "mistral" : "llama");
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  if (!qwen2) j["attention_bias"] = c.qkv_bias;
  if (c.mlp_bias) j["mlp_bias"] = true;
  if (c.has_llama3_rope_scaling)
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", c.llama3_rope_scaling.factor},
                         {"low_freq_factor", c.llama3_rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.llama3_rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", c.llama3_rope_scaling.original_max_position_embeddings}};
  else if (c.linear_rope_factor != 1.0)
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.linear_rope_factor}};
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  return j;
}

void save_checkpoint(const Transformer& model, const ModelSource& source, const fs::path& dir, const json& quantization_config) {
  if (!model.config().rope_freq_factors.empty())
    fail("saving a checkpoint of a model with GGUF rope_freqs factors is not supported");
  write_dir_atomic(dir, [&](const fs::path& tmp) {
    std::vector<SafetensorsTensorOut> t;
    const ModelConfig& c = model.config();
    t.push_back({"model.embed_tokens.weight", "F32", {c.vocab_size, c.hidden_size}, to_bytes(model.embed_weights())});
    if (!model.lm_head_weights().empty())
      t.push_back({"lm_head.weight", "F32", {c.vocab_size, c.hidden_size}, to_bytes(model.lm_head_weights())});
    t.push_back({"model.norm.weight", "F32", {c.hidden_size}, to_bytes(model.final_norm_weights())});
    json layers = json::object();
    for (int64_t i = 0; i < model.num_layers(); ++i) {
      const DecoderLayer& L = model.layer(i);
      const std::string p = fmt::format("model.layers.{}.", i);
      t.push_back({p + "input_layernorm.weight", "F32", {c.hidden_size}, to_bytes(L.input_norm)});
      t.push_back({p + "post_attention_layernorm.weight", "F32", {c.hidden_size}, to_bytes(L.post_attention_norm)});
      if (!L.q_norm.empty()) {
        t.push_back({p + "self_attn.q_norm.weight", "F32", {c.head_dim}, to_bytes(L.q_norm)});
        t.push_back({p + "self_attn.k_norm.weight", "F32", {c.head_dim}, to_bytes(L.k_norm)});
      }
    }
    for (const auto& [name, lin] : model.linears()) {
      if (lin->quantized_weight()) {
        for (auto& e : lin->state_tensors(name + ".")) t.push_back(std::move(e));
        layers[name] = lin->state_config();
      } else {
        // A float projection keeps the plain HF tensor names, so other tools read it too.
        t.push_back({name + ".weight", "F32", {lin->out_features(), lin->in_features()}, to_bytes(lin->float_weight())});
        if (!lin->bias().empty()) t.push_back({name + ".bias", "F32", {lin->out_features()}, to_bytes(lin->bias())});
      }
    }
    write_safetensors(tmp / "model.safetensors", t, {{"format", "pt"}, {"producer", "fpq"}});
    json cfg = hf_config_json(model.config());
    json qc = quantization_config;
    qc["quant_method"] = "fpq";
    qc["layers"] = layers;
    cfg["quantization_config"] = qc;
    const std::string text = cfg.dump(2);
    write_file_atomic(tmp / "config.json", std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
    if (source.format() == ModelFormat::hf_dir) {
      for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
        if (fs::exists(source.path() / f)) fs::copy_file(source.path() / f, tmp / f);
    } else {
      // A GGUF source: tokenizer.json + tokenizer_config.json (what Hugging Face tools and fpq read), and
      // tokenizer.gguf, the source's own tokenizer metadata, for a lossless GGUF export later.
      const GgufFile g(source.path());
      if (source.has_tokenizer()) {
        try {
          write_hf_tokenizer(source.tokenizer(), tmp, g.get_string("tokenizer.chat_template", ""));
        } catch (const Error& e) {  // fpq still loads the checkpoint's tokenizer from tokenizer.gguf
          std::fprintf(stderr, "fpq: warning: no tokenizer.json in the checkpoint: %s\n", e.what());
          fs::remove(tmp / "tokenizer.json");
          fs::remove(tmp / "tokenizer_config.json");
        }
      }
      GgufWriter w;
      w.add_string("general.architecture", g.get_string("general.architecture", "llama"));
      for (const auto& [key, value] : g.metadata())
        if (key.rfind("tokenizer.", 0) == 0) w.add_value(key, value);
      w.write(tmp / "tokenizer.gguf");
    }
  });
}

bool is_fpq_checkpoint(const fs::path& path) {
  if (!fs::is_directory(path) || !fs::exists(path / "config.json")) return false;
  try {
    const json cfg = json::parse(read_file_text(path / "config.json"));
    return cfg.contains("quantization_config") && cfg["quantization_config"].value("quant_method", "") == "fpq";
  } catch (const json::exception&) {
    return false;
  }
}

std::string LoadedModel::recipe_name() const {
  if (!quantization_config) return "unquantized";
  return quantization_config->value("recipe", std::string("quantized"));
}

LoadedModel load_model(const fs::path& path) {
  if (!fs::exists(path)) fail("model '{}' not found", path.string());
  LoadedModel lm;
  lm.source = std::make_unique<ModelSource>(path);
  if (!is_fpq_checkpoint(path)) {
    lm.model = std::make_unique<Transformer>(*lm.source);
    return lm;
  }
  register_quant_transform_loaders();
  json cfg;
  try {
    cfg = json::parse(read_file_text(path / "config.json"));
  } catch (const json::exception&) {
    fail("'{}' is not valid JSON", (path / "config.json").string());
  }
  lm.quantization_config = cfg["quantization_config"];
  const json layers = lm.quantization_config->value("layers", json::object());
  const SafetensorsFile file(path / "model.safetensors");
  lm.model = std::make_unique<Transformer>(*lm.source, [&](const std::string& name) -> std::optional<QuantLinear> {
    if (!layers.contains(name)) return std::nullopt;
    try {
      return QuantLinear::from_state(layers[name], file, name + ".");
    } catch (const Error& e) {  // name the checkpoint and layer when the message does not
      const std::string msg = e.what();
      if (msg.find(name) != std::string::npos) throw;
      fail("'{}': layer '{}': {}", path.string(), name, msg);
    }
  });
  if (!lm.source->has_tokenizer() && fs::exists(path / "tokenizer.gguf"))
    lm.own_tokenizer = Tokenizer::from_gguf(GgufFile(path / "tokenizer.gguf"));
  return lm;
}

}  // namespace fpq
