#include "eval/compare.h"

#include <chrono>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kernels/cpu/isa.h"
#include "model/checkpoint.h"
#include "util/blas_core.h"
#include "util/parallel.h"
#include "util/error.h"
#include "util/table.h"

namespace fpq {

std::filesystem::path default_data_dir() {
  if (const char* env = std::getenv("FPQ_DATA")) return env;
  return std::filesystem::path(FPQ_REPO_DIR) / ".." / "shared" / "data";
}

namespace {

double average_bits(Transformer& m) {
  double bits = 0, n = 0;
  for (auto& [name, l] : m.linears()) {
    const double numel = double(l->out_features()) * double(l->weight_in_features());
    bits += l->quantized_weight() ? double(l->quantized_weight()->storage_bytes()) * 8 : numel * 32;
    n += numel;
  }
  return n > 0 ? bits / n : 32;
}

}  // namespace

EvalReport run_eval(const EvalPlan& plan) {
  LoadedModel lm = load_model(plan.model);
  Transformer& model = *lm.model;
  const ModelSource& src = *lm.source;
  if (lm.is_checkpoint() && !plan.recipes.empty())
    fail("'{}' is already quantized ({}): evaluate it as it is, without --format", plan.model.string(), lm.recipe_name());
  EvalReport rep;
  rep.model = plan.model.string();
  rep.model_summary = model.config().summary();
  rep.model_stored_types = src.stored_types_summary();
  const std::string core = blas_core_name();
  rep.blas = core.empty() ? "not OpenBLAS" : "OpenBLAS " + core;
  rep.blas_threads = blas_threads();
  rep.threads = num_threads();
  rep.cpu_kernels = cpu::active_isa_name();
  rep.ctx = plan.ctx;
  rep.limit = plan.limit;
  const Tokenizer& tok = lm.tokenizer();

  // "auto": WikiText-2 plus every task whose data is present; the others are named as skipped.
  std::vector<std::string> tasks;
  for (const auto& t : plan.tasks) {
    if (t != "auto") {
      tasks.push_back(t);
      continue;
    }
    tasks.push_back("wikitext2");
    for (const auto& info : task_table()) {
      const auto it = plan.task_paths.find(info.name);
      bool found = it != plan.task_paths.end();
      for (const auto& f : info.data_files) found = found || std::filesystem::exists(plan.data_dir / f);
      if (found) tasks.push_back(info.name);
      else rep.skipped_tasks.push_back(info.name);
    }
  }
  rep.tasks = tasks;

  // Load every data set up front, so a missing file fails before any long computation.
  std::vector<int32_t> wiki_tokens;
  std::map<std::string, std::vector<McExample>> examples;
  for (const auto& t : tasks) {
    if (t == "wikitext2" || t == "wikitext") {
      const auto path = plan.wikitext_path ? *plan.wikitext_path : plan.data_dir / "wiki.test.raw";
      wiki_tokens = tokenize_for_perplexity(tok, wikitext_eval_text(path));
    } else {
      const TaskInfo& info = task_info(t);
      const auto it = plan.task_paths.find(info.name);
      const auto path = find_task_data(info, plan.data_dir, it == plan.task_paths.end() ? std::nullopt
                                                                                        : std::optional(it->second));
      examples[info.name] = load_task_examples(info, path);
    }
  }

  auto evaluate = [&](EvalRow& row) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& t : tasks) {
      const std::string label = fmt::format("{} [{}{}]", t, row.format, row.kernel == "-" ? "" : " " + row.kernel);
      if (t == "wikitext2" || t == "wikitext") {
        PerplexityOptions o;
        o.ctx = plan.ctx;
        o.limit_tokens = plan.limit_tokens;
        o.first_window = plan.first_window;
        o.last_window = plan.last_window;
        o.label = label;
        row.ppl = evaluate_perplexity(model, wiki_tokens, o);
        rep.ppl_tokens = row.ppl->tokens_scored;
      } else {
        const TaskInfo& info = task_info(t);
        TaskOptions o;
        o.limit = plan.limit;
        o.max_length = plan.ctx;
        o.label = label;
        row.tasks.push_back(evaluate_task(model, tok, info, examples[info.name], o));
      }
    }
    row.eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  auto kernel_rows = [&](const std::string& format_name, double qs) {
    for (const auto& kernel : plan.kernels) {
      auto [qb, mb] = kernel_backends(kernel);
      if (!plan.quant_backend.empty()) qb = plan.quant_backend;
      set_model_backends(model, qb, mb);
      EvalRow row;
      row.format = format_name;
      row.kernel = kernel;
      const auto used = model.linears().front().second->resolved_backends();
      row.backends = used.first + "/" + used.second;
      row.quantize_seconds = qs;
      row.bits_per_weight = average_bits(model);
      evaluate(row);
      rep.rows.push_back(std::move(row));
    }
  };

  if (lm.is_checkpoint()) {  // a real-quant checkpoint runs as stored
    kernel_rows(lm.recipe_name(), lm.quantization_config->value("seconds", 0.0));
    return rep;
  }

