// fpq demo: quantize a generated weight-like matrix (heavy-tailed values, a few outlier channels) to every
// named format and report the error (relative RMS, SQNR) against the bits each value costs.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "formats/quantize.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/table.h"

namespace fpq::cli {

namespace {
struct DemoArgs {
  int64_t rows = 1024, cols = 4096;
  uint64_t seed = 1;
  std::string json_out;
};

std::vector<float> weight_like(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> t(4.0f);  // heavy tails, as trained weights have
  std::lognormal_distribution<float> col_scale(0.0f, 0.5f);
  std::vector<float> cs(static_cast<size_t>(cols));
  for (auto& c : cs) c = col_scale(rng);
  for (int64_t c = 0; c < cols; c += 97) cs[size_t(c)] *= 8.0f;  // outlier input channels
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w[size_t(r * cols + c)] = 0.02f * t(rng) * cs[size_t(c)];
  return w;
}
}  // namespace

static void register_demo(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  auto* cmd = app.add_subcommand("demo", "Quantize a generated heavy-tailed weight-like matrix to every format and "
                                         "print error vs bits per value");
  cmd->add_option("--rows", a->rows, "Rows of the matrix")->check(positive_count());
  cmd->add_option("--cols", a->cols, "Columns (a multiple of 128)")->check(positive_count());
  cmd->add_option("--seed", a->seed, "Seed of the generated matrix");
  cmd->add_option("--json", a->json_out, "Also write the results as JSON to this file");
  cmd->callback([a] {
    if (!a->json_out.empty()) check_output_path(a->json_out, "--json");
    if (a->cols % 128 != 0) fail("--cols must be a multiple of 128 (got {})", a->cols);
    const auto w = weight_like(a->rows, a->cols, a->seed);
    double norm2 = 0;
    for (float v : w) norm2 += double(v) * v;
    Table t({"format", "bits/value", "rel. RMS error", "SQNR (dB)", "quantize ms"}, {false, true, true, true, true});
    nlohmann::json j = nlohmann::json::array();
    std::vector<float> out(w.size());
    for (const auto& info : format_table()) {
      const auto t0 = std::chrono::steady_clock::now();
      fake_quantize(info.format, w.data(), a->rows, a->cols, out.data());
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      double err2 = 0;
      for (size_t i = 0; i < w.size(); ++i) err2 += (double(out[i]) - w[i]) * (double(out[i]) - w[i]);
      const double rel = std::sqrt(err2 / norm2);
      const double sqnr = 10.0 * std::log10(norm2 / err2);
      const double bpv = info.format.bits_per_value(a->cols);
      t.add({info.name, fmt::format("{:.3f}", bpv), fmt::format("{:.5f}", rel), fmt::format("{:.2f}", sqnr),
             fmt::format("{:.1f}", ms)});
      j.push_back({{"format", info.name}, {"bits_per_value", bpv}, {"rel_rms_error", rel}, {"sqnr_db", sqnr},
                   {"quantize_ms", ms}});
    }
    std::printf("Weight-like matrix %lld x %lld (Student-t, 4 d.o.f., log-normal column scales, outlier channel "
                "every 97), seed %llu\n\n%s",
                (long long)a->rows, (long long)a->cols, (unsigned long long)a->seed, t.markdown().c_str());
    if (!a->json_out.empty()) {
      const std::string s = nlohmann::json({{"rows", a->rows}, {"cols", a->cols}, {"seed", a->seed}, {"results", j}}).dump(2);
      write_file_atomic(a->json_out, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
    }
  });
}

static const CommandRegistrar registrar(90, register_demo);

}  // namespace fpq::cli
