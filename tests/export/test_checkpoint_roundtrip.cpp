// fpq's real-quant checkpoints round trip: a model quantized in memory (rtn, gptq, mr-gptq, 4o6, arc on tiny random
// models with a little random calibration; rtn on the default model), saved with save_checkpoint and loaded with
// load_model, gives bit-identical logits to the in-memory model with the pseudo and the real backends. A checkpoint
// of a GGUF source carries a tokenizer.json that `tokenizers` loads with the source tokenizer's ids. Corrupt or
// truncated checkpoint files are one clear fpq::Error naming the file or tensor.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "export_test_util.h"
#include "model/calibrate.h"
#include "model/checkpoint.h"
#include "model/export_gguf.h"
#include "model/gguf.h"
#include "model/quant_recipe.h"
#include "test_support.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/safetensors.h"

namespace fpq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using exporttest::expect_same_bits;
using exporttest::logits;

struct Case {
  std::string arch, method, format;
  int a_bits;
};

ModelQuantOptions options(const Case& c) {
  ModelQuantOptions o;
  o.recipe = make_recipe(c.format, 0, c.a_bits);
  o.method = quant::method_defaults(quant::parse_method(c.method));
  o.calibration.num_sequences = 4;
  o.calibration.seq_len = 32;
  return o;
}

// Logits of the in-memory model and of the checkpoint loaded back, for each backend pair.
void expect_same_logits(Transformer& mem, Transformer& loaded, const std::vector<int32_t>& tokens, const std::string& what) {
  for (const std::string kernel : {"pseudo", "real"}) {
    const auto [qb, mb] = kernel_backends(kernel);
    set_model_backends(mem, qb, mb);
    set_model_backends(loaded, qb, mb);
    const auto want = logits(mem, tokens);
    expect_same_bits(logits(loaded, tokens), want, what + " (" + kernel + ")");
    for (float v : want) ASSERT_TRUE(std::isfinite(v)) << what;
  }
}

class CheckpointRoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(CheckpointRoundTrip, LoadedCheckpointGivesTheSameLogits) {
  const Case c = GetParam();
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  exporttest::make_tiny_model(dir / "hf", c.arch, seed, "gpt2");
  LoadedModel lm = load_model(dir / "hf");
  std::mt19937_64 rng(seed);
  const auto calib = exporttest::random_tokens(rng, 4 * 32, lm.model->config().vocab_size);
  const ModelQuantReport rep = quantize_model(*lm.model, calib, options(c));
  save_checkpoint(*lm.model, *lm.source, dir / "ckpt", rep.config);
  LoadedModel back = load_model(dir / "ckpt");
  ASSERT_TRUE(back.is_checkpoint());
  EXPECT_EQ(back.recipe_name(), rep.config.at("recipe").get<std::string>());
  for (const auto& [name, lin] : back.model->linears()) {
    ASSERT_TRUE(lin->quantized_weight()) << name;
    EXPECT_EQ(lin->describe(), [&] {
      for (const auto& [n2, l2] : lm.model->linears())
        if (n2 == name) return l2->describe();
      return std::string();
    }()) << name;
  }
  EXPECT_EQ(back.tokenizer().encode("Hello world 42"), lm.tokenizer().encode("Hello world 42"));
  expect_same_logits(*lm.model, *back.model, exporttest::random_tokens(rng, 23, lm.model->config().vocab_size),
                     c.arch + " " + c.method + " " + c.format);
}

