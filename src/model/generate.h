#pragma once
// Text generation: prompt processing in one batch, then one token at a time over the KV cache; greedy or
// temperature + top-p (nucleus) sampling from a seeded generator.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "model/transformer.h"

namespace fpq {

struct SamplingOptions {
  float temperature = 0.0f;  // 0: greedy
  float top_p = 1.0f;
  uint64_t seed = 0;
};

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  bool stop_at_eos = true;
};

struct GenerateResult {
  std::vector<int32_t> prompt_tokens, new_tokens;
  double prompt_seconds = 0, generate_seconds = 0;
};

// Picks the next token from one row of logits.
int32_t sample_token(const float* logits, int64_t vocab, const SamplingOptions& opt, uint64_t step);
// Fails with one line unless max_new_tokens >= 0, temperature is finite and >= 0, and top_p is in (0, 1].
void check_generate_options(const GenerateOptions& opt);

// `on_token` (optional) receives each new token as it is produced.
GenerateResult generate(const Transformer& model, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opt, const std::function<void(int32_t)>& on_token = {});

// ChatML, as SmolLM2-Instruct and Qwen use it: "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n".
std::string chatml_prompt(const std::string& user_message);

}  // namespace fpq
