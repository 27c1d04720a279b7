// bench_matvec: the weight-only matrix-vector product (M = 1, float32 activations) of each named weight format
// and, in the same run, fpq's float32 matrix-vector product (f32_gemv) of the same shape: the minimum and median
// of many back-to-back calls. Meant for A/B comparisons of kernel changes with one thread (FPQ_NUM_THREADS=1),
// where a shape that fits the caches makes the kernel's own speed visible; `fpq bench gemm` is the benchmark of
// record (memory-sized shapes, the read-bandwidth probe, OpenBLAS baselines).
//   bench_matvec [--shape NxK] [--calls C] FORMAT...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "formats/format.h"
#include "formats/quantize.h"
#include "kernels/cpu/f32_gemm.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/prepared.h"
#include "util/error.h"
#include "util/parallel.h"

namespace {

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

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "bench_matvec: %s (usage: bench_matvec [--shape NxK] [--calls C] FORMAT...)\n", what.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 1024, k = 1024;
  int calls = 2000;
  std::vector<std::string> formats;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--shape" || a == "--calls") {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      const std::string v = argv[++i];
      char* end = nullptr;
      if (a == "--calls") {
        const long c = std::strtol(v.c_str(), &end, 10);
        if (*end || c < 1 || c > 10000000) usage_error("--calls must be an integer in 1..10000000, got '" + v + "'");
        calls = int(c);
      } else {
        const size_t x = v.find('x');
        const long long nn = x == std::string::npos ? 0 : std::strtoll(v.substr(0, x).c_str(), &end, 10);
        const bool n_ok = x != std::string::npos && end && *end == '\0';
        const long long kk = n_ok ? std::strtoll(v.substr(x + 1).c_str(), &end, 10) : 0;
        if (!n_ok || *end || nn < 1 || kk < 1 || nn * kk > (1LL << 31))
          usage_error("--shape must be NxK with positive N, K and N*K <= 2^31, got '" + v + "'");
        n = nn, k = kk;
      }
    } else if (!a.empty() && a[0] == '-') {
      usage_error("unknown option '" + a + "'");
    } else {
      formats.push_back(a);
    }
  }
  if (formats.empty()) usage_error("name at least one weight format");

  try {
    std::vector<fpq::Format> fmts;  // parsed first: a bad name is an error before any output
    for (const std::string& name : formats) fmts.push_back(fpq::parse_format(name));
    std::mt19937 rng(12345);
    std::normal_distribution<float> normal;
    std::vector<float> w(static_cast<size_t>(n * k)), x(static_cast<size_t>(k)), y(static_cast<size_t>(n));
    for (float& v : w) v = normal(rng);
    for (float& v : x) v = normal(rng);
    std::vector<std::shared_ptr<const fpq::cpu::PreparedWeight>> prepared;  // all before any output
    for (const fpq::Format& f : fmts) prepared.push_back(fpq::cpu::prepare_weight(fpq::quantize(f, w.data(), n, k)));
    const Timing base = time_calls(calls, [&] { fpq::cpu::f32_gemv(n, k, w.data(), k, x.data(), y.data()); });
    std::printf("bench_matvec: %lldx%lld, M = 1, threads: %d, kernels %s, %d calls each (min / median)\n",
                (long long)n, (long long)k, fpq::num_threads(), fpq::cpu::isa_name(fpq::cpu::active_isa()), calls);
    std::printf("| weight | min us | median us | GB/s of codes + scales (min) | f32_gemv / weight (min) |\n");
    std::printf("| --- | --: | --: | --: | --: |\n");
    std::printf("| f32 (f32_gemv) | %.1f | %.1f | %.1f | 1.00x |\n", base.min_us, base.median_us,
                double(n * k) * 4 / base.min_us / 1e3);
    for (size_t i = 0; i < fmts.size(); ++i) {
      const std::string& name = formats[i];
      const fpq::cpu::PreparedWeight* pw = prepared[i].get();
      const Timing t = time_calls(calls, [&] { fpq::cpu::matmul_weight_only(*pw, x.data(), 1, y.data()); });
      std::printf("| %s | %.1f | %.1f | %.1f | %.2fx |\n", name.c_str(), t.min_us, t.median_us,
                  double(pw->format_bytes) / t.min_us / 1e3, base.min_us / t.min_us);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_matvec: %s\n", e.what());
    return 1;
  }
  return 0;
}
