#include "model/tokenizer_export.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "util/error.h"
#include "util/file_io.h"

namespace fpq {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A JSON string literal; token texts that are not valid UTF-8 cannot be written.
std::string quoted(const std::string& s, int32_t id) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    fail("token {} is not valid UTF-8, so tokenizer.json cannot hold it", id);
  }
}

// Added tokens by id (one entry per id, the last definition wins as in tokenizers' AddedVocabulary).
std::map<int32_t, TokenizerDefinition::Added> added_by_id(const Tokenizer& t) {
  std::map<int32_t, TokenizerDefinition::Added> m;
  for (const auto& a : t.definition().added_tokens) m[a.id] = a;
  return m;
}

json added_token_json(const TokenizerDefinition::Added& a) {
  return {{"id", a.id},           {"content", a.content},       {"single_word", a.single_word}, {"lstrip", a.lstrip},
          {"rstrip", a.rstrip},   {"normalized", a.normalized}, {"special", a.special}};
}

json post_processor(const Tokenizer& t) {
  if (!t.add_bos_by_default() || t.bos_id() < 0)
    return {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  const std::string bos = t.token_text(t.bos_id());
  auto special = [&](int type_id) { return json{{"SpecialToken", {{"id", bos}, {"type_id", type_id}}}}; };
  auto seq = [&](const char* id, int type_id) { return json{{"Sequence", {{"id", id}, {"type_id", type_id}}}}; };
  return {{"type", "TemplateProcessing"},
          {"single", {special(0), seq("A", 0)}},
          {"pair", {special(0), seq("A", 0), special(1), seq("B", 1)}},
          {"special_tokens", {{bos, {{"id", bos}, {"ids", {t.bos_id()}}, {"tokens", {bos}}}}}}};
}

// The steps of an HF pre_tokenizer, Sequences flattened.
void flatten(const json& pt, std::vector<json>& out) {
  if (pt.is_null()) return;
  if (pt.value("type", "") == "Sequence") {
    for (const auto& p : pt.at("pretokenizers")) flatten(p, out);
    return;
  }
  out.push_back(pt);
}

}  // namespace

std::string tokenizer_json_text(const Tokenizer& t) {
  const TokenizerDefinition& d = t.definition();
  const auto added = added_by_id(t);
  std::string s = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [";
  bool first = true;
  for (const auto& [id, a] : added) {
    s += first ? "\n    " : ",\n    ";
    first = false;
    try {
      s += added_token_json(a).dump();
    } catch (const json::exception&) {
      fail("added token {} is not valid UTF-8, so tokenizer.json cannot hold it", id);
    }
  }
  s += "\n  ],\n";
  s += "  \"normalizer\": " + (d.normalizer.empty() ? std::string("null") : json::parse(d.normalizer).dump()) + ",\n";
  if (d.pre_tokenizer.empty()) fail("tokenizer ({}) has no pre-tokenizer to export", t.description());
  s += "  \"pre_tokenizer\": " + json::parse(d.pre_tokenizer).dump() + ",\n";
  s += "  \"post_processor\": " + post_processor(t).dump() + ",\n";
  s += "  \"decoder\": " +
       json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}.dump() + ",\n";
  const json model_head = {{"type", "BPE"},
                           {"dropout", nullptr},
                           {"unk_token", d.unk_token.empty() ? json(nullptr) : json(d.unk_token)},
                           {"continuing_subword_prefix", nullptr},
                           {"end_of_word_suffix", nullptr},
                           {"fuse_unk", d.fuse_unk},
                           {"byte_fallback", false},
                           {"ignore_merges", d.ignore_merges}};
  std::string head = model_head.dump();
  head.pop_back();  // the closing brace: vocab and merges follow
  s += "  \"model\": " + head + ",\n    \"vocab\": {";
  std::unordered_map<std::string, int32_t> seen;
  seen.reserve(size_t(t.vocab_size()) * 2);
  first = true;
  for (int32_t id = 0; id < t.vocab_size(); ++id) {
    const std::string& tok = t.token_text(id);
    if (tok.empty()) continue;  // an id the source never defined
    if (auto [it, fresh] = seen.emplace(tok, id); !fresh)
      fail("token '{}' is at ids {} and {}, so tokenizer.json's vocabulary cannot hold both", tok, it->second, id);
    s += first ? "\n      " : ",\n      ";
    first = false;
    s += quoted(tok, id) + ": " + std::to_string(id);
  }
  s += "\n    },\n    \"merges\": [";
  // "a b" strings (what every tokenizers version reads) unless a token holds a space; then [a, b] pairs.
  const bool pairs = std::any_of(d.merges.begin(), d.merges.end(), [](const auto& m) {
    return m.first.find(' ') != std::string::npos || m.second.find(' ') != std::string::npos;
  });
  first = true;
  for (const auto& [a, b] : d.merges) {
    s += first ? "\n      " : ",\n      ";
    first = false;
    try {
      s += pairs ? "[" + json(a).dump() + ", " + json(b).dump() + "]" : json(a + " " + b).dump();
    } catch (const json::exception&) {
      fail("merge '{} {}' is not valid UTF-8, so tokenizer.json cannot hold it", a, b);
    }
  }
  s += "\n    ]\n  }\n}\n";
  return s;
}

