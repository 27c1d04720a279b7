// fpq's byte-level BPE tokenizer against Hugging Face `tokenizers` (tests/ref/model_io_tokenizer.py): the
// default SmolLM2 tokenizer read from its GGUF, and tokenizer.json files of several styles trained afresh.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "model/model_source.h"
#include "model/tokenizer.h"
#include "test_support.h"
#include "util/error.h"
#include "util/file_io.h"

namespace fpq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct Case {
  std::string text, decoded;
  std::vector<int32_t> ids, ids_with_special;
  std::vector<std::string> pieces;  // tokenizers' pre-tokenizer pieces
};

std::vector<Case> read_cases(const fs::path& path, json* whole = nullptr) {
  const json j = json::parse(read_file_text(path));
  std::vector<Case> cases;
  for (const auto& c : j.at("cases"))
    cases.push_back({c.at("text").get<std::string>(), c.at("decoded").get<std::string>(),
                     c.at("ids").get<std::vector<int32_t>>(), c.at("ids_with_special").get<std::vector<int32_t>>(),
                     c.at("pieces").get<std::vector<std::string>>()});
  if (whole) *whole = j;
  return cases;
}

std::string escaped(const std::string& s) { return json(s).dump(); }

// Compares ids and reports the first difference with the tokens around it.
::testing::AssertionResult same_ids(const Tokenizer& tok, const std::string& text, const std::vector<int32_t>& got,
                                    const std::vector<int32_t>& want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto show = [&](const std::vector<int32_t>& v) {
    std::string s;
    for (size_t k = i; k < v.size() && k < i + 4; ++k)
      s += std::to_string(v[k]) + ":" + escaped(tok.token_bytes(v[k])) + " ";
    return s;
  };
  return ::testing::AssertionFailure() << "text " << escaped(text) << "\n  first difference at token " << i
                                       << "\n  fpq:        " << show(got) << "\n  tokenizers: " << show(want);
}

fs::path default_gguf() {
  const char* saved = std::getenv("FPQ_MODEL");
  std::string keep = saved ? saved : "";
  ::unsetenv("FPQ_MODEL");
  fs::path p = default_model_path();
  if (saved) ::setenv("FPQ_MODEL", keep.c_str(), 1);
  return p;
}

