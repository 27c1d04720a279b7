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

// Option checks with one-line messages (CLI11's NonNegativeNumber / PositiveNumber print the whole double
// range): a whole number >= 0 or >= 1; a finite number >= 0 or > 0.
CLI::Validator non_negative_count();
CLI::Validator positive_count();
CLI::Validator non_negative_number();
CLI::Validator positive_number();

}  // namespace fpq::cli
