// The tokenizer.json fpq writes: Hugging Face's `tokenizers` loads it and gives fpq's ids on a fresh random corpus
// (tests/ref/export_ref.py tokenizer), for the default model's GGUF tokenizer, the same vocabulary under every
// llama.cpp pre-tokenizer fpq knows, and tokenizer.json sources of several styles; fpq reads the export back to the
// same tokenizer; and the GGUF tokenizer metadata written from a tokenizer.json source reads back to it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "export_test_util.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/model_source.h"
#include "model/tokenizer_export.h"
#include "test_support.h"
#include "util/error.h"
#include "util/file_io.h"

namespace fpq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

bool valid_utf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

// Exports `tok` into dir, has `tokenizers` encode the corpus, and compares with fpq's ids.
void check_with_tokenizers(const Tokenizer& tok, const fs::path& dir, const std::string& chat_template, uint64_t seed) {
  write_hf_tokenizer(tok, dir, chat_template);
  test::run_python_ref("export_ref.py", {"tokenizer", dir.string(), dir.string(), std::to_string(seed % 1000000)});
  const json out = json::parse(read_file_text(dir / "cases.json"));
  EXPECT_EQ(out.at("vocab_size").get<int64_t>(), tok.vocab_size());
  const json& cfg = out.at("config");
  EXPECT_EQ(cfg.at("add_bos_token").get<bool>(), tok.add_bos_by_default());
  if (tok.bos_id() >= 0) {
    EXPECT_EQ(cfg.at("bos_token").get<std::string>(), tok.token_text(tok.bos_id()));
  }
  if (tok.eos_id() >= 0) {
    EXPECT_EQ(cfg.at("eos_token").get<std::string>(), tok.token_text(tok.eos_id()));
  }
  if (!chat_template.empty()) {
    EXPECT_EQ(cfg.at("chat_template").get<std::string>(), chat_template);
  }
  const Tokenizer back = Tokenizer::from_tokenizer_json(dir / "tokenizer.json");  // fpq reads its own export
  EXPECT_EQ(back.bos_id(), tok.bos_id());
  EXPECT_EQ(back.eos_id(), tok.eos_id());
  EXPECT_EQ(back.add_bos_by_default(), tok.add_bos_by_default());
  ASSERT_EQ(back.vocab_size(), tok.vocab_size());
  int mismatches = 0;
  for (const auto& c : out.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    const auto ids = tok.encode(text);
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    if (ids != want && ++mismatches <= 3) ADD_FAILURE() << tok.description() << ": ids differ for " << json(text).dump();
    const auto with_bos = tok.add_bos_by_default() && tok.bos_id() >= 0 ? tok.encode(text, true) : ids;
    EXPECT_EQ(with_bos, c.at("ids_special").get<std::vector<int32_t>>()) << json(text).dump();
    EXPECT_EQ(back.encode(text), ids) << json(text).dump();
    const std::string decoded = tok.decode(ids);
    if (valid_utf8(decoded)) {
      EXPECT_EQ(decoded, c.at("decoded").get<std::string>()) << json(text).dump();
    }
  }
  EXPECT_EQ(mismatches, 0) << tok.description();
  EXPECT_GE(out.at("cases").size(), 200u);
}

// A GGUF holding only the default model's tokenizer metadata, with tokenizer.ggml.pre replaced.
fs::path tokenizer_gguf_with_pre(const GgufFile& src, const std::string& pre, const fs::path& path) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  for (const auto& [key, value] : src.metadata())
    if (key.rfind("tokenizer.", 0) == 0 && key != "tokenizer.ggml.pre") w.add_value(key, value);
  w.add_string("tokenizer.ggml.pre", pre);
  w.write(path);
  return path;
}

TEST(TokenizerExport, DefaultGgufTokenizerEncodesLikeTokenizers) {
  const uint64_t seed = test::fresh_seed();
  const fs::path model = default_model_path();
  const GgufFile g(model);
  const Tokenizer tok = Tokenizer::from_gguf(g);
  test::TempDir dir;
  const std::string tmpl = g.get_string("tokenizer.chat_template", "");
  EXPECT_FALSE(tmpl.empty());
  EXPECT_EQ(model_chat_template(model), tmpl);
  check_with_tokenizers(tok, dir.path(), tmpl, seed);
  // What llama.cpp calls the split, and its metadata written back from the export, read by fpq's GGUF loader.
  EXPECT_EQ(gguf_pre_name(Tokenizer::from_tokenizer_json(dir / "tokenizer.json")), "smollm");
}

