#pragma once
// Model throughput at batch 1: prompt processing (one forward over a prompt of random tokens) and generation
// (one token at a time over the KV cache), medians over repeats.
#include <cstdint>
#include <string>

#include "model/transformer.h"

namespace fpq {

struct BenchModelOptions {
  int64_t prompt_tokens = 128;
  int64_t gen_tokens = 32;
  int repeats = 3;
  uint64_t seed = 1;
};

struct BenchModelResult {
  double prompt_tok_per_s = 0, gen_tok_per_s = 0;
  double prompt_ms = 0, gen_ms_per_token = 0;  // medians
};

BenchModelResult bench_model(const Transformer& model, const BenchModelOptions& opt);

}  // namespace fpq
