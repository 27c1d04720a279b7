// fpq bench matvec: the weight-only matrix-vector product (M = 1, float32 activations) of each named weight
// format and, in the same run, fpq's float32 matrix-vector product (f32_gemv) of the same shape: the minimum and
// median of many back-to-back calls. For A/B comparisons of kernel changes, e.g. one thread (FPQ_NUM_THREADS=1)
// on a shape that fits the caches, where the kernel's own speed shows; `fpq bench gemm` is the benchmark of
// record (memory-sized shapes, the read-bandwidth probe, OpenBLAS baselines).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_command.h"
#include "commands.h"
#include "formats/format.h"
#include "formats/quantize.h"
#include "kernels/cpu/f32_gemm.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/prepared.h"
#include "util/parallel.h"

namespace fpq::cli {
namespace {

struct BenchMatvecArgs {
  std::string shape = "1024x1024";
  int calls = 2000;
  std::vector<std::string> formats;
};

struct Timing {
  double min_us, median_us;
};

template <class F>
Timing time_calls(int calls, F&& f) {
  std::vector<double> t(static_cast<size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t[size_t(i)] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  }
  std::sort(t.begin(), t.end());
  return {t[0], t[t.size() / 2]};
}

void run_bench(const BenchMatvecArgs& args) {
  const auto [n, k] = parse_shape(args.shape);
  // Formats and weights first: a bad name or shape is an error before any output.
  std::vector<Format> fmts;
  for (const std::string& name : args.formats) fmts.push_back(parse_format(name));
  std::mt19937 rng(12345);
  std::normal_distribution<float> normal;
  std::vector<float> w(static_cast<size_t>(n * k)), x(static_cast<size_t>(k)), y(static_cast<size_t>(n));
  for (float& v : w) v = normal(rng);
  for (float& v : x) v = normal(rng);
  std::vector<std::shared_ptr<const cpu::PreparedWeight>> prepared;
  for (const Format& f : fmts) prepared.push_back(cpu::prepare_weight(quantize(f, w.data(), n, k)));

  const Timing base = time_calls(args.calls, [&] { cpu::f32_gemv(n, k, w.data(), k, x.data(), y.data()); });
  std::printf("fpq bench matvec: %lldx%lld, M = 1, threads: %d, kernels %s, %d calls each (min / median)\n",
              (long long)n, (long long)k, num_threads(), cpu::isa_name(cpu::active_isa()), args.calls);
  std::printf("| weight | min us | median us | GB/s of codes + scales (min) | f32_gemv / weight (min) |\n");
  std::printf("| --- | --: | --: | --: | --: |\n");
  std::printf("| f32 (f32_gemv) | %.1f | %.1f | %.1f | 1.00x |\n", base.min_us, base.median_us,
              double(n * k) * 4 / base.min_us / 1e3);
  for (size_t i = 0; i < fmts.size(); ++i) {
    const cpu::PreparedWeight& pw = *prepared[i];
    const Timing t = time_calls(args.calls, [&] { cpu::matmul_weight_only(pw, x.data(), 1, y.data()); });
    std::printf("| %s | %.1f | %.1f | %.1f | %.2fx |\n", args.formats[i].c_str(), t.min_us, t.median_us,
                double(pw.format_bytes) / t.min_us / 1e3, base.min_us / t.min_us);
  }
}

}  // namespace

static void register_bench_matvec(CLI::App& app) {
  auto a = std::make_shared<BenchMatvecArgs>();
  CLI::App* cmd = bench_command(app)->add_subcommand(
      "matvec", "Weight-only M = 1 products vs f32_gemv: min / median of many calls (kernel A/B runs)");
  cmd->add_option("formats", a->formats, "Weight formats, e.g. mxfp4 q8_0")->required();
  cmd->add_option("--shape", a->shape, "Weight shape NxK")->capture_default_str();
  cmd->add_option("--calls", a->calls, "Timed calls per row")->check(CLI::Range(1, 10000000))->capture_default_str();
  cmd->callback([a] { run_bench(*a); });
}

static const CommandRegistrar registrar(81, register_bench_matvec);

}  // namespace fpq::cli
