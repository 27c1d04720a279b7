#pragma once
// What to quantize a model's linear layers to: a weight format, an optional activation format, and how weights
// are rounded (round-to-nearest with the format's scale rule, or the MSE observer). Built from the CLI's
// --format / --w-bits / --a-bits / group sizes, FP-Quant style.
#include <optional>
#include <string>

#include "formats/format.h"
#include "model/transformer.h"

namespace fpq {

struct QuantRecipe {
  std::string name;               // e.g. "nvfp4 W4A4"
  std::optional<Format> weight;   // empty: weights stay float32
  std::optional<Format> activation;
  std::optional<ScaleRule> weight_observer;  // e.g. Mse: overrides the weight format's scale rule

  int weight_bits() const { return weight ? weight->element->bits : 16; }
  int activation_bits() const { return activation ? activation->element->bits : 16; }
};

// `format`: a registry name (nvfp4, mxfp4, mxfp6_e3m2, q4_0, fp6_e3m2, ...), an ELEMENT/SCALE/GROUP spelling, or
// an FP-Quant family (nvfp, mxfp, fp, int) completed by w_bits. a_bits 16 means weight-only; otherwise the
// activation format is `a_format` when given, else the weight format's natural partner at a_bits (NVFP4 ->
// NVFP4 with a per-token tensor scale, MXFPn -> MXFP{a_bits}, Q4_0/Q4_1 -> Q8_1, INT -> INT{a_bits}, FP8 per row).
// Group sizes of 0 keep the formats' own.
QuantRecipe make_recipe(const std::string& format, int w_bits, int a_bits, int w_group = 0, int a_group = 0,
                        const std::string& a_format = "", const std::string& w_observer = "");

// The activation variant of a format: a per-tensor global scale becomes per-row (per token), so results do
// not depend on which tokens share a batch.
Format activation_variant(Format f);

// Round-to-nearest quantization of every decoder projection's weight (from its current float weight) and
// installation of the activation format. Returns the seconds it took.
double quantize_model_rtn(Transformer& model, const QuantRecipe& recipe, bool progress = true);

// Sets the activation-quantization and matmul backends of every projection ("" = fastest available).
void set_model_backends(Transformer& model, const std::string& quant_backend, const std::string& matmul_backend);

// Backend pair of a kernel name: "pseudo" -> (reference, pseudo), "real" -> (auto, real), "cuda" -> (cuda, cuda).
std::pair<std::string, std::string> kernel_backends(const std::string& kernel);

// Fails (the backend's own reason, e.g. no GPU) unless the named kernel's backends can run a 4-bit layer on this
// machine: commands call it before loading and quantizing a model, not when the first layer runs.
void check_kernel_runs_here(const std::string& kernel);

}  // namespace fpq
