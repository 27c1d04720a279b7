#include "formats/format.h"

#include <cmath>

#include <fmt/format.h>

#include "util/error.h"

namespace fpq {
namespace {

Format make(const std::string& name, const char* elem, ScaleType s, int group, ScaleRule rule, float ss = 0,
            GlobalScale g = GlobalScale::None, Layout layout = Layout::Planar) {
  Format f;
  f.name = name;
  f.element = &element_type(elem);
  f.scale = s;
  f.group = group;
  f.rule = rule;
  f.scale_scale = ss;
  f.global = g;
  f.layout = layout;
  return f;
}

std::vector<FormatInfo> build_table() {
  using S = ScaleType;
  using R = ScaleRule;
  std::vector<FormatInfo> t;
  auto add = [&](const char* name, const char* desc, Format f) { t.push_back({name, desc, std::move(f)}); };
  add("mxfp4", "OCP MXFP4: E2M1, E8M0 shared exponent per 32", make("mxfp4", "e2m1", S::E8M0, 32, R::Mx));
  add("mxfp6_e2m3", "OCP MXFP6: E2M3, E8M0 per 32", make("mxfp6_e2m3", "e2m3", S::E8M0, 32, R::Mx));
  add("mxfp6_e3m2", "OCP MXFP6: E3M2, E8M0 per 32", make("mxfp6_e3m2", "e3m2", S::E8M0, 32, R::Mx));
  add("mxfp8_e4m3", "OCP MXFP8: E4M3, E8M0 per 32", make("mxfp8_e4m3", "e4m3", S::E8M0, 32, R::Mx));
  add("mxfp8_e5m2", "OCP MXFP8: E5M2, E8M0 per 32", make("mxfp8_e5m2", "e5m2", S::E8M0, 32, R::Mx));
  add("mxint8", "OCP MXINT8: 8-bit fixed point (2^-6), E8M0 per 32", make("mxint8", "mxint8", S::E8M0, 32, R::Mx));
  add("nvfp4", "NVIDIA NVFP4: E2M1, E4M3 scale per 16 (absmax->6), FP32 tensor scale",
      make("nvfp4", "e2m1", S::E4M3, 16, R::Absmax, 6.0f, GlobalScale::PerTensor));
  add("nvfp4_4o6", "NVFP4 with Four-Over-Six block scales (absmax->6 or ->4)",
      make("nvfp4_4o6", "e2m1", S::E4M3, 16, R::FourOverSix, 6.0f, GlobalScale::PerTensor));
  add("q4_0", "llama.cpp Q4_0 blocks: 4-bit, f16 scale per 32",
      make("q4_0", "int4", S::F16, 32, R::GgmlQ4_0, 8.0f, GlobalScale::None, Layout::GgmlQ4_0));
  add("q4_1", "llama.cpp Q4_1 blocks: 4-bit, f16 scale and min per 32",
      make("q4_1", "uint4", S::F16, 32, R::GgmlQ4_1, 15.0f, GlobalScale::None, Layout::GgmlQ4_1));
  add("q8_0", "llama.cpp Q8_0 blocks: 8-bit, f16 scale per 32",
      make("q8_0", "int8", S::F16, 32, R::GgmlQ8_0, 127.0f, GlobalScale::None, Layout::GgmlQ8_0));
  add("q8_1", "llama.cpp Q8_1 blocks: 8-bit, f16 scale and scaled sum per 32",
      make("q8_1", "int8", S::F16, 32, R::GgmlQ8_0, 127.0f, GlobalScale::None, Layout::GgmlQ8_1));
  add("fp8_e4m3", "FP8 E4M3, FP32 scale per row (per channel / token)", make("fp8_e4m3", "e4m3", S::F32, 0, R::Absmax));
  add("fp8_e5m2", "FP8 E5M2, FP32 scale per row", make("fp8_e5m2", "e5m2", S::F32, 0, R::Absmax));
  add("fp6_e3m2", "FP6-LLM FP6 E3M2, FP16 scale per row", make("fp6_e3m2", "e3m2", S::F16, 0, R::Absmax));
  add("fp6_e2m3", "FP6 E2M3, FP16 scale per row", make("fp6_e2m3", "e2m3", S::F16, 0, R::Absmax));
  add("fp5_e2m2", "FP5 E2M2, FP16 scale per row", make("fp5_e2m2", "e2m2", S::F16, 0, R::Absmax));
  add("fp5_e3m1", "FP5 E3M1, FP16 scale per row", make("fp5_e3m1", "e3m1", S::F16, 0, R::Absmax));
  add("fp4_e2m1", "FP4 E2M1, FP16 scale per row", make("fp4_e2m1", "e2m1", S::F16, 0, R::Absmax));
  add("fp4_e3m0", "FP4 E3M0, FP16 scale per row", make("fp4_e3m0", "e3m0", S::F16, 0, R::Absmax));
  add("fp3_e2m0", "FP3 E2M0, FP16 scale per row", make("fp3_e2m0", "e2m0", S::F16, 0, R::Absmax));
  add("int4", "INT4 symmetric (absmax->7), FP16 scale per 128", make("int4", "int4", S::F16, 128, R::Absmax, 7.0f));
  add("int4_asym", "INT4 asymmetric (min-max, uint8 zero point), FP16 scale per 128",
      make("int4_asym", "uint4", S::F16, 128, R::MinMax));
  add("int8", "INT8 symmetric (absmax->127), FP32 scale per row", make("int8", "int8", S::F32, 0, R::Absmax, 127.0f));
  add("int8_asym", "INT8 asymmetric (min-max, uint8 zero point), FP32 scale per row",
      make("int8_asym", "uint8", S::F32, 0, R::MinMax));
  return t;
}

std::string group_text(int g) { return g == 0 ? "row" : "g" + std::to_string(g); }

}  // namespace

const std::vector<FormatInfo>& format_table() {
  static const std::vector<FormatInfo> t = build_table();
  return t;
}

std::string_view scale_rule_name(ScaleRule r) {
  switch (r) {
    case ScaleRule::Mx: return "mx";
    case ScaleRule::Absmax: return "absmax";
    case ScaleRule::Mse: return "mse";
    case ScaleRule::FourOverSix: return "4o6";
    case ScaleRule::MinMax: return "minmax";
    case ScaleRule::GgmlQ4_0: return "q4_0";
    case ScaleRule::GgmlQ4_1: return "q4_1";
    case ScaleRule::GgmlQ8_0: return "q8_0";
  }
  return "?";
}

ScaleRule parse_scale_rule(std::string_view n) {
  if (n == "mx" || n == "ocp") return ScaleRule::Mx;
  if (n == "absmax" || n == "minmax_sym" || n == "max") return ScaleRule::Absmax;
  if (n == "mse") return ScaleRule::Mse;
  if (n == "4o6" || n == "four-over-six" || n == "fouroversix") return ScaleRule::FourOverSix;
  if (n == "minmax" || n == "asym") return ScaleRule::MinMax;
  fail("unknown scale rule '{}' (choose mx, absmax, mse, 4o6, minmax)", std::string(n));
}

double Format::bits_per_value(int64_t cols) const {
  switch (layout) {
    case Layout::GgmlQ4_0: return 18.0 * 8 / 32;
    case Layout::GgmlQ4_1: return 20.0 * 8 / 32;
    case Layout::GgmlQ8_0: return 34.0 * 8 / 32;
    case Layout::GgmlQ8_1: return 36.0 * 8 / 32;
    case Layout::Planar: break;
  }
  const double g = double(group_for(cols));
  double b = element->bits + scale_type_bytes(scale) * 8.0 / g;
  if (rule == ScaleRule::MinMax) b += 8.0 / g;
  return b;
}

std::string Format::spec() const {
  for (const auto& info : format_table()) {
    const Format& d = info.format;
    if (d.element == element && d.scale == scale && d.group == group && d.rule == rule &&
        d.scale_scale == scale_scale && d.global == global && d.layout == layout)
      return info.name;
  }
  std::string s = fmt::format("{}/{}/{}/{}", element->name, scale_type_name(scale), group_text(group), scale_rule_name(rule));
  if (scale_scale > 0) s += fmt::format("/ss{}", scale_scale);
  if (global == GlobalScale::PerTensor) s += "/global";
  if (global == GlobalScale::PerRow) s += "/rowglobal";
  return s;
}

static void check_combination(const Format& f, const std::string& what) {
  const ElementType& e = *f.element;
  if (f.group < 0) fail("format '{}': group size must be positive", what);
  if (f.group > 0 && (int64_t(f.group) * e.bits) % 8 != 0)
    fail("format '{}': group {} of {}-bit codes does not fill whole bytes", what, f.group, e.bits);
  if (f.rule == ScaleRule::Mx && f.scale != ScaleType::E8M0)
    fail("format '{}': the mx scale rule needs an e8m0 scale", what);
  if (f.rule == ScaleRule::FourOverSix && e.name != "e2m1")
    fail("format '{}': four-over-six is defined for e2m1 elements only", what);
  if (f.rule == ScaleRule::MinMax && (e.kind != NumberKind::Int || e.is_signed))
    fail("format '{}': the minmax (asymmetric) rule needs an unsigned int element (uint4, uint8)", what);
  if (f.rule != ScaleRule::MinMax && f.rule != ScaleRule::GgmlQ4_1 && e.kind == NumberKind::Int && !e.is_signed)
    fail("format '{}': unsigned int elements need the minmax rule", what);
  if (f.global != GlobalScale::None && (f.scale == ScaleType::E8M0 || f.scale == ScaleType::None || f.scale == ScaleType::F32))
    fail("format '{}': a global scale needs an e4m3, fp16 or bf16 group scale", what);
  if (f.is_ggml() && f.group != 32) fail("format '{}': llama.cpp blocks hold exactly 32 values", what);
  if (f.scale == ScaleType::None && f.global != GlobalScale::None)
    fail("format '{}': a global scale needs a group scale", what);
}

Format with_options(Format f, std::optional<int> group, std::optional<ScaleRule> rule, std::optional<float> ss) {
  if (group) {
    if (f.is_ggml() && *group != 32) fail("format '{}' has a fixed group size of 32", f.name);
    if (*group < 0) fail("--group-size must be positive (or 0 for one group per row)");
    f.group = *group;
  }
  if (rule) {
    if (f.is_ggml()) fail("format '{}' has a fixed scale rule", f.name);
    f.rule = *rule;
    if (*rule == ScaleRule::FourOverSix) f.scale_scale = 6.0f;
  }
  if (ss) {
    if (!(*ss > 0)) fail("--scale-scale must be positive");
    f.scale_scale = *ss;
  }
  check_combination(f, f.name);
  f.name = f.spec();
  return f;
}

Format parse_format(std::string_view spec_in) {
  std::string spec(spec_in);
  for (auto& c : spec) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& info : format_table())
    if (info.name == spec) return info.format;
  if (spec.find('/') == std::string::npos) {
    std::string names;
    for (const auto& info : format_table()) names += (names.empty() ? "" : ", ") + info.name;
    fail("unknown format '{}' (known: {}; or ELEMENT/SCALE/GROUP such as e3m2/fp16/row)", std::string(spec_in), names);
  }
  std::vector<std::string> parts;
  for (size_t p = 0;;) {
    const size_t q = spec.find('/', p);
    parts.push_back(spec.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  Format f;
  f.element = &element_type(parts[0]);
  f.scale = parts.size() > 1 ? parse_scale_type(parts[1]) : ScaleType::None;
  f.group = 0;
  if (parts.size() > 2) {
    std::string g = parts[2];
    if (g == "row" || g == "channel" || g == "0") {
      f.group = 0;
    } else {
      if (!g.empty() && g[0] == 'g') g = g.substr(1);
      char* end = nullptr;
      const long v = std::strtol(g.c_str(), &end, 10);
      if (g.empty() || *end != '\0' || v <= 0) fail("format '{}': bad group '{}' (use g16, 32, row)", spec, parts[2]);
      f.group = int(v);
    }
  }
  if (f.scale == ScaleType::E8M0) f.rule = ScaleRule::Mx;
  else if (f.element->kind == NumberKind::Int && !f.element->is_signed) f.rule = ScaleRule::MinMax;
  else f.rule = ScaleRule::Absmax;
  for (size_t i = 3; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p == "global") f.global = GlobalScale::PerTensor;
    else if (p == "rowglobal") f.global = GlobalScale::PerRow;
    else if (p.rfind("ss", 0) == 0) {
      std::string v = p.substr(p.size() > 2 && p[2] == '=' ? 3 : 2);
      char* end = nullptr;
      f.scale_scale = std::strtof(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(f.scale_scale > 0)) fail("format '{}': bad scale scale '{}'", spec, p);
    } else {
      f.rule = parse_scale_rule(p);
    }
  }
  if (f.rule == ScaleRule::FourOverSix && f.scale_scale == 0) f.scale_scale = 6.0f;
  check_combination(f, spec);
  f.name = f.spec();
  return f;
}

Format format_from_family(std::string_view family, int bits, int group) {
  std::string fam(family);
  Format f;
  if (fam == "nvfp") {
    if (bits != 4) fail("nvfp has 4-bit elements only (got {} bits)", bits);
    f = parse_format("nvfp4");
  } else if (fam == "mxfp") {
    if (bits == 4) f = parse_format("mxfp4");
    else if (bits == 6) f = parse_format("mxfp6_e2m3");
    else if (bits == 8) f = parse_format("mxfp8_e4m3");
    else fail("mxfp has 4, 6 or 8 bits (got {})", bits);
  } else if (fam == "fp") {
    const char* e = bits == 4 ? "e2m1" : bits == 6 ? "e2m3" : bits == 8 ? "e4m3" : nullptr;
    if (!e) fail("fp has 4, 6 or 8 bits (got {})", bits);
    f = parse_format(fmt::format("{}/fp16/g{}", e, group > 0 ? group : 32));
  } else if (fam == "int") {
    if (bits != 4 && bits != 8) fail("int has 4 or 8 bits (got {})", bits);
    f = parse_format(fmt::format("int{}/fp16/{}/ss{}", bits, group > 0 ? "g" + std::to_string(group) : "row", bits == 4 ? 7 : 127));
  } else {
    fail("unknown format family '{}' (nvfp, mxfp, fp, int)", fam);
  }
  if (group > 0 && group != f.group) f = with_options(f, group, std::nullopt, std::nullopt);
  return f;
}

void check_format_cols(const Format& f, int64_t cols) {
  if (cols <= 0) fail("cannot quantize rows of {} values", cols);
  if (f.group > 0 && cols % f.group != 0)
    fail("the last axis ({}) is not a multiple of the group size {} of format '{}'", cols, f.group, f.name);
  if ((cols * f.element->bits) % 8 != 0)
    fail("rows of {} {}-bit codes do not fill whole bytes; use a multiple of 8 values", cols, f.element->bits);
}

}  // namespace fpq
