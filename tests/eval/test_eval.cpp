// Evaluation: the perplexity protocol against a float64 numpy computation, lm-eval's prompt formats against a
// Python re-implementation of its task definitions, and the scoring of multiple-choice examples.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "eval/perplexity.h"
#include "eval/tasks.h"
#include "model/model_source.h"
#include "test_support.h"
#include "util/error.h"
#include "util/npy.h"

namespace fpq {
namespace {

TEST(Perplexity, ProtocolMatchesFloat64Reference) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  test::run_python_ref("model_forward_ref.py", {"make-hf", dir.path().string(), "llama", std::to_string(seed % 1000)});
  ModelSource src(dir.path());
  Transformer model(src);
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens(3 * 24 + 7);  // three windows and a dropped tail
  for (auto& t : tokens) t = int32_t(rng() % uint64_t(model.config().vocab_size));
  PerplexityOptions opt;
  opt.ctx = 24;
  opt.progress = false;
  const PerplexityResult r = evaluate_perplexity(model, tokens, opt);
  EXPECT_EQ(r.windows, 3);
  EXPECT_EQ(r.tokens_scored, 3 * 23);
  std::vector<float> tf(tokens.begin(), tokens.end());
  write_npy(dir / "tokens.npy", {int64_t(tf.size())}, tf.data());
  test::run_python_ref("eval_ref.py", {"ppl", dir.path().string(), (dir / "tokens.npy").string(), "24", (dir / "ppl.json").string()});
  const auto ref = nlohmann::json::parse(std::ifstream(dir / "ppl.json"));
  EXPECT_EQ(ref["n"].get<int64_t>(), r.tokens_scored);
  EXPECT_NEAR(r.nll, ref["nll"].get<double>(), 1e-5 * ref["nll"].get<double>());
  EXPECT_GT(r.ppl_stderr, 0);
  opt.limit_tokens = 50;  // two windows
  EXPECT_EQ(evaluate_perplexity(model, tokens, opt).windows, 2);
  opt.limit_tokens = 10;
  EXPECT_THROW(evaluate_perplexity(model, tokens, opt), Error);

