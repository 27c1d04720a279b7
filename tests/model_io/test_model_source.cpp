// ModelSource: tiny random Llama / Qwen2 / Qwen3 models written by tests/ref/model_io_models.py both as a Hugging
// Face folder (the `safetensors` package) and as a GGUF (gguf-py, laid out as llama.cpp's converter does,
// Q/K rows permuted for llama) load to the same HF-layout weights as the script's float32 reference; configs
// agree; the default SmolLM2 GGUF opens; bad folders and files are fpq::Error.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "model/model_source.h"
#include "test_support.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/npy.h"

namespace fpq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct TinyModel {
  test::TempDir dir;
  json expected;
  TinyModel(const std::string& arch, uint64_t seed) {
    test::run_python_ref("model_io_models.py", {"tiny", dir.path().string(), std::to_string(seed % 1000000007), arch});
    expected = json::parse(read_file_text(dir / "expected.json"));
  }
};

void expect_config(const ModelConfig& c, const json& e, const std::string& source) {
  SCOPED_TRACE(source);
  EXPECT_EQ(model_arch_name(c.arch), e.at("arch").get<std::string>());
  EXPECT_EQ(c.vocab_size, e.at("vocab_size").get<int64_t>());
  EXPECT_EQ(c.hidden_size, e.at("hidden_size").get<int64_t>());
  EXPECT_EQ(c.intermediate_size, e.at("intermediate_size").get<int64_t>());
  EXPECT_EQ(c.num_layers, e.at("num_layers").get<int64_t>());
  EXPECT_EQ(c.num_heads, e.at("num_heads").get<int64_t>());
  EXPECT_EQ(c.num_kv_heads, e.at("num_kv_heads").get<int64_t>());
  EXPECT_EQ(c.head_dim, e.at("head_dim").get<int64_t>());
  EXPECT_EQ(c.rope_theta, e.at("rope_theta").get<double>());
  EXPECT_NEAR(c.rms_norm_eps, e.at("rms_norm_eps").get<double>(), 1e-12);  // GGUF stores it as f32
  EXPECT_EQ(c.tie_word_embeddings, e.at("tie_word_embeddings").get<bool>());
  EXPECT_EQ(c.qkv_bias, e.at("qkv_bias").get<bool>());
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.qk_norm, e.at("qk_norm").get<bool>());
  EXPECT_EQ(c.bos_token_id, 1);
  ASSERT_FALSE(c.eos_token_ids.empty());
  EXPECT_EQ(c.eos_token_ids[0], 2);
  // HF's inverse frequencies; the GGUF carries Llama 3 scaling as float32 factors, hence the tolerance.
  const auto want = e.at("inv_freq").get<std::vector<double>>();
  const auto got = c.rope_inverse_frequencies();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i] / want[i], 1.0, 1e-6) << "frequency " << i;
}

void check_tiny(const std::string& arch) {
  TinyModel m(arch, test::fresh_seed());
  const auto& e = m.expected;
  const ModelSource hf(m.dir / "hf");
  const ModelSource gg(m.dir / "model.gguf");
  EXPECT_EQ(hf.format(), ModelFormat::hf_dir);
  EXPECT_EQ(gg.format(), ModelFormat::gguf);
  expect_config(hf.config(), e, "hf");
  expect_config(gg.config(), e, "gguf");
  if (arch == "llama") {
    EXPECT_TRUE(hf.config().has_llama3_rope_scaling);
    EXPECT_FALSE(gg.config().rope_freq_factors.empty());
    EXPECT_EQ(hf.config().eos_token_ids, (std::vector<int64_t>{2, 3}));
  }
  EXPECT_FALSE(hf.has_tokenizer());
  EXPECT_THROW(hf.tokenizer(), Error);

  const auto names = e.at("hf_names").get<std::vector<std::string>>();
  EXPECT_EQ(hf.tensor_names().size(), names.size());
  for (const auto& n : names) {
    SCOPED_TRACE(n);
    ASSERT_TRUE(hf.has(n));
    ASSERT_TRUE(gg.has(n));
    EXPECT_EQ(hf.stored_type(n), e.at("hf_stored").at(n).get<std::string>());
    EXPECT_EQ(gg.stored_type(n), e.at("gguf_stored").at(n).get<std::string>());
    const NpyArray want = read_npy(m.dir / "ref" / (n + ".npy"));
    for (const ModelSource* src : {&hf, &gg}) {
      EXPECT_EQ(src->shape(n), want.shape);
      const Tensor t = src->load(n);
      EXPECT_EQ(t.shape, want.shape);
      ASSERT_EQ(t.data.size(), want.data.size());
      EXPECT_EQ(std::memcmp(t.data.data(), want.data.data(), want.data.size() * 4), 0)
          << (src == &hf ? "hf" : "gguf") << " values differ from the reference";
    }
  }
  EXPECT_EQ(hf.has("lm_head.weight"), !e.at("tie_word_embeddings").get<bool>());
  EXPECT_EQ(gg.has("lm_head.weight"), !e.at("tie_word_embeddings").get<bool>());
  EXPECT_FALSE(gg.stored_types_summary().empty());
  try {
    hf.load("model.layers.99.mlp.up_proj.weight");
    ADD_FAILURE() << "loaded a tensor that does not exist";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("model.layers.99.mlp.up_proj.weight"), std::string::npos);
  }
}

