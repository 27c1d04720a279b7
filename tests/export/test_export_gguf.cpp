// GGUF export: gguf-py (tests/ref/export_ref.py gguf-read) re-reads the file: tensor names, ggml types, shapes, and
// values (gguf-py's dequantize equals fpq's dequantized weights exactly, Q/K rows in llama.cpp's permuted order);
// metadata keys and types; a float64 numpy forward pass over it (llama). fpq loads the export back (ModelSource) and its logits equal, bit for bit, those of the
// in-memory quantized model run weight-only with the pseudo backend; llama.cpp (llama-cpp-python, when importable)
// loads it and its logits are close to fpq's (llama.cpp quantizes activations to Q8 for these types).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include "export_test_util.h"
#include "model/calibrate.h"
#include "model/export_gguf.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/quant_recipe.h"
#include "model/tokenizer_export.h"
#include "test_support.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/npy.h"

namespace fpq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using exporttest::expect_same_bits;
using exporttest::logits;

// convert_hf_to_gguf's permute: w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2).reshape(out, in).
std::vector<float> permuted(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads) {
  const int64_t hd = rows / heads, half = hd / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < half; ++i)
        std::copy_n(w.begin() + (h * hd + j * half + i) * cols, cols, out.begin() + (h * hd + i * 2 + j) * cols);
  return out;
}

std::string ggml_name_of(const std::string& format) {
  if (format == "q4_0") return "Q4_0";
  if (format == "q4_1") return "Q4_1";
  if (format == "q8_0") return "Q8_0";
  if (format == "mxfp4") return "MXFP4";
  return "F32";
}

uint32_t file_type_of(const std::string& format) {
  const std::map<std::string, uint32_t> m = {{"q4_0", 2}, {"q4_1", 3}, {"q8_0", 7}, {"mxfp4", 38}};
  return m.at(format);
}

// gguf-py's view of the file; tensors matching `prefixes` (all when empty) dequantized into dir.
json gguf_py_read(const fs::path& file, const fs::path& dir, const std::vector<std::string>& prefixes = {}) {
  std::vector<std::string> args = {"gguf-read", file.string(), dir.string()};
  args.insert(args.end(), prefixes.begin(), prefixes.end());
  test::run_python_ref("export_ref.py", args);
  return json::parse(read_file_text(dir / "gguf.json"));
}