TEST(ModelIoTokenizer, DefaultGgufTokenizerMatchesTokenizers) {
  const uint64_t seed = test::fresh_seed() % 1000000007;
  test::TempDir dir;
  const fs::path gguf_path = default_gguf();
  const fs::path wiki = "/work/shared/data/wiki.test.raw";
  const fs::path wiki_alt = test::source_dir().parent_path() / "shared" / "data" / "wiki.test.raw";
  const fs::path wiki_path = fs::exists(wiki_alt) ? wiki_alt : wiki;
  std::vector<std::string> args = {"gguf", gguf_path.string(), dir.path().string(), std::to_string(seed)};
  if (fs::exists(wiki_path)) args.push_back(wiki_path.string());
  test::run_python_ref("model_io_tokenizer.py", args);

  const GgufFile gguf(gguf_path);
  const Tokenizer tok = Tokenizer::from_gguf(gguf);
  EXPECT_EQ(tok.vocab_size(), 49152);
  EXPECT_EQ(tok.token_id("<|im_start|>"), 1);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_TRUE(tok.is_special(0));
  EXPECT_FALSE(tok.is_special(100));

  const auto cases = read_cases(dir / "cases.json");
  ASSERT_GT(cases.size(), 200u);
  int failures = 0;
  for (const auto& c : cases) {
    // The regex splits alone (PCRE2 here, Oniguruma in tokenizers), then the ids.
    EXPECT_EQ(tok.pre_tokenize(c.text), c.pieces) << escaped(c.text);
    const auto ids = tok.encode(c.text);
    const auto r = same_ids(tok, c.text, ids, c.ids);
    EXPECT_TRUE(r);
    if (!r && ++failures > 5) break;
    // No normalizer and no whitespace stripping: decoding gives the text back, as tokenizers' decode does.
    EXPECT_EQ(tok.decode(ids), c.text);
    EXPECT_EQ(tok.decode(ids), c.decoded);
  }
  // Concurrent encodes share the tokenizer safely and agree.
  {
    std::vector<std::vector<int32_t>> got(2);
    std::vector<std::thread> threads;
    for (int k = 0; k < 2; ++k)
      threads.emplace_back([&, k] {
        for (const auto& c : cases) {
          const auto ids = tok.encode(c.text);
          got[size_t(k)].insert(got[size_t(k)].end(), ids.begin(), ids.end());
        }
      });
    for (auto& t : threads) t.join();
    std::vector<int32_t> want;
    for (const auto& c : cases) want.insert(want.end(), c.ids.begin(), c.ids.end());
    EXPECT_EQ(got[0], want);
    EXPECT_EQ(got[1], want);
  }
  // parse_special=false: special-token text is plain text.
  const auto plain = tok.encode("<|im_start|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok.decode(plain), "<|im_start|>");
  EXPECT_EQ(tok.encode("hi", true).front(), tok.bos_id());
  EXPECT_EQ(tok.decode(tok.encode("<|im_end|>x"), /*skip_special=*/true), "x");

  if (fs::exists(dir / "wiki_ids.bin")) {
    const std::string text = read_file_text(wiki_path);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok.encode(text);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("WikiText-2 test: %zu bytes -> %zu tokens in %.2f s\n", text.size(), ids.size(), secs);
    const auto bytes = read_file_bytes(dir / "wiki_ids.bin");
    std::vector<int32_t> want(bytes.size() / 4);
    std::memcpy(want.data(), bytes.data(), bytes.size());
    EXPECT_TRUE(same_ids(tok, "<wiki.test.raw>", ids, want));
    EXPECT_LT(secs, 10.0) << "tokenizing WikiText-2 test should take a few seconds at most";
  } else {
    std::printf("wiki.test.raw not present: skipped the WikiText-2 comparison\n");
  }
}

TEST(ModelIoTokenizer, TokenizerJsonStylesMatchTokenizers) {
  const uint64_t seed = test::fresh_seed() % 1000000007;
  test::TempDir dir;
  test::run_python_ref("model_io_tokenizer.py", {"json", dir.path().string(), std::to_string(seed)});
  for (const std::string style : {"llama3", "qwen2", "gpt2", "splits"}) {
    SCOPED_TRACE("style " + style);
    const Tokenizer tok = Tokenizer::from_tokenizer_json(dir / style / "tokenizer.json");
    json whole;
    const auto cases = read_cases(dir / style / "cases.json", &whole);
    const auto nfc = whole.at("nfc").get<std::vector<std::string>>();
    const int32_t bos = whole.at("bos_id").get<int32_t>();
    EXPECT_EQ(tok.bos_id(), bos);
    EXPECT_EQ(tok.add_bos_by_default(), bos >= 0);
    int failures = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      const auto& c = cases[i];
      EXPECT_EQ(tok.pre_tokenize(c.text), c.pieces) << escaped(c.text);
      const auto ids = tok.encode(c.text);
      auto r = same_ids(tok, c.text, ids, c.ids);
      EXPECT_TRUE(r);
      if (!r && ++failures > 5) break;
      EXPECT_TRUE(same_ids(tok, c.text, tok.encode(c.text, tok.add_bos_by_default()), c.ids_with_special));
      EXPECT_EQ(tok.decode(ids), c.decoded) << escaped(c.text);
      // Round trip where nothing is added or dropped ("gpt2" adds prefix spaces, "splits" removes newlines,
      // [MASK] strips the spaces before it); Qwen2's normalizer gives the NFC form back.
      if ((style == "llama3" || style == "qwen2") && c.text.find("[MASK]") == std::string::npos) {
        EXPECT_EQ(tok.decode(ids), style == "qwen2" ? nfc[i] : c.text) << escaped(c.text);
      }
    }
  }
}

TEST(ModelIoTokenizer, RejectsBadInput) {
  const GgufFile gguf(default_gguf());
  const Tokenizer tok = Tokenizer::from_gguf(gguf);
  EXPECT_THROW(tok.encode(std::string("ab\xff") + "cd"), Error);
  EXPECT_THROW(tok.encode("\xc3"), Error);            // truncated sequence
  EXPECT_THROW(tok.encode("\xed\xa0\x80"), Error);    // UTF-16 surrogate
  EXPECT_THROW(tok.encode("\xc0\xaf"), Error);        // overlong
  EXPECT_THROW(tok.decode(std::vector<int32_t>{tok.vocab_size()}), Error);
  EXPECT_THROW(tok.decode(std::vector<int32_t>{-1}), Error);

  test::TempDir dir;
  const fs::path p = dir / "tokenizer.json";
  write_file_atomic(p, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("{\"model\": "), 10));
  EXPECT_THROW(Tokenizer::from_tokenizer_json(p), Error);
  const std::string wordpiece = R"({"model": {"type": "WordPiece", "vocab": {}}, "pre_tokenizer": null})";
  write_file_atomic(p, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(wordpiece.data()), wordpiece.size()));
  EXPECT_THROW(Tokenizer::from_tokenizer_json(p), Error);
  const std::string bad_merge =
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel"}})";
  write_file_atomic(p, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bad_merge.data()), bad_merge.size()));
  try {
    Tokenizer::from_tokenizer_json(p);
    ADD_FAILURE() << "a merge of unknown tokens was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not in the vocabulary"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pretokenizer_regexes_for_gguf_pre("no-such-pre"), Error);
}

}  // namespace
}  // namespace fpq
