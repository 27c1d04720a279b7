#include "model/calibrate.h"

#include <chrono>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "model/quant_transforms.h"
#include "util/error.h"
#include "util/progress.h"

namespace fpq {

std::vector<std::vector<int32_t>> calibration_windows(const std::vector<int32_t>& tokens, const CalibrationOptions& opt) {
  if (opt.num_sequences < 1 || opt.seq_len < 2) fail("calibration needs at least one sequence of 2+ tokens");
  const int64_t available = int64_t(tokens.size()) / opt.seq_len;
  if (available < opt.num_sequences)
    fail("the calibration text has {} tokens: {} sequences of {} need {}", tokens.size(), opt.num_sequences, opt.seq_len,
         opt.num_sequences * opt.seq_len);
  std::vector<std::vector<int32_t>> w;
  for (int64_t i = 0; i < opt.num_sequences; ++i)
    w.emplace_back(tokens.begin() + i * opt.seq_len, tokens.begin() + (i + 1) * opt.seq_len);
  return w;
}

namespace {

// The projection groups that share an input, in forward order.
const std::vector<std::vector<std::string>>& projection_groups() {
  static const std::vector<std::vector<std::string>> g = {
      {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, {"self_attn.o_proj"},
      {"mlp.gate_proj", "mlp.up_proj"}, {"mlp.down_proj"}};
  return g;
}

QuantLinear& projection(DecoderLayer& L, const std::string& name) {
  if (name == "self_attn.q_proj") return L.q_proj;
  if (name == "self_attn.k_proj") return L.k_proj;
  if (name == "self_attn.v_proj") return L.v_proj;
  if (name == "self_attn.o_proj") return L.o_proj;
  if (name == "mlp.gate_proj") return L.gate_proj;
  if (name == "mlp.up_proj") return L.up_proj;
  if (name == "mlp.down_proj") return L.down_proj;
  fail("internal: unknown projection {}", name);
}

// Installs a quantized projection into the module: transform, weight, activation format.
void install(QuantLinear& lin, quant::QuantizedLinearWeights&& q) {
  std::shared_ptr<const InputTransform> t;
  // The residual is computed with the same activation format (per-token tensor scale) the module quantizes with.
  std::optional<Format> act;
  if (q.activation_format) act = activation_variant(*q.activation_format);
  if (q.arc) t = make_arc_input_transform(*q.arc, act, std::nullopt);
  else if (q.transform && !q.transform->is_identity()) t = make_block_input_transform(*q.transform);
  lin.set_transform(t);
  lin.set_quantized_weight(std::move(q.weight));
  if (act) lin.set_activation_quant(ActivationQuant{*act, std::nullopt});
  else lin.set_activation_quant(std::nullopt);
}

}  // namespace

ModelQuantReport quantize_model(Transformer& model, const std::vector<int32_t>& calib_tokens, const ModelQuantOptions& opt) {
  register_quant_transform_loaders();
  if (!opt.recipe.weight) fail("quantizing a model needs a weight format");
  const auto t0 = std::chrono::steady_clock::now();
  const quant::Method method = opt.method.method;
  const bool needs_calib = quant::method_needs_hessian(method) || quant::method_needs_channel_stats(method);
  ModelQuantReport rep;
  rep.method = std::string(quant::method_name(method));
  for (auto& [name, lin] : model.linears())
    if (lin->quantized_weight()) fail("model layer '{}' is already quantized; start from float weights", name);

  const ModelConfig& c = model.config();
  const int64_t h = c.hidden_size;
  std::vector<std::vector<int32_t>> windows;
  if (needs_calib || !calib_tokens.empty()) windows = calibration_windows(calib_tokens, opt.calibration);
  rep.calibration_tokens = int64_t(windows.size()) * opt.calibration.seq_len;
  const int64_t seq = opt.calibration.seq_len;
  // Hidden states of every calibration sequence at the input of the current layer.
  std::vector<std::vector<float>> hidden(windows.size(), std::vector<float>(windows.empty() ? 0 : size_t(seq * h)));
  for (size_t s = 0; s < windows.size(); ++s) model.embed(windows[s].data(), seq, hidden[s].data());
  KvCache cache(c, std::max<int64_t>(seq, 1));

  Progress bar(fmt::format("quantize {} {}", rep.method, opt.recipe.name), model.num_layers() * 7, "layers",
               opt.progress);
  for (int64_t li = 0; li < model.num_layers(); ++li) {
    DecoderLayer& L = model.layer(li);
    const auto& groups = projection_groups();
    // Groups calibrated together in one pass over the sequences: all four (default) or one at a time.
    std::vector<std::vector<size_t>> passes;
    if (opt.calibration.true_sequential) {
      for (size_t g = 0; g < groups.size(); ++g) passes.push_back({g});
    } else {
      passes.push_back({0, 1, 2, 3});
    }
    for (const auto& pass : passes) {
      std::map<std::string, quant::LayerCalibration> calib;
      std::map<std::string, std::vector<float>> report_rows;  // a few input rows per projection, for the report
      for (size_t g : pass)
        for (const auto& p : groups[g]) calib.emplace(p, quant::LayerCalibration(projection(L, p).in_features(), method));
      if (!windows.empty()) {
        for (size_t s = 0; s < windows.size(); ++s) {
          std::vector<float> tmp = hidden[s];  // this pass only observes
          cache.clear();
          model.layer_forward(li, tmp.data(), seq, cache, [&](int64_t, const std::string& p, const float* x, int64_t m, int64_t in) {
            auto it = calib.find(p);
            if (it == calib.end()) return;
            if (needs_calib) it->second.add_rows(x, m);
            auto& rows = report_rows[p];
            if (rows.size() < size_t(256 * in)) rows.insert(rows.end(), x, x + std::min<int64_t>(m, 64) * in);
          });
        }
      }
      for (size_t g : pass) {
        // Fused q/k/v or gate/up share one weight global scale (after the transform when there is one).
        std::optional<float> fused;
        const auto& names = groups[g];
        if (opt.fuse_global_scales && names.size() > 1 && opt.recipe.weight->global != GlobalScale::None &&
            method != quant::Method::Arc) {
          std::vector<std::vector<float>> ws;
          std::vector<const float*> ptrs;
          std::vector<int64_t> rows;
          for (const auto& p : names) {
            ws.push_back(projection(L, p).weight_as_float());
            ptrs.push_back(ws.back().data());
            rows.push_back(projection(L, p).out_features());
          }
          std::optional<quant::BlockTransform> t;
          const int64_t in = projection(L, names[0]).in_features();
          if (method == quant::Method::MrGptq || opt.method.transform == quant::TransformKind::Hadamard) {
            const int64_t blk = opt.method.transform_block == 0 ? opt.recipe.weight->group_for(in)
                                                                 : (opt.method.transform_block < 0 ? 0 : opt.method.transform_block);
            t = quant::BlockTransform::hadamard(in, blk, opt.method.sign_seed);
          }
          fused = quant::fused_weight_global_scale(*opt.recipe.weight, ptrs, rows, in, t ? &*t : nullptr);
        }
        for (const auto& p : names) {
          QuantLinear& lin = projection(L, p);
          const std::vector<float> w = lin.weight_as_float();
          quant::MethodOptions mo = opt.method;
          if (fused) mo.weight_global_scale = fused;
          const auto t1 = std::chrono::steady_clock::now();
          auto q = quant::quantize_linear_weights(w.data(), lin.out_features(), lin.in_features(), *opt.recipe.weight,
                                                  opt.recipe.activation, needs_calib ? &calib.at(p) : nullptr, mo);
          const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
          install(lin, std::move(q));
          const auto& rows = report_rows[p];
          if (!rows.empty()) {
            const int64_t m = int64_t(rows.size()) / lin.in_features();
            // What the module computes now (transform, activation quantization, quantized weight) vs x W^T.
            std::vector<float> yq(size_t(m * lin.out_features()));
            lin.forward(rows.data(), m, yq.data());
            std::vector<float> y(size_t(m * lin.out_features()));
            QuantLinear orig(lin.out_features(), lin.in_features(), w);
            orig.set_backends("", "pseudo");
            orig.forward(rows.data(), m, y.data());
            quant::LayerError e = quant::output_error(y.data(), yq.data(), int64_t(y.size()));
            e.rows = m;
            rep.layers.add(fmt::format("model.layers.{}.{}", li, p), rep.method, e, secs);
          }
          bar.advance();
        }
      }
    }
    // Propagate the calibration sequences through the quantized layer.
    for (size_t s = 0; s < windows.size(); ++s) {
      cache.clear();
      model.layer_forward(li, hidden[s].data(), seq, cache);
    }
  }
  bar.finish();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rep.config = {{"method", rep.method},
                {"recipe", opt.recipe.name},
                {"weight_format", opt.recipe.weight->spec()},
                {"activation_format", opt.recipe.activation ? nlohmann::json(opt.recipe.activation->spec()) : nlohmann::json(nullptr)},
                {"transform", opt.method.transform == quant::TransformKind::Hadamard || method == quant::Method::MrGptq ? "hadamard" : "identity"},
                {"transform_block", opt.method.transform_block},
                {"calibration_sequences", int64_t(windows.size())},
                {"calibration_seq_len", opt.calibration.seq_len},
                {"true_sequential", opt.calibration.true_sequential},
                {"fuse_global_scales", opt.fuse_global_scales},
                {"gptq", {{"block_size", opt.method.gptq.block_size}, {"percdamp", opt.method.gptq.percdamp},
                          {"act_order", opt.method.gptq.act_order}, {"static_groups", opt.method.gptq.static_groups}}},
                {"seconds", rep.seconds}};
  return rep;
}

}  // namespace fpq
