#include "format_options.h"

#include "util/error.h"

namespace fpq::cli {

void FormatOptions::add(CLI::App* cmd, bool format_required) {
  auto* f = cmd->add_option("--format,-f", format, "Format name (see `fpq formats`) or ELEMENT/SCALE/GROUP");
  if (format_required) f->required();
  cmd->add_option("--group-size,-g", group_size, "Values per scale (0 = one scale per row)");
  cmd->add_option("--scale-rule", scale_rule, "Scale rule: mx, absmax, mse, 4o6, minmax");
  cmd->add_option("--scale-scale", scale_scale, "The value a group's absolute max maps to (e.g. 6 or 4 for FP4)");
  cmd->add_option("--rounding", rounding, "Element rounding: rne (nearest, ties to even) or stochastic");
  cmd->add_option("--seed", seed, "Seed for stochastic rounding");
  cmd->add_option("--global-scale", global_scale, "Fixed tensor scale (formats with one, e.g. nvfp4)");
}

Format FormatOptions::resolve_format() const {
  Format f = parse_format(format);
  std::optional<ScaleRule> rule;
  if (scale_rule) rule = parse_scale_rule(*scale_rule);
  if (group_size || rule || scale_scale) f = with_options(f, group_size, rule, scale_scale);
  return f;
}

QuantizeOptions FormatOptions::resolve_options() const {
  QuantizeOptions o;
  if (rounding == "rne" || rounding == "nearest") o.rounding = Rounding::Nearest;
  else if (rounding == "stochastic" || rounding == "sr") o.rounding = Rounding::Stochastic;
  else fail("unknown rounding '{}' (rne or stochastic)", rounding);
  o.seed = seed;
  o.global_scale = global_scale;
  return o;
}

}  // namespace fpq::cli
