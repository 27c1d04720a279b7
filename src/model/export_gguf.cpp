#include "model/export_gguf.h"

#include <algorithm>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "formats/ggml_blocks.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/tokenizer_export.h"
#include "util/error.h"
#include "util/half.h"

namespace fpq {
namespace fs = std::filesystem;

std::optional<GgmlType> gguf_weight_type(const Format& f) {
  if (f.global != GlobalScale::None) return std::nullopt;
  switch (f.layout) {
    case Layout::GgmlQ4_0: return GgmlType::Q4_0;
    case Layout::GgmlQ4_1: return GgmlType::Q4_1;
    case Layout::GgmlQ8_0: return GgmlType::Q8_0;
    case Layout::GgmlQ8_1: return std::nullopt;  // an activation type: llama.cpp has no weight kernels for it
    case Layout::Planar: break;
  }
  // ggml's MXFP4: E2M1 codes, one E8M0 exponent per 32 values, symmetric.
  if (f.element && f.element->name == "e2m1" && f.scale == ScaleType::E8M0 && f.group == kGgmlBlock && !f.asymmetric())
    return GgmlType::MXFP4;
  return std::nullopt;
}

namespace {

// llama.cpp's file types (llama.h llama_ftype) of the types a projection can have.
uint32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q4_1: return 3;
    case GgmlType::Q8_0: return 7;
    case GgmlType::MXFP4: return 38;  // LLAMA_FTYPE_MOSTLY_MXFP4_MOE, the one MXFP4 file type
    default: fail("internal: no llama.cpp file type for ggml type {}", ggml_type_name(t));
  }
}

// convert_hf_to_gguf's LlamaModel.permute, on rows of `row_bytes` bytes: HF's rotate-half order within each head
// [x0..x(h/2-1), y0..] becomes llama.cpp's interleaved pairs: gguf[h*hd + 2*i + j] = hf[h*hd + j*hd/2 + i].
std::vector<uint8_t> permute_rows(const uint8_t* data, int64_t rows, int64_t row_bytes, int64_t n_heads, const std::string& name) {
  if (n_heads <= 0 || rows % n_heads != 0 || (rows / n_heads) % 2 != 0)
    fail("cannot permute '{}' for llama.cpp: {} rows do not split into {} heads of even size", name, rows, n_heads);
  const int64_t hd = rows / n_heads, half = hd / 2;
  std::vector<uint8_t> out(size_t(rows * row_bytes));
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < half; ++i)
        std::memcpy(out.data() + (h * hd + 2 * i + j) * row_bytes, data + (h * hd + j * half + i) * row_bytes,
                    size_t(row_bytes));
  return out;
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) { return to_bytes(v); }

std::vector<uint8_t> f16_bytes(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
  return to_bytes(h);
}

// HF llama3 rope scaling as llama.cpp expects it: per-frequency divisors in rope_freqs.weight (what
// convert_hf_to_gguf computes from the same parameters).
std::vector<float> llama3_rope_factors(const ModelConfig& c) {
  ModelConfig plain = c;
  plain.has_llama3_rope_scaling = false;
  plain.linear_rope_factor = 1.0;
  plain.rope_freq_factors.clear();
  ModelConfig scaled = plain;
  scaled.has_llama3_rope_scaling = true;
  const auto base = plain.rope_inverse_frequencies(), with = scaled.rope_inverse_frequencies();
  std::vector<float> f(base.size());
  for (size_t i = 0; i < f.size(); ++i) f[i] = float(base[i] / with[i]);
  return f;
}

}  // namespace

