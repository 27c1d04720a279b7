#include "eval/bench_model.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"
#include "util/rng.h"

namespace fpq {

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

BenchModelResult bench_model(const Transformer& model, const BenchModelOptions& opt) {
  if (opt.prompt_tokens < 1 || opt.gen_tokens < 1 || opt.repeats < 1)
    fail("bench model: prompt and generation lengths and repeats must be positive");
  const int64_t vocab = model.config().vocab_size;
  std::vector<int32_t> prompt(static_cast<size_t>(opt.prompt_tokens));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t(random_u32(opt.seed, i) % uint32_t(vocab));
  KvCache cache(model.config(), opt.prompt_tokens + opt.gen_tokens + 1);
  std::vector<float> logits(static_cast<size_t>(vocab));
  std::vector<double> pp, tg;
  for (int r = -1; r < opt.repeats; ++r) {  // r = -1 warms up (backend preparation, caches)
    cache.clear();
    auto t0 = std::chrono::steady_clock::now();
    model.forward(prompt.data(), opt.prompt_tokens, cache, logits.data(), true);
    const double p = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < opt.gen_tokens; ++i) {
      const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      model.forward(&next, 1, cache, logits.data(), true);
    }
    const double g = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r >= 0) {
      pp.push_back(p);
      tg.push_back(g / double(opt.gen_tokens));
    }
  }
  BenchModelResult res;
  res.prompt_ms = 1e3 * median(pp);
  res.gen_ms_per_token = 1e3 * median(tg);
  res.prompt_tok_per_s = double(opt.prompt_tokens) / (res.prompt_ms / 1e3);
  res.gen_tok_per_s = 1e3 / res.gen_ms_per_token;
  return res;
}

}  // namespace fpq
