// fpq quantize, two modes:
//   tensor: fpq quantize --format F IN.npy OUT.safetensors   (packed codes, scales, global scale)
//   model:  fpq quantize --model M --method rtn|gptq|mr-gptq|4o6|arc --format F ... --out DIR
//           (a real-quant checkpoint that fpq eval / generate run with no re-quantization)
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "commands.h"
#include "eval/compare.h"
#include "eval/perplexity.h"
#include "format_options.h"
#include "formats/quantized_io.h"
#include "model/calibrate.h"
#include "model/checkpoint.h"
#include "model_quant_options.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/npy.h"

namespace fpq::cli {

namespace {
struct QuantizeArgs {
  FormatOptions fmt;
  std::string in, out_file;
  ModelQuantArgs model;
  std::string out_dir, report_json;
};
}  // namespace

static void register_quantize(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  auto* cmd = app.add_subcommand("quantize",
                                 "Quantize a tensor (.npy -> .safetensors of packed codes and scales) or a whole model "
                                 "(--model ... --out DIR: a real-quant checkpoint)");
  a->fmt.add(cmd, false);
  cmd->add_option("input", a->in, "Tensor mode: input .npy (float32; the last axis is the quantization axis)");
  cmd->add_option("output", a->out_file, "Tensor mode: output .safetensors");
  a->model.add(cmd);
  cmd->add_option("--out,-o", a->out_dir, "Model mode: the checkpoint folder to write");
  cmd->add_option("--report-json", a->report_json, "Model mode: write the per-layer error report as JSON");
  cmd->callback([a] {
    const bool model_mode = !a->out_dir.empty() || !a->model.model.empty() || !a->model.method.empty();
    if (!model_mode) {
      if (a->fmt.format.empty()) fail("--format is required");
      if (a->in.empty() || a->out_file.empty())
        fail("tensor mode needs INPUT.npy and OUTPUT.safetensors (or use --model ... --out DIR for a model)");
      const Format f = a->fmt.resolve_format();
      const QuantizeOptions opt = a->fmt.resolve_options();
      check_output_path(a->out_file, "output");
      const NpyArray arr = read_npy(a->in);
      if (arr.shape.empty()) fail("'{}' is a scalar; need at least one axis", a->in);
      const int64_t cols = arr.shape.back();
      const int64_t rows = cols ? int64_t(arr.data.size()) / cols : 0;
      check_format_cols(f, cols);
      save_quantized(a->out_file, quantize(f, arr.data.data(), rows, cols, opt), arr.shape);
      return;
    }
    if (!a->in.empty() || !a->out_file.empty()) fail("model mode takes no positional files; write the checkpoint with --out DIR");
    if (a->out_dir.empty()) fail("model mode needs --out DIR");
    check_output_path(a->out_dir, "--out", true);
    if (!a->report_json.empty()) check_output_path(a->report_json, "--report-json");
    a->model.format = a->fmt.format;
    if (a->fmt.group_size) a->model.w_group = *a->fmt.group_size;
    const auto opts = a->model.resolve();
    const std::filesystem::path path = a->model.model.empty() ? default_model_path() : std::filesystem::path(a->model.model);
    LoadedModel lm = load_model(path);
    if (lm.is_checkpoint()) fail("'{}' is already a quantized checkpoint; quantize the original model", path.string());
    const auto calib = a->model.calibration_tokens(lm.tokenizer(), opts);
    const ModelQuantReport rep = quantize_model(*lm.model, calib, opts);
    save_checkpoint(*lm.model, *lm.source, a->out_dir, rep.config);
    if (rep.layers.size()) std::printf("%s\n", rep.layers.markdown().c_str());
    std::printf("%s: %s in %.1f s, mean layer SQNR %.2f dB; checkpoint written to %s (%.1f MB of weights)\n",
                rep.method.c_str(), opts.recipe.name.c_str(), rep.seconds, rep.layers.size() ? rep.layers.mean_sqnr_db() : 0.0,
                a->out_dir.c_str(), double(lm.model->weight_bytes()) / 1e6);
    if (!a->report_json.empty()) {
      nlohmann::json j = rep.config;
      j["mean_rel_error"] = rep.layers.size() ? rep.layers.mean_rel_error() : 0.0;
      j["mean_sqnr_db"] = rep.layers.size() ? rep.layers.mean_sqnr_db() : 0.0;
      const std::string s = j.dump(2);
      write_file_atomic(a->report_json, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
    }
  });
}

static const CommandRegistrar registrar(40, register_quantize);

}  // namespace fpq::cli
