// compressed-tensors NVFP4 export (W4A4 and W4A16): tests/ref/export_ref.py ct-check reads the folder with
// `safetensors` (+ the header for F8_E4M3 / BF16, viewed with ml_dtypes) and checks names, shapes, dtypes and
// config.json's quantization_config; it dequantizes every projection by compressed-tensors' definition
// (code * (weight_scale / weight_global_scale)) and compares with fpq's dequantized weights, checks the stored
// bytes are fpq's codes and scales, the reciprocal global-scale conventions (weight_global_scale = 1 / fpq's global,
// input_global_scale = 448*6 / amax or 1 / fpq's static scale) and the BF16 embeddings / norms / lm_head.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "export_test_util.h"
#include "model/calibrate.h"
#include "model/export_compressed_tensors.h"
#include "model/quant_recipe.h"
#include "test_support.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/npy.h"

namespace fpq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::vector<std::vector<int32_t>> random_windows(uint64_t seed, int64_t vocab, int n, size_t len) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int32_t>> w;
  for (int i = 0; i < n; ++i) w.push_back(exporttest::random_tokens(rng, len, vocab));
  return w;
}

std::vector<int32_t> concat(const std::vector<std::vector<int32_t>>& w) {
  std::vector<int32_t> t;
  for (const auto& x : w) t.insert(t.end(), x.begin(), x.end());
  return t;
}

void write_bin(const fs::path& p, const std::vector<uint8_t>& b) { write_file_atomic(p, std::span<const uint8_t>(b)); }

