#include "eval/perplexity.h"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "util/error.h"
#include "util/file_io.h"
#include "util/parallel.h"
#include "util/progress.h"

namespace fpq {

std::string wikitext_eval_text(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path))
    fail("'{}' not found: WikiText-2 raw test is needed (wiki.test.raw from the wikitext-2-raw-v1 release, "
         "e.g. ../shared/data/wiki.test.raw); pass it with --data", path.string());
  const std::string raw = read_file_text(path);
  // The HF dataset's rows are the file's lines; the protocol joins them with "\n\n".
  std::string out;
  out.reserve(raw.size() * 2);
  size_t start = 0;
  bool first = true;
  while (start < raw.size()) {
    size_t end = raw.find('\n', start);
    if (end == std::string::npos) end = raw.size();
    if (!first) out += "\n\n";
    out.append(raw, start, end - start);
    first = false;
    start = end + 1;
  }
  return out;
}

std::vector<int32_t> tokenize_for_perplexity(const Tokenizer& tok, const std::string& text) {
  return tok.encode(text, tok.add_bos_by_default());
}

double token_log_prob(const float* logits, int64_t vocab, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - double(mx));
  return double(logits[target]) - double(mx) - std::log(sum);
}

PerplexityResult evaluate_perplexity(const Transformer& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opt) {
  if (opt.ctx < 2) fail("--ctx must be at least 2 (got {})", opt.ctx);
  PerplexityResult r;
  r.tokens_total = int64_t(tokens.size());
  int64_t usable = r.tokens_total;
  if (opt.limit_tokens > 0) usable = std::min(usable, opt.limit_tokens);
  r.windows_total = usable / opt.ctx;
  if (r.windows_total == 0)
    fail("not enough tokens for one window: {} tokens, --ctx {}{}", usable, opt.ctx,
         opt.limit_tokens > 0 ? " (raise --limit-tokens)" : "");
  const int64_t last = opt.last_window > 0 ? std::min(opt.last_window, r.windows_total) : r.windows_total;
  if (opt.first_window < 0 || opt.first_window >= last)
    fail("perplexity windows {}:{} are not a non-empty range inside the {} windows of {} tokens", opt.first_window,
         opt.last_window > 0 ? std::to_string(opt.last_window) : std::string("end"), r.windows_total, opt.ctx);
  r.first_window = opt.first_window;
  r.windows = last - opt.first_window;
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = model.config();
  const int64_t vocab = c.vocab_size, h = c.hidden_size, ctx = opt.ctx;
  std::vector<double> nll;
  nll.reserve(size_t(r.windows * (ctx - 1)));
  KvCache cache(c, ctx);
  std::vector<float> hidden(size_t(ctx * h));
  constexpr int64_t kChunk = 128;  // rows of logits at a time (a full window of logits would be ctx x vocab)
  std::vector<float> logits(size_t(kChunk * vocab));
  Progress bar(opt.label, r.windows * ctx, "tok", opt.progress);
  double running = 0;
  for (int64_t w = 0; w < r.windows; ++w) {
    const int32_t* win = tokens.data() + (r.first_window + w) * ctx;
    cache.clear();
    model.embed(win, ctx, hidden.data());
    for (int64_t l = 0; l < model.num_layers(); ++l) model.layer_forward(l, hidden.data(), ctx, cache);
    for (int64_t r0 = 0; r0 < ctx - 1; r0 += kChunk) {
      const int64_t n = std::min(kChunk, ctx - 1 - r0);
      model.head(hidden.data() + r0 * h, n, logits.data());
      std::vector<double> lp(static_cast<size_t>(n));
      parallel_for(n, 4, [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; ++i) lp[size_t(i)] = -token_log_prob(logits.data() + i * vocab, vocab, win[r0 + i + 1]);
      });
      for (double v : lp) {
        nll.push_back(v);
        running += v;
      }
    }
    bar.set_note(fmt::format("ppl {:.3f}", std::exp(running / double(nll.size()))));
    bar.advance(ctx);
  }
  bar.finish();
  double mean = 0;
  for (double v : nll) mean += v;
  mean /= double(nll.size());
  double var = 0;
  for (double v : nll) var += (v - mean) * (v - mean);
  var /= double(nll.size() > 1 ? nll.size() - 1 : 1);
  r.tokens_scored = int64_t(nll.size());
  r.nll = mean;
  r.nll_stderr = std::sqrt(var / double(nll.size()));
  r.ppl = std::exp(mean);
  r.ppl_stderr = r.ppl * r.nll_stderr;  // delta method
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace fpq
