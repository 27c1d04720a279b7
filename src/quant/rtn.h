#pragma once
// Round-to-nearest weight quantization with an observer: the format's own scale rule ("absmax" / "minmax" /
// mx / 4o6: ScaleSearch::Format, exactly fpq::quantize) or the format-aware MSE scale search of group_codec.h.
#include <cstdint>
#include <optional>

#include "formats/format.h"
#include "formats/quantize.h"
#include "quant/group_codec.h"

namespace fpq::quant {

struct RtnOptions {
  ScaleSearch scale_search = ScaleSearch::Format;
  MseOptions mse;
  std::optional<float> global_scale;  // fixed per-tensor / per-row global scale instead of the data's
};

// Quantizes a row-major rows x cols weight matrix (rows = output channels; groups run along each row).
QuantizedTensor rtn_quantize(const Format& f, const float* w, int64_t rows, int64_t cols, const RtnOptions& opt = {});

}  // namespace fpq::quant
