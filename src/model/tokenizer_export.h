#pragma once
// Writing fpq's tokenizer in other engines' terms:
//   - Hugging Face tokenizer.json (BPE model with vocab + merges, the source's normalizer and pre-tokenizer —
//     ByteLevel / Split regexes / Digits —, ByteLevel decoder, added tokens with their flags, a TemplateProcessing
//     post-processor when the tokenizer adds a beginning-of-sequence token) and tokenizer_config.json (bos/eos,
//     add_bos_token, chat_template). `tokenizers` then gives the same ids as Tokenizer::encode.
//   - llama.cpp's GGUF tokenizer metadata (tokenizer.ggml.*), with the vocabulary padded to the model's size by
//     [PAD<i>] tokens as llama.cpp's converter does.
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"

namespace fpq {

class GgufWriter;

// tokenizer.json as text (the vocabulary in id order). A vocabulary that tokenizer.json cannot hold (one token
// text at two ids, a token that is not valid UTF-8) is an error naming the token.
std::string tokenizer_json_text(const Tokenizer& t);
// tokenizer_config.json: bos/eos tokens, add_bos_token, the added tokens, and `chat_template` when not empty.
nlohmann::json tokenizer_config_json(const Tokenizer& t, const std::string& chat_template = "");
// Writes dir/tokenizer.json and dir/tokenizer_config.json (each atomically).
void write_hf_tokenizer(const Tokenizer& t, const std::filesystem::path& dir, const std::string& chat_template = "");

// llama.cpp's name for the tokenizer's pre-tokenizer (tokenizer.ggml.pre): the GGUF source's own, or the one whose
// regexes equal the tokenizer.json's (gpt-2, smollm, llama-bpe, qwen2). An error when llama.cpp has none.
std::string gguf_pre_name(const Tokenizer& t);
// Adds tokenizer.ggml.* (model gpt2, pre, tokens, token_type, merges, bos/eos ids, add_bos_token) and
// tokenizer.chat_template (when not empty) for a model whose embedding has `vocab_size` rows.
void add_gguf_tokenizer_metadata(GgufWriter& w, const Tokenizer& t, int64_t vocab_size, const std::string& chat_template = "");

// The chat template a model carries: a GGUF's tokenizer.chat_template; a folder's tokenizer_config.json
// "chat_template" (or its "default" entry) or chat_template.jinja. "" when none.
std::string model_chat_template(const std::filesystem::path& model_path);

}  // namespace fpq
