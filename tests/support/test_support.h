#pragma once
// Helpers shared by fpq's tests: fresh random seeds (printed, so a failure can be replayed with
// FPQ_TEST_SEED), temporary folders, and running the Python reference scripts of tests/ref.
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace fpq::test {

// A fresh seed per call (or FPQ_TEST_SEED when set); logged through a gtest RecordProperty and stdout.
uint64_t fresh_seed();

// A new empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::filesystem::path source_dir();
std::filesystem::path binary_dir();
std::filesystem::path python();

// Runs `python tests/ref/<script> args...`; fails the test (throws) with its output when it exits non-zero.
std::string run_python_ref(const std::string& script, const std::vector<std::string>& args);

struct CommandResult {
  int exit_code = 0;
  std::string output;  // stdout and stderr together
};
// Runs a shell command line, capturing stdout+stderr.
CommandResult run_command(const std::string& command_line);

// Relative L2 distance ||a - b|| / ||b|| in float64.
double rel_l2(const float* a, const float* b, size_t n);
double rel_l2(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace fpq::test
