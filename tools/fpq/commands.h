#pragma once
// Each fpq subcommand registers itself on the CLI11 app; the handlers throw fpq::Error on bad input.
#include <CLI/CLI.hpp>

namespace fpq::cli {

void register_formats(CLI::App& app);
void register_qdq(CLI::App& app);
void register_tensor_io(CLI::App& app);  // quantize (tensor mode), dequantize
void register_demo(CLI::App& app);
void register_info(CLI::App& app);

}  // namespace fpq::cli
