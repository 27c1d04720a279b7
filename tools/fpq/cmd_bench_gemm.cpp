// fpq bench gemm: the CPU kernels (src/kernels/cpu) over Llama-3-8B linear-layer shapes, each weight format
// with its natural activation format, against an OpenBLAS float32 sgemm of the same shape and the machine's
// memory read bandwidth, both measured in the same run.


#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_command.h"
#include "commands.h"
#include "formats/format.h"
#include "formats/quantize.h"
#include "kernels/cpu/bandwidth.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/f32_gemm.h"
#include "kernels/cpu/matmul.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/parallel.h"
#include "util/rng.h"
#include "util/table.h"

namespace fpq::cli {
namespace {

struct BenchGemmArgs {
  std::vector<std::string> shapes{"4096x4096", "14336x4096", "4096x14336"};
  std::vector<int64_t> ms{1, 16, 128, 512};
  std::vector<std::string> formats{"mxfp4:mxfp4",   "nvfp4:nvfp4",       "q4_0:q8_1",         "int4:int8",
                                   "mxfp6_e2m3:mxfp6_e2m3", "mxfp6_e3m2:mxfp6_e3m2", "mxfp8_e4m3:mxfp8_e4m3",
                                   "fp8_e4m3:fp8_e4m3", "int8:int8", "q8_0:q8_0", "fp6_e3m2:f32", "mxfp4:f32"};
  int repeats = 5;
  double min_time = 0.25;
  double rotate_mb = 96;
  double bandwidth_mb = 1024;
  double probe_mb = 256;
  bool sgemm = true;
  std::string sums = "exact";
  std::string json;
  std::string isa;
};

struct Pair {
  std::string spec;
  Format w;
  std::optional<Format> a;  // nullopt: float32 activations (weight-only)
};

Pair parse_pair(const std::string& s) {
  const size_t c = s.find(':');
  Pair p;
  p.spec = s;
  p.w = parse_format(s.substr(0, c));
  const std::string a = c == std::string::npos ? "f32" : s.substr(c + 1);
  if (a != "f32" && a != "fp32" && a != "none") p.a = parse_format(a);
  return p;
}

// Normal-ish values from a counter-based generator (fast, parallel, reproducible).
std::vector<float> random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(rows * cols));
  parallel_for(rows * cols, 1 << 16, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) {
      const uint64_t h = hash_u64(seed, uint64_t(i));
      float s = 0;
      for (int j = 0; j < 4; ++j) s += float((h >> (16 * j)) & 0xFFFF) * (1.0f / 65536.0f);
      x[size_t(i)] = (s - 2.0f) * 1.7320508f;
    }
  });
  return x;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Median wall time (seconds) of fn over at least `repeats` runs and `min_time` seconds, after a warm-up run.
