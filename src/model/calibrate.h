#pragma once
// Quantizing a whole model with a method of the quant layer (rtn, gptq, mr-gptq, 4o6, arc), GPTQ style: layer by
// layer over calibration sequences, each decoder layer's projections calibrated on the inputs they receive
// once every earlier layer is already quantized (weights and activations, as at inference). Only per-layer
// statistics are kept (X^T X for GPTQ, per-channel statistics for ARC), never the activations themselves; the
// hidden states of the calibration sequences at the current layer are the only large buffer.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/quant_recipe.h"
#include "model/transformer.h"
#include "quant/method.h"
#include "quant/report.h"

namespace fpq {

struct CalibrationOptions {
  int64_t num_sequences = 32;
  int64_t seq_len = 512;
  bool true_sequential = false;  // re-run the layer after each projection group ([qkv], [o], [gate,up], [down])
};

struct ModelQuantOptions {
  QuantRecipe recipe;
  quant::MethodOptions method;
  CalibrationOptions calibration;
  bool fuse_global_scales = true;  // q/k/v and gate/up share one weight global scale (FP-Quant's default)
  bool progress = true;            // a bar with ETA on stderr
};

struct ModelQuantReport {
  std::string method;
  quant::LayerReport layers;
  double seconds = 0;
  int64_t calibration_tokens = 0;
  nlohmann::json config;  // the whole quantization config, as written into checkpoints
};

// The calibration token windows: `num_sequences` consecutive windows of `seq_len` tokens from `tokens`.
std::vector<std::vector<int32_t>> calibration_windows(const std::vector<int32_t>& tokens, const CalibrationOptions& opt);

// Quantizes every decoder projection of `model` (which must hold float weights). `calib_tokens` may be empty
// for methods that need no calibration (rtn, 4o6); the per-layer error report then stays empty.
ModelQuantReport quantize_model(Transformer& model, const std::vector<int32_t>& calib_tokens, const ModelQuantOptions& opt);

}  // namespace fpq