GgufExportReport export_gguf(const LoadedModel& lm, const fs::path& out, const GgufExportOptions& opt) {
  const Transformer& model = *lm.model;
  const ModelSource& source = *lm.source;
  const ModelConfig& c = model.config();
  const std::string arch = model_arch_name(c.arch);
  const bool permute = c.arch == ModelArch::llama;  // llama.cpp's llama uses interleaved RoPE on permuted rows
  GgufExportReport rep;
  GgufWriter w;
  std::map<std::string, int64_t> type_counts;
  std::map<GgmlType, int64_t> projection_types;
  auto add = [&](const std::string& hf_name, GgmlType type, std::vector<int64_t> ne, std::vector<uint8_t> bytes) {
    std::string g = hf_to_gguf_tensor_name(hf_name);
    if (g.empty()) g = hf_name;  // rope_freqs.weight
    w.add_tensor(g, type, std::move(ne), std::move(bytes));
    ++type_counts[ggml_type_name(type)];
    ++rep.tensors;
  };
  auto add_f32 = [&](const std::string& name, const std::vector<float>& v, std::vector<int64_t> ne) {
    add(name, GgmlType::F32, std::move(ne), f32_bytes(v));
  };
  const GgmlType big_float = opt.f16 ? GgmlType::F16 : GgmlType::F32;
  auto big_bytes = [&](const std::vector<float>& v) { return opt.f16 ? f16_bytes(v) : f32_bytes(v); };

  // ---- tensors ----
  add("model.embed_tokens.weight", big_float, {c.hidden_size, c.vocab_size}, big_bytes(model.embed_weights()));
  if (c.has_llama3_rope_scaling) {
    if (!c.rope_freq_factors.empty() || c.linear_rope_factor != 1.0)
      fail("the model combines llama3 rope scaling with other scaling, which GGUF cannot express");
    add_f32("rope_freqs.weight", llama3_rope_factors(c), {c.head_dim / 2});
  } else if (!c.rope_freq_factors.empty()) {
    add_f32("rope_freqs.weight", c.rope_freq_factors, {int64_t(c.rope_freq_factors.size())});
  }
  for (int64_t li = 0; li < model.num_layers(); ++li) {
    const DecoderLayer& L = model.layer(li);
    const std::string p = fmt::format("model.layers.{}.", li);
    add_f32(p + "input_layernorm.weight", L.input_norm, {c.hidden_size});
    add_f32(p + "post_attention_layernorm.weight", L.post_attention_norm, {c.hidden_size});
    if (!L.q_norm.empty()) {
      add_f32(p + "self_attn.q_norm.weight", L.q_norm, {c.head_dim});
      add_f32(p + "self_attn.k_norm.weight", L.k_norm, {c.head_dim});
    }
  }
  for (const auto& [name, lin] : model.linears()) {
    if (lin->transform())
      fail("layer '{}' has a '{}' input transform, which GGUF cannot hold (llama.cpp would not apply it to the "
           "activations); export a model quantized without a transform (not mr-gptq, arc or --transform hadamard)",
           name, lin->transform()->kind());
    if (lin->activation_quant()) rep.dropped_activation_quant = true;
    int64_t heads = 0;
    if (permute && name.ends_with(".self_attn.q_proj")) heads = c.num_heads;
    if (permute && name.ends_with(".self_attn.k_proj")) heads = c.num_kv_heads;
    const int64_t out_f = lin->out_features(), in_f = lin->in_features();
    GgmlType type = GgmlType::F32;
    std::vector<uint8_t> bytes;
    if (const auto& q = lin->quantized_weight()) {
      const auto t = gguf_weight_type(q->format);
      if (!t)
        fail("layer '{}' is quantized to '{}', which GGUF cannot hold: llama.cpp stores Q4_0, Q4_1, Q8_0 and MXFP4 "
             "weights (fpq formats q4_0, q4_1, q8_0, mxfp4)",
             name, q->format.spec());
      type = *t;
      if (type == GgmlType::MXFP4) {
        // Planar codes (two per byte, element order) + one E8M0 byte per 32 -> ggml blocks, row by row.
        const int64_t blocks = in_f / kGgmlBlock;
        bytes.resize(size_t(out_f * blocks * kMxfp4GgmlBytes));
        for (int64_t r = 0; r < out_f; ++r)
          mxfp4_planar_to_ggml(q->row_codes(r), q->row_scales(r), in_f, bytes.data() + r * blocks * kMxfp4GgmlBytes);
      } else {
        bytes = q->codes;  // fpq stores llama.cpp's blocks byte for byte
      }
    } else {
      bytes = f32_bytes(lin->float_weight());
    }
    if (heads > 0) bytes = permute_rows(bytes.data(), out_f, int64_t(bytes.size()) / out_f, heads, name);
    ++projection_types[type];
    add(name + ".weight", type, {in_f, out_f}, std::move(bytes));
    if (!lin->bias().empty()) {
      std::vector<uint8_t> b = f32_bytes(lin->bias());
      if (heads > 0) b = permute_rows(b.data(), out_f, 4, heads, name + ".bias");
      add(name + ".bias", GgmlType::F32, {out_f}, std::move(b));
    }
  }
  add_f32("model.norm.weight", model.final_norm_weights(), {c.hidden_size});
  if (!model.lm_head_weights().empty())
    add("lm_head.weight", big_float, {c.hidden_size, c.vocab_size}, big_bytes(model.lm_head_weights()));

  // ---- metadata ----
  GgmlType main_type = projection_types.empty() ? big_float : projection_types.begin()->first;
  for (const auto& [t, n] : projection_types)
    if (n > projection_types[main_type]) main_type = t;
  if (main_type == GgmlType::F32 && opt.f16) main_type = GgmlType::F16;
  rep.file_type = ggml_type_name(main_type);
  std::string name = opt.name;
  if (name.empty()) name = (source.path().has_filename() ? source.path() : source.path().parent_path()).stem().string();
  const std::string k = arch + ".";
  w.add_string("general.architecture", arch);
  w.add_string("general.name", name);
  w.add_u32("general.file_type", file_type_of(main_type));
  w.add_u32("general.quantization_version", 2);
  w.add_u32(k + "vocab_size", uint32_t(c.vocab_size));
  w.add_u32(k + "context_length", uint32_t(c.max_position_embeddings));
  w.add_u32(k + "embedding_length", uint32_t(c.hidden_size));
  w.add_u32(k + "block_count", uint32_t(c.num_layers));
  w.add_u32(k + "feed_forward_length", uint32_t(c.intermediate_size));
  w.add_u32(k + "attention.head_count", uint32_t(c.num_heads));
  w.add_u32(k + "attention.head_count_kv", uint32_t(c.num_kv_heads));
  w.add_u32(k + "attention.key_length", uint32_t(c.head_dim));
  w.add_u32(k + "attention.value_length", uint32_t(c.head_dim));
  w.add_u32(k + "rope.dimension_count", uint32_t(c.head_dim));
  w.add_f32(k + "rope.freq_base", float(c.rope_theta));
  w.add_f32(k + "attention.layer_norm_rms_epsilon", float(c.rms_norm_eps));
  if (c.linear_rope_factor != 1.0) {
    w.add_string(k + "rope.scaling.type", "linear");
    w.add_f32(k + "rope.scaling.factor", float(c.linear_rope_factor));
  }
  if (c.sliding_window > 0) w.add_u32(k + "attention.sliding_window", uint32_t(c.sliding_window));

  // The tokenizer: a GGUF source's own metadata as it was (a checkpoint of one keeps it in tokenizer.gguf), else
  // built from the tokenizer.
  fs::path tok_gguf;
  if (source.format() == ModelFormat::gguf) tok_gguf = source.path();
  else if (fs::exists(source.path() / "tokenizer.gguf")) tok_gguf = source.path() / "tokenizer.gguf";
  if (!tok_gguf.empty() && GgufFile(tok_gguf).has("tokenizer.ggml.tokens")) {
    const GgufFile g(tok_gguf);
    for (const auto& [key, value] : g.metadata())
      if (key.rfind("tokenizer.", 0) == 0) w.add_value(key, value);
  } else {
    const Tokenizer* tok = nullptr;
    if (lm.own_tokenizer) tok = &*lm.own_tokenizer;
    else if (source.has_tokenizer()) tok = &source.tokenizer();
    if (!tok)
      fail("GGUF export needs the model's tokenizer (llama.cpp reads it from the file), and '{}' has none",
           source.path().string());
    add_gguf_tokenizer_metadata(w, *tok, c.vocab_size, model_chat_template(source.path()));
  }
  w.write(out);
  std::vector<std::pair<std::string, int64_t>> counts(type_counts.begin(), type_counts.end());
  std::stable_sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [t, n] : counts) rep.tensor_types += (rep.tensor_types.empty() ? "" : ", ") + fmt::format("{} x{}", t, n);
  return rep;
}

}  // namespace fpq
