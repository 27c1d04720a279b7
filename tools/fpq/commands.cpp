#include "commands.h"

#include <algorithm>
#include <charconv>
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

CLI::Validator non_negative_count() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        long long v = -1;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || v < 0) return "wants a whole number >= 0, got '" + s + "'";
        return {};
      },
      "N>=0");
}

}  // namespace fpq::cli
