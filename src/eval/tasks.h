#pragma once
// Zero-shot tasks scored as lm-evaluation-harness scores them: each choice's continuation log-likelihood given
// the prompt (acc), and the same divided by the choice's length in characters (acc_norm), with that harness's
// prompt format per task. Data are the tasks' usual public jsonl files (Hugging Face dataset rows).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "model/transformer.h"

namespace fpq {

// One scored item: either one context and several continuations, or (WinoGrande) several contexts and one
// continuation. `choice_len` is the length lm-eval divides by for acc_norm.
struct McExample {
  std::vector<std::string> contexts;
  std::vector<std::string> continuations;
  int gold = 0;
  std::vector<double> choice_len;
};

struct TaskInfo {
  std::string name;                     // "arc_easy", "arc_challenge", "boolq", "hellaswag", "piqa", "winogrande", "lambada"
  std::vector<std::string> data_files;  // file names looked for in the data folder, first found wins
  std::string download_hint;            // where the data comes from
  bool has_acc_norm = true;
  bool is_lambada = false;              // scored by greedy match and perplexity of the last word
};

const std::vector<TaskInfo>& task_table();
const TaskInfo& task_info(const std::string& name);  // error listing known tasks

// Parses a task's jsonl (one HF dataset row per line); malformed lines are an error naming file and line.
std::vector<McExample> load_task_examples(const TaskInfo& task, const std::filesystem::path& path);
// The data file of a task in `data_dir` (or an explicit path); a clear error naming what to download if missing.
std::filesystem::path find_task_data(const TaskInfo& task, const std::filesystem::path& data_dir,
                                     const std::optional<std::filesystem::path>& explicit_path);

struct TaskResult {
  std::string task;
  int64_t n = 0;
  double acc = 0, acc_stderr = 0;
  std::optional<double> acc_norm, acc_norm_stderr;
  std::optional<double> ppl;  // LAMBADA
  double seconds = 0;
};

struct TaskOptions {
  int64_t limit = 0;        // 0 = all examples, else the first `limit`
  int64_t max_length = 2048;
  bool progress = true;
  std::string label;
};

TaskResult evaluate_task(const Transformer& model, const Tokenizer& tok, const TaskInfo& task,
                         const std::vector<McExample>& examples, const TaskOptions& opt);

// lm-eval's context/continuation split: trailing spaces of the context move to the continuation; the
// continuation's tokens are those of tok(context + continuation) after the first len(tok(context)).
std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(const Tokenizer& tok, const std::string& context,
                                                                  const std::string& continuation);

}  // namespace fpq