TEST(ModelIoSource, TinyLlamaHfAndGgufAgree) { check_tiny("llama"); }
TEST(ModelIoSource, TinyQwen2WithBiasesHfAndGgufAgree) { check_tiny("qwen2"); }
TEST(ModelIoSource, TinyQwen3WithQkNormHfAndGgufAgree) { check_tiny("qwen3"); }

TEST(ModelIoSource, NameMappingRoundTrips) {
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.12.attn_q.weight"), "model.layers.12.self_attn.q_proj.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.0.ffn_norm.weight"), "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("output.weight"), "lm_head.weight");
  EXPECT_EQ(hf_to_gguf_tensor_name("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(hf_to_gguf_tensor_name("model.layers.3.self_attn.k_norm.weight"), "blk.3.attn_k_norm.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.x.attn_q.weight"), "");
  EXPECT_EQ(gguf_to_hf_tensor_name("rope_freqs.weight"), "");
}

fs::path venv_default_model() {
  const char* saved = std::getenv("FPQ_MODEL");
  const std::string keep = saved ? saved : "";
  ::unsetenv("FPQ_MODEL");
  fs::path p = default_model_path();
  if (saved) ::setenv("FPQ_MODEL", keep.c_str(), 1);
  return p;
}

TEST(ModelIoSource, DefaultModelOpens) {
  const fs::path p = venv_default_model();
  EXPECT_EQ(p.extension(), ".gguf");
  const ModelSource src(p);
  const ModelConfig& c = src.config();
  EXPECT_EQ(c.arch, ModelArch::llama);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(src.has("lm_head.weight"));
  EXPECT_EQ(src.stored_types_summary(), "Q4_1 x210, F32 x61, Q8_0 x1");
  EXPECT_EQ(src.stored_type("model.embed_tokens.weight"), "Q8_0");
  EXPECT_EQ(src.tokenizer().vocab_size(), 49152);
  const Tensor q = src.load("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.shape, (std::vector<int64_t>{576, 576}));
  // The un-permutation, on real data: HF row h*64 + j*32 + i is GGUF row h*64 + 2*i + j.
  const GgufFile g(p);
  const auto raw = g.dequantize(g.tensor("blk.0.attn_q.weight"));
  for (int64_t h : {0, 8})
    for (int64_t j : {0, 1})
      for (int64_t i : {0, 5, 31})
        EXPECT_EQ(std::memcmp(q.data.data() + (h * 64 + j * 32 + i) * 576, raw.data() + (h * 64 + 2 * i + j) * 576,
                              576 * 4),
                  0);

  ::setenv("FPQ_MODEL", p.c_str(), 1);
  EXPECT_EQ(default_model_path(), p);
  ::setenv("FPQ_MODEL", "/no/such/model.gguf", 1);
  EXPECT_THROW(default_model_path(), Error);
  ::unsetenv("FPQ_MODEL");
}

void write_text(const fs::path& p, const std::string& s) {
  write_file_atomic(p, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

::testing::AssertionResult fails_with(const fs::path& p, const std::string& needle) {
  try {
    ModelSource src(p);
    return ::testing::AssertionFailure() << "opened '" << p << "' (expected an error with '" << needle << "')";
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.find(needle) == std::string::npos || msg.find('\n') != std::string::npos)
      return ::testing::AssertionFailure() << "error '" << msg << "' lacks '" << needle << "'";
    return ::testing::AssertionSuccess();
  }
}

TEST(ModelIoSource, BadFoldersAndFilesAreErrors) {
  TinyModel m("llama", test::fresh_seed());
  const fs::path hf = m.dir / "hf";
  const fs::path shard = hf / "model-00002-of-00002.safetensors";
  const auto shard_bytes = read_file_bytes(shard);

  // A truncated shard (every cut in the header, and some in the data).
  for (size_t n : {size_t(0), size_t(5), size_t(8), size_t(20), size_t(100), shard_bytes.size() / 2,
                   shard_bytes.size() - 1}) {
    write_file_atomic(shard, std::span<const uint8_t>(shard_bytes.data(), n));
    EXPECT_TRUE(fails_with(hf, "model-00002-of-00002.safetensors")) << "cut at " << n;
  }
  // A header length past the end of the file.
  auto b = shard_bytes;
  b[6] = 0x7F;
  write_file_atomic(shard, std::span<const uint8_t>(b));
  EXPECT_TRUE(fails_with(hf, "header length"));
  // An unsupported dtype.
  {
    std::string h = R"({"model.norm.weight":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})";
    std::vector<uint8_t> f(8 + h.size() + 8, 0);
    const uint64_t hl = h.size();
    std::memcpy(f.data(), &hl, 8);
    std::memcpy(f.data() + 8, h.data(), h.size());
    write_file_atomic(shard, std::span<const uint8_t>(f));
    // Opening indexes it (fpq checkpoints hold packed U8 codes next to float tensors); loading it as float fails.
    ModelSource src(hf);
    try {
      src.load("model.norm.weight");
      ADD_FAILURE() << "loading an I32 tensor as float should fail";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("I32"), std::string::npos) << e.what();
    }
  }
  write_file_atomic(shard, std::span<const uint8_t>(shard_bytes));
  EXPECT_NO_THROW(ModelSource{hf});

  // Index naming a missing shard.
  fs::rename(shard, hf / "moved.bin");
  EXPECT_TRUE(fails_with(hf, "missing"));
  fs::rename(hf / "moved.bin", shard);

  // Config problems.
  const std::string cfg = read_file_text(hf / "config.json");
  write_text(hf / "config.json", "{ not json");
  EXPECT_TRUE(fails_with(hf, "not valid JSON"));
  auto j = json::parse(cfg);
  j["model_type"] = "gpt2";
  write_text(hf / "config.json", j.dump());
  EXPECT_TRUE(fails_with(hf, "model_type 'gpt2'"));
  j = json::parse(cfg);
  j.erase("hidden_size");
  write_text(hf / "config.json", j.dump());
  EXPECT_TRUE(fails_with(hf, "hidden_size"));
  j = json::parse(cfg);
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  write_text(hf / "config.json", j.dump());
  EXPECT_TRUE(fails_with(hf, "yarn"));
  j = json::parse(cfg);
  j["num_key_value_heads"] = 5;
  write_text(hf / "config.json", j.dump());
  EXPECT_TRUE(fails_with(hf, "key/value heads"));
  fs::remove(hf / "config.json");
  EXPECT_TRUE(fails_with(hf, "config.json"));

  EXPECT_TRUE(fails_with(m.dir / "nothing-here", "does not exist"));
  // A GGUF truncated inside its tensor data.
  const auto gguf_bytes = read_file_bytes(m.dir / "model.gguf");
  write_file_atomic(m.dir / "cut.gguf", std::span<const uint8_t>(gguf_bytes.data(), gguf_bytes.size() / 2));
  EXPECT_TRUE(fails_with(m.dir / "cut.gguf", "truncated"));
  // One file of an HF folder, and a file that is not GGUF.
  EXPECT_TRUE(fails_with(m.dir / "hf" / "model.safetensors.index.json", "pass the folder"));
  write_text(m.dir / "notes.txt", "hello");
  EXPECT_TRUE(fails_with(m.dir / "notes.txt", "not a GGUF file"));
}

}  // namespace
}  // namespace fpq
