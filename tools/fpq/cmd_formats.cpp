// fpq formats: the format registry as a table (or JSON).
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "formats/format.h"
#include "util/table.h"

namespace fpq::cli {

static void register_formats(CLI::App& app) {
  auto* cmd = app.add_subcommand("formats", "List every named format: bits per element, effective bits per value "
                                            "(codes + scales), group size, scale type, scale rule");
  auto json_out = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json_out, "Print JSON instead of a table");
  cmd->callback([json_out] {
    Table t({"format", "element", "elem bits", "bits/value", "group", "scale", "scale rule", "tensor scale", "description"},
            {false, false, true, true, true, false, false, false, false});
    nlohmann::json j = nlohmann::json::array();
    for (const auto& info : format_table()) {
      const Format& f = info.format;
      const std::string group = f.group ? std::to_string(f.group) : "row";
      const char* glob = f.global == GlobalScale::PerTensor ? "fp32" : f.global == GlobalScale::PerRow ? "fp32/row" : "-";
      t.add({info.name, f.element->name, std::to_string(f.element->bits), fmt::format("{:.3f}", f.bits_per_value(4096)),
             group, std::string(scale_type_name(f.scale)), std::string(scale_rule_name(f.rule)), glob, info.description});
      j.push_back({{"name", info.name}, {"element", f.element->name}, {"element_bits", f.element->bits},
                   {"bits_per_value", f.bits_per_value(4096)}, {"group", f.group}, {"scale", scale_type_name(f.scale)},
                   {"scale_rule", scale_rule_name(f.rule)}, {"tensor_scale", glob}, {"description", info.description}});
    }
    if (*json_out) {
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s", t.markdown().c_str());
      std::printf("\nbits/value counts codes and group scales for rows of 4096 values (row-scaled formats: per row).\n"
                  "Any other combination: ELEMENT/SCALE/GROUP, e.g. e3m2/fp16/row, int4/bf16/g64, e2m1/e4m3/g16/4o6/global.\n"
                  "Element types: e2m1 e3m0 e2m0 e2m2 e3m1 e2m3 e3m2 e4m3 e5m2 int4 uint4 int8 uint8 mxint8, or any eYmZ "
                  "with 1+Y+Z <= 8.\n");
    }
  });
}

static const CommandRegistrar registrar(20, register_formats);

}  // namespace fpq::cli
