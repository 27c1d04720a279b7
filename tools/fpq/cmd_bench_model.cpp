// fpq bench model: batch-1 prompt-processing and generation tokens/s of the unquantized model and of each
// quantized format with the chosen kernels, side by side in one run.
#include <cstdio>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_command.h"
#include "commands.h"
#include "eval/bench_model.h"
#include "model/model_source.h"
#include "model/quant_recipe.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/parallel.h"
#include "util/table.h"

namespace fpq::cli {

namespace {
struct BenchModelArgs {
  std::string model, json_out, a_format;
  std::vector<std::string> formats = {"nvfp4", "mxfp4", "mxfp6_e3m2", "mxfp8_e4m3", "fp6_e3m2", "q4_0"};
  std::vector<std::string> kernels = {"real"};
  std::string device = "cpu";
  int a_bits = -1;
  BenchModelOptions opt;
};

// Weight-only for formats without a natural partner at a_bits (FP6-LLM's per-row FP6 is a W6A16 format).
QuantRecipe recipe_for(const std::string& f, int a_bits, const std::string& a_format) {
  if (a_bits >= 0) return make_recipe(f, 0, a_bits, 0, 0, a_format);
  const Format w = parse_format(f);
  const int bits = w.layout == Layout::GgmlQ4_0 || w.layout == Layout::GgmlQ4_1 || w.layout == Layout::GgmlQ8_0
                       ? 8
                       : (w.group == 0 ? 16 : w.element->bits);
  return make_recipe(f, 0, bits, 0, 0, a_format);
}
}  // namespace

static void register_bench_model(CLI::App& app) {
  auto a = std::make_shared<BenchModelArgs>();
  auto* cmd = bench_command(app)->add_subcommand("model", "Batch-1 prompt processing and generation tokens/s: "
                                                          "unquantized vs each quantized format");
  cmd->add_option("--model,-m", a->model, "GGUF file or Hugging Face folder (default: embedded SmolLM2-135M-Instruct)");
  cmd->add_option("--format,-f", a->formats, "Formats (comma separated); each with its natural activation format")->delimiter(',');
  cmd->add_option("--a-bits", a->a_bits, "Activation bits for every format (default: natural: W4A4, W6A6 for MX, "
                                         "W8A8 for llama.cpp/FP8, weight-only for per-row FPx)");
  cmd->add_option("--a-format", a->a_format, "Explicit activation format");
  cmd->add_option("--kernels", a->kernels, "Kernel rows per format: real, pseudo, real-fast (float32 group sums), cuda")->delimiter(',');
  cmd->add_option("--device", a->device, "cpu (default) or cuda: the 'real' kernel rows run on the GPU (kernel 'cuda')")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--prompt", a->opt.prompt_tokens, "Prompt tokens");
  cmd->add_option("--gen", a->opt.gen_tokens, "Generated tokens");
  cmd->add_option("--repeats", a->opt.repeats, "Timed repeats (median reported)");
  cmd->add_option("--json", a->json_out, "Also write JSON here");
  cmd->callback([a] {
    if (!a->json_out.empty()) check_output_path(a->json_out, "--json");
    const std::filesystem::path path = a->model.empty() ? default_model_path() : std::filesystem::path(a->model);
    std::vector<QuantRecipe> recipes;
    for (const auto& f : a->formats) recipes.push_back(recipe_for(f, a->a_bits, a->a_format));
    if (a->device == "cuda")
      for (auto& k : a->kernels)
        if (k == "real") k = "cuda";
    for (const auto& k : a->kernels) check_kernel_runs_here(k);  // names, and a GPU for 'cuda', before any work
    ModelSource src(path);
    Transformer model(src);
    Table t({"format", "kernel", "weights MB", "prompt tok/s", "gen tok/s", "gen speedup"},
            {false, false, true, true, true, true});
    nlohmann::json rows = nlohmann::json::array();
    std::vector<std::vector<float>> originals;
    for (auto& [n, l] : model.linears()) originals.push_back(l->weight_as_float());
    double base_gen = 0;
    auto run = [&](const std::string& fmt_name, const std::string& kernel) {
      const BenchModelResult r = bench_model(model, a->opt);
      if (base_gen == 0) base_gen = r.gen_tok_per_s;
      const double mb = double(model.weight_bytes()) / 1e6;
      t.add({fmt_name, kernel, fmt::format("{:.1f}", mb), fmt::format("{:.1f}", r.prompt_tok_per_s),
             fmt::format("{:.1f}", r.gen_tok_per_s), fmt::format("{:.2f}x", r.gen_tok_per_s / base_gen)});
      rows.push_back({{"format", fmt_name}, {"kernel", kernel}, {"weights_mb", mb}, {"prompt_tok_s", r.prompt_tok_per_s},
                      {"gen_tok_s", r.gen_tok_per_s}, {"prompt_ms", r.prompt_ms}, {"gen_ms_per_token", r.gen_ms_per_token}});
      std::fprintf(stderr, "%s %s: prompt %.1f tok/s, generation %.1f tok/s\n", fmt_name.c_str(), kernel.c_str(),
                   r.prompt_tok_per_s, r.gen_tok_per_s);
    };
    set_model_backends(model, "", "pseudo");
    run("unquantized (f32)", "sgemm");
    for (const auto& rec : recipes) {
      size_t i = 0;
      for (auto& [n, l] : model.linears()) l->set_float_weight(originals[i++]);
      quantize_model_rtn(model, rec);
      for (const auto& k : a->kernels) {
        const auto [qb, mb] = kernel_backends(k);
        set_model_backends(model, qb, mb);
        run(rec.name, k);
      }
    }
    std::printf("model: %s (%s)\nbatch 1, prompt %lld tokens, %lld generated tokens, median of %d, %d threads\n\n%s",
                path.string().c_str(), model.config().summary().c_str(), (long long)a->opt.prompt_tokens,
                (long long)a->opt.gen_tokens, a->opt.repeats, num_threads(), t.markdown().c_str());
    if (!a->json_out.empty()) {
      const std::string s = nlohmann::json({{"model", path.string()}, {"rows", rows}}).dump(2);
      write_file_atomic(a->json_out, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
    }
  });
}

static const CommandRegistrar registrar(71, register_bench_model);

}  // namespace fpq::cli
