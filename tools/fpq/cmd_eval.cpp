// fpq eval: the main job. Quantize a model to one or more formats and compare kernels (pseudo vs real) and the
// unquantized baseline on perplexity and zero-shot tasks, in one table (+ JSON).
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "commands.h"
#include "eval/compare.h"
#include "model/checkpoint.h"
#include "model/model_source.h"
#include "model_quant_options.h"
#include "util/error.h"
#include "util/file_io.h"

namespace fpq::cli {

namespace {

struct EvalArgs {
  std::string model;
  std::vector<std::string> formats;
  int w_bits = 0, a_bits = 16, w_group = 0, a_group = 0;
  std::string a_format, w_observer;
  std::string kernel1 = "real", kernel2 = "pseudo";
  std::vector<std::string> kernels;
  std::vector<std::string> tasks = {"auto"};
  std::string data, data_dir;
  std::vector<std::string> task_data;
  int64_t limit = 0, limit_tokens = 0, ctx = 2048;
  std::string windows;
  std::string json_out, quant_backend, device = "cpu";
  bool no_baseline = false;
  ModelQuantArgs method;
};

std::vector<std::string> split_commas(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    size_t p = 0;
    while (p <= s.size()) {
      const size_t q = s.find(',', p);
      const std::string part = s.substr(p, q == std::string::npos ? std::string::npos : q - p);
      if (!part.empty()) out.push_back(part);
      if (q == std::string::npos) break;
      p = q + 1;
    }
  }
  return out;
}

}  // namespace

