#include "model_quant_options.h"

#include "eval/compare.h"
#include "eval/perplexity.h"
#include "util/error.h"
#include "util/file_io.h"

namespace fpq::cli {

void ModelQuantArgs::add(CLI::App* cmd, bool with_model_and_bits) {
  if (with_model_and_bits) {
    cmd->add_option("--model,-m", model, "Model mode: GGUF file or Hugging Face folder (default: embedded SmolLM2-135M-Instruct)");
    cmd->add_option("--w-bits", w_bits, "Weight bits (format families nvfp|mxfp|fp|int; checked against named formats)");
    cmd->add_option("--a-bits", a_bits, "Activation bits: 4, 6, 8, or 16 for weight-only");
    cmd->add_option("--w-group-size", w_group, "Weight group size (0: the format's own)");
    cmd->add_option("--a-group-size", a_group, "Activation group size (0: the format's own)");
    cmd->add_option("--a-format", a_format, "Explicit activation format");
    cmd->add_option("--w-observer", w_observer, "Weight scales: absmax (format rule) or mse");
  }
  cmd->add_option("--method", method, "Quantization method: rtn, gptq, mr-gptq, 4o6, arc");
  cmd->add_option("--transform", transform, "Input transform for rtn/gptq: identity or hadamard (mr-gptq: always hadamard)");
  cmd->add_option("--transform-block", transform_block, "Hadamard block (0: the weight group size; -1: the full dimension)");
  cmd->add_option("--sign-seed", sign_seed, "Random +-1 signs in the Hadamard transform, from this seed");
  cmd->add_option("--calib-data", calib_data, "Calibration text (default: DATA_DIR/wiki.train.raw)");
  cmd->add_option("--num-sequences", num_sequences, "Calibration sequences");
  cmd->add_option("--seq-len", seq_len, "Calibration sequence length");
  cmd->add_flag("--true-sequential", true_sequential, "Calibrate [qkv], [o], [gate,up], [down] one after another");
  cmd->add_flag("--act-order", act_order, "GPTQ: quantize columns by decreasing Hessian diagonal (static groups)");
  cmd->add_option("--percdamp", percdamp, "GPTQ dampening (fraction of the mean Hessian diagonal)");
  cmd->add_option("--arc-residual", arc_residual, "ARC: residual channels (-1: ARCQuant's rule)");
  cmd->add_flag("--no-fuse-global-scale", no_fuse_global, "Give q/k/v and gate/up their own weight global scales");
}

ModelQuantOptions ModelQuantArgs::resolve() const { return resolve_for(format); }

ModelQuantOptions ModelQuantArgs::resolve_for(const std::string& weight_format) const {
  if (weight_format.empty()) fail("--format is required");
  ModelQuantOptions o;
  o.recipe = make_recipe(weight_format, w_bits, a_bits, w_group, a_group, a_format, "");
  if (!o.recipe.weight) fail("quantizing a model needs a weight format (got '{}')", weight_format);
  const quant::Method m = quant::parse_method(method.empty() ? "rtn" : method);
  o.method = quant::method_defaults(m);
  if (transform == "hadamard") o.method.transform = quant::TransformKind::Hadamard;
  else if (transform != "identity") fail("unknown --transform '{}' (identity or hadamard)", transform);
  if (transform_block != 0) o.method.transform_block = transform_block;
  if (sign_seed) o.method.sign_seed = sign_seed;
  if (w_observer == "mse") {
    o.method.observer = quant::ScaleSearch::Mse;
    o.method.gptq.scale_search = quant::ScaleSearch::Mse;
  } else if (!w_observer.empty() && w_observer != "absmax") {
    fail("unknown --w-observer '{}' (absmax or mse)", w_observer);
  }
  if (act_order) {
    o.method.gptq.act_order = true;
    o.method.gptq.static_groups = true;
  }
  o.method.gptq.percdamp = percdamp;
  o.method.arc.residual_channels = arc_residual;
  o.calibration.num_sequences = num_sequences;
  o.calibration.seq_len = seq_len;
  o.calibration.true_sequential = true_sequential;
  o.fuse_global_scales = !no_fuse_global;
  o.recipe.name += " " + std::string(quant::method_name(m));
  if (o.method.transform == quant::TransformKind::Hadamard && m != quant::Method::MrGptq) o.recipe.name += "+had";
  return o;
}

std::vector<int32_t> ModelQuantArgs::calibration_tokens(const Tokenizer& tok, const ModelQuantOptions& opt) const {
  const quant::Method m = opt.method.method;
  const bool needs = quant::method_needs_hessian(m) || quant::method_needs_channel_stats(m);
  std::filesystem::path path = calib_data;
  if (path.empty()) {
    if (!needs) return {};
    path = default_data_dir() / "wiki.train.raw";
    if (!std::filesystem::exists(path))
      fail("method '{}' needs calibration text: pass --calib-data PATH (the default, the WikiText-2 train split at '{}', "
           "is not present; never calibrate on the evaluation split)",
           quant::method_name(m), path.string());
  }
  if (!std::filesystem::exists(path)) fail("calibration text '{}' not found", path.string());
  return tok.encode(read_file_text(path), false);
}

}  // namespace fpq::cli