// What fpq holds, for the reference script: expected.json, <layer>.npy (dequantized weights), <layer>.codes.bin /
// .scales.bin, <tensor>.npy for the BF16 tensors.
void write_expected(const LoadedModel& lm, const CompressedTensorsExportOptions& opt, const fs::path& dir, bool w4a4) {
  const Transformer& m = *lm.model;
  const ModelConfig& c = m.config();
  json e;
  e["scheme"] = w4a4 ? "NVFP4" : "NVFP4A16";
  e["layers"] = json::object();
  e["ignored"] = json::array();
  e["float"] = json::object();
  auto add_float = [&](const std::string& name, const std::vector<float>& v, std::vector<int64_t> shape) {
    write_npy(dir / (name + ".npy"), shape, v.data());
    e["float"][name] = shape;
  };
  add_float("model.embed_tokens.weight", m.embed_weights(), {c.vocab_size, c.hidden_size});
  add_float("model.norm.weight", m.final_norm_weights(), {c.hidden_size});
  if (!m.lm_head_weights().empty()) add_float("lm_head.weight", m.lm_head_weights(), {c.vocab_size, c.hidden_size});
  for (int64_t i = 0; i < m.num_layers(); ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add_float(p + "input_layernorm.weight", m.layer(i).input_norm, {c.hidden_size});
    add_float(p + "post_attention_layernorm.weight", m.layer(i).post_attention_norm, {c.hidden_size});
    if (!m.layer(i).q_norm.empty()) {
      add_float(p + "self_attn.q_norm.weight", m.layer(i).q_norm, {c.head_dim});
      add_float(p + "self_attn.k_norm.weight", m.layer(i).k_norm, {c.head_dim});
    }
  }
  for (const auto& [name, lin] : m.linears()) {
    const int64_t o = lin->out_features(), in = lin->in_features();
    if (!lin->bias().empty()) add_float(name + ".bias", lin->bias(), {o});
    const auto& q = lin->quantized_weight();
    if (!q) {
      e["ignored"].push_back(name);
      add_float(name + ".weight", lin->float_weight(), {o, in});
      continue;
    }
    const std::vector<float> w = dequantize(*q);
    write_npy(dir / (name + ".npy"), {o, in}, w.data());
    write_bin(dir / (name + ".codes.bin"), q->codes);
    write_bin(dir / (name + ".scales.bin"), q->scales);
    json L = {{"shape", {o, in}}, {"global", q->global_scale.empty() ? 1.0f : q->global_scale[0]}, {"bias", !lin->bias().empty()}};
    if (const auto& a = lin->activation_quant()) {
      if (a->global_scale) L["act_static"] = *a->global_scale;
      else L["act_amax"] = opt.input_amax.at(name);
    }
    e["layers"][name] = L;
  }
  const std::string s = e.dump(1);
  write_file_atomic(dir / "expected.json", std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

// Exports, runs the reference reader and checks its findings.
void export_and_check(const LoadedModel& lm, const CompressedTensorsExportOptions& opt, const fs::path& dir, bool w4a4) {
  const fs::path out = dir / "ct", exp = dir / "expected";
  fs::create_directories(exp);
  const CompressedTensorsExportReport rep = export_compressed_tensors(lm, out, opt);
  EXPECT_EQ(rep.scheme, w4a4 ? "NVFP4" : "NVFP4A16");
  write_expected(lm, opt, exp, w4a4);
  test::run_python_ref("export_ref.py", {"ct-check", out.string(), exp.string()});
  const json r = json::parse(read_file_text(exp / "result.json"));
  ASSERT_EQ(int64_t(r.at("layers").size()), rep.quantized_layers);
  int64_t exact = 0, count = 0;
  double worst_ulps = 0;
  for (const auto& [name, L] : r.at("layers").items()) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(L.at("bytes_equal").get<bool>());
    EXPECT_TRUE(L.at("global_ok").get<bool>()) << L.dump();
    // One rounding of fpq (code x scale x global) and one of the reciprocal global: at most 2^-23 relative.
    EXPECT_LE(L.at("max_rel64").get<double>(), std::ldexp(1.0, -23)) << L.dump();
    EXPECT_LE(L.at("max_ulps").get<double>(), 2.0) << L.dump();
    if (w4a4) {
      EXPECT_TRUE(L.at("input_ok").get<bool>()) << L.dump();
    }
    exact += L.at("exact").get<int64_t>();
    count += L.at("count").get<int64_t>();
    worst_ulps = std::max(worst_ulps, L.at("max_ulps").get<double>());
  }
  for (const auto& [name, ok] : r.at("float").items()) EXPECT_TRUE(ok.get<bool>()) << name << " is not the BF16 of fpq's";
  // Not every value is bit-equal: compressed-tensors rounds scale / global and then code x that (two roundings),
  // fpq rounds code x scale (exact) x global once.
  std::printf("compressed-tensors dequantization equals fpq's exactly for %lld of %lld values (others within %.0f ulp)\n",
              (long long)exact, (long long)count, worst_ulps);
}

TEST(CompressedTensorsExport, W4A16MatchesFpqDequantization) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  exporttest::make_tiny_model(dir / "hf", "llama3", seed, "gpt2");  // untied: lm_head too
  LoadedModel lm = load_model(dir / "hf");
  ModelQuantOptions o;
  o.recipe = make_recipe("nvfp4", 0, 16);
  o.method = quant::method_defaults(quant::Method::Rtn);
  quantize_model(*lm.model, {}, o);
  // One projection left in float: written as BF16 and listed in `ignore`.
  auto* down = lm.model->linears().back().second;
  down->set_float_weight(down->weight_as_float());
  export_and_check(lm, {}, dir.path(), false);
  const json cfg = json::parse(read_file_text(dir / "ct" / "config.json"));
  EXPECT_EQ(cfg.at("quantization_config").at("ignore"), json({"lm_head", "model.layers.1.mlp.down_proj"}));
  EXPECT_TRUE(fs::exists(dir / "ct" / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir / "ct" / "tokenizer_config.json"));
}