json tokenizer_config_json(const Tokenizer& t, const std::string& chat_template) {
  json c;
  c["add_bos_token"] = t.add_bos_by_default();
  c["add_eos_token"] = false;
  json decoder = json::object();
  for (const auto& [id, a] : added_by_id(t)) {
    json e = added_token_json(a);
    e.erase("id");
    decoder[std::to_string(id)] = e;
  }
  c["added_tokens_decoder"] = decoder;
  c["bos_token"] = t.bos_id() >= 0 ? json(t.token_text(t.bos_id())) : json(nullptr);
  c["eos_token"] = t.eos_id() >= 0 ? json(t.token_text(t.eos_id())) : json(nullptr);
  c["unk_token"] = t.definition().unk_token.empty() ? json(nullptr) : json(t.definition().unk_token);
  c["clean_up_tokenization_spaces"] = false;
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  if (!chat_template.empty()) c["chat_template"] = chat_template;
  return c;
}

void write_hf_tokenizer(const Tokenizer& t, const fs::path& dir, const std::string& chat_template) {
  const std::string tok = tokenizer_json_text(t);
  const std::string cfg = tokenizer_config_json(t, chat_template).dump(2) + "\n";
  auto bytes = [](const std::string& s) { return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  write_file_atomic(dir / "tokenizer.json", bytes(tok));
  write_file_atomic(dir / "tokenizer_config.json", bytes(cfg));
}

std::string gguf_pre_name(const Tokenizer& t) {
  const TokenizerDefinition& d = t.definition();
  if (!d.gguf_pre.empty()) return d.gguf_pre;
  std::vector<json> steps;
  flatten(json::parse(d.pre_tokenizer.empty() ? "null" : d.pre_tokenizer), steps);
  auto byte_level = [&](const json& s, bool use_regex) {
    return s.value("type", "") == "ByteLevel" && !s.value("add_prefix_space", false) && s.value("use_regex", true) == use_regex;
  };
  auto split = [&](const json& s, const std::string& regex) {
    return s.value("type", "") == "Split" && s.contains("pattern") && s["pattern"].value("Regex", "") == regex &&
           s.value("behavior", "") == "Isolated" && !s.value("invert", false);
  };
  if (steps.size() == 1 && byte_level(steps[0], true)) return "gpt-2";  // llama.cpp does not know "gpt2"
  if (steps.size() == 2 && steps[0].value("type", "") == "Digits" && steps[0].value("individual_digits", false) &&
      byte_level(steps[1], true))
    return "smollm";
  if (steps.size() == 2 && byte_level(steps[1], false)) {
    for (const char* name : {"llama-bpe", "qwen2"})
      if (split(steps[0], pretokenizer_regexes_for_gguf_pre(name).front())) return name;
  }
  fail("tokenizer ({}): its pre-tokenizer {} has no llama.cpp equivalent (llama.cpp knows GPT-2's, SmolLM's, "
       "Llama 3's and Qwen2's splits)",
       t.description(), d.pre_tokenizer);
}

void add_gguf_tokenizer_metadata(GgufWriter& w, const Tokenizer& t, int64_t vocab_size, const std::string& chat_template) {
  const TokenizerDefinition& d = t.definition();
  if (t.vocab_size() > vocab_size)
    fail("the tokenizer has {} tokens but the model's embedding has {} rows", t.vocab_size(), vocab_size);
  const std::string pre = gguf_pre_name(t);
  const auto added = added_by_id(t);
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  const bool own_types = int64_t(d.gguf_token_types.size()) == int64_t(t.vocab_size());
  for (int32_t id = 0; id < int32_t(vocab_size); ++id) {
    // llama.cpp token types: 1 normal, 3 control, 4 user-defined, 5 unused.
    if (id >= t.vocab_size() || t.token_text(id).empty()) {
      tokens.push_back(fmt::format("[PAD{}]", id));
      types.push_back(5);
      continue;
    }
    tokens.push_back(t.token_text(id));
    if (own_types) {
      types.push_back(d.gguf_token_types[size_t(id)]);
    } else {
      const auto it = added.find(id);
      types.push_back(it == added.end() ? 1 : it->second.special ? 3 : 4);
    }
  }
  std::vector<std::string> merges;
  merges.reserve(d.merges.size());
  for (const auto& [a, b] : d.merges) {
    if (a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
      fail("merge '{}' + '{}' holds a space, which GGUF's 'a b' merges cannot express", a, b);
    merges.push_back(a + " " + b);
  }
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_string_array("tokenizer.ggml.merges", merges);
  if (t.bos_id() >= 0) w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(t.bos_id()));
  if (t.eos_id() >= 0) w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(t.eos_id()));
  w.add_bool("tokenizer.ggml.add_bos_token", t.add_bos_by_default());
  w.add_bool("tokenizer.ggml.add_eos_token", false);
  if (!chat_template.empty()) w.add_string("tokenizer.chat_template", chat_template);
}

std::string model_chat_template(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path cfg = path / "tokenizer_config.json";
    if (fs::exists(cfg)) {
      try {
        const json c = json::parse(read_file_text(cfg));
        if (c.contains("chat_template")) {
          const json& ct = c["chat_template"];
          if (ct.is_string()) return ct.get<std::string>();
          if (ct.is_array())  // [{"name": "default", "template": "..."}, ...]
            for (const auto& e : ct)
              if (e.value("name", "") == "default") return e.value("template", "");
        }
      } catch (const json::exception& e) {
        fail("'{}' is malformed: {}", cfg.string(), e.what());
      }
    }
    if (fs::exists(path / "chat_template.jinja")) return read_file_text(path / "chat_template.jinja");
    return "";
  }
  if (!fs::exists(path, ec)) return "";
  const GgufFile g(path);
  return g.get_string("tokenizer.chat_template", "");
}

}  // namespace fpq