TEST(TokenizerExport, EveryGgufPreTokenizerEncodesLikeTokenizers) {
  const uint64_t seed = test::fresh_seed();
  const GgufFile g(default_model_path());
  for (const std::string pre : {"llama-bpe", "qwen2", "gpt2"}) {
    SCOPED_TRACE(pre);
    test::TempDir dir;
    const GgufFile variant(tokenizer_gguf_with_pre(g, pre, dir / "tok.gguf"));
    const Tokenizer tok = Tokenizer::from_gguf(variant);
    check_with_tokenizers(tok, dir.path(), "", seed + 1);
    const std::string want = pre == "gpt2" ? "gpt-2" : pre;  // llama.cpp's own name
    EXPECT_EQ(gguf_pre_name(Tokenizer::from_tokenizer_json(dir / "tokenizer.json")), want);
  }
}

TEST(TokenizerExport, TokenizerJsonSourcesRoundTrip) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir src;
  // Small tokenizers of several styles (Llama 3, Qwen2 with NFC, GPT-2 with a prefix space, literal splits...).
  test::run_python_ref("model_io_tokenizer.py", {"json", src.path().string(), std::to_string(seed % 1000000)});
  int styles = 0;
  for (const auto& e : fs::directory_iterator(src.path())) {
    if (!fs::exists(e.path() / "tokenizer.json")) continue;
    SCOPED_TRACE(e.path().filename().string());
    const Tokenizer tok = Tokenizer::from_tokenizer_json(e.path() / "tokenizer.json");
    test::TempDir out;
    check_with_tokenizers(tok, out.path(), "{{ messages }}", seed + 2);
    ++styles;
  }
  EXPECT_GE(styles, 3);
}

TEST(TokenizerExport, GgufMetadataFromTokenizerJsonReadsBack) {
  const uint64_t seed = test::fresh_seed();
  for (const std::string style : {"gpt2", "smollm", "llama3"}) {
    SCOPED_TRACE(style);
    test::TempDir dir;
    test::run_python_ref("export_ref.py", {"make-tokenizer", dir.path().string(), "300", style, std::to_string(seed % 1000)});
    const Tokenizer tok = Tokenizer::from_tokenizer_json(dir / "tokenizer.json");
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    add_gguf_tokenizer_metadata(w, tok, 310, model_chat_template(dir.path()));
    w.write(dir / "tok.gguf");
    const GgufFile g(dir / "tok.gguf");
    EXPECT_EQ(g.get_string("tokenizer.ggml.pre"), style == "llama3" ? "llama-bpe" : style == "gpt2" ? "gpt-2" : style);
    const auto tokens = g.get_string_array("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 310u);  // padded to the embedding's rows
    EXPECT_EQ(tokens[305], "[PAD305]");
    EXPECT_EQ(g.get_int_array("tokenizer.ggml.token_type")[305], 5);
    EXPECT_EQ(g.get_int_array("tokenizer.ggml.token_type")[size_t(tok.token_id("<|im_start|>"))], 3);
    EXPECT_EQ(g.get_string("tokenizer.chat_template"), model_chat_template(dir.path()));
    const Tokenizer back = Tokenizer::from_gguf(g);
    EXPECT_EQ(back.bos_id(), tok.bos_id());
    EXPECT_EQ(back.eos_id(), tok.eos_id());
    for (const std::string text : {"Hello world 12345, don't stop!", "<|im_start|>user\nhi<|im_end|>", "  x\n\ny 3.14 "})
      EXPECT_EQ(back.encode(text), tok.encode(text)) << text;
  }
}

TEST(TokenizerExport, UnrepresentableTokenizersFailClearly) {
  test::TempDir dir;
  // A tokenizer.json whose pre-tokenizer llama.cpp does not know.
  test::run_python_ref("model_io_tokenizer.py", {"json", dir.path().string(), "5"});
  for (const auto& e : fs::directory_iterator(dir.path())) {
    if (!fs::exists(e.path() / "tokenizer.json")) continue;
    const Tokenizer tok = Tokenizer::from_tokenizer_json(e.path() / "tokenizer.json");
    try {
      const std::string pre = gguf_pre_name(tok);
      EXPECT_TRUE(pre == "gpt-2" || pre == "smollm" || pre == "llama-bpe" || pre == "qwen2") << pre;
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("no llama.cpp equivalent"), std::string::npos) << err.what();
    }
  }
  // An embedding smaller than the vocabulary.
  test::TempDir d2;
  test::run_python_ref("export_ref.py", {"make-tokenizer", d2.path().string(), "300", "gpt2", "3"});
  const Tokenizer tok = Tokenizer::from_tokenizer_json(d2 / "tokenizer.json");
  GgufWriter w;
  EXPECT_THROW(add_gguf_tokenizer_metadata(w, tok, 100), Error);
}

}  // namespace
}  // namespace fpq
