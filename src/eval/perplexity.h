#pragma once
// Perplexity with the standard WikiText-2 protocol (as GPTQ, FP-Quant and lm-evaluation-harness's "raw"
// variant use it): the dataset's lines joined with "\n\n", tokenized once, cut into non-overlapping windows of
// `ctx` tokens (the incomplete tail dropped); the mean negative log-likelihood over every predicted token
// (ctx - 1 per window) gives ppl = exp(mean NLL), with a standard error from the per-token NLL spread.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "model/transformer.h"

namespace fpq {

struct PerplexityOptions {
  int64_t ctx = 2048;
  int64_t limit_tokens = 0;  // 0 = all; else only the first windows covering at most this many tokens
  // Only windows [first_window, last_window) of those (last_window 0 or past the end = to the end): a shard of a long
  // evaluation; shards merge exactly into the whole (mean and spread, scripts/results/merge_shards.py).
  int64_t first_window = 0, last_window = 0;
  bool progress = true;
  std::string label = "perplexity";
};

struct PerplexityResult {
  double ppl = 0, nll = 0, ppl_stderr = 0, nll_stderr = 0;
  int64_t tokens_scored = 0, windows = 0, tokens_total = 0;
  int64_t first_window = 0, windows_total = 0;  // this result covers windows [first_window, first_window + windows)
  double seconds = 0;
};

// WikiText-2 raw file -> the evaluation text ("\n\n".join(lines)).
std::string wikitext_eval_text(const std::filesystem::path& wiki_test_raw);
std::vector<int32_t> tokenize_for_perplexity(const Tokenizer& tok, const std::string& text);

PerplexityResult evaluate_perplexity(const Transformer& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opt);

// Log-softmax of one row of logits at `target`, in float64.
double token_log_prob(const float* logits, int64_t vocab, int32_t target);

}  // namespace fpq