TEST(CompressedTensorsExport, W4A4GptqWithCalibratedInputScales) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  exporttest::make_tiny_model(dir / "hf", "qwen2", seed, "");  // q/k/v biases; no tokenizer
  LoadedModel lm = load_model(dir / "hf");
  const auto windows = random_windows(seed, lm.model->config().vocab_size, 3, 24);
  ModelQuantOptions o;
  o.recipe = make_recipe("nvfp4", 0, 4);
  o.method = quant::method_defaults(quant::Method::Gptq);
  o.calibration.num_sequences = 3;
  o.calibration.seq_len = 24;
  quantize_model(*lm.model, concat(windows), o);
  ASSERT_TRUE(compressed_tensors_needs_calibration(*lm.model));
  CompressedTensorsExportOptions opt;
  opt.input_amax = calibrate_input_amax(*lm.model, windows);
  // q/k/v (and gate/up) read the same input; layer 0's is the RMS-normed embedding, computed here directly.
  EXPECT_EQ(opt.input_amax.at("model.layers.0.self_attn.q_proj"), opt.input_amax.at("model.layers.0.self_attn.v_proj"));
  EXPECT_EQ(opt.input_amax.at("model.layers.1.mlp.gate_proj"), opt.input_amax.at("model.layers.1.mlp.up_proj"));
  float amax0 = 0;
  const ModelConfig& c = lm.model->config();
  for (const auto& w : windows) {
    std::vector<float> x(w.size() * size_t(c.hidden_size));
    lm.model->embed(w.data(), int64_t(w.size()), x.data());
    rms_norm(x.data(), lm.model->layer(0).input_norm.data(), int64_t(w.size()), c.hidden_size, c.rms_norm_eps, x.data());
    for (float v : x) amax0 = std::max(amax0, std::fabs(v));
  }
  EXPECT_EQ(opt.input_amax.at("model.layers.0.self_attn.k_proj"), amax0);
  export_and_check(lm, opt, dir.path(), true);
  EXPECT_FALSE(fs::exists(dir / "ct" / "tokenizer.json"));  // the source has none
}

TEST(CompressedTensorsExport, StaticActivationScalesAndFourOverSix) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  exporttest::make_tiny_model(dir / "hf", "qwen3", seed, "smollm");
  LoadedModel lm = load_model(dir / "hf");
  ModelQuantOptions o;
  o.recipe = make_recipe("nvfp4_4o6", 0, 4);
  o.method = quant::method_defaults(quant::Method::FourOverSix);
  quantize_model(*lm.model, {}, o);
  // Static (calibrated) activation scales in fpq's convention: the export writes their reciprocals.
  std::mt19937_64 rng(seed);
  for (auto& [name, lin] : lm.model->linears()) {
    ActivationQuant a = *lin->activation_quant();
    a.global_scale = float(0.5 + double(rng() % 1000) / 1000.0) / (6.0f * 448.0f);
    lin->set_activation_quant(a);
  }
  EXPECT_FALSE(compressed_tensors_needs_calibration(*lm.model));
  export_and_check(lm, {}, dir.path(), true);
}

TEST(CompressedTensorsExport, RefusesWhatVllmCannotRun) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  exporttest::make_tiny_model(dir / "hf", "llama", seed, "");
  auto refused = [&](const LoadedModel& lm, const std::string& needle, const CompressedTensorsExportOptions& opt = {}) {
    try {
      export_compressed_tensors(lm, dir / "ct", opt);
      ADD_FAILURE() << "export succeeded; expected an error mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "ct"));
  };
  auto quantized = [&](const std::string& format, int a_bits, bool fuse, quant::TransformKind t = quant::TransformKind::Identity) {
    LoadedModel lm = load_model(dir / "hf");
    ModelQuantOptions o;
    o.recipe = make_recipe(format, 0, a_bits);
    o.method = quant::method_defaults(quant::Method::Rtn);
    o.method.transform = t;
    o.fuse_global_scales = fuse;
    quantize_model(*lm.model, {}, o);
    return lm;
  };
  refused(quantized("mxfp4", 16, true), "holds NVFP4 weights");
  refused(quantized("nvfp4", 4, true), "static input amax");
  refused(quantized("nvfp4", 16, false), "vLLM fuses them");
  refused(quantized("nvfp4", 16, true, quant::TransformKind::Hadamard), "input transform");
  refused(load_model(dir / "hf"), "no quantized layers");
  {
    LoadedModel lm = quantized("nvfp4", 16, true);  // a W4A4 layer among W4A16 ones
    auto* l = lm.model->linears()[3].second;
    l->set_activation_quant(ActivationQuant{activation_variant(parse_format("nvfp4")), 0.01f});
    refused(lm, "one scheme for every layer");
  }
}

}  // namespace
}  // namespace fpq
