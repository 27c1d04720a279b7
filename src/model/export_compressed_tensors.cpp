#include "model/export_compressed_tensors.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "model/gguf.h"
#include "model/tokenizer_export.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/half.h"
#include "util/safetensors.h"

namespace fpq {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr float kFp4TimesFp8Max = 448.0f * 6.0f;  // compressed-tensors' generate_gparam numerator

bool is_nvfp4(const Format& f) {
  return f.layout == Layout::Planar && f.element && f.element->name == "e2m1" && f.scale == ScaleType::E4M3 &&
         f.group == 16 && !f.asymmetric();
}

std::vector<uint8_t> bf16_bytes(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_bf16(v[i]);
  return to_bytes(h);
}

std::vector<uint8_t> f32_scalar(float v) { return to_bytes(std::vector<float>{v}); }

// The projection's fused group in vLLM (QKVParallelLinear, MergedColumnParallelLinear), "" for none.
std::string fused_group(const std::string& name) {
  for (const char* p : {".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj"})
    if (name.ends_with(p)) return name.substr(0, name.size() - std::string(p).size()) + ".self_attn.qkv_proj";
  for (const char* p : {".mlp.gate_proj", ".mlp.up_proj"})
    if (name.ends_with(p)) return name.substr(0, name.size() - std::string(p).size()) + ".mlp.gate_up_proj";
  return "";
}

json quant_args(bool activations) {
  return {{"num_bits", 4},          {"type", "float"},     {"symmetric", true},
          {"group_size", 16},       {"strategy", "tensor_group"}, {"block_structure", nullptr},
          {"dynamic", activations ? json("local") : json(false)}, {"actorder", nullptr},
          {"observer", "minmax"},   {"observer_kwargs", json::object()}};
}

}  // namespace

bool compressed_tensors_holds(const Format& f) { return is_nvfp4(f) && f.global != GlobalScale::PerRow; }

bool compressed_tensors_needs_calibration(const Transformer& model) {
  for (const auto& [name, lin] : model.linears())
    if (lin->activation_quant() && !lin->activation_quant()->global_scale) return true;
  return false;
}

std::map<std::string, float> calibrate_input_amax(const Transformer& model, const std::vector<std::vector<int32_t>>& windows) {
  std::map<std::string, float> amax;
  for (const auto& [name, lin] : model.linears()) amax[name] = 0.0f;
  const ModelConfig& c = model.config();
  for (const auto& w : windows) {
    const auto n = int64_t(w.size());
    if (n == 0) continue;
    std::vector<float> hidden(size_t(n * c.hidden_size));
    model.embed(w.data(), n, hidden.data());
    KvCache cache(c, n);
    for (int64_t li = 0; li < model.num_layers(); ++li)
      model.layer_forward(li, hidden.data(), n, cache, [&](int64_t l, const std::string& p, const float* x, int64_t m, int64_t in) {
        float& a = amax[fmt::format("model.layers.{}.{}", l, p)];
        for (int64_t i = 0; i < m * in; ++i)
          if (std::fabs(x[i]) > a) a = std::fabs(x[i]);  // NaN never compares greater
      });
  }
  return amax;
}

