#include "model/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "util/error.h"
#include "util/rng.h"

namespace fpq {

int32_t sample_token(const float* logits, int64_t vocab, const SamplingOptions& opt, uint64_t step) {
  if (opt.temperature <= 0.0f) return int32_t(std::max_element(logits, logits + vocab) - logits);
  if (!(opt.top_p > 0.0f && opt.top_p <= 1.0f)) fail("--top-p must be in (0, 1], got {}", opt.top_p);
  const float mx = *std::max_element(logits, logits + vocab);
  std::vector<double> p(static_cast<size_t>(vocab));
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += p[size_t(i)] = std::exp(double(logits[i] - mx) / opt.temperature);
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[size_t(a)] > p[size_t(b)] || (p[size_t(a)] == p[size_t(b)] && a < b); });
  // Keep the smallest prefix whose probability reaches top_p.
  double kept = 0;
  size_t n = 0;
  while (n < order.size()) {
    kept += p[size_t(order[n])] / sum;
    ++n;
    if (kept >= double(opt.top_p)) break;
  }
  const double u = double(random_u32(opt.seed, step)) / 4294967296.0 * kept;
  double acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += p[size_t(order[i])] / sum;
    if (u < acc) return order[i];
  }
  return order[n - 1];
}

void check_generate_options(const GenerateOptions& opt) {
  if (opt.max_new_tokens < 0) fail("--max-tokens must not be negative");
  // (all of them, not only where sampling reads them: greedy decoding would otherwise accept any value)
  if (!(opt.sampling.temperature >= 0.0f) || !std::isfinite(opt.sampling.temperature))
    fail("--temperature must be a finite number >= 0 (0: greedy), got {}", opt.sampling.temperature);
  if (!(opt.sampling.top_p > 0.0f && opt.sampling.top_p <= 1.0f))
    fail("--top-p must be in (0, 1], got {}", opt.sampling.top_p);
}

GenerateResult generate(const Transformer& model, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opt, const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) fail("the prompt has no tokens");
  check_generate_options(opt);
  GenerateResult r;
  r.prompt_tokens = prompt;
  const int64_t vocab = model.config().vocab_size;
  KvCache cache(model.config(), int64_t(prompt.size()) + opt.max_new_tokens + 1);
  std::vector<float> logits(static_cast<size_t>(vocab));
  auto t0 = std::chrono::steady_clock::now();
  model.forward(prompt.data(), int64_t(prompt.size()), cache, logits.data(), true);
  r.prompt_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < opt.max_new_tokens; ++i) {
    const int32_t next = sample_token(logits.data(), vocab, opt.sampling, uint64_t(i));
    r.new_tokens.push_back(next);
    if (on_token) on_token(next);
    if (opt.stop_at_eos && (next == tok.eos_id() || tok.is_special(next))) break;
    if (i + 1 < opt.max_new_tokens) model.forward(&next, 1, cache, logits.data(), true);
  }
  r.generate_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::string chatml_prompt(const std::string& user_message) {
  return "<|im_start|>user\n" + user_message + "<|im_end|>\n<|im_start|>assistant\n";
}

}  // namespace fpq
