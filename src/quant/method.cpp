#include "quant/method.h"

#include <algorithm>
#include <chrono>

#include "quant/rtn.h"
#include "util/error.h"

namespace fpq::quant {

Method parse_method(std::string_view n) {
  if (n == "rtn") return Method::Rtn;
  if (n == "gptq") return Method::Gptq;
  if (n == "mr-gptq" || n == "mrgptq" || n == "mr_gptq") return Method::MrGptq;
  if (n == "4o6" || n == "fouroversix" || n == "four-over-six") return Method::FourOverSix;
  if (n == "arc" || n == "arcquant") return Method::Arc;
  fail("unknown quantization method '{}' (choose rtn, gptq, mr-gptq, 4o6, arc)", std::string(n));
}

std::string_view method_name(Method m) {
  switch (m) {
    case Method::Rtn: return "rtn";
    case Method::Gptq: return "gptq";
    case Method::MrGptq: return "mr-gptq";
    case Method::FourOverSix: return "4o6";
    case Method::Arc: return "arc";
  }
  return "?";
}

bool method_needs_hessian(Method m) { return m == Method::Gptq || m == Method::MrGptq; }
bool method_needs_channel_stats(Method m) { return m == Method::Arc; }

MethodOptions method_defaults(Method m) {
  MethodOptions o;
  o.method = m;
  if (m == Method::MrGptq) {
    o.transform = TransformKind::Hadamard;
    o.gptq = MrGptqOptions::defaults();
  }
  return o;
}

LayerCalibration::LayerCalibration(int64_t in, Method m) {
  if (method_needs_hessian(m)) hessian_.emplace(in);
  if (method_needs_channel_stats(m)) stats_.emplace(in);
}

void LayerCalibration::add_rows(const float* x, int64_t rows) {
  if (hessian_) hessian_->add_rows(x, rows);
  if (stats_) stats_->add_rows(x, rows);
  rows_ += rows;
}

Format four_over_six_variant(const Format& f) {
  if (f.element->name != "e2m1" || f.scale != ScaleType::E4M3)
    fail("four-over-six needs an NVFP4-style format (e2m1 elements, e4m3 scales); got '{}'", f.name);
  if (f.rule == ScaleRule::FourOverSix) return f;
  return with_options(f, std::nullopt, ScaleRule::FourOverSix, std::nullopt);
}

float fused_weight_global_scale(const Format& f, const std::vector<const float*>& weights, const std::vector<int64_t>& rows,
                                int64_t in, const BlockTransform* transform) {
  if (weights.size() != rows.size() || weights.empty()) fail("fused global scale: need one row count per weight");
  float g = 0.0f;
  for (size_t i = 0; i < weights.size(); ++i) {
    std::vector<float> w(weights[i], weights[i] + rows[i] * in);
    if (transform) transform->fold_weight(w.data(), rows[i]);
    const auto gs = global_scales_for(f, w.data(), rows[i], in);
    if (gs.size() != 1) fail("fused global scale: format '{}' has no per-tensor global scale", f.name);
    g = std::max(g, gs[0]);
  }
  return g;
}

QuantizedLinearWeights quantize_linear_weights(const float* w, int64_t out, int64_t in, const Format& wf,
                                               const std::optional<Format>& af, const LayerCalibration* calib,
                                               const MethodOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  QuantizedLinearWeights r;
  r.weight_format = wf;
  r.activation_format = af;
  auto need_hessian = [&]() -> std::vector<double> {
    if (!calib || !calib->hessian()) fail("method {} needs calibration statistics (X^T X) of the layer inputs", method_name(opt.method));
    return calib->hessian()->matrix();
  };
  switch (opt.method) {
    case Method::Rtn:
    case Method::FourOverSix:
    case Method::Gptq: {
      if (opt.method == Method::FourOverSix) {
        r.weight_format = four_over_six_variant(wf);
        if (af) r.activation_format = four_over_six_variant(*af);
      }
      const Format& f = r.weight_format;
      std::vector<float> wt(w, w + out * in);
      if (opt.transform == TransformKind::Hadamard) {
        int64_t block = opt.transform_block == 0 ? f.group_for(in) : (opt.transform_block < 0 ? in : opt.transform_block);
        r.transform = BlockTransform::hadamard(in, block, opt.sign_seed);
        r.transform->fold_weight(wt.data(), out);
      } else if (opt.transform != TransformKind::Identity) {
        fail("quantize_linear_weights: dense transforms go through the BlockTransform API directly");
      }
      if (opt.method == Method::Gptq) {
        std::vector<double> h = need_hessian();
        if (r.transform) r.transform->transform_hessian(h.data());
        GptqOptions go = opt.gptq;
        if (opt.weight_global_scale) go.global_scale = opt.weight_global_scale;
        GptqResult g = gptq_quantize(f, wt.data(), out, in, h.data(), go);
        r.weight = std::move(g.q);
        r.gptq = g.stats;
      } else {
        RtnOptions ro;
        ro.scale_search = opt.observer;
        ro.mse = opt.mse;
        ro.global_scale = opt.weight_global_scale;
        r.weight = rtn_quantize(f, wt.data(), out, in, ro);
      }
      break;
    }
    case Method::MrGptq: {
      const std::vector<double> h = need_hessian();
      MrGptqOptions mo;
      mo.gptq = opt.gptq;
      if (opt.weight_global_scale) mo.gptq.global_scale = opt.weight_global_scale;
      mo.hadamard_block = opt.transform_block;
      mo.sign_seed = opt.sign_seed;
      MrGptqResult m = mr_gptq_quantize(wf, w, out, in, h.data(), mo);
      r.weight = std::move(m.q);
      r.transform = std::move(m.transform);
      r.gptq = m.stats;
      break;
    }
    case Method::Arc: {
      if (!calib || !calib->channel_stats()) fail("method arc needs per-channel calibration statistics of the layer inputs");
      if (opt.transform != TransformKind::Identity) fail("method arc does not combine with an input transform");
      ArcOptions ao = opt.arc;
      if (!af) {  // weight-only: the activation residual is zero, carry the weight residual instead
        ao.activation_residual = false;
        ao.weight_residual = true;
      }
      r.arc = arc_plan(*calib->channel_stats(), wf, ao);
      RtnOptions ro;
      ro.scale_search = opt.observer;
      ro.mse = opt.mse;
      ro.global_scale = opt.weight_global_scale;
      r.weight = arc_quantize_weight(wf, w, out, *r.arc, ro);
      break;
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace fpq::quant
