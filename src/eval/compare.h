#pragma once
// The main job: evaluate a model unquantized and quantized to one or more recipes, each with one or more
// kernels (pseudo = fake quantization + float32 GEMM, real = low-bit kernels), on perplexity and zero-shot
// tasks, and lay the results out as one table (a row per format and kernel, a column per task), as the
// pseudo-vs-real harness of the seeds does.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/perplexity.h"
#include "eval/tasks.h"
#include "model/calibrate.h"
#include "model/quant_recipe.h"

namespace fpq {

struct EvalPlan {
  std::filesystem::path model;           // a GGUF file, a Hugging Face folder or an fpq checkpoint
  std::vector<ModelQuantOptions> recipes;  // each: formats + method (rtn needs no calibration)
  std::vector<int32_t> calibration_tokens; // for methods that calibrate
  std::vector<std::string> kernels = {"real", "pseudo"};
  bool baseline = true;
  std::vector<std::string> tasks = {"auto"};  // "auto": wikitext2 + every task whose data is present
  std::filesystem::path data_dir;                       // where task files and wiki.test.raw are looked up
  std::optional<std::filesystem::path> wikitext_path;  // explicit --data
  std::map<std::string, std::filesystem::path> task_paths;
  int64_t limit = 0;         // examples per task
  int64_t limit_tokens = 0;  // perplexity token budget
  int64_t first_window = 0, last_window = 0;  // perplexity windows [first, last) only (last 0: to the end)
  int64_t ctx = 2048;
  std::string quant_backend;  // override of the kernels' activation quantizer
};

struct EvalRow {
  std::string format;  // "unquantized" or the recipe name
  std::string kernel;  // "-" for the baseline
  std::string backends;  // resolved "quantizer/matmul"
  std::optional<PerplexityResult> ppl;
  std::vector<TaskResult> tasks;
  double quantize_seconds = 0, eval_seconds = 0;
  double bits_per_weight = 32;
};

struct EvalReport {
  std::string model, model_summary, model_stored_types;
  // What the numbers depend on besides the model and the data: the BLAS kernels and BLAS threads (the float32
  // GEMMs of attention, the LM head and unquantized layers; quantized activations amplify their last-bit
  // differences), and fpq's own kernel variant and threads (which do not change a bit).
  std::string blas;
  int blas_threads = 0, threads = 0;
  std::string cpu_kernels;
  std::vector<std::string> tasks, skipped_tasks;
  std::vector<EvalRow> rows;
  int64_t ppl_tokens = 0, ctx = 0, limit = 0;
  std::string markdown() const;
  nlohmann::json to_json() const;
};

// Runs the plan; progress bars on stderr.
EvalReport run_eval(const EvalPlan& plan);

// The default folder of evaluation data: $FPQ_DATA, else ../shared/data next to the repository.
std::filesystem::path default_data_dir();

}  // namespace fpq
