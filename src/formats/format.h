#pragma once
// Block formats: element type x scale type x group size, plus the rule that picks each group's scale. One
// registry table (format_table()) names the published formats; any other combination is written as
// "ELEMENT/SCALE/GROUP", e.g. "e3m2/fp16/row" (FP6-LLM's per-row FP6), "int4/fp16/g128", "e2m1/e4m3/g16".
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/element_type.h"
#include "formats/scale_type.h"

namespace fpq {

// How a group's scale is chosen.
enum class ScaleRule : uint8_t {
  Mx,           // OCP MX v1.0: 2^(floor(log2(amax)) - emax_elem), an E8M0 shared exponent
  Absmax,       // amax / scale_scale, rounded to the scale type (the "absmax observer")
  Mse,          // the scale in a grid of shrunken absmax scales that minimises the group's squared error
  FourOverSix,  // per group, absmax mapped to 6 or to 4, whichever gives the lower squared error (E2M1)
  MinMax,       // asymmetric: (max - min) / (2^bits - 1) with an integer zero point
  GgmlQ4_0,     // llama.cpp Q4_0: d = (signed value of largest magnitude) / -8
  GgmlQ4_1,     // llama.cpp Q4_1: d = (max - min) / 15, m = min
  GgmlQ8_0,     // llama.cpp Q8_0 / Q8_1: d = amax / 127, round half away from zero
};

// How scales and codes are laid out in memory.
enum class Layout : uint8_t {
  Planar,   // codes row-major, packed LSB-first; scales row-major per (row, group); zero points likewise
  GgmlQ4_0, // llama.cpp blocks, byte for byte: {f16 d; u8 qs[16]}, qs[j] = q[j] | q[j+16] << 4
  GgmlQ4_1, // {f16 d; f16 m; u8 qs[16]}
  GgmlQ8_0, // {f16 d; i8 qs[32]}
  GgmlQ8_1, // {f16 d; f16 s; i8 qs[32]}, s = d * sum(qs)
};

// The per-tensor FP32 scale that NVFP4 multiplies on top of its block scales.
enum class GlobalScale : uint8_t { None, PerTensor, PerRow };

struct Format {
  std::string name;  // registry name, or the canonical "ELEMENT/SCALE/GROUP" spelling
  const ElementType* element = nullptr;
  ScaleType scale = ScaleType::None;
  int group = 0;  // elements per scale; 0 = one scale per row
  ScaleRule rule = ScaleRule::Absmax;
  float scale_scale = 0;  // the value a group's absmax maps to; 0 = the element's largest value
  GlobalScale global = GlobalScale::None;
  Layout layout = Layout::Planar;

  bool asymmetric() const { return rule == ScaleRule::MinMax || rule == ScaleRule::GgmlQ4_1; }
  bool is_ggml() const { return layout != Layout::Planar; }
  int group_for(int64_t cols) const { return group > 0 ? group : int(cols); }
  float effective_scale_scale() const { return scale_scale > 0 ? scale_scale : element->max_value; }
  // Storage bits per value, counting codes, scales, zero points / ggml extras, for rows of `cols` values
  // (the per-tensor global scale is not counted).
  double bits_per_value(int64_t cols = 4096) const;
  // Canonical spelling that parse_format reads back to an equal format.
  std::string spec() const;
};

struct FormatInfo {
  std::string name;
  std::string description;
  Format format;
};

// Every named format, in display order (one row each in `fpq formats`).
const std::vector<FormatInfo>& format_table();

// Parses a format name from the table or an "ELEMENT/SCALE/GROUP[/RULE]" spelling (GROUP: g16, 32, row).
// Unknown names are an error listing what exists.
Format parse_format(std::string_view spec);

// Overrides of a parsed format (CLI --group-size / --scale-rule / --scale-scale); checks the combination.
Format with_options(Format f, std::optional<int> group, std::optional<ScaleRule> rule, std::optional<float> scale_scale);

ScaleRule parse_scale_rule(std::string_view name);
std::string_view scale_rule_name(ScaleRule r);

// Maps FP-Quant style (format family, bits) pairs to formats: ("nvfp", 4) -> nvfp4, ("mxfp", 4) -> mxfp4,
// ("mxfp", 6) -> mxfp6_e2m3, ("mxfp", 8) -> mxfp8_e4m3, ("fp", 4) -> e2m1/fp16/g{group}, ("int", 4) -> int4...
Format format_from_family(std::string_view family, int bits, int group);

// Checks that a format can quantize rows of `cols` values (cols a multiple of the group, byte-aligned rows).
void check_format_cols(const Format& f, int64_t cols);

}  // namespace fpq
