#pragma once
// Each fpq subcommand lives in its own cmd_*.cpp and registers itself with a static CommandRegistrar, so
// adding a command touches no shared file. `order` sets the position in `fpq --help`.
#include <CLI/CLI.hpp>

namespace fpq::cli {

using RegisterFn = void (*)(CLI::App&);

struct CommandRegistrar {
  CommandRegistrar(int order, RegisterFn fn);
};

// Registers every command on the app, in order.
void register_all(CLI::App& app);

// Option check: a whole number >= 0 (CLI11's NonNegativeNumber prints the double range in its message).
CLI::Validator non_negative_count();

}  // namespace fpq::cli
