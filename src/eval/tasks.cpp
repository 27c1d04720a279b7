#include "eval/tasks.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "eval/perplexity.h"
#include "util/error.h"
#include "util/progress.h"

namespace fpq {
namespace {

using json = nlohmann::json;

// Python's str.strip() (ASCII whitespace, which is what the task texts contain).
std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

// Python's str.capitalize() for the ASCII texts of HellaSwag: first character upper, the rest lower.
std::string capitalize(const std::string& s) {
  std::string r = s;
  for (size_t i = 0; i < r.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(r[i]);
    if (c < 128) r[i] = char(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return r;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  size_t p = 0;
  while ((p = s.find(from, p)) != std::string::npos) {
    s.replace(p, from.size(), to);
    p += to.size();
  }
  return s;
}

// lm-eval's hellaswag preprocess().
std::string hellaswag_preprocess(const std::string& text) {
  std::string t = strip(text);
  t = replace_all(t, " [title]", ". ");
  static const std::regex brackets("\\[.*?\\]");
  t = std::regex_replace(t, brackets, "");
  t = replace_all(t, "  ", " ");
  return t;
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

int label_index(const json& v) {
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_string()) return std::stoi(v.get<std::string>());
  throw std::runtime_error("label is not an integer");
}

McExample parse_example(const std::string& task, const json& d) {
  McExample ex;
  if (task == "arc_easy" || task == "arc_challenge") {
    std::string question;
    std::vector<std::string> texts, labels;
    if (d.at("question").is_object()) {  // original ARC jsonl: {"question": {"stem", "choices": [...]}}
      question = d.at("question").at("stem").get<std::string>();
      for (const auto& c : d.at("question").at("choices")) {
        texts.push_back(c.at("text").get<std::string>());
        labels.push_back(c.at("label").get<std::string>());
      }
    } else {  // HF allenai/ai2_arc rows
      question = d.at("question").get<std::string>();
      texts = d.at("choices").at("text").get<std::vector<std::string>>();
      labels = d.at("choices").at("label").get<std::vector<std::string>>();
    }
    const std::string key = d.at("answerKey").get<std::string>();
    const auto it = std::find(labels.begin(), labels.end(), key);
    if (it == labels.end()) throw std::runtime_error("answerKey not among the labels");
    ex.gold = int(it - labels.begin());
    ex.contexts = {"Question: " + question + "\nAnswer:"};
    for (const auto& t : texts) {
      ex.continuations.push_back(" " + t);
      ex.choice_len.push_back(double(utf8_length(t)));
    }
  } else if (task == "boolq") {
    ex.contexts = {d.at("passage").get<std::string>() + "\nQuestion: " + d.at("question").get<std::string>() + "?\nAnswer:"};
    ex.continuations = {" no", " yes"};
    ex.choice_len = {2, 3};
    ex.gold = label_index(d.contains("label") ? d.at("label") : d.at("answer"));
  } else if (task == "hellaswag") {
    const std::string ctx = d.at("ctx_a").get<std::string>() + " " + capitalize(d.at("ctx_b").get<std::string>());
    ex.contexts = {hellaswag_preprocess(d.at("activity_label").get<std::string>() + ": " + ctx)};
    for (const auto& e : d.at("endings")) {
      const std::string c = hellaswag_preprocess(e.get<std::string>());
      ex.continuations.push_back(" " + c);
      ex.choice_len.push_back(double(utf8_length(c)));
    }
    ex.gold = label_index(d.at("label"));
  } else if (task == "piqa") {
    ex.contexts = {"Question: " + d.at("goal").get<std::string>() + "\nAnswer:"};
    for (const char* k : {"sol1", "sol2"}) {
      const std::string c = d.at(k).get<std::string>();
      ex.continuations.push_back(" " + c);
      ex.choice_len.push_back(double(utf8_length(c)));
    }
    ex.gold = label_index(d.at("label"));
  } else if (task == "winogrande") {
    const std::string s = d.at("sentence").get<std::string>();
    const size_t idx = s.find('_');
    if (idx == std::string::npos) throw std::runtime_error("sentence has no '_'");
    for (const char* k : {"option1", "option2"}) ex.contexts.push_back(s.substr(0, idx) + d.at(k).get<std::string>());
    ex.continuations = {" " + strip(s.substr(idx + 1))};
    ex.gold = d.at("answer").get<std::string>() == "2" ? 1 : 0;
  } else if (task == "lambada") {
    const std::string t = d.at("text").get<std::string>();
    const size_t sp = t.rfind(' ');
    if (sp == std::string::npos) throw std::runtime_error("text has no space");
    ex.contexts = {t.substr(0, sp)};
    ex.continuations = {" " + t.substr(sp + 1)};
    ex.gold = 0;
  } else {
    throw std::runtime_error("unknown task");
  }
  if (ex.gold < 0 || ex.gold >= int(std::max(ex.contexts.size(), ex.continuations.size())))
    throw std::runtime_error("gold label out of range");
  return ex;
}

}  // namespace

const std::vector<TaskInfo>& task_table() {
  static const std::vector<TaskInfo> t = {
      {"arc_easy", {"arc_easy.jsonl", "ARC-Easy-Test.jsonl", "ARC-Easy.jsonl"},
       "allenai/ai2_arc ARC-Easy test split as jsonl", true, false},
      {"arc_challenge", {"arc_challenge.jsonl", "ARC-Challenge-Test.jsonl", "ARC-Challenge.jsonl"},
       "allenai/ai2_arc ARC-Challenge test split as jsonl", true, false},
      {"boolq", {"boolq.jsonl", "boolq_validation.jsonl", "dev.jsonl"}, "super_glue boolq validation split as jsonl", false, false},
      {"hellaswag", {"hellaswag.jsonl", "hellaswag_val.jsonl"}, "Rowan/hellaswag validation split as jsonl", true, false},
      {"piqa", {"piqa.jsonl", "piqa_validation.jsonl"}, "ybisk/piqa validation split (with labels) as jsonl", true, false},
      {"winogrande", {"winogrande.jsonl", "winogrande_dev.jsonl", "dev.jsonl"}, "winogrande_xl validation split as jsonl", false, false},
      {"lambada", {"lambada.jsonl", "lambada_test.jsonl", "lambada_openai.jsonl"}, "EleutherAI/lambada_openai test split as jsonl", false, true},
  };
  return t;
}

const TaskInfo& task_info(const std::string& name) {
  std::string known;
  for (const auto& t : task_table()) {
    if (t.name == name || (name == "lambada_openai" && t.name == "lambada")) return t;
    known += (known.empty() ? "" : ", ") + t.name;
  }
  fail("unknown task '{}' (known: wikitext2, {})", name, known);
}

std::filesystem::path find_task_data(const TaskInfo& task, const std::filesystem::path& data_dir,
                                     const std::optional<std::filesystem::path>& explicit_path) {
  if (explicit_path) {
    if (!std::filesystem::exists(*explicit_path)) fail("task data '{}' not found", explicit_path->string());
    return *explicit_path;
  }
  for (const auto& f : task.data_files)
    if (std::filesystem::exists(data_dir / f)) return data_dir / f;
  fail("no data for task '{}' in '{}': download the {} and save it as {}/{} (or pass --task-data {}=PATH)", task.name,
       data_dir.string(), task.download_hint, data_dir.string(), task.data_files[0], task.name);
}

std::vector<McExample> load_task_examples(const TaskInfo& task, const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) fail("cannot open task data '{}'", path.string());
  std::vector<McExample> out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (strip(line).empty()) continue;
    try {
      out.push_back(parse_example(task.name, json::parse(line)));
    } catch (const std::exception& e) {
      fail("'{}' line {}: not a valid {} example ({})", path.string(), lineno, task.name, e.what());
    }
  }
  if (out.empty()) fail("'{}' holds no {} examples", path.string(), task.name);
  return out;
}

std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(const Tokenizer& tok, const std::string& context_in,
                                                                  const std::string& continuation_in) {
  std::string context = context_in, continuation = continuation_in;
  const size_t keep = context.find_last_not_of(' ');
  const size_t n_spaces = keep == std::string::npos ? context.size() : context.size() - keep - 1;
  if (n_spaces > 0) {
    continuation = context.substr(context.size() - n_spaces) + continuation;
    context.resize(context.size() - n_spaces);
  }
  const auto whole = tok.encode(context + continuation, false);
  auto ctx = tok.encode(context, false);
  std::vector<int32_t> cont(whole.begin() + std::min(ctx.size(), whole.size()), whole.end());
  if (ctx.empty()) {  // lm-eval puts the end-of-text token before an empty context
    const int32_t prefix = tok.eos_id() >= 0 ? tok.eos_id() : tok.bos_id();
    if (prefix < 0) fail("an empty context needs a bos or eos token");
    ctx.push_back(prefix);
  }
  return {ctx, cont};
}

namespace {

struct Scored {
  double logprob = 0;
  bool greedy = true;
};

// Log-likelihood of `cont` after the cache already holds the context, given the context's last logits.
Scored score_continuation(const Transformer& model, KvCache& cache, const std::vector<float>& last_logits,
                          const std::vector<int32_t>& cont) {
  const int64_t vocab = model.config().vocab_size;
  Scored s;
  if (cont.empty()) return s;
  std::vector<float> logits(size_t(int64_t(cont.size()) * vocab));
  if (cont.size() > 1) model.forward(cont.data(), int64_t(cont.size()) - 1, cache, logits.data() + vocab);
  std::memcpy(logits.data(), last_logits.data(), size_t(vocab) * sizeof(float));
  for (size_t i = 0; i < cont.size(); ++i) {
    const float* row = logits.data() + int64_t(i) * vocab;
    s.logprob += token_log_prob(row, vocab, cont[i]);
    const int64_t arg = std::max_element(row, row + vocab) - row;
    if (arg != cont[i]) s.greedy = false;
  }
  return s;
}

}  // namespace

TaskResult evaluate_task(const Transformer& model, const Tokenizer& tok, const TaskInfo& task,
                         const std::vector<McExample>& all, const TaskOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = opt.limit > 0 ? std::min<int64_t>(opt.limit, int64_t(all.size())) : int64_t(all.size());
  const int64_t vocab = model.config().vocab_size;
  KvCache cache(model.config(), opt.max_length + 1);
  int64_t correct = 0, correct_norm = 0;
  double lambada_nll = 0;
  int64_t lambada_tokens = 0;
  Progress bar(opt.label.empty() ? task.name : opt.label, n, "ex");
  for (int64_t e = 0; e < n; ++e) {
    const McExample& ex = all[size_t(e)];
    const size_t choices = std::max(ex.contexts.size(), ex.continuations.size());
    std::vector<double> ll(choices);
    std::vector<bool> greedy(choices);
    std::vector<float> last(static_cast<size_t>(vocab));
    int64_t ctx_len = -1;
    std::vector<int32_t> shared_ctx;
    for (size_t c = 0; c < choices; ++c) {
      const std::string& context = ex.contexts[ex.contexts.size() == 1 ? 0 : c];
      const std::string& cont = ex.continuations[ex.continuations.size() == 1 ? 0 : c];
      auto [ctx_tok, cont_tok] = encode_pair(tok, context, cont);
      // Keep at most max_length tokens of input (context + continuation minus the last), cut from the left.
      const int64_t total = int64_t(ctx_tok.size() + cont_tok.size()) - 1;
      if (total > opt.max_length) {
        const int64_t cut = total - opt.max_length;
        if (cut >= int64_t(ctx_tok.size())) fail("{}: a continuation is longer than --max-length", task.name);
        ctx_tok.erase(ctx_tok.begin(), ctx_tok.begin() + cut);
      }
      if (ctx_tok != shared_ctx || ctx_len < 0) {  // run the context once; reuse it for every continuation
        cache.clear();
        model.forward(ctx_tok.data(), int64_t(ctx_tok.size()), cache, last.data(), true);
        ctx_len = cache.length();
        shared_ctx = ctx_tok;
      } else {
        cache.truncate(ctx_len);
      }
      const Scored s = score_continuation(model, cache, last, cont_tok);
      ll[c] = s.logprob;
      greedy[c] = s.greedy;
      if (task.is_lambada) lambada_tokens += int64_t(cont_tok.size());
    }
    if (task.is_lambada) {
      correct += greedy[0] ? 1 : 0;
      lambada_nll -= ll[0];
    } else {
      const size_t best = size_t(std::max_element(ll.begin(), ll.end()) - ll.begin());
      correct += best == size_t(ex.gold) ? 1 : 0;
      if (task.has_acc_norm) {
        size_t bn = 0;
        double bv = -INFINITY;
        for (size_t c = 0; c < choices; ++c) {
          const double v = ll[c] / ex.choice_len[c];
          if (v > bv) {
            bv = v;
            bn = c;
          }
        }
        correct_norm += bn == size_t(ex.gold) ? 1 : 0;
      }
    }
    bar.set_note(fmt::format("acc {:.3f}", double(correct) / double(e + 1)));
    bar.advance();
  }
  bar.finish();
  TaskResult r;
  r.task = task.name;
  r.n = n;
  auto se = [n](double p) { return n > 1 ? std::sqrt(p * (1 - p) / double(n - 1)) : 0.0; };
  r.acc = double(correct) / double(n);
  r.acc_stderr = se(r.acc);
  if (task.has_acc_norm) {
    r.acc_norm = double(correct_norm) / double(n);
    r.acc_norm_stderr = se(*r.acc_norm);
  }
  if (task.is_lambada) r.ppl = std::exp(lambada_nll / double(n));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace fpq
