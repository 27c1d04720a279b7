#include "test_support.h"

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <gtest/gtest.h>

namespace fpq::test {

uint64_t fresh_seed() {
  uint64_t seed;
  if (const char* env = std::getenv("FPQ_TEST_SEED")) {
    seed = std::strtoull(env, nullptr, 10);
  } else {
    std::random_device rd;
    seed = (uint64_t(rd()) << 32) ^ rd();
  }
  std::printf("[seed] %llu (replay with FPQ_TEST_SEED=%llu)\n", (unsigned long long)seed, (unsigned long long)seed);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "fpq-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path source_dir() { return FPQ_SOURCE_DIR; }
std::filesystem::path binary_dir() { return FPQ_BINARY_DIR; }
std::filesystem::path python() { return FPQ_PYTHON; }

static std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = ::pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string run_python_ref(const std::string& script, const std::vector<std::string>& args) {
  if (!std::filesystem::exists(python()))
    throw std::runtime_error("the project venv is missing (" + python().string() + "): run scripts/setup.sh");
  std::string cmd = quote(python().string()) + " " + quote((source_dir() / "tests" / "ref" / script).string());
  for (const auto& a : args) cmd += " " + quote(a);
  const CommandResult r = run_command(cmd);
  if (r.exit_code != 0) throw std::runtime_error("reference script failed: " + cmd + "\n" + r.output);
  return r.output;
}

double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  if (den == 0) return num == 0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  return rel_l2(a.data(), b.data(), a.size());
}

}  // namespace fpq::test
