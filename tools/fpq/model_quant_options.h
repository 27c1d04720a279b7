#pragma once
// The options of quantizing a model with a method (fpq quantize --model, fpq eval --method): method, formats,
// transform, GPTQ and calibration settings.
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "model/calibrate.h"
#include "model/tokenizer.h"

namespace fpq::cli {

struct ModelQuantArgs {
  std::string model, method, format, a_format, w_observer, transform = "identity", calib_data;
  int w_bits = 0, a_bits = 16, w_group = 0, a_group = 0;
  int64_t transform_block = 0, num_sequences = 32, seq_len = 512, arc_residual = -1;
  std::optional<uint64_t> sign_seed;
  double percdamp = 0.01;
  bool act_order = false, true_sequential = false, no_fuse_global = false;

  // with_model_and_format: also --model and the weight bits/format options (fpq quantize); fpq eval has its own.
  void add(CLI::App* cmd, bool with_model_and_bits = true);
  // The options for the weight format `format` (set by the caller when the command has its own --format).
  ModelQuantOptions resolve() const;
  ModelQuantOptions resolve_for(const std::string& weight_format) const;
  bool method_given() const { return !method.empty(); }
  // Calibration tokens for the method (empty when it needs none and no --calib-data was given).
  std::vector<int32_t> calibration_tokens(const Tokenizer& tok, const ModelQuantOptions& opt) const;
};

}  // namespace fpq::cli
