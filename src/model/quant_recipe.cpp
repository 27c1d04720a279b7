#include "model/quant_recipe.h"

#include <chrono>

#include <fmt/format.h>

#include "model/linear_backend.h"
#include "util/error.h"
#include "util/progress.h"

namespace fpq {

Format activation_variant(Format f) {
  if (f.global == GlobalScale::PerTensor) {
    f.global = GlobalScale::PerRow;
    f.name = f.spec();
  }
  return f;
}

static bool is_family(const std::string& s) { return s == "nvfp" || s == "mxfp" || s == "fp" || s == "int"; }

static Format natural_activation(const Format& w, const std::string& family, int a_bits, int a_group) {
  const std::string e = w.element->name;
  auto group_or = [&](Format f) { return a_group > 0 ? with_options(f, a_group, std::nullopt, std::nullopt) : f; };
  if (w.layout == Layout::GgmlQ4_0 || w.layout == Layout::GgmlQ4_1) {
    if (a_bits != 8) fail("llama.cpp 4-bit weights pair with 8-bit Q8_1 activations (--a-bits 8), got {}", a_bits);
    return parse_format("q8_1");
  }
  if (w.layout == Layout::GgmlQ8_0) {
    if (a_bits != 8) fail("Q8_0 weights pair with 8-bit Q8_0 activations (--a-bits 8), got {}", a_bits);
    return parse_format("q8_0");
  }
  const bool nv = family == "nvfp" || (w.scale == ScaleType::E4M3 && e == "e2m1");
  const bool mx = family == "mxfp" || w.scale == ScaleType::E8M0;
  if (nv) {
    if (a_bits == 4) return group_or(parse_format(w.rule == ScaleRule::FourOverSix ? "nvfp4_4o6" : "nvfp4"));
    if (a_bits == 8) return parse_format("fp8_e4m3");
  } else if (mx) {
    if (a_bits == 4) return group_or(parse_format("mxfp4"));
    if (a_bits == 6) return group_or(parse_format("mxfp6_e2m3"));
    if (a_bits == 8) return group_or(parse_format("mxfp8_e4m3"));
  } else if (w.element->kind == NumberKind::Int || family == "int") {
    if (a_bits == 8) return a_group > 0 ? parse_format(fmt::format("int8/fp16/g{}", a_group)) : parse_format("int8");
    if (a_bits == 4) return parse_format(fmt::format("int4/fp16/g{}", a_group > 0 ? a_group : 32));
  } else {
    if (a_bits == 8) return parse_format("fp8_e4m3");
    if (a_bits == 4) return parse_format(fmt::format("e2m1/fp16/g{}", a_group > 0 ? a_group : 32));
    if (a_bits == 6) return parse_format(fmt::format("e2m3/fp16/g{}", a_group > 0 ? a_group : 32));
  }
  fail("no natural {}-bit activation format for weights '{}'; pass --a-format", a_bits, w.name);
}

QuantRecipe make_recipe(const std::string& format, int w_bits, int a_bits, int w_group, int a_group,
                        const std::string& a_format, const std::string& w_observer) {
  QuantRecipe r;
  if (a_bits != 16 && a_bits != 8 && a_bits != 6 && a_bits != 4)
    fail("--a-bits must be 4, 6, 8 or 16 (16: activations stay float), got {}", a_bits);
  if (w_bits >= 16 || format == "none" || format == "f32" || format == "bf16") {
    r.name = "unquantized";
    if (a_bits != 16 || !a_format.empty()) fail("quantized activations need quantized weights (give --format)");
    return r;
  }
  Format w = is_family(format) ? format_from_family(format, w_bits, w_group) : parse_format(format);
  if (!is_family(format)) {
    if (w_bits > 0 && w_bits != w.element->bits)
      fail("--w-bits {} does not match format '{}' ({}-bit elements)", w_bits, w.name, w.element->bits);
    if (w_group > 0 && w_group != w.group) w = with_options(w, w_group, std::nullopt, std::nullopt);
  }
  if (!w_observer.empty() && w_observer != "absmax" && w_observer != "minmax") {
    if (w_observer != "mse") fail("unknown weight observer '{}' (absmax or mse)", w_observer);
    if (w.is_ggml()) fail("llama.cpp formats have a fixed scale rule (no --w-observer mse)");
    r.weight_observer = ScaleRule::Mse;
    w = with_options(w, std::nullopt, ScaleRule::Mse, std::nullopt);
  }
  r.weight = w;
  if (!a_format.empty()) {
    r.activation = activation_variant(parse_format(a_format));
  } else if (a_bits != 16) {
    r.activation = activation_variant(natural_activation(w, is_family(format) ? format : "", a_bits, a_group));
  }
  r.name = fmt::format("{} W{}A{}", is_family(format) ? w.name : format, w.element->bits,
                       r.activation ? std::to_string(r.activation->element->bits) : "16");
  return r;
}

double quantize_model_rtn(Transformer& model, const QuantRecipe& recipe, bool progress) {
  const auto t0 = std::chrono::steady_clock::now();
  auto layers = model.linears();
  Progress bar("quantize " + recipe.name, int64_t(layers.size()), "layers", progress);
  for (auto& [name, lin] : layers) {
    if (recipe.weight) {
      std::vector<float> w = lin->weight_as_float();
      lin->set_quantized_weight(quantize(*recipe.weight, w.data(), lin->out_features(), lin->weight_in_features()));
    }
    if (recipe.activation) lin->set_activation_quant(ActivationQuant{*recipe.activation, std::nullopt});
    else lin->set_activation_quant(std::nullopt);
    bar.advance();
  }
  bar.finish();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void set_model_backends(Transformer& model, const std::string& quant_backend, const std::string& matmul_backend) {
  for (auto& [name, lin] : model.linears()) lin->set_backends(quant_backend, matmul_backend);
}

std::pair<std::string, std::string> kernel_backends(const std::string& kernel) {
  if (kernel == "pseudo") return {"reference", "pseudo"};
  if (kernel == "real") return {"", "real"};
  if (kernel == "real-fast") return {"", "real-fast"};
  if (kernel == "cuda") return {"cuda", "cuda"};
  if (kernel == "auto") return {"", ""};
  fail("unknown kernel '{}' (pseudo, real, real-fast, cuda, auto)", kernel);
}

void check_kernel_runs_here(const std::string& kernel) {
  const auto [qb, mb] = kernel_backends(kernel);
  ensure_builtin_backends();
  // (a small MXFP4 W4A4 layer: what every backend serves when it can run at all)
  const Format f = parse_format("mxfp4");
  const LinearSpec spec{256, 256, &f, &f};
  (void)resolve_activation_quantizer(qb, spec);
  (void)resolve_matmul_backend(mb, spec);
}

}  // namespace fpq