  // Shards of windows: [0, 1) and [1, end) together are the whole run (the merge of
  // scripts/results/merge_shards.py: token-weighted means, pooled squared deviations).
  opt.limit_tokens = 0;
  opt.first_window = 0;
  opt.last_window = 1;
  const PerplexityResult a = evaluate_perplexity(model, tokens, opt);
  opt.first_window = 1;
  opt.last_window = 99;  // past the end: to the end
  const PerplexityResult b = evaluate_perplexity(model, tokens, opt);
  EXPECT_EQ(a.windows, 1);
  EXPECT_EQ(b.windows, 2);
  EXPECT_EQ(b.first_window, 1);
  EXPECT_EQ(a.windows_total, 3);
  ASSERT_EQ(a.tokens_scored + b.tokens_scored, r.tokens_scored);
  const double na = double(a.tokens_scored), nb = double(b.tokens_scored), n = na + nb;
  const double mean = (na * a.nll + nb * b.nll) / n;
  EXPECT_NEAR(mean, r.nll, 1e-12 * r.nll);
  const double m2 = a.nll_stderr * a.nll_stderr * na * (na - 1) + b.nll_stderr * b.nll_stderr * nb * (nb - 1) +
                    na * (a.nll - mean) * (a.nll - mean) + nb * (b.nll - mean) * (b.nll - mean);
  EXPECT_NEAR(std::sqrt(m2 / (n - 1) / n), r.nll_stderr, 1e-9 * r.nll_stderr);
  opt.first_window = 3;  // past the last window
  EXPECT_THROW(evaluate_perplexity(model, tokens, opt), Error);
  opt.first_window = -1;
  EXPECT_THROW(evaluate_perplexity(model, tokens, opt), Error);
}

TEST(WikiText, LinesJoinedWithBlankLines) {
  test::TempDir dir;
  std::ofstream(dir / "w.raw") << " = Title = \n\n Body line .\n";
  EXPECT_EQ(wikitext_eval_text(dir / "w.raw"), " = Title = \n\n\n\n Body line .");
  EXPECT_THROW(wikitext_eval_text(dir / "missing.raw"), Error);
}

// One small jsonl per task, in the Hugging Face datasets' row format.
std::map<std::string, std::string> sample_tasks() {
  return {
      {"arc_easy", R"({"id":"1","question":"Which gas do plants absorb?","choices":{"text":["Oxygen","Carbon dioxide","Helium"],"label":["A","B","C"]},"answerKey":"B"}
{"id":"2","question":"What is 2+2?","choices":{"text":["3","4"],"label":["1","2"]},"answerKey":"2"})"},
      {"arc_challenge", R"({"id":"3","question":"Ice is","choices":{"text":["solid water","a gas"],"label":["A","B"]},"answerKey":"A"})"},
      {"boolq", R"({"question":"is the sky blue","passage":"The sky appears blue in daytime.","label":1}
{"question":"is fire cold","passage":"Fire is hot.","label":0})"},
      {"hellaswag", R"({"activity_label":"Cooking","ctx_a":"A man cracks an egg.","ctx_b":"he THEN stirs [title] it","ctx":"","endings":["into a bowl  of flour.","[header] by the sea."," and eats it raw.","with a spoon."],"label":"0"})"},
      {"piqa", R"({"goal":"How to open a jar?","sol1":"Twist the lid.","sol2":"Bake the jar.","label":0})"},
      {"winogrande", R"({"sentence":"The trophy didn't fit in the suitcase because the _ was too big.","option1":"trophy","option2":"suitcase","answer":"1"})"},
      {"lambada", R"({"text":"He opened the door and walked into the room"})"},
  };
}

TEST(Tasks, PromptsMatchLmEvalHarnessFormats) {
  test::TempDir dir;
  for (const auto& [task, jsonl] : sample_tasks()) {
    SCOPED_TRACE(task);
    std::ofstream(dir / (task + ".jsonl")) << jsonl << "\n";
    const auto ours = load_task_examples(task_info(task), dir / (task + ".jsonl"));
    test::run_python_ref("eval_ref.py", {"prompts", task, (dir / (task + ".jsonl")).string(), (dir / "p.json").string()});
    const auto ref = nlohmann::json::parse(std::ifstream(dir / "p.json"));
    ASSERT_EQ(ref.size(), ours.size());
    for (size_t i = 0; i < ours.size(); ++i) {
      EXPECT_EQ(ours[i].contexts, ref[i]["contexts"].get<std::vector<std::string>>());
      EXPECT_EQ(ours[i].continuations, ref[i]["continuations"].get<std::vector<std::string>>());
      EXPECT_EQ(ours[i].gold, ref[i]["gold"].get<int>());
    }
  }
}

TEST(Tasks, ScoringPicksTheHighestLikelihoodAndReusesContextsCorrectly) {
  ModelSource src(default_model_path());
  Transformer model(src);
  const Tokenizer& tok = src.tokenizer();
  // Choices whose likelihoods differ clearly; the gold is the sensible one.
  const std::vector<McExample> ex = {
      {{"Question: What is the capital of France?\nAnswer:"}, {" Paris", " a banana", " the number seven"}, 0, {5, 8, 16}},
      {{"Question: How many legs does a cat have?\nAnswer:"}, {" purple", " four"}, 1, {6, 4}},
  };
  TaskOptions opt;
  opt.progress = false;
  const TaskResult r = evaluate_task(model, tok, task_info("arc_easy"), ex, opt);
  EXPECT_EQ(r.n, 2);
  EXPECT_DOUBLE_EQ(r.acc, 1.0);
  // The log-likelihood of a continuation computed through the shared context cache equals a full forward.
  const auto [ctx, cont] = encode_pair(tok, ex[0].contexts[0], ex[0].continuations[2]);
  std::vector<int32_t> all = ctx;
  all.insert(all.end(), cont.begin(), cont.end());
  const int64_t vocab = model.config().vocab_size, n = int64_t(all.size());
  KvCache cache(model.config(), n);
  std::vector<float> logits(size_t(n * vocab));
  model.forward(all.data(), n, cache, logits.data());
  double full = 0;
  for (size_t i = 0; i < cont.size(); ++i)
    full += token_log_prob(logits.data() + int64_t(ctx.size() - 1 + i) * vocab, vocab, cont[i]);
  KvCache c2(model.config(), n + 8);
  std::vector<float> last(static_cast<size_t>(vocab));
  model.forward(ctx.data(), int64_t(ctx.size()), c2, last.data(), true);
  // Score another continuation first, then roll the cache back to the context, as evaluate_task does.
  std::vector<float> scratch(static_cast<size_t>(vocab) * 4);
  const auto other = encode_pair(tok, ex[0].contexts[0], ex[0].continuations[1]).second;
  model.forward(other.data(), int64_t(other.size()), c2, scratch.data(), true);
  c2.truncate(int64_t(ctx.size()));
  std::vector<float> lg(cont.size() * size_t(vocab));
  std::memcpy(lg.data(), last.data(), size_t(vocab) * 4);
  if (cont.size() > 1) model.forward(cont.data(), int64_t(cont.size()) - 1, c2, lg.data() + vocab);
  double cached = 0;
  for (size_t i = 0; i < cont.size(); ++i) cached += token_log_prob(lg.data() + int64_t(i) * vocab, vocab, cont[i]);
  EXPECT_NEAR(cached, full, 1e-3);
}

TEST(Tasks, EncodePairMovesTrailingSpacesToTheContinuation) {
  ModelSource src(default_model_path());
  const Tokenizer& tok = src.tokenizer();
  const auto [a, b] = encode_pair(tok, "Answer: ", "yes");
  const auto [c, d] = encode_pair(tok, "Answer:", " yes");
  EXPECT_EQ(a, c);
  EXPECT_EQ(b, d);
}

TEST(Tasks, MissingOrBadDataIsAClearError) {
  test::TempDir dir;
  try {
    find_task_data(task_info("hellaswag"), dir.path(), std::nullopt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hellaswag"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("download"), std::string::npos);
  }
  std::ofstream(dir / "bad.jsonl") << "{\"question\": 3}\n";
  EXPECT_THROW(load_task_examples(task_info("arc_easy"), dir / "bad.jsonl"), Error);
  EXPECT_THROW(task_info("mmlu"), Error);
}

}  // namespace
}  // namespace fpq
