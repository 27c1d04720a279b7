#pragma once
// fpq's one error type: a one-line message that the CLI prints as "fpq: error: <message>" with exit code 1.
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace fpq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

#define FPQ_CHECK(cond, ...)        \
  do {                              \
    if (!(cond)) ::fpq::fail(__VA_ARGS__); \
  } while (0)

}  // namespace fpq
