// fpq export: a quantized model as a file other engines load.
//   fpq export --model CKPT --to gguf --out model.gguf                  (llama.cpp: Q4_0 / Q4_1 / Q8_0 / MXFP4)
//   fpq export --model CKPT --to compressed-tensors --out DIR [--calib-data TEXT]   (vLLM: NVFP4 W4A4 / W4A16)
// CKPT is an fpq checkpoint (fpq quantize --model ... --out DIR), or a float model quantized here with the options
// of fpq quantize (--format, --method, ...). Outputs are written atomically.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "commands.h"
#include "model/calibrate.h"
#include "model/checkpoint.h"
#include "model/export_compressed_tensors.h"
#include "model/export_gguf.h"
#include "model_quant_options.h"
#include "util/error.h"
#include "util/file_io.h"

namespace fpq::cli {

namespace {
struct ExportArgs {
  ModelQuantArgs q;
  std::string to, out, name;
  bool f16 = false;
};
}  // namespace

static void register_export(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand(
      "export", "Export a quantized model for other engines: GGUF for llama.cpp (Q4_0, Q4_1, Q8_0, MXFP4) or "
                "compressed-tensors for vLLM (NVFP4 W4A4 / W4A16)");
  cmd->add_option("--to", a->to, "Target: gguf or compressed-tensors")->required();
  cmd->add_option("--out,-o", a->out, "Output: a .gguf file, or the compressed-tensors folder")->required();
  cmd->add_option("--format,-f", a->q.format, "For a float model: quantize weights to this format first");
  a->q.add(cmd);
  cmd->add_flag("--f16", a->f16, "GGUF: token embeddings and output head in F16 (default F32)");
  cmd->add_option("--name", a->name, "GGUF: general.name (default: the model's file or folder name)");
  cmd->callback([a] {
    const bool gguf = a->to == "gguf";
    if (!gguf && a->to != "compressed-tensors") fail("unknown --to '{}' (gguf or compressed-tensors)", a->to);
    if (!gguf && (a->f16 || !a->name.empty())) fail("--f16 and --name are GGUF options");
    check_output_path(a->out, "--out", !gguf);
    const std::filesystem::path path = a->q.model.empty() ? default_model_path() : std::filesystem::path(a->q.model);
    LoadedModel lm = load_model(path);
    if (lm.is_checkpoint()) {
      if (!a->q.format.empty() || a->q.method_given())
        fail("'{}' is already quantized ({}); drop --format / --method", path.string(), lm.recipe_name());
    } else {
      if (a->q.format.empty())
        fail("'{}' is not quantized: pass --format (and --method ...) to quantize it here, or an fpq checkpoint", path.string());
      const ModelQuantOptions opts = a->q.resolve();
      // Refuse before the (long) quantization what the target cannot hold.
      const quant::Method m = opts.method.method;
      if (m == quant::Method::MrGptq || m == quant::Method::Arc || opts.method.transform != quant::TransformKind::Identity)
        fail("method '{}'{} adds an input transform, which {} cannot hold", quant::method_name(m),
             opts.method.transform != quant::TransformKind::Identity ? " with --transform hadamard" : "", a->to);
      if (gguf && !gguf_weight_type(*opts.recipe.weight))
        fail("format '{}' cannot be stored in GGUF (llama.cpp holds q4_0, q4_1, q8_0, mxfp4)", opts.recipe.weight->spec());
      if (!gguf && !compressed_tensors_holds(*opts.recipe.weight))
        fail("format '{}' is not NVFP4; the compressed-tensors export holds nvfp4 / nvfp4_4o6", opts.recipe.weight->spec());
      if (!gguf && opts.recipe.activation && a->q.calib_data.empty())
        fail("the W4A4 compressed-tensors export needs --calib-data TEXT: vLLM quantizes activations with one static "
             "scale per layer, calibrated on that text");
      const auto calib = a->q.calibration_tokens(lm.tokenizer(), opts);
      const ModelQuantReport rep = quantize_model(*lm.model, calib, opts);
      std::printf("%s: %s in %.1f s\n", rep.method.c_str(), opts.recipe.name.c_str(), rep.seconds);
    }
    if (gguf) {
      GgufExportOptions o;
      o.f16 = a->f16;
      o.name = a->name;
      const GgufExportReport r = export_gguf(lm, a->out, o);
      std::printf("wrote %s: GGUF %s, %lld tensors (%s)\n", a->out.c_str(), r.file_type.c_str(), (long long)r.tensors,
                  r.tensor_types.c_str());
      if (r.dropped_activation_quant)
        std::printf("note: GGUF holds weights only; llama.cpp quantizes activations its own way (Q8 for these types)\n");
      return;
    }
    CompressedTensorsExportOptions o;
    if (compressed_tensors_needs_calibration(*lm.model)) {
      if (a->q.calib_data.empty())
        fail("the W4A4 compressed-tensors export needs --calib-data TEXT: vLLM quantizes activations with one static "
             "scale per layer, calibrated on that text (--num-sequences, --seq-len)");
      if (!std::filesystem::exists(a->q.calib_data)) fail("calibration text '{}' not found", a->q.calib_data);
      CalibrationOptions co;
      co.num_sequences = a->q.num_sequences;
      co.seq_len = a->q.seq_len;
      const auto windows = calibration_windows(lm.tokenizer().encode(read_file_text(a->q.calib_data), false), co);
      o.input_amax = calibrate_input_amax(*lm.model, windows);
    }
    const CompressedTensorsExportReport r = export_compressed_tensors(lm, a->out, o);
    std::printf("wrote %s: compressed-tensors %s, %lld quantized layers%s%s\n", a->out.c_str(), r.scheme.c_str(),
                (long long)r.quantized_layers,
                r.ignored_layers ? fmt::format(", {} unquantized", r.ignored_layers).c_str() : "",
                r.tokenizer ? "" : " (no tokenizer files: the source has none)");
  });
}

static const CommandRegistrar registrar(45, register_export);

}  // namespace fpq::cli