void expect_tensor(const json& info, const fs::path& dir, const std::string& name, const std::string& type,
                   std::vector<int64_t> ne, const std::vector<float>& want) {
  SCOPED_TRACE(name);
  const json* t = nullptr;
  for (const auto& e : info.at("tensors"))
    if (e.at("name") == name) t = &e;
  ASSERT_NE(t, nullptr) << "missing tensor";
  EXPECT_EQ(t->at("type").get<std::string>(), type);
  EXPECT_EQ(t->at("ne").get<std::vector<int64_t>>(), ne);
  const NpyArray a = read_npy(dir / (name + ".npy"));
  if (type != "MXFP4") {
    expect_same_bits(a.data, want, name + " (gguf-py dequantize vs fpq)");
    return;
  }
  // ggml's MXFP4 value table holds +0 for the code of -0 (an int8 table): equal values, zero's sign aside.
  ASSERT_EQ(a.data.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    if (!(a.data[i] == want[i] || (std::isnan(a.data[i]) && std::isnan(want[i])))) {
      ADD_FAILURE() << name << ": first difference at " << i << ": " << a.data[i] << " vs " << want[i];
      return;
    }
}

// llama.cpp's logits for `tokens`, or empty when llama_cpp is not importable.
std::vector<float> llama_cpp_logits(const fs::path& gguf, const std::vector<int32_t>& tokens, const fs::path& dir) {
  std::string list;
  for (auto t : tokens) list += (list.empty() ? "" : ",") + std::to_string(t);
  const std::string out = test::run_python_ref("export_ref.py", {"llama-logits", gguf.string(), list, (dir / "llama.npy").string()});
  if (!fs::exists(dir / "llama.npy")) {
    std::printf("%s", out.c_str());
    return {};
  }
  return read_npy(dir / "llama.npy").data;
}

struct Case {
  std::string arch, format, tokenizer_style;
};

class GgufExportTiny : public ::testing::TestWithParam<Case> {};

TEST_P(GgufExportTiny, GgufPyFpqAndLlamaCppReadIt) {
  const Case c = GetParam();
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  exporttest::make_tiny_model(dir / "hf", c.arch, seed, c.tokenizer_style);
  LoadedModel lm = load_model(dir / "hf");
  quantize_model_rtn(*lm.model, make_recipe(c.format, 0, 16), false);
  const fs::path out = dir / "model.gguf";
  const GgufExportReport rep = export_gguf(lm, out);
  EXPECT_EQ(rep.file_type, ggml_name_of(c.format));
  EXPECT_FALSE(rep.dropped_activation_quant);

  // ---- gguf-py ----
  const json info = gguf_py_read(out, dir.path());
  const Transformer& m = *lm.model;
  const ModelConfig& cfg = m.config();
  const std::string arch = model_arch_name(cfg.arch);
  const bool permute = arch == "llama";
  int64_t expected_tensors = 2 + (m.lm_head_weights().empty() ? 0 : 1) + (cfg.has_llama3_rope_scaling ? 1 : 0);
  expect_tensor(info, dir.path(), "token_embd.weight", "F32", {cfg.hidden_size, cfg.vocab_size}, m.embed_weights());
  expect_tensor(info, dir.path(), "output_norm.weight", "F32", {cfg.hidden_size}, m.final_norm_weights());
  if (!m.lm_head_weights().empty())
    expect_tensor(info, dir.path(), "output.weight", "F32", {cfg.hidden_size, cfg.vocab_size}, m.lm_head_weights());
  for (int64_t i = 0; i < m.num_layers(); ++i) {
    const DecoderLayer& L = m.layer(i);
    const std::string b = "blk." + std::to_string(i) + ".";
    expect_tensor(info, dir.path(), b + "attn_norm.weight", "F32", {cfg.hidden_size}, L.input_norm);
    expect_tensor(info, dir.path(), b + "ffn_norm.weight", "F32", {cfg.hidden_size}, L.post_attention_norm);
    expected_tensors += 2;
    if (!L.q_norm.empty()) {
      expect_tensor(info, dir.path(), b + "attn_q_norm.weight", "F32", {cfg.head_dim}, L.q_norm);
      expect_tensor(info, dir.path(), b + "attn_k_norm.weight", "F32", {cfg.head_dim}, L.k_norm);
      expected_tensors += 2;
    }
  }
  for (const auto& [name, lin] : m.linears()) {
    const std::string g = hf_to_gguf_tensor_name(name + ".weight");
    int64_t heads = 0;
    if (permute && name.ends_with("q_proj")) heads = cfg.num_heads;
    if (permute && name.ends_with("k_proj")) heads = cfg.num_kv_heads;
    std::vector<float> w = lin->weight_as_float();
    if (heads) w = permuted(w, lin->out_features(), lin->in_features(), heads);
    expect_tensor(info, dir.path(), g, ggml_name_of(c.format), {lin->in_features(), lin->out_features()}, w);
    ++expected_tensors;
    if (!lin->bias().empty()) {
      std::vector<float> bias = lin->bias();
      if (heads) bias = permuted(bias, lin->out_features(), 1, heads);
      expect_tensor(info, dir.path(), hf_to_gguf_tensor_name(name + ".bias"), "F32", {lin->out_features()}, bias);
      ++expected_tensors;
    }
  }
  EXPECT_EQ(int64_t(info.at("tensors").size()), expected_tensors);
  EXPECT_EQ(rep.tensors, expected_tensors);

  const json& meta = info.at("meta");
  auto value = [&](const std::string& k) { return meta.at(k).at("value"); };
  auto type = [&](const std::string& k) { return meta.at(k).at("types").at(0).get<std::string>(); };
  EXPECT_EQ(value("general.architecture"), arch);
  EXPECT_EQ(value("general.file_type").get<uint32_t>(), file_type_of(c.format));
  EXPECT_EQ(value("general.quantization_version").get<uint32_t>(), 2u);
  const std::map<std::string, int64_t> ints = {
      {"vocab_size", cfg.vocab_size},           {"context_length", cfg.max_position_embeddings},
      {"embedding_length", cfg.hidden_size},    {"block_count", cfg.num_layers},
      {"feed_forward_length", cfg.intermediate_size}, {"attention.head_count", cfg.num_heads},
      {"attention.head_count_kv", cfg.num_kv_heads},  {"attention.key_length", cfg.head_dim},
      {"attention.value_length", cfg.head_dim}, {"rope.dimension_count", cfg.head_dim}};
  for (const auto& [k, v] : ints) {
    EXPECT_EQ(value(arch + "." + k).get<int64_t>(), v) << k;
    EXPECT_EQ(type(arch + "." + k), "UINT32") << k;
  }
  EXPECT_EQ(type(arch + ".rope.freq_base"), "FLOAT32");
  EXPECT_EQ(value(arch + ".rope.freq_base").get<double>(), double(float(cfg.rope_theta)));
  EXPECT_EQ(value(arch + ".attention.layer_norm_rms_epsilon").get<double>(), cfg.rms_norm_eps);
  EXPECT_EQ(value("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(value("tokenizer.ggml.pre"), c.tokenizer_style == "llama3" ? "llama-bpe" : c.tokenizer_style == "gpt2" ? "gpt-2" : c.tokenizer_style);
  EXPECT_EQ(int64_t(value("tokenizer.ggml.tokens").size()), cfg.vocab_size);
  EXPECT_EQ(int64_t(value("tokenizer.ggml.token_type").size()), cfg.vocab_size);
  EXPECT_EQ(value("tokenizer.ggml.merges").size(), lm.tokenizer().definition().merges.size());
  EXPECT_EQ(value("tokenizer.ggml.bos_token_id").get<int32_t>(), lm.tokenizer().bos_id());
  EXPECT_EQ(value("tokenizer.ggml.eos_token_id").get<int32_t>(), lm.tokenizer().eos_id());
  EXPECT_EQ(value("tokenizer.chat_template").get<std::string>(), model_chat_template(dir / "hf"));

  // ---- fpq reads it back: same float weights, so bit-identical logits on the same (pseudo) matmul ----
  std::mt19937_64 rng(seed);
  const auto tokens = exporttest::random_tokens(rng, 19, cfg.vocab_size);
  set_model_backends(*lm.model, "reference", "pseudo");
  const auto want = logits(*lm.model, tokens);
  LoadedModel back = load_model(out);
  EXPECT_EQ(back.source->stored_type("model.layers.0.mlp.down_proj.weight"), ggml_name_of(c.format));
  set_model_backends(*back.model, "", "pseudo");
  const auto got = logits(*back.model, tokens);
  if (cfg.has_llama3_rope_scaling) {  // rope_freqs.weight holds the llama3 factors in float32: not bit-exact
    EXPECT_LT(test::rel_l2(got, want), 1e-5);
  } else {
    expect_same_bits(got, want, "logits of the exported GGUF vs the in-memory quantized model");
  }
  EXPECT_EQ(back.tokenizer().encode("Hello world 123"), lm.tokenizer().encode("Hello world 123"));

  // ---- a float64 numpy forward pass over gguf-py's reading of the file (llama.cpp's interleaved RoPE) ----
  if (arch == "llama" && !cfg.has_llama3_rope_scaling) {
    const std::vector<float> tok_f(tokens.begin(), tokens.end());
    write_npy(dir / "tokens.npy", {int64_t(tokens.size())}, tok_f.data());
    test::run_python_ref("model_forward_ref.py", {"gguf", out.string(), (dir / "tokens.npy").string(), (dir / "ref.npy").string()});
    EXPECT_LT(test::rel_l2(want, read_npy(dir / "ref.npy").data), 1e-4) << "fpq vs numpy on the exported GGUF";
  }

  // ---- llama.cpp ----
  const auto ll = llama_cpp_logits(out, tokens, dir.path());
  if (ll.empty()) GTEST_SKIP() << "llama_cpp is not importable: llama.cpp check skipped";
  const double rel = test::rel_l2(ll, want);
  std::printf("llama.cpp vs fpq logits: rel L2 %.3g\n", rel);
  EXPECT_LT(rel, 0.04);  // Q8_0 activations in llama.cpp; a wrong layout gives O(1)
}

INSTANTIATE_TEST_SUITE_P(, GgufExportTiny,
                         ::testing::Values(Case{"llama", "q4_0", "gpt2"}, Case{"llama", "mxfp4", "smollm"},
                                           Case{"qwen2", "q8_0", "llama3"}, Case{"qwen3", "mxfp4", "gpt2"},
                                           Case{"llama3", "q4_1", "gpt2"}),
                         [](const auto& i) { return i.param.arch + "_" + i.param.format; });

TEST(GgufExport, DefaultModelKeepsItsTokenizerAndRunsInLlamaCpp) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  LoadedModel lm = load_model(default_model_path());
  quantize_model_rtn(*lm.model, make_recipe("mxfp4", 0, 16), false);
  const fs::path out = dir / "smol.gguf";
  GgufExportOptions opt;
  opt.name = "smol-mxfp4";
  export_gguf(lm, out, opt);
  const json info = gguf_py_read(out, dir.path(), {"blk.0.", "output_norm"});
  const Transformer& m = *lm.model;
  const ModelConfig& cfg = m.config();
  expect_tensor(info, dir.path(), "blk.0.attn_q.weight", "MXFP4", {cfg.hidden_size, cfg.num_heads * cfg.head_dim},
                permuted(m.layer(0).q_proj.weight_as_float(), cfg.num_heads * cfg.head_dim, cfg.hidden_size, cfg.num_heads));
  expect_tensor(info, dir.path(), "blk.0.attn_k.weight", "MXFP4", {cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim},
                permuted(m.layer(0).k_proj.weight_as_float(), cfg.num_kv_heads * cfg.head_dim, cfg.hidden_size, cfg.num_kv_heads));
  expect_tensor(info, dir.path(), "blk.0.ffn_down.weight", "MXFP4", {cfg.intermediate_size, cfg.hidden_size},
                m.layer(0).down_proj.weight_as_float());
  expect_tensor(info, dir.path(), "output_norm.weight", "F32", {cfg.hidden_size}, m.final_norm_weights());
  EXPECT_EQ(info.at("tensors").size(), size_t(2 + 9 * cfg.num_layers));
  // The tokenizer metadata is the source's, key for key.
  const GgufFile src(default_model_path());
  const json& meta = info.at("meta");
  for (const auto& [key, v] : src.metadata()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    ASSERT_TRUE(meta.contains(key)) << key;
    if (v.type == GgufValueType::ARRAY) {
      EXPECT_EQ(meta[key]["value"].size(), std::get<std::vector<GgufValue>>(v.value).size()) << key;
    }
  }
  EXPECT_EQ(meta["tokenizer.ggml.tokens"]["value"][500].get<std::string>(), src.get_string_array("tokenizer.ggml.tokens")[500]);
  EXPECT_EQ(meta["general.name"]["value"], "smol-mxfp4");
  EXPECT_EQ(meta["general.file_type"]["value"].get<int>(), 38);

  std::mt19937_64 rng(seed);
  const auto tokens = lm.tokenizer().encode("The capital of France is Paris. Quantization keeps models small, 2024.");
  set_model_backends(*lm.model, "reference", "pseudo");
  const auto want = logits(*lm.model, tokens);
  {
    LoadedModel back = load_model(out);
    set_model_backends(*back.model, "", "pseudo");
    expect_same_bits(logits(*back.model, tokens), want, "default model: exported GGUF vs in-memory");
  }
  const auto ll = llama_cpp_logits(out, tokens, dir.path());
  if (ll.empty()) GTEST_SKIP() << "llama_cpp is not importable: llama.cpp check skipped";
  const double rel = test::rel_l2(ll, want);
  int agree = 0;
  const int64_t v = cfg.vocab_size;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const auto a = std::max_element(ll.begin() + int64_t(t) * v, ll.begin() + int64_t(t + 1) * v) - (ll.begin() + int64_t(t) * v);
    const auto b = std::max_element(want.begin() + int64_t(t) * v, want.begin() + int64_t(t + 1) * v) - (want.begin() + int64_t(t) * v);
    agree += a == b;
  }
  std::printf("default model: llama.cpp vs fpq logits rel L2 %.3g, argmax agreement %d/%zu\n", rel, agree, tokens.size());
  EXPECT_LT(rel, 0.05);
  EXPECT_GE(agree, int(tokens.size() * 8 / 10));
}

TEST(GgufWriter, CustomAlignmentEveryValueTypeAndDuplicates) {
  test::TempDir dir;
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("a.u32", 7);
  w.add_i32("a.i32", -7);
  w.add_f32("a.f32", 0.25f);
  w.add_bool("a.bool", true);
  w.add_string_array("a.strs", {"x", "", "ü"});
  w.add_i32_array("a.i32s", {1, -2, 3});
  w.add_f32_array("a.f32s", {1.5f, -2.0f});
  GgufValue u8;
  u8.type = GgufValueType::U8;
  u8.value = uint64_t(200);
  w.add_value("a.u8", u8);
  const std::vector<float> t1 = {1, 2, 3, -4, 5};
  std::vector<float> t2(64);
  for (size_t i = 0; i < t2.size(); ++i) t2[i] = float(i) * 0.5f;
  w.add_tensor("t1", GgmlType::F32, {5}, to_bytes(t1));
  w.add_tensor("t2", GgmlType::F32, {32, 2}, to_bytes(t2));
  w.write(dir / "w.gguf", 64);
  const json info = gguf_py_read(dir / "w.gguf", dir.path());
  EXPECT_EQ(info.at("alignment").get<int>(), 64);
  const json& m = info.at("meta");
  EXPECT_EQ(m.at("a.u32").at("value"), 7);
  EXPECT_EQ(m.at("a.i32").at("value"), -7);
  EXPECT_EQ(m.at("a.f32").at("value"), 0.25);
  EXPECT_EQ(m.at("a.bool").at("value"), true);
  EXPECT_EQ(m.at("a.u8").at("value"), 200);
  EXPECT_EQ(m.at("a.u8").at("types").at(0), "UINT8");
  EXPECT_EQ(m.at("a.strs").at("value"), json({"x", "", "ü"}));
  EXPECT_EQ(m.at("a.i32s").at("value"), json({1, -2, 3}));
  EXPECT_EQ(m.at("a.f32s").at("value"), json({1.5, -2.0}));
  expect_tensor(info, dir.path(), "t1", "F32", {5}, t1);
  expect_tensor(info, dir.path(), "t2", "F32", {32, 2}, t2);
  EXPECT_EQ(GgufFile(dir / "w.gguf").alignment(), 64u);  // and fpq's reader agrees
  GgufWriter dup;
  dup.add_u32("k", 1);
  dup.add_u32("k", 2);
  EXPECT_THROW(dup.write(dir / "dup.gguf"), Error);
  EXPECT_FALSE(fs::exists(dir / "dup.gguf"));
  GgufWriter bad;
  EXPECT_THROW(bad.add_tensor("q", GgmlType::Q4_0, {33}, std::vector<uint8_t>(18)), Error);
  EXPECT_THROW(bad.write(dir / "bad.gguf", 48), Error);
}

TEST(GgufExport, RefusesWhatGgufCannotHold) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  exporttest::make_tiny_model(dir / "hf", "llama", seed, "gpt2");
  auto expect_refused = [&](LoadedModel& lm, const std::string& needle) {
    const fs::path out = dir / "x.gguf";
    try {
      export_gguf(lm, out);
      ADD_FAILURE() << "export succeeded; expected an error mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(out));
    for (const auto& f : fs::directory_iterator(dir.path())) EXPECT_EQ(f.path().string().find(".tmp-"), std::string::npos);
  };
  {
    LoadedModel lm = load_model(dir / "hf");
    quantize_model_rtn(*lm.model, make_recipe("nvfp4", 0, 16), false);
    expect_refused(lm, "which GGUF cannot hold");
  }
  {
    LoadedModel lm = load_model(dir / "hf");
    ModelQuantOptions o;
    o.recipe = make_recipe("mxfp4", 0, 16);
    o.method = quant::method_defaults(quant::Method::Rtn);
    o.method.transform = quant::TransformKind::Hadamard;
    quantize_model(*lm.model, {}, o);
    expect_refused(lm, "input transform");
  }
  {
    test::TempDir bare;
    exporttest::make_tiny_model(bare / "hf", "llama", seed, "");
    LoadedModel lm = load_model(bare / "hf");
    quantize_model_rtn(*lm.model, make_recipe("q8_0", 0, 16), false);
    expect_refused(lm, "needs the model's tokenizer");
  }
  {  // W4A8: GGUF keeps the weights; the activation format is llama.cpp's own business (reported).
    LoadedModel lm = load_model(dir / "hf");
    quantize_model_rtn(*lm.model, make_recipe("q4_0", 0, 8), false);
    EXPECT_TRUE(export_gguf(lm, dir / "w4a8.gguf").dropped_activation_quant);
  }
}

}  // namespace
}  // namespace fpq