CompressedTensorsExportReport export_compressed_tensors(const LoadedModel& lm, const fs::path& dir,
                                                        const CompressedTensorsExportOptions& opt) {
  const Transformer& model = *lm.model;
  const ModelSource& source = *lm.source;
  const ModelConfig& c = model.config();
  CompressedTensorsExportReport rep;
  std::vector<SafetensorsTensorOut> t;
  t.push_back({"model.embed_tokens.weight", "BF16", {c.vocab_size, c.hidden_size}, bf16_bytes(model.embed_weights())});
  for (int64_t i = 0; i < model.num_layers(); ++i) {
    const DecoderLayer& L = model.layer(i);
    const std::string p = fmt::format("model.layers.{}.", i);
    t.push_back({p + "input_layernorm.weight", "BF16", {c.hidden_size}, bf16_bytes(L.input_norm)});
    t.push_back({p + "post_attention_layernorm.weight", "BF16", {c.hidden_size}, bf16_bytes(L.post_attention_norm)});
    if (!L.q_norm.empty()) {
      t.push_back({p + "self_attn.q_norm.weight", "BF16", {c.head_dim}, bf16_bytes(L.q_norm)});
      t.push_back({p + "self_attn.k_norm.weight", "BF16", {c.head_dim}, bf16_bytes(L.k_norm)});
    }
  }
  json ignore = json::array({"lm_head"});
  std::optional<bool> w4a4;  // every quantized layer must agree
  std::map<std::string, std::pair<std::string, float>> fused_global;  // group -> (first layer, its global)
  for (const auto& [name, lin] : model.linears()) {
    const int64_t out_f = lin->out_features(), in_f = lin->in_features();
    if (lin->transform())
      fail("layer '{}' has a '{}' input transform, which compressed-tensors' NVFP4 layout cannot hold; export a model "
           "quantized without a transform (not mr-gptq, arc or --transform hadamard)",
           name, lin->transform()->kind());
    const auto& q = lin->quantized_weight();
    if (!q) {
      if (lin->activation_quant()) fail("layer '{}' quantizes activations but not its weight", name);
      t.push_back({name + ".weight", "BF16", {out_f, in_f}, bf16_bytes(lin->float_weight())});
      if (!lin->bias().empty()) t.push_back({name + ".bias", "BF16", {out_f}, bf16_bytes(lin->bias())});
      ignore.push_back(name);
      ++rep.ignored_layers;
      continue;
    }
    if (!compressed_tensors_holds(q->format))
      fail("layer '{}' is quantized to '{}'; the compressed-tensors export holds NVFP4 weights (E2M1 codes, E4M3 scales "
           "per 16, one tensor scale: fpq formats nvfp4, nvfp4_4o6)",
           name, q->format.spec());
    const auto& act = lin->activation_quant();
    if (act && !is_nvfp4(act->format))
      fail("layer '{}' quantizes activations to '{}'; vLLM's NVFP4 schemes are W4A4 with NVFP4 activations or W4A16",
           name, act->format.spec());
    if (w4a4 && *w4a4 != bool(act))
      fail("layer '{}' is {} while earlier layers are {}; the export writes one scheme for every layer", name,
           act ? "W4A4" : "W4A16", *w4a4 ? "W4A4" : "W4A16");
    w4a4 = bool(act);
    const float g = q->global_scale.empty() ? 1.0f : q->global_scale[0];
    if (!(g > 0) || !std::isfinite(g)) fail("layer '{}' has weight global scale {}, which has no reciprocal", name, g);
    if (const std::string grp = fused_group(name); !grp.empty()) {
      const auto [it, fresh] = fused_global.emplace(grp, std::make_pair(name, g));
      if (!fresh && it->second.second != g)
        fail("layers '{}' and '{}' have weight global scales {} and {}, but vLLM fuses them and keeps one; quantize with "
             "fused global scales (fpq's default, not --no-fuse-global-scale)",
             it->second.first, name, it->second.second, g);
    }
    t.push_back({name + ".weight_packed", "U8", {out_f, in_f / 2}, q->codes});
    t.push_back({name + ".weight_scale", "F8_E4M3", {out_f, in_f / 16}, q->scales});
    // compressed-tensors decodes code * (scale / global): its global is the reciprocal of fpq's.
    t.push_back({name + ".weight_global_scale", "F32", {1}, f32_scalar(1.0f / g)});
    if (act) {
      float igs;
      if (act->global_scale) {
        if (!(*act->global_scale > 0) || !std::isfinite(*act->global_scale))
          fail("layer '{}' has activation scale {}, which has no reciprocal", name, *act->global_scale);
        igs = 1.0f / *act->global_scale;
      } else {
        const auto it = opt.input_amax.find(name);
        if (it == opt.input_amax.end())
          fail("layer '{}' quantizes activations with a dynamic scale; the W4A4 export needs its static input amax "
               "(calibrate with --calib-data)",
               name);
        const float amax = it->second;
        if (!std::isfinite(amax) || amax < 0) fail("layer '{}' has calibrated input amax {}", name, amax);
        igs = amax > 0 ? kFp4TimesFp8Max / amax : 1.0f;  // an all-zero input: any scale is exact
        if (!std::isfinite(igs)) igs = std::numeric_limits<float>::max();
      }
      t.push_back({name + ".input_global_scale", "F32", {1}, f32_scalar(igs)});
    }
    if (!lin->bias().empty()) t.push_back({name + ".bias", "BF16", {out_f}, bf16_bytes(lin->bias())});
    ++rep.quantized_layers;
  }
  if (!w4a4) fail("the model has no quantized layers to export as compressed-tensors NVFP4");
  t.push_back({"model.norm.weight", "BF16", {c.hidden_size}, bf16_bytes(model.final_norm_weights())});
  if (!model.lm_head_weights().empty())
    t.push_back({"lm_head.weight", "BF16", {c.vocab_size, c.hidden_size}, bf16_bytes(model.lm_head_weights())});
  rep.scheme = *w4a4 ? "NVFP4" : "NVFP4A16";

  json group = {{"targets", {"Linear"}},
                {"weights", quant_args(false)},
                {"input_activations", *w4a4 ? quant_args(true) : json(nullptr)},
                {"output_activations", nullptr},
                {"format", "nvfp4-pack-quantized"}};
  json qc = {{"quant_method", "compressed-tensors"},
             {"format", "nvfp4-pack-quantized"},
             {"config_groups", {{"group_0", group}}},
             {"ignore", ignore},
             {"kv_cache_scheme", nullptr},
             {"global_compression_ratio", nullptr},
             {"quantization_status", "compressed"}};
  json cfg = hf_config_json(c);
  cfg["torch_dtype"] = "bfloat16";
  cfg["quantization_config"] = qc;
  const std::string cfg_text = cfg.dump(2) + "\n";

  const Tokenizer* tok = lm.own_tokenizer ? &*lm.own_tokenizer : source.has_tokenizer() ? &source.tokenizer() : nullptr;
  write_dir_atomic(dir, [&](const fs::path& tmp) {
    write_safetensors(tmp / "model.safetensors", t, {{"format", "pt"}, {"producer", "fpq"}});
    write_file_atomic(tmp / "config.json",
                      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(cfg_text.data()), cfg_text.size()));
    if (source.format() == ModelFormat::hf_dir && fs::exists(source.path() / "tokenizer.json")) {
      for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                            "chat_template.jinja"})
        if (fs::exists(source.path() / f)) fs::copy_file(source.path() / f, tmp / f);
      rep.tokenizer = true;
    } else if (tok) {
      try {
        write_hf_tokenizer(*tok, tmp, model_chat_template(source.path()));
        rep.tokenizer = true;
      } catch (const Error& e) {
        std::fprintf(stderr, "fpq: warning: the export has no tokenizer files: %s\n", e.what());
        fs::remove(tmp / "tokenizer.json");
        fs::remove(tmp / "tokenizer_config.json");
      }
    }
  });
  return rep;
}

}  // namespace fpq
