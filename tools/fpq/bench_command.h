#pragma once
// The `fpq bench` parent subcommand shared by the benchmark programs (tools/fpq/cmd_bench_*.cpp): the first
// caller creates it, later ones find it and add their own subcommand (`fpq bench gemm`, `fpq bench model`, ...).
#include <CLI/CLI.hpp>

namespace fpq::cli {

inline CLI::App* bench_command(CLI::App& app) {
  const auto found = app.get_subcommands([](CLI::App* s) { return s->get_name() == "bench"; });
  if (!found.empty()) return found.front();
  CLI::App* b = app.add_subcommand("bench", "Benchmarks (programs that print timings; not tests)");
  b->require_subcommand(1);
  return b;
}

}  // namespace fpq::cli