template <typename F>
double time_median(F&& fn, int repeats, double min_time) {
  fn();
  std::vector<double> ts;
  double total = 0;
  while (int(ts.size()) < repeats || (total < min_time && ts.size() < 2000)) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double dt = seconds_since(t0);
    ts.push_back(dt);
    total += dt;
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Times a kernel and its baselines interleaved, so all see the same machine (it may be shared): `rounds`
// rounds (and at least `min_time` seconds of kernel runs), each one run of every baseline (in order; then a
// pause for OpenBLAS's threads) and as many kernel runs as fit in the slowest baseline's time (at least one).
struct Interleaved {
  double kernel = 0;             // median kernel time
  std::vector<double> baseline;  // median time of each baseline
  std::vector<double> ratio;     // per baseline: median over rounds of (baseline time / kernel median of the round)
};

Interleaved time_interleaved(const std::function<void()>& kernel, const std::vector<std::function<void()>>& baselines,
                             int rounds, double min_time) {
  kernel();
  for (const auto& b : baselines) b();
  std::vector<double> tk;
  std::vector<std::vector<double>> tb(baselines.size()), ratios(baselines.size());
  double total = 0;
  for (int r = 0; r < rounds || (total < min_time && r < 200); ++r) {
    double budget = 0;
    std::vector<double> round_b;
    for (size_t i = 0; i < baselines.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      baselines[i]();
      const double dt = seconds_since(t0);
      tb[i].push_back(dt);
      round_b.push_back(dt);
      budget = std::max(budget, dt);
    }
    // OpenBLAS's worker threads spin for about 2^28 cycles after a call; let them go to sleep first.
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    double spent = 0;
    std::vector<double> round_k;
    do {
      const auto t0 = std::chrono::steady_clock::now();
      kernel();
      const double dt = seconds_since(t0);
      tk.push_back(dt);
      round_k.push_back(dt);
      spent += dt;
      total += dt;
    } while (spent < budget && tk.size() < 20000);
    const double mk = median(round_k);
    for (size_t i = 0; i < baselines.size(); ++i) ratios[i].push_back(round_b[i] / mk);
  }
  Interleaved out;
  out.kernel = median(tk);
  for (size_t i = 0; i < baselines.size(); ++i) {
    out.baseline.push_back(median(tb[i]));
    out.ratio.push_back(median(ratios[i]));
  }
  return out;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "unknown";
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

void run_bench(const BenchGemmArgs& args) {
  if (!args.isa.empty()) cpu::set_isa(cpu::parse_isa(args.isa));
  std::vector<Pair> pairs;
  for (const auto& s : args.formats) pairs.push_back(parse_pair(s));
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (const auto& s : args.shapes) shapes.push_back(parse_shape(s));
  for (int64_t m : args.ms)
    if (m < 1) fail("--m values must be >= 1 (got {})", m);

  const int threads = num_threads();
  std::fprintf(stderr, "fpq bench gemm: %s, %d threads, kernels %s\n", cpu_model().c_str(), threads,
               cpu::active_isa_name());
  // The read bandwidth is probed before every shape (the machine may be shared); the best probe is the limit.
  std::vector<double> probes;
  auto probe = [&] {
    const cpu::Bandwidth b = cpu::measure_read_bandwidth(size_t(args.bandwidth_mb * 1e6), 5);
    probes.push_back(b.best_gbs);
    std::fprintf(stderr, "memory read bandwidth: %.1f GB/s (best of 5; median %.1f)\n", b.best_gbs, b.median_gbs);
  };

  struct Row {
    int64_t n, k, m;
    std::string spec, weight, act, kind;
    double t, t_sgemm, speedup, t_quant;  // speedup: median over rounds of sgemm time / kernel time
    size_t bytes;
    double bw;  // read bandwidth probed interleaved with the kernel (M = 1 rows), GB/s
  };
  cpu::ReadProbe probe_buf(size_t(args.probe_mb * 1e6));
  std::vector<Row> rows;
  uint64_t seed = 0x5eed;
  for (const auto& [n, k] : shapes) {
    probe();
    for (const Pair& p : pairs) {
      check_format_cols(p.w, k);
      if (p.a) check_format_cols(*p.a, k);
    }
    const std::vector<float> w = random_matrix(n, k, seed++);
    std::vector<std::vector<float>> xs;
    for (const int64_t m : args.ms) xs.push_back(random_matrix(m, k, seed++));
    for (const Pair& p : pairs) {
      const QuantizedTensor wq = quantize(p.w, w.data(), n, k);
      // Enough weight copies that the matrix-vector case reads memory, not the last-level cache.
      const size_t wbytes = wq.storage_bytes();
      const int copies = int(std::clamp<double>(std::ceil(args.rotate_mb * 1e6 / double(wbytes)), 1, 16));
      std::vector<std::shared_ptr<const cpu::PreparedWeight>> pws;
      for (int c = 0; c < copies; ++c) pws.push_back(cpu::prepare_weight(wq));
      const size_t format_bytes = cpu::weight_bytes(*pws[0]);
      for (size_t mi = 0; mi < args.ms.size(); ++mi) {
        const int64_t m = args.ms[mi];
        const std::vector<float>& x = xs[mi];
        std::vector<float> y(static_cast<size_t>(m * n));
        QuantizedTensor xq;
        double t_quant = 0;
        if (p.a) {
          xq = cpu::quantize_activations(*p.a, x.data(), m, k);
          t_quant = time_median([&] { xq = cpu::quantize_activations(*p.a, x.data(), m, k); }, args.repeats,
                                args.min_time / 4);
        }
        // Quantized activations are summed exactly (the default: the pseudo path's bits) or in float32 (--sums):
        // one row each (the float32 row only where it runs another kernel or the integer kernels' float32 sums).
        auto kind_of = [&](cpu::Sums s) {
          return cpu::kernel_kind(*pws[0], p.a ? &*p.a : nullptr, cpu::active_isa(), m, s);
        };
        std::vector<cpu::Sums> sums_list;
        if (args.sums != "float32" || !p.a) sums_list.push_back(cpu::Sums::Exact);
        if (args.sums != "exact" && p.a && kind_of(cpu::Sums::Float32) != cpu::KernelKind::Pseudo)
          sums_list.push_back(cpu::Sums::Float32);
        for (const cpu::Sums sums : sums_list) {
          const cpu::KernelKind kk = kind_of(sums);
          const bool int_kind = kk == cpu::KernelKind::Int8Dot || kk == cpu::KernelKind::Int16Dot;
          const char* kind = cpu::kernel_kind_name(kk);
          size_t next = 0;
          auto kernel = [&] {
            const cpu::PreparedWeight& pw = *pws[next++ % pws.size()];
            if (p.a) cpu::matmul_quantized(pw, xq, y.data(), sums);
            else cpu::matmul_weight_only(pw, x.data(), m, y.data());
          };
          std::vector<float> ys(static_cast<size_t>(m * n));
          // (one row: sgemv, as sgemm packs the whole weight for a single row: 3x slower)
          auto sgemm = [&] { cpu::openblas_gemm_nt(m, n, k, x.data(), w.data(), ys.data()); };
          // The matrix-vector rows also interleave a pass of the bandwidth probe: their "% BW" compares with the
          // bandwidth the machine gave at the same time.
          std::vector<std::function<void()>> baselines;
          std::vector<double> probe_times;  // ReadProbe::pass() times its own (faster) read
          if (m == 1) baselines.push_back([&] { probe_times.push_back(probe_buf.pass()); });
          if (args.sgemm) baselines.push_back(sgemm);
          const Interleaved ti = time_interleaved(kernel, baselines, args.repeats, args.min_time);
          const double t = ti.kernel;
          const double t_sgemm = args.sgemm ? ti.baseline.back() : 0.0;
          const double speedup = args.sgemm ? ti.ratio.back() : 0.0;
          const double bw_row = m == 1 ? double(probe_buf.bytes()) / median(probe_times) / 1e9 : 0.0;
          const std::string kind_name = std::string(kind) + (int_kind && sums == cpu::Sums::Float32 ? " f32-sums" : "");
          rows.push_back({n, k, m, p.spec, p.w.name, p.a ? p.a->name : "f32", kind_name, t, t_sgemm, speedup, t_quant,
                          format_bytes, bw_row});
          std::fprintf(stderr, "  %lld x %lld, M=%lld, %s (%s): %.0f us (sgemm %.0f us)\n", (long long)n, (long long)k,
                       (long long)m, p.spec.c_str(), kind_name.c_str(), t * 1e6, t_sgemm * 1e6);
        }
      }
    }
  }
  probe();
  const double bw = *std::max_element(probes.begin(), probes.end());
  // Table order: shape, then M, then the pairs as given (they were measured pair by pair).
  std::vector<Row> ordered;
  for (const auto& [n, k] : shapes)
    for (const int64_t m : args.ms)
      for (const Row& r : rows)
        if (r.n == n && r.k == k && r.m == m) ordered.push_back(r);
  rows = std::move(ordered);
  Table table({"N x K", "M", "weight : act", "kernel", "µs", "GFLOP/s", "W GB/s", "% of read BW", "sgemm µs", "vs sgemm",
               "act quant µs"},
              {false, true, false, false, true, true, true, true, true, true, true});
  nlohmann::json results = nlohmann::json::array();
  for (const Row& r : rows) {
    const double flops = 2.0 * double(r.m) * double(r.n) * double(r.k);
    const double gbs = double(r.bytes) / r.t / 1e9;
    const bool has_q = r.act != "f32";
    table.add({fmt::format("{} x {}", r.n, r.k), std::to_string(r.m), r.spec, r.kind, fmt::format("{:.0f}", r.t * 1e6),
               fmt::format("{:.1f}", flops / r.t / 1e9), fmt::format("{:.1f}", gbs),
               r.bw > 0 ? fmt::format("{:.0f}% of {:.1f}", 100.0 * gbs / r.bw, r.bw) : "-",
               args.sgemm ? fmt::format("{:.0f}", r.t_sgemm * 1e6) : "-",
               args.sgemm ? fmt::format("{:.2f}x", r.speedup) : "-",
               has_q ? fmt::format("{:.0f}", r.t_quant * 1e6) : "-"});
    results.push_back({{"n", r.n},
                       {"k", r.k},
                       {"m", r.m},
                       {"weight", r.weight},
                       {"activation", r.act},
                       {"kernel", r.kind},
                       {"us", r.t * 1e6},
                       {"gflops", flops / r.t / 1e9},
                       {"weight_bytes", r.bytes},
                       {"weight_gbs", gbs},
                       {"read_bandwidth_gbs", r.bw > 0 ? nlohmann::json(r.bw) : nlohmann::json(nullptr)},
                       {"fraction_of_bandwidth", r.bw > 0 ? nlohmann::json(gbs / r.bw) : nlohmann::json(nullptr)},
                       {"sgemm_us", args.sgemm ? nlohmann::json(r.t_sgemm * 1e6) : nlohmann::json(nullptr)},
                       {"speedup_vs_sgemm", args.sgemm ? nlohmann::json(r.speedup) : nlohmann::json(nullptr)},
                       {"act_quant_us", has_q ? nlohmann::json(r.t_quant * 1e6) : nlohmann::json(nullptr)}});
  }
  std::string probe_list;
  for (double b : probes) probe_list += fmt::format("{}{:.1f}", probe_list.empty() ? "" : ", ", b);
  std::printf("# fpq bench gemm\n\n%s, %d threads, kernels %s, %s\n", cpu_model().c_str(), threads,
              cpu::active_isa_name(), now_utc().c_str());
  std::printf("memory read bandwidth: best %.1f GB/s over the per-shape probes (%s GB/s; each the best of 5 passes "
              "over %.0f MB)\n\n", bw, probe_list.c_str(), args.bandwidth_mb);
  std::printf("%s\n", table.markdown().c_str());
  std::printf("µs: median; W GB/s: bytes of codes + scales of the weight / time; %% of read BW (M = 1): of the "
              "bandwidth of a %.0f MB read probe timed interleaved with the kernel (median, GB/s);\n"
              "sgemm µs: OpenBLAS float32 sgemm (sgemv where M = 1) of the same shape, timed interleaved with the kernel (median); vs sgemm: "
              "median over the rounds of sgemm time / kernel time of the round (> 1: faster);\n"
              "act quant: quantize_activations of the M x K activations "
              "(not in µs); kernel 'f32-sums': the integer kernel summing groups in float32; 'float64': the exact kernel of "
              "pairs no integer kernel serves, whose float32-summing kernel (bf16-dot / float) has its own row (--sums).\n", args.probe_mb);
  if (!args.json.empty()) {
    nlohmann::json doc = {{"command", "fpq bench gemm"},
                          {"date", now_utc()},
                          {"cpu", cpu_model()},
                          {"threads", threads},
                          {"isa", cpu::active_isa_name()},
                          {"read_bandwidth_gbs", bw},
                          {"read_bandwidth_probes_gbs", probes},
                          {"results", results}};
    const std::string text = doc.dump(2) + "\n";
    write_file_atomic(args.json, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }
}

}  // namespace

static void register_bench_gemm(CLI::App& app) {
  auto a = std::make_shared<BenchGemmArgs>();
  CLI::App* cmd = bench_command(app)->add_subcommand(
      "gemm", "CPU low-bit GEMM kernels vs OpenBLAS sgemm and memory bandwidth (Llama-3-8B linear shapes)");
  cmd->add_option("--shapes", a->shapes, "Weight shapes NxK")->delimiter(',')->capture_default_str();
  cmd->add_option("--m", a->ms, "Activation rows M")->delimiter(',')->capture_default_str();
  cmd->add_option("--formats", a->formats,
                  "WEIGHT:ACTIVATION pairs (activation f32 = weight-only), e.g. nvfp4:nvfp4,fp6_e3m2:f32")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--repeats", a->repeats, "Timed runs per measurement (at least; see --min-time)")
      ->check(positive_count())
      ->capture_default_str();
  cmd->add_option("--min-time", a->min_time, "Keep repeating until this many seconds have run")
      ->check(non_negative_number())
      ->capture_default_str();
  cmd->add_option("--rotate-mb", a->rotate_mb, "Cycle through weight copies totalling this many MB (defeats caches)")
      ->check(positive_number())
      ->capture_default_str();
  cmd->add_option("--bandwidth-mb", a->bandwidth_mb, "Buffer size of the per-shape read-bandwidth probe")
      ->check(positive_number())
      ->capture_default_str();
  cmd->add_option("--probe-mb", a->probe_mb, "Buffer size of the probe interleaved with the M = 1 rows")
      ->check(positive_number())
      ->capture_default_str();
  cmd->add_flag("!--no-sgemm", a->sgemm, "Skip the OpenBLAS sgemm baseline");
  cmd->add_option("--sums", a->sums,
                  "Products with quantized activations: exact (float64 sums, the pseudo path's bits), "
                  "float32 (faster, rounded), or both (a row each)")
      ->check(CLI::IsMember({"exact", "float32", "both"}))
      ->capture_default_str();
  cmd->add_option("--json", a->json, "Also write the results as JSON");
  cmd->add_option("--isa", a->isa, "Kernel variant: scalar, avx2, avx512 (default: the best this CPU has)");
  cmd->callback([a] {
    if (!a->json.empty()) check_output_path(a->json, "--json");
    run_bench(*a);
  });
}

static const CommandRegistrar registrar(80, register_bench_gemm);

}  // namespace fpq::cli