INSTANTIATE_TEST_SUITE_P(, CheckpointRoundTrip,
                         ::testing::Values(Case{"llama", "rtn", "nvfp4", 4}, Case{"llama", "rtn", "q4_0", 8},
                                           Case{"qwen2", "rtn", "mxfp4", 16}, Case{"llama", "gptq", "nvfp4", 4},
                                           Case{"qwen3", "gptq", "int4/fp16/g32", 16}, Case{"llama", "mr-gptq", "mxfp4", 4},
                                           Case{"qwen2", "4o6", "nvfp4_4o6", 4}, Case{"llama", "arc", "nvfp4", 4},
                                           Case{"qwen3", "arc", "mxfp4", 4}),
                         [](const auto& i) {
                           std::string n = i.param.arch + "_" + i.param.method + "_" + i.param.format + "_a" +
                                           std::to_string(i.param.a_bits);
                           for (auto& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(CheckpointRoundTripDefault, GgufSourceCheckpointAndItsTokenizer) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  LoadedModel lm = load_model(default_model_path());
  const ModelQuantReport rep = quantize_model(*lm.model, {}, options({"llama", "rtn", "nvfp4", 4}));
  save_checkpoint(*lm.model, *lm.source, dir / "ckpt", rep.config);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "tokenizer.gguf"})
    EXPECT_TRUE(fs::exists(dir / "ckpt" / f)) << f;
  LoadedModel back = load_model(dir / "ckpt");
  EXPECT_FALSE(back.own_tokenizer.has_value());  // read from tokenizer.json
  const auto tokens = lm.tokenizer().encode("<|im_start|>user\nWhat is 2+2? Quantization, please.<|im_end|>\n");
  EXPECT_EQ(back.tokenizer().encode("<|im_start|>user\nWhat is 2+2? Quantization, please.<|im_end|>\n"), tokens);
  EXPECT_EQ(back.tokenizer().eos_id(), lm.tokenizer().eos_id());
  expect_same_logits(*lm.model, *back.model, tokens, "default model nvfp4 W4A4");
  // Hugging Face's tokenizers loads the checkpoint's tokenizer.json and gives the source tokenizer's ids.
  test::TempDir out;
  test::run_python_ref("export_ref.py", {"tokenizer", (dir / "ckpt").string(), out.path().string(), std::to_string(seed % 1000000)});
  const json cases = json::parse(read_file_text(out / "cases.json"));
  int bad = 0;
  for (const auto& c : cases.at("cases"))
    bad += lm.tokenizer().encode(c.at("text").get<std::string>()) != c.at("ids").get<std::vector<int32_t>>();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(cases.at("config").at("chat_template").get<std::string>(), GgufFile(default_model_path()).get_string("tokenizer.chat_template"));
  // A GGUF export of the checkpoint carries the source's tokenizer metadata as it was (from tokenizer.gguf).
  const LoadedModel q4 = [&] {
    LoadedModel l = load_model(default_model_path());
    quantize_model_rtn(*l.model, make_recipe("q8_0", 0, 16), false);
    save_checkpoint(*l.model, *l.source, dir / "ckpt8", {{"recipe", "q8_0 W8A16"}});
    return load_model(dir / "ckpt8");
  }();
  export_gguf(q4, dir / "ckpt8.gguf");
  const GgufFile src(default_model_path()), exported(dir / "ckpt8.gguf");
  for (const auto& [key, v] : src.metadata()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    ASSERT_TRUE(exported.has(key)) << key;
    EXPECT_EQ(int(exported.find(key)->type), int(v.type)) << key;
  }
  EXPECT_EQ(exported.get_string_array("tokenizer.ggml.merges"), src.get_string_array("tokenizer.ggml.merges"));
  EXPECT_EQ(exported.get_int_array("tokenizer.ggml.token_type"), src.get_int_array("tokenizer.ggml.token_type"));
}

// ---- corrupt and truncated checkpoints ----