static void register_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Quantize a model and compare kernels and the unquantized baseline on "
                                         "WikiText-2 perplexity and zero-shot tasks");
  cmd->add_option("--model,-m", a->model, "GGUF file or Hugging Face model folder (default: the embedded SmolLM2-135M-Instruct)");
  cmd->add_option("--format,-f", a->formats, "Weight format(s), comma separated: a registry name (nvfp4, mxfp4, mxfp6_e3m2, "
                                             "q4_0, fp6_e3m2, ...), ELEMENT/SCALE/GROUP, or nvfp|mxfp|fp|int with --w-bits");
  cmd->add_option("--w-bits", a->w_bits, "Weight bits (for format families; checked against named formats)");
  cmd->add_option("--a-bits", a->a_bits, "Activation bits: 4, 6, 8, or 16 for float activations (weight-only)");
  cmd->add_option("--w-group-size", a->w_group, "Weight group size (0: the format's own)")->check(non_negative_count());
  cmd->add_option("--a-group-size", a->a_group, "Activation group size (0: the format's own)")->check(non_negative_count());
  cmd->add_option("--a-format", a->a_format, "Explicit activation format (overrides the natural partner)");
  cmd->add_option("--w-observer", a->w_observer, "Weight scale observer: absmax (default) or mse");
  cmd->add_option("--kernel-1", a->kernel1, "First kernel row: real, pseudo, real-fast (float32 group sums), cuda");
  cmd->add_option("--kernel-2", a->kernel2, "Second kernel row (empty string: none)");
  cmd->add_option("--kernels", a->kernels, "Kernel rows, comma separated (overrides --kernel-1/--kernel-2)");
  cmd->add_option("--tasks,-t", a->tasks, "Comma separated: wikitext2, arc_easy, arc_challenge, boolq, hellaswag, piqa, "
                                          "winogrande, lambada; auto (default): wikitext2 + every task with data present");
  cmd->add_option("--data", a->data, "WikiText-2 raw test file (default: DATA_DIR/wiki.test.raw)");
  cmd->add_option("--data-dir", a->data_dir, "Folder with evaluation data (default: $FPQ_DATA or ../shared/data)");
  cmd->add_option("--task-data", a->task_data, "TASK=PATH of a task's jsonl (repeatable)");
  cmd->add_option("--limit", a->limit, "Examples per task (0: all)")->check(non_negative_count());
  cmd->add_option("--limit-tokens", a->limit_tokens, "WikiText-2 token budget (0: all)")->check(non_negative_count());
  cmd->add_option("--windows", a->windows,
                  "Only WikiText-2 windows A:B (0-based, B exclusive; B empty or past the end: to the end): one shard of a long run; "
                  "scripts/results/merge_shards.py merges shards");
  cmd->add_option("--ctx", a->ctx, "Perplexity window / maximum sequence length");
  cmd->add_option("--json", a->json_out, "Write the results as JSON to this file");
  cmd->add_option("--device", a->device, "cpu (default) or cuda: cuda runs the 'real' kernel rows on the GPU (kernel "
                                        "'cuda': activation quantization and matmul), next to the CPU's pseudo rows")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--quant-backend", a->quant_backend, "Activation quantizer for every kernel row (reference, real, ...)");
  cmd->add_flag("--no-baseline", a->no_baseline, "Skip the unquantized row");
  a->method.add(cmd, false);
  cmd->callback([a] {
    EvalPlan plan;
    plan.model = a->model.empty() ? default_model_path() : std::filesystem::path(a->model);
    a->method.w_bits = a->w_bits;
    a->method.a_bits = a->a_bits;
    a->method.w_group = a->w_group;
    a->method.a_group = a->a_group;
    a->method.a_format = a->a_format;
    a->method.w_observer = a->w_observer;
    for (const auto& f : split_commas(a->formats)) plan.recipes.push_back(a->method.resolve_for(f));
    if (plan.recipes.empty() && (a->a_bits != 16 || !a->a_format.empty()))
      fail("--a-bits/--a-format need a --format for the weights");
    plan.kernels = a->kernels.empty() ? std::vector<std::string>{} : split_commas(a->kernels);
    if (a->kernels.empty()) {
      if (!a->kernel1.empty()) plan.kernels.push_back(a->kernel1);
      if (!a->kernel2.empty() && a->kernel2 != a->kernel1) plan.kernels.push_back(a->kernel2);
    }
    if (a->device == "cuda")
      for (auto& k : plan.kernels)
        if (k == "real") k = "cuda";
    for (const auto& k : plan.kernels) check_kernel_runs_here(k);  // names, and a GPU for 'cuda', before any work
    plan.baseline = !a->no_baseline;
    plan.tasks = split_commas(a->tasks);
    for (const auto& t : plan.tasks)
      if (t != "wikitext2" && t != "wikitext" && t != "auto") (void)task_info(t);
    plan.data_dir = a->data_dir.empty() ? default_data_dir() : std::filesystem::path(a->data_dir);
    if (!a->data.empty()) plan.wikitext_path = a->data;
    for (const auto& td : a->task_data) {
      const size_t eq = td.find('=');
      if (eq == std::string::npos) fail("--task-data wants TASK=PATH, got '{}'", td);
      plan.task_paths[task_info(td.substr(0, eq)).name] = td.substr(eq + 1);
    }
    plan.limit = a->limit;
    plan.limit_tokens = a->limit_tokens;
    if (!a->windows.empty()) {
      const size_t colon = a->windows.find(':');
      auto number = [&](const std::string& t, int64_t empty_value) -> int64_t {
        if (t.empty()) return empty_value;
        size_t used = 0;
        int64_t v = -1;
        try {
          v = std::stoll(t, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != t.size() || v < 0) fail("--windows wants A:B with window numbers A < B, got '{}'", a->windows);
        return v;
      };
      if (colon == std::string::npos) fail("--windows wants A:B with window numbers A < B, got '{}'", a->windows);
      plan.first_window = number(a->windows.substr(0, colon), 0);
      plan.last_window = number(a->windows.substr(colon + 1), 0);
      if (plan.last_window != 0 && plan.last_window <= plan.first_window)
        fail("--windows wants A:B with window numbers A < B, got '{}'", a->windows);
    }
    plan.ctx = a->ctx;
    plan.quant_backend = a->quant_backend;
    if (!a->json_out.empty()) check_output_path(a->json_out, "--json");
    if (!plan.recipes.empty()) {
      const auto& first = plan.recipes.front();
      const bool needs = quant::method_needs_hessian(first.method.method) || quant::method_needs_channel_stats(first.method.method);
      if (needs || !a->method.calib_data.empty()) {
        const ModelSource probe(plan.model);  // its tokenizer
        plan.calibration_tokens = a->method.calibration_tokens(probe.tokenizer(), first);
      }
    }
    const EvalReport rep = run_eval(plan);
    std::printf("%s", rep.markdown().c_str());
    if (!a->json_out.empty()) {
      const std::string s = rep.to_json().dump(2);
      write_file_atomic(a->json_out, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
      std::printf("\nJSON: %s\n", a->json_out.c_str());
    }
  });
}

static const CommandRegistrar registrar(50, register_eval);

}  // namespace fpq::cli
