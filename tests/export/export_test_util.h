#pragma once
// Helpers shared by the export tests: tiny random models with a tokenizer, logits, random tokens.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "test_support.h"
#include "util/file_io.h"

namespace fpq::exporttest {

// A tiny random Hugging Face model (tests/ref/model_forward_ref.py make-hf: ARCH llama, llama3, qwen2, qwen3; 2
// layers, hidden 64, vocab 300) with a byte-level BPE tokenizer of 300 tokens (tests/ref/export_ref.py
// make-tokenizer, STYLE gpt2 / smollm / llama3). Its rms_norm_eps is 2^-17, exact in float32, as GGUF stores it.
inline void make_tiny_model(const std::filesystem::path& dir, const std::string& arch, uint64_t seed,
                            const std::string& tokenizer_style = "gpt2") {
  test::run_python_ref("model_forward_ref.py", {"make-hf", dir.string(), arch, std::to_string(seed % 100000)});
  if (!tokenizer_style.empty())
    test::run_python_ref("export_ref.py", {"make-tokenizer", dir.string(), "300", tokenizer_style, std::to_string(seed % 1000)});
  nlohmann::json cfg = nlohmann::json::parse(read_file_text(dir / "config.json"));
  cfg["rms_norm_eps"] = 0x1p-17;
  const std::string s = cfg.dump(1);
  write_file_atomic(dir / "config.json", std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

inline std::vector<float> logits(const Transformer& m, const std::vector<int32_t>& tokens) {
  KvCache cache(m.config(), int64_t(tokens.size()));
  std::vector<float> out(tokens.size() * size_t(m.config().vocab_size));
  m.forward(tokens.data(), int64_t(tokens.size()), cache, out.data());
  return out;
}

inline std::vector<int32_t> random_tokens(std::mt19937_64& rng, size_t n, int64_t vocab) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng() % uint64_t(vocab));
  return t;
}

// Bit-for-bit equality of two float arrays (NaN payloads included), reporting the first difference.
inline void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    uint32_t x, y;
    std::memcpy(&x, &a[i], 4);
    std::memcpy(&y, &b[i], 4);
    if (x != y) {
      ADD_FAILURE() << what << ": first difference at " << i << ": " << a[i] << " vs " << b[i];
      return;
    }
  }
}

}  // namespace fpq::exporttest
