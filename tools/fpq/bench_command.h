#pragma once
// The `fpq bench` parent subcommand shared by the benchmark programs (tools/fpq/cmd_bench_*.cpp): the first
// caller creates it, later ones find it and add their own subcommand (`fpq bench gemm`, `fpq bench model`, ...).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "util/error.h"

namespace fpq::cli {

inline CLI::App* bench_command(CLI::App& app) {
  const auto found = app.get_subcommands([](CLI::App* s) { return s->get_name() == "bench"; });
  if (!found.empty()) return found.front();
  CLI::App* b = app.add_subcommand("bench", "Benchmarks (programs that print timings; not tests)");
  b->require_subcommand(1);
  return b;
}

// A weight shape "NxK" (rows x columns).
inline std::pair<int64_t, int64_t> parse_shape(const std::string& s) {
  const size_t x = s.find_first_of("xX");
  if (x == std::string::npos) fail("bad shape '{}' (use NxK, e.g. 4096x14336)", s);
  const int64_t n = std::atoll(s.substr(0, x).c_str()), k = std::atoll(s.substr(x + 1).c_str());
  if (n <= 0 || k <= 0) fail("bad shape '{}' (use NxK, e.g. 4096x14336)", s);
  return {n, k};
}

}  // namespace fpq::cli