class CorruptCheckpoint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    exporttest::make_tiny_model(*dir_ / "hf", "llama", 11, "gpt2");
    LoadedModel lm = load_model(*dir_ / "hf");
    const ModelQuantReport rep = quantize_model(*lm.model, {}, options({"llama", "rtn", "nvfp4", 4}));
    save_checkpoint(*lm.model, *lm.source, *dir_ / "good", rep.config);
  }
  static void TearDownTestSuite() { delete dir_; }

  // A fresh copy of the good checkpoint.
  fs::path copy(const std::string& name) {
    const fs::path p = *dir_ / name;
    fs::remove_all(p);
    fs::copy(*dir_ / "good", p, fs::copy_options::recursive);
    return p;
  }
  static void expect_error(const fs::path& ckpt, const std::string& needle) {
    try {
      LoadedModel lm = load_model(ckpt);
      std::vector<float> l = logits(*lm.model, {1, 2, 3});
      ADD_FAILURE() << "loading succeeded; expected an error mentioning '" << needle << "'";
    } catch (const Error& e) {
      const std::string msg = e.what();
      std::printf("  %s\n", msg.c_str());
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    }
  }
  static void edit_config(const fs::path& ckpt, const std::function<void(json&)>& f) {
    json c = json::parse(read_file_text(ckpt / "config.json"));
    f(c);
    const std::string s = c.dump();
    write_file_atomic(ckpt / "config.json", std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
  static test::TempDir* dir_;
};
test::TempDir* CorruptCheckpoint::dir_ = nullptr;

TEST_F(CorruptCheckpoint, GoodOneLoads) { EXPECT_NO_THROW(load_model(*dir_ / "good")); }

TEST_F(CorruptCheckpoint, TruncatedSafetensors) {
  const fs::path p = copy("truncated");
  fs::resize_file(p / "model.safetensors", fs::file_size(p / "model.safetensors") / 2);
  expect_error(p, "model.safetensors");
  fs::resize_file(p / "model.safetensors", 5);
  expect_error(p, "model.safetensors");
}

TEST_F(CorruptCheckpoint, GarbageSafetensorsHeader) {
  const fs::path p = copy("garbage");
  auto bytes = read_file_bytes(p / "model.safetensors");
  for (size_t i = 8; i < 40 && i < bytes.size(); ++i) bytes[i] = uint8_t('#');
  write_file_atomic(p / "model.safetensors", std::span<const uint8_t>(bytes));
  expect_error(p, "model.safetensors");
}

TEST_F(CorruptCheckpoint, MissingFiles) {
  const fs::path p = copy("missing");
  fs::remove(p / "model.safetensors");
  expect_error(p, "safetensors");
  const fs::path q = copy("missing-config");
  fs::remove(q / "config.json");
  expect_error(q, "config.json");
}

TEST_F(CorruptCheckpoint, TruncatedConfig) {
  const fs::path p = copy("bad-config");
  const std::string text = read_file_text(p / "config.json");
  write_file_atomic(p / "config.json", std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size() / 2));
  expect_error(p, "config.json");
}

TEST_F(CorruptCheckpoint, MalformedLayerConfig) {
  const fs::path p = copy("bad-layer");
  edit_config(p, [](json& c) { c["quantization_config"]["layers"]["model.layers.0.mlp.up_proj"].erase("weight_format"); });
  expect_error(p, "model.layers.0.mlp.up_proj");
  const fs::path q = copy("wrong-format");
  edit_config(q, [](json& c) { c["quantization_config"]["layers"]["model.layers.1.self_attn.o_proj"]["weight_format"] = "mxfp4"; });
  expect_error(q, "model.layers.1.self_attn.o_proj");
  const fs::path r = copy("unknown-format");
  edit_config(r, [](json& c) { c["quantization_config"]["layers"]["model.layers.1.self_attn.o_proj"]["weight_format"] = "nvfp9"; });
  expect_error(r, "nvfp9");
  expect_error(r, "layer 'model.layers.1.self_attn.o_proj'");
}

TEST_F(CorruptCheckpoint, MissingTensor) {
  const fs::path p = copy("missing-tensor");
  std::vector<SafetensorsTensorOut> keep;
  std::string dropped;
  {
    const SafetensorsFile f(p / "model.safetensors");
    for (const auto& e : f.entries()) {
      if (dropped.empty() && e.name.find("layers.1.mlp.gate_proj.weight.") != std::string::npos) {
        dropped = e.name;
        continue;
      }
      keep.push_back({e.name, e.dtype, e.shape, std::vector<uint8_t>(e.data.begin(), e.data.end())});
    }
  }
  ASSERT_FALSE(dropped.empty());
  write_safetensors(p / "model.safetensors", keep);
  expect_error(p, dropped);
}

TEST_F(CorruptCheckpoint, CorruptTokenizer) {
  const fs::path p = copy("bad-tokenizer");
  write_file_atomic(p / "tokenizer.json", std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("{\"model\": "), 10));
  expect_error(p, "tokenizer.json");
}

}  // namespace
}  // namespace fpq
