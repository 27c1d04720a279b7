// The float32 forward pass against an independent float64 numpy implementation (tests/ref/model_forward_ref.py)
// on the embedded default model (read through gguf-py, with llama.cpp's own RoPE layout) and on tiny random
// Llama / Llama-3 / Qwen2 / Qwen3 models written as Hugging Face folders.
#include <gtest/gtest.h>

#include <random>

#include "model/model_source.h"
#include "model/transformer.h"
#include "test_support.h"
#include "util/npy.h"

namespace fpq {
namespace {

std::vector<float> our_logits(const Transformer& m, const std::vector<int32_t>& tokens) {
  KvCache cache(m.config(), int64_t(tokens.size()));
  std::vector<float> logits(tokens.size() * size_t(m.config().vocab_size));
  m.forward(tokens.data(), int64_t(tokens.size()), cache, logits.data());
  return logits;
}

std::vector<float> reference_logits(const std::string& mode, const std::string& model, const std::vector<int32_t>& tokens) {
  test::TempDir dir;
  std::vector<float> tf(tokens.begin(), tokens.end());
  write_npy(dir / "tokens.npy", {int64_t(tf.size())}, tf.data());
  test::run_python_ref("model_forward_ref.py", {mode, model, (dir / "tokens.npy").string(), (dir / "logits.npy").string()});
  return read_npy(dir / "logits.npy").data;
}

TEST(ModelForward, DefaultModelMatchesFloat64Reference) {
  ModelSource src(default_model_path());
  Transformer model(src);
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  const std::vector<std::string> prompts = {"The capital of France is", "def fib(n):\n    return"};
  for (const auto& p : prompts) {
    auto tokens = src.tokenizer().encode(p);
    tokens.push_back(int32_t(rng() % uint64_t(model.config().vocab_size)));  // a random extra token
    const auto ours = our_logits(model, tokens);
    const auto ref = reference_logits("gguf", default_model_path().string(), tokens);
    ASSERT_EQ(ours.size(), ref.size());
    EXPECT_LT(test::rel_l2(ours, ref), 1e-4) << p;
  }
}

TEST(ModelForward, KvCacheInChunksEqualsOneBatch) {
  ModelSource src(default_model_path());
  Transformer model(src);
  const auto tokens = src.tokenizer().encode("Once upon a time, in a land far away, there lived a quantized model.");
  const int64_t n = int64_t(tokens.size()), vocab = model.config().vocab_size;
  const auto batched = our_logits(model, tokens);
  KvCache cache(model.config(), n);
  std::vector<float> chunked(size_t(n * vocab));
  const int64_t first = n / 3;
  model.forward(tokens.data(), first, cache, chunked.data());
  for (int64_t t = first; t < n; ++t) model.forward(tokens.data() + t, 1, cache, chunked.data() + t * vocab);
  EXPECT_LT(test::rel_l2(chunked, batched), 1e-5);
}

class TinyModels : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyModels, HfFolderMatchesFloat64Reference) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  test::run_python_ref("model_forward_ref.py", {"make-hf", dir.path().string(), GetParam(), std::to_string(seed % 100000)});
  ModelSource src(dir.path());
  Transformer model(src);
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens(37);
  for (auto& t : tokens) t = int32_t(rng() % uint64_t(model.config().vocab_size));
  const auto ours = our_logits(model, tokens);
  const auto ref = reference_logits("hf", dir.path().string(), tokens);
  EXPECT_LT(test::rel_l2(ours, ref), 1e-4);
  // Generation: the last tokens one at a time through the KV cache (the one-query attention, grouped heads).
  const int64_t n = int64_t(tokens.size()), vocab = model.config().vocab_size, first = n - 9;
  KvCache cache(model.config(), n);
  std::vector<float> step(size_t(n * vocab));
  model.forward(tokens.data(), first, cache, step.data());
  for (int64_t t = first; t < n; ++t) model.forward(tokens.data() + t, 1, cache, step.data() + t * vocab);
  EXPECT_LT(test::rel_l2(step.data() + first * vocab, ref.data() + first * vocab, size_t((n - first) * vocab)), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Archs, TinyModels, ::testing::Values("llama", "llama3", "qwen2", "qwen3"));

}  // namespace
}  // namespace fpq
