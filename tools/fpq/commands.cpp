#include "commands.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace fpq::cli {

static std::vector<std::pair<int, RegisterFn>>& registry() {
  static std::vector<std::pair<int, RegisterFn>> r;
  return r;
}

CommandRegistrar::CommandRegistrar(int order, RegisterFn fn) { registry().emplace_back(order, fn); }

void register_all(CLI::App& app) {
  auto r = registry();
  std::stable_sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [order, fn] : r) fn(app);
}

static CLI::Validator whole_at_least(long long lo) {
  return CLI::Validator(
      [lo](std::string& s) -> std::string {
        long long v = lo - 1;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || v < lo)
          return "wants a whole number >= " + std::to_string(lo) + ", got '" + s + "'";
        return {};
      },
      "N>=" + std::to_string(lo));
}

static CLI::Validator finite_number(bool zero_ok) {
  return CLI::Validator(
      [zero_ok](std::string& s) -> std::string {
        double v = -1;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v) || v < 0 || (!zero_ok && v == 0))
          return std::string("wants a number ") + (zero_ok ? ">= 0" : "> 0") + ", got '" + s + "'";
        return {};
      },
      zero_ok ? "X>=0" : "X>0");
}

CLI::Validator non_negative_count() { return whole_at_least(0); }
CLI::Validator positive_count() { return whole_at_least(1); }
CLI::Validator non_negative_number() { return finite_number(true); }
CLI::Validator positive_number() { return finite_number(false); }

}  // namespace fpq::cli
