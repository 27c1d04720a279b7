#pragma once
// The format options shared by qdq and quantize: --format, --group-size, --scale-rule, --scale-scale,
// --rounding, --seed, --global-scale.
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "formats/format.h"
#include "formats/quantize.h"

namespace fpq::cli {

struct FormatOptions {
  std::string format;
  std::optional<int> group_size;
  std::optional<std::string> scale_rule;
  std::optional<float> scale_scale;
  std::string rounding = "rne";
  uint64_t seed = 0;
  std::optional<float> global_scale;

  void add(CLI::App* cmd, bool format_required = true);
  Format resolve_format() const;
  QuantizeOptions resolve_options() const;
};

}  // namespace fpq::cli