  if (plan.baseline) {
    EvalRow row;
    row.format = "unquantized";
    row.kernel = "-";
    set_model_backends(model, "", "pseudo");  // float32 GEMM
    row.backends = "f32 sgemm";
    evaluate(row);
    rep.rows.push_back(std::move(row));
  }

  // Keep the float weights to start every recipe from them.
  std::vector<std::vector<float>> originals;
  if (!plan.recipes.empty())
    for (auto& [name, l] : model.linears()) originals.push_back(l->weight_as_float());

  for (const auto& recipe : plan.recipes) {
    {
      size_t i = 0;
      for (auto& [name, l] : model.linears()) {
        l->set_transform(nullptr);
        l->set_activation_quant(std::nullopt);
        l->set_float_weight(originals[i++]);
      }
    }
    const ModelQuantReport q = quantize_model(model, plan.calibration_tokens, recipe);
    kernel_rows(recipe.recipe.name, q.seconds);
  }
  return rep;
}

std::string EvalReport::markdown() const {
  std::vector<std::string> header = {"format", "kernel", "bits/weight"};
  std::vector<bool> right = {false, false, true};
  for (const auto& t : tasks) {
    if (t == "wikitext2" || t == "wikitext") {
      header.push_back("wikitext2 ppl");
    } else {
      const TaskInfo& info = task_info(t);
      header.push_back(info.is_lambada ? "lambada acc" : t + " acc");
      if (info.has_acc_norm) {
        header.push_back(t + " acc_norm");
        right.push_back(true);
      }
    }
    right.push_back(true);
  }
  header.push_back("eval s");
  right.push_back(true);
  Table table(header, right);
  for (const auto& r : rows) {
    std::vector<std::string> cells = {r.format, r.kernel, fmt::format("{:.2f}", r.bits_per_weight)};
    size_t ti = 0;
    for (const auto& t : tasks) {
      if (t == "wikitext2" || t == "wikitext") {
        cells.push_back(r.ppl ? fmt::format("{:.3f} ± {:.3f}", r.ppl->ppl, r.ppl->ppl_stderr) : "-");
      } else {
        const TaskResult& tr = r.tasks[ti++];
        cells.push_back(fmt::format("{:.2f}", 100 * tr.acc));
        if (tr.acc_norm) cells.push_back(fmt::format("{:.2f}", 100 * *tr.acc_norm));
      }
    }
    cells.push_back(fmt::format("{:.1f}", r.eval_seconds));
    table.add(cells);
  }
  std::string s = fmt::format("model: {} ({}; stored as {})\n", model, model_summary, model_stored_types);
  s += fmt::format("numerics: {} x {} threads (float32 GEMMs; the bits depend on both), fpq {} kernels\n", blas,
                   blas_threads, cpu_kernels);
  if (ppl_tokens) s += fmt::format("wikitext2: {} predicted tokens, windows of {}\n", ppl_tokens, ctx);
  if (limit) s += fmt::format("tasks: first {} examples each\n", limit);
  if (!skipped_tasks.empty())
    s += fmt::format("skipped (no data in the data folder): {}\n", fmt::join(skipped_tasks, ", "));
  return s + "\n" + table.markdown();
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json j;
  j["model"] = model;
  j["model_summary"] = model_summary;
  j["model_stored_types"] = model_stored_types;
  j["numerics"] = {{"blas", blas}, {"blas_threads", blas_threads}, {"threads", threads}, {"cpu_kernels", cpu_kernels}};
  j["ctx"] = ctx;
  j["limit"] = limit;
  j["skipped_tasks"] = skipped_tasks;
  j["rows"] = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json row = {{"format", r.format}, {"kernel", r.kernel}, {"backends", r.backends},
                          {"bits_per_weight", r.bits_per_weight}, {"quantize_seconds", r.quantize_seconds},
                          {"eval_seconds", r.eval_seconds}};
    if (r.ppl)
      row["wikitext2"] = {{"ppl", r.ppl->ppl}, {"ppl_stderr", r.ppl->ppl_stderr}, {"nll", r.ppl->nll},
                          {"tokens", r.ppl->tokens_scored}, {"windows", r.ppl->windows}, {"first_window", r.ppl->first_window},
                          {"windows_total", r.ppl->windows_total}, {"nll_stderr", r.ppl->nll_stderr},
                          {"seconds", r.ppl->seconds}};
    for (const auto& t : r.tasks) {
      nlohmann::json tj = {{"n", t.n}, {"acc", t.acc}, {"acc_stderr", t.acc_stderr}, {"seconds", t.seconds}};
      if (t.acc_norm) {
        tj["acc_norm"] = *t.acc_norm;
        tj["acc_norm_stderr"] = *t.acc_norm_stderr;
      }
      if (t.ppl) tj["ppl"] = *t.ppl;
      row[t.task] = tj;
    }
    j["rows"].push_back(row);
  }
  return j;
}

}  // namespace fpq
