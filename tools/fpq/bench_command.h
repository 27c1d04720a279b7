#pragma once
// The `fpq bench` parent subcommand shared by the benchmark programs (tools/fpq/cmd_bench_*.cpp): the first
// caller creates it, later ones find it and add their own subcommand (`fpq bench gemm`, `fpq bench model`, ...).
#include <charconv>
#include <cstdint>
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
  // Both sides whole positive numbers ("4096x14336"; not "4k x 14336" or "100ax5"), below 2^31.
  auto side = [&](const std::string& t) {
    int64_t v = 0;
    const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size() || v <= 0 || v >= (int64_t(1) << 31))
      fail("bad shape '{}' (use NxK, e.g. 4096x14336)", s);
    return v;
  };
  const size_t x = s.find_first_of("xX");
  if (x == std::string::npos) fail("bad shape '{}' (use NxK, e.g. 4096x14336)", s);
  return {side(s.substr(0, x)), side(s.substr(x + 1))};
}

}  // namespace fpq::cli
