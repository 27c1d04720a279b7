#pragma once
// Byte-level BPE tokenizer as GPT-2, Llama 3, SmolLM2 and Qwen use it, giving the same ids as Hugging Face's
// `tokenizers`: added/special tokens are cut out first (longest match at the leftmost position), the rest is
// optionally NFC-normalized, split by the pre-tokenizer regexes (PCRE2, Unicode properties), mapped byte by
// byte to GPT-2's printable characters, and merged by BPE rank.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fpq {

class GgufFile;

// What a tokenizer was built from, in Hugging Face's terms: enough to write it back as tokenizer.json or as GGUF
// tokenizer metadata (model/tokenizer_export.h).
struct TokenizerDefinition {
  struct Added {
    std::string content;
    int32_t id = 0;
    bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
  };
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<Added> added_tokens;                          // matched in the text before BPE
  std::string normalizer;     // HF normalizer as JSON text ("" = none)
  std::string pre_tokenizer;  // HF pre_tokenizer as JSON text (for GGUF sources: the equivalent of their regexes)
  bool ignore_merges = false, fuse_unk = false;
  std::string unk_token;                  // "" = none
  std::string gguf_pre;                   // tokenizer.ggml.pre of a GGUF source; "" for tokenizer.json sources
  std::vector<int32_t> gguf_token_types;  // tokenizer.ggml.token_type of a GGUF source (may be empty)
};

class Tokenizer {
 public:
  // From a Hugging Face tokenizer.json (model type BPE with a ByteLevel pre-tokenizer). When a
  // tokenizer_config.json sits beside it, its bos/eos tokens and add_bos_token are used too.
  static Tokenizer from_tokenizer_json(const std::filesystem::path& path);
  // From GGUF metadata (tokenizer.ggml.model "gpt2": tokens, merges, token_type, pre, bos/eos ids).
  static Tokenizer from_gguf(const GgufFile& gguf);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of UTF-8 `text` (invalid UTF-8 is an error). add_bos prepends bos_id(); parse_special=false
  // treats the text of special tokens as plain text. Thread-safe.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false, bool parse_special = true) const;
  // The pieces the pre-tokenizer alone cuts `text` into (no added tokens, no normalization), as raw bytes: what
  // tokenizers' pre_tokenizer.pre_tokenize_str gives before the byte-to-character mapping.
  std::vector<std::string> pre_tokenize(std::string_view text) const;
  // The bytes the ids stand for (may be a partial UTF-8 sequence when ids end mid-character).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const {
    return decode(std::span<const int32_t>(ids), skip_special);
  }

  int32_t vocab_size() const;
  const std::string& token_text(int32_t id) const;  // the vocabulary entry (byte-level characters)
  std::string token_bytes(int32_t id) const;        // the bytes it decodes to
  int32_t token_id(std::string_view token) const;   // -1 when not in the vocabulary
  bool is_special(int32_t id) const;
  int32_t bos_id() const;  // -1 when the tokenizer has none
  int32_t eos_id() const;  // -1 when the tokenizer has none
  bool add_bos_by_default() const;  // what the model's own tokenizer config asks for
  // Where it came from and how it splits, e.g. "gguf pre=smollm" (for logs and errors).
  const std::string& description() const;
  const TokenizerDefinition& definition() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The pre-tokenizer regexes llama.cpp uses for a `tokenizer.ggml.pre` name, in the order they split the text
// (HF's Digits(individual_digits) step is the regex "\p{N}"). An unknown name is an error listing the known.
std::vector<std::string> pretokenizer_regexes_for_gguf_pre(const std::string& pre);

}  // namespace fpq
