// bench_cuda: fpq's CUDA kernels against cuBLASLt bf16 on the same shapes, in one run.
//
// Shapes: Llama-3-8B linear layers N x K = 4096x4096, 28672x4096, 4096x14336 with M = 1, 16, 128, 2048
// (or --quick: one shape). For each (shape, M): cuBLASLt bf16 (bf16 out, fp32 accumulation, its heuristic's
// first algorithm) and fpq's kernels:
//   W4A16 mxfp4 / nvfp4 / int4 (g128) / q4_0, W6A16 fp6_e3m2 / mxfp6_e2m3, W5A16 fp5_e2m2, W8A16 fp8_e4m3 /
//   int8 (bf16 activations, weight-only matmul; FPQ_CUDA_PROMOTE=0 sends int4 / q4_0 prefill back to the decode
//   kernel, =sets / =rescale force one promoting kernel, for A/B runs), W4A4 mxfp4 / nvfp4 and W8A8 mxfp8 / fp8_e4m3 (activation
//   quantization included in the time; W4A4 mxfp4 twice: the int8 route, with the weight's int8 image, and the
//   bf16 tensor-core route), Q4_0 x Q8_1 (activation quantization included; dp4a up to M = 16, then
//   the tensor-core kernel).
// Times are medians of individually event-timed runs after warm-up; weights rotate over enough copies to
// exceed the L2 cache. --chain adds, for M = 1, the time per kernel in a chain of dependent launches as a
// model's decode step runs them: one CUDA graph of launches over the rotating copies (fpq's decode kernel with
// programmatic dependent launch, so each kernel's start overlaps the previous one's end; cuBLASLt in the same
// graph form), median graph time / launches. Bandwidth: a large device-to-device copy in the same run (bytes read + written); each
// kernel's fraction = its bytes (weights + activations + output, each once) per second over that.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "formats/quantize.h"
#include "kernels/cuda/cuda_kernels.h"
#include "read_probe.h"
#include "util/error.h"
#include "util/half.h"
#include "util/parallel.h"
#include "util/rng.h"

using namespace fpq;
using namespace fpq::cuda;

namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("{}: {}", what, cudaGetErrorString(e));
}
void ckb(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("{}: cublas status {}", what, int(s));
}

// The stream the cuBLAS plans and the chained launches run on (nullptr: the legacy default stream).
cudaStream_t g_stream = nullptr;

// Median time (microseconds) of `reps` individually timed runs of fn(i) after `warm` runs.
int g_reps = 30;
double time_us(const std::function<void(int)>& fn, int reps = -1, int warm = 5) {
  if (reps < 0) reps = g_reps;
  for (int i = 0; i < warm; ++i) fn(i);
  ck(cudaDeviceSynchronize(), "sync");
  std::vector<cudaEvent_t> ev(size_t(2 * reps));
  for (auto& e : ev) ck(cudaEventCreate(&e), "event");
  for (int i = 0; i < reps; ++i) {
    ck(cudaEventRecord(ev[size_t(2 * i)]), "record");
    fn(warm + i);
    ck(cudaEventRecord(ev[size_t(2 * i + 1)]), "record");
  }
  ck(cudaDeviceSynchronize(), "sync");
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    float ms = 0;
    ck(cudaEventElapsedTime(&ms, ev[size_t(2 * i)], ev[size_t(2 * i + 1)]), "elapsed");
    t.push_back(double(ms) * 1000.0);
  }
  for (auto& e : ev) cudaEventDestroy(e);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Per-launch time (microseconds) of fn(0) .. fn(n - 1) launched back to back on g_stream, captured as one CUDA
// graph: the median over `reps` graph launches, divided by n.
double chained_us(const std::function<void(int)>& fn, int n, int reps = 10) {
  cudaStream_t s;
  ck(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  g_stream = s;
  for (int i = 0; i < n; ++i) fn(i);  // warm-up outside the graph
  ck(cudaStreamSynchronize(s), "sync");
  cudaGraph_t g;
  cudaGraphExec_t ge;
  ck(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "capture");
  for (int i = 0; i < n; ++i) fn(i);
  ck(cudaStreamEndCapture(s, &g), "end capture");
  ck(cudaGraphInstantiate(&ge, g, 0), "instantiate");
  ck(cudaGraphLaunch(ge, s), "replay");
  cudaEvent_t e0, e1;
  ck(cudaEventCreate(&e0), "event");
  ck(cudaEventCreate(&e1), "event");
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    ck(cudaEventRecord(e0, s), "record");
    ck(cudaGraphLaunch(ge, s), "replay");
    ck(cudaEventRecord(e1, s), "record");
    ck(cudaEventSynchronize(e1), "sync");
    float ms = 0;
    ck(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
    t.push_back(double(ms) * 1000.0 / n);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  g_stream = nullptr;
  cudaStreamDestroy(s);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Gaussian-ish random values (sum of uniforms), deterministic per index, filled in parallel.
std::vector<float> random_values(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  parallel_for(n, 1 << 16, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) {
      const uint64_t h = hash_u64(seed, uint64_t(i));
      float s = 0;
      for (int q = 0; q < 4; ++q) s += float((h >> (16 * q)) & 0xFFFF) * (1.0f / 65536.0f);
      v[size_t(i)] = (s - 2.0f) * 1.7320508f * scale;
    }
  });
  return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& x) {
  std::vector<uint16_t> h(x.size());
  parallel_for(int64_t(x.size()), 1 << 16, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) h[size_t(i)] = f32_to_bf16(x[size_t(i)]);
  });
  return h;
}

// A copy of a prepared weight (new device buffers, same contents).
PreparedWeight clone(const PreparedWeight& w) {
  PreparedWeight c;
  c.format = w.format;
  c.n = w.n;
  c.k = w.k;
  c.n_tiles = w.n_tiles;
  c.k_tiles = w.k_tiles;
  c.bits = w.bits;
  c.is_int = w.is_int;
  c.ebits = w.ebits;
  c.mbits = w.mbits;
  c.bias = w.bias;
  c.scale = w.scale;
  c.group = w.group;
  c.global = w.global;
  c.fold_ok = w.fold_ok;
  c.fold_shift = w.fold_shift;
  c.rescale_ok = w.rescale_ok;
  c.value_log2 = w.value_log2;
  auto dup = [](const DeviceBuffer& b) {
    DeviceBuffer d(b.size());
    if (b.size()) ck(cudaMemcpy(d.data(), b.data(), b.size(), cudaMemcpyDeviceToDevice), "clone");
    return d;
  };
  c.plane4 = dup(w.plane4);
  c.plane_hi = dup(w.plane_hi);
  c.scales = dup(w.scales);
  c.row_global = dup(w.row_global);
  return c;
}

int copies_for(size_t bytes) {
  const size_t target = size_t(200) << 20;  // 200 MB: well past H100/H200 L2 (50-60 MB)
  return int(std::clamp<size_t>((target + bytes - 1) / bytes, 1, 24));
}

struct Row {
  std::string shape;
  int64_t m;
  std::string kernel;
  double us;
  double cublas_us;
  double bytes;
};

struct ChainRow {
  std::string shape, kernel;
  double us, chained_us, cublas_chained_us, bytes;
  double probe_us, probe_chained_us;  // a plain streaming read of the weight bytes, timed the same two ways
};

// The read probe (read_probe.cu) over `bytes`, rotating over enough buffers to miss L2: {alone, chained} us.
std::pair<double, double> read_probe_us(size_t bytes) {
  bytes = (bytes + 15) / 16 * 16;
  std::vector<DeviceBuffer> bufs;
  for (int c = 0; c < copies_for(bytes); ++c) {
    bufs.emplace_back(bytes);
    bufs.back().fill_bytes(1);
  }
  DeviceBuffer sink(4);
  auto run = [&](int i) { bench::launch_read_probe(bufs[size_t(i) % bufs.size()].data(), bytes, sink.as<uint32_t>(), g_stream); };
  const double alone = time_us(run);
  return {alone, chained_us(run, 2 * int(bufs.size()))};
}

struct CublasBf16 {
  cublasLtHandle_t h = nullptr;
  DeviceBuffer ws;
  CublasBf16() {
    ckb(cublasLtCreate(&h), "cublasLtCreate");
    ws.reset(size_t(64) << 20);
  }
  ~CublasBf16() { cublasLtDestroy(h); }
  // Y (M x N row-major, bf16) = X (M x K row-major, bf16) * W (N x K row-major, bf16)^T.
  std::function<void(const void* w, const void* x, void* y)> plan(int64_t m, int64_t n, int64_t k) {
    cublasLtMatmulDesc_t op;
    ckb(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    ckb(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "attr");
    ckb(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "attr");
    cublasLtMatrixLayout_t la, lb, lc;
    ckb(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, uint64_t(k), uint64_t(n), k), "layout");  // W^T: k x n, ld k
    ckb(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, uint64_t(k), uint64_t(m), k), "layout");  // X^T: k x m
    ckb(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, uint64_t(n), uint64_t(m), n), "layout");  // Y^T: n x m
    cublasLtMatmulPreference_t pref;
    ckb(cublasLtMatmulPreferenceCreate(&pref), "pref");
    size_t wsb = ws.size();
    ckb(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb)), "pref");
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    ckb(cublasLtMatmulAlgoGetHeuristic(h, op, la, lb, lc, lc, pref, 1, &res, &found), "heuristic");
    if (found == 0) fail("cuBLASLt found no algorithm for {}x{}x{}", m, n, k);
    cublasLtMatmulPreferenceDestroy(pref);
    auto algo = std::make_shared<cublasLtMatmulAlgo_t>(res.algo);
    void* wsp = ws.data();
    cublasLtHandle_t hh = h;
    return [=](const void* w, const void* x, void* y) {
      const float alpha = 1.0f, beta = 0.0f;
      ckb(cublasLtMatmul(hh, op, &alpha, w, la, x, lb, &beta, y, lc, y, lc, algo.get(), wsp, wsb, g_stream), "matmul");
    };
  }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    bool quick = false;
    std::string only, shape_arg;
    std::vector<int64_t> m_arg;
    int reps = 30;
    bool chain = false;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) fail("option {} needs a value", a);
        return argv[++i];
      };
      if (a == "--quick") quick = true;
      else if (a == "--only") only = next();          // substring of the kernel name (cuBLAS always runs)
      else if (a == "--shape") shape_arg = next();    // NxK
      else if (a == "--m") m_arg.push_back(std::stoll(next()));
      else if (a == "--reps") reps = std::stoi(next());
      else if (a == "--chain") chain = true;
      else fail("unknown option {} (--quick, --only S, --shape NxK, --m M, --reps R, --chain)", a);
    }
    g_reps = reps;
    auto wanted = [&](const std::string& name) { return only.empty() || name.find(only) != std::string::npos; };
    std::string why;
    if (!cuda_available(&why)) {
      std::printf("bench_cuda: no usable GPU: %s\n", why.c_str());
      return 0;
    }
    std::printf("device: %s\n", device_description().c_str());

    // Measured bandwidth: device-to-device copy of 1 GiB (2 GiB moved).
    double copy_bw = 0;
    {
      const size_t bytes = size_t(1) << 30;
      DeviceBuffer a(bytes), b(bytes);
      a.fill_bytes(1);
      const double us = time_us([&](int) { ck(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice), "copy"); }, 10, 2);
      copy_bw = 2.0 * double(bytes) / (us * 1e-6);
      std::printf("device-to-device copy: %.0f us for 1 GiB -> %.2f TB/s (read + write)\n", us, copy_bw / 1e12);
    }

    struct Shape {
      int64_t n, k;
    };
    std::vector<Shape> shapes = {{4096, 4096}, {28672, 4096}, {4096, 14336}};
    if (quick) shapes = {{4096, 14336}};
    if (!shape_arg.empty()) {
      const size_t x = shape_arg.find('x');
      if (x == std::string::npos) fail("--shape wants NxK");
      shapes = {{std::stoll(shape_arg.substr(0, x)), std::stoll(shape_arg.substr(x + 1))}};
    }
    const std::vector<int64_t> ms = m_arg.empty() ? std::vector<int64_t>{1, 16, 128, 2048} : m_arg;
    const std::vector<const char*> wonly = {"mxfp4", "nvfp4", "int4", "q4_0", "fp6_e3m2", "mxfp6_e2m3", "fp5_e2m2",
                                            "fp8_e4m3", "int8"};
    struct WA {
      const char* name;
      const char* fmt;
    };
    const std::vector<WA> wa = {{"W4A4 mxfp4", "mxfp4"}, {"W4A4 nvfp4", "nvfp4"}, {"W8A8 mxfp8", "mxfp8_e4m3"},
                                {"W8A8 fp8_e4m3", "fp8_e4m3"}};
    std::vector<Row> rows;
    std::vector<ChainRow> chain_rows;
    CublasBf16 cub;

    for (const Shape& sh : shapes) {
      const std::string sname = fmt::format("{}x{}", sh.n, sh.k);
      std::fprintf(stderr, "shape %s: preparing weights\n", sname.c_str());
      const std::vector<float> wf = random_values(sh.n * sh.k, 1234 + uint64_t(sh.n), 0.02f);
      // cuBLAS bf16 weights (rotating copies).
      const std::vector<uint16_t> wbf = to_bf16(wf);
      const size_t wbytes = wbf.size() * 2;
      std::vector<DeviceBuffer> wdev;
      for (int c = 0; c < copies_for(wbytes); ++c) wdev.push_back(to_device(wbf.data(), wbytes));

      // Our prepared weights, per format.
      std::map<std::string, std::vector<PreparedWeight>> pw;
      std::vector<std::string> all_formats;
      for (const char* f : wonly) all_formats.push_back(f);
      for (const WA& x : wa) all_formats.push_back(x.fmt);
      auto format_wanted = [&](const std::string& f) {
        if (wanted(f)) return true;
        for (const WA& x : wa)
          if (f == x.fmt && wanted(x.name)) return true;
        return false;
      };
      for (const std::string& f : all_formats) {
        if (pw.count(f) || !format_wanted(f)) continue;
        const QuantizedTensor q = quantize(parse_format(f), wf.data(), sh.n, sh.k);
        std::vector<PreparedWeight> v;
        v.push_back(prepare_weight_cuda(q));
        const int copies = copies_for(v[0].device_bytes());
        for (int c = 1; c < copies; ++c) v.push_back(clone(v[0]));
        // W4A4 mxfp4: the int8 image too (the int8 route; the bf16 route is timed beside it without the image).
        if (f == "mxfp4" && wanted("W4A4 mxfp4"))
          for (auto& pc : v) prepare_int8_prefill(pc, q);
        pw[f] = std::move(v);
      }
      // Q4_0 raw blocks for the dp4a kernel.
      std::vector<DeviceBuffer> q40;
      size_t q40_bytes = 0;
      {
        const QuantizedTensor q = quantize(parse_format("q4_0"), wf.data(), sh.n, sh.k);
        q40_bytes = q.codes.size();
        for (int c = 0; c < copies_for(q40_bytes); ++c) q40.push_back(to_device(q.codes.data(), q40_bytes));
      }

      for (int64_t m : ms) {
        std::fprintf(stderr, "shape %s M=%lld\n", sname.c_str(), (long long)m);
        const std::vector<uint16_t> xh = to_bf16(random_values(m * sh.k, 99 + uint64_t(m)));
        DeviceBuffer x = to_device(xh.data(), xh.size() * 2);
        DeviceBuffer y(size_t(m * sh.n * 4));
        const double act_bytes = double(m * sh.k * 2), out_bytes = double(m * sh.n * 2);

        auto plan = cub.plan(m, sh.n, sh.k);
        const double cublas_us =
            time_us([&](int i) { plan(wdev[size_t(i) % wdev.size()].data(), x.data(), y.data()); });
        rows.push_back({sname, m, "cuBLAS bf16", cublas_us, cublas_us, double(wbytes) + act_bytes + out_bytes});

        for (const char* f : wonly) {
          if (!wanted(f)) continue;
          auto& v = pw[f];
          const double us = time_us([&](int i) {
            matmul_weight_only_cuda(v[size_t(i) % v.size()], x.data(), DType::BF16, m, y.data(), DType::BF16);
          });
          rows.push_back({sname, m, fmt::format("{} (W{}A16)", f, v[0].bits), us, cublas_us,
                          double(v[0].device_bytes()) + act_bytes + out_bytes});
          if (chain && m == 1) {
            DecodeFusion pdl;
            pdl.programmatic = true;
            const int n = 2 * int(v.size());
            const double cu = chained_us([&](int i) {
              matmul_decode_fused_cuda(v[size_t(i) % v.size()], x.data(), y.data(), DType::BF16, pdl, g_stream);
            }, n);
            const double cb = chained_us([&](int i) { plan(wdev[size_t(i) % wdev.size()].data(), x.data(), y.data()); },
                                         2 * int(wdev.size()));
            const auto probe = read_probe_us(v[0].device_bytes());
            chain_rows.push_back({sname, fmt::format("{} (W{}A16)", f, v[0].bits), us, cu, cb,
                                  double(v[0].device_bytes()) + act_bytes + out_bytes, probe.first, probe.second});
          }
          if (m <= 32 && v[0].fold_ok) {
            // Baseline in the same run: the decode kernel without the fused fold (per-group float32 sums).
            for (auto& pwc : v) pwc.fold_ok = false;
            const double us_nf = time_us([&](int i) {
              matmul_weight_only_cuda(v[size_t(i) % v.size()], x.data(), DType::BF16, m, y.data(), DType::BF16);
            });
            for (auto& pwc : v) pwc.fold_ok = true;
            rows.push_back({sname, m, fmt::format("{} (W{}A16, fused fold off)", f, v[0].bits), us_nf, cublas_us,
                            double(v[0].device_bytes()) + act_bytes + out_bytes});
          }
        }
        if (m >= 128) {
          for (const WA& x4 : wa) {
            if (!wanted(x4.name)) continue;
            auto& v = pw[x4.fmt];
            const Format fa = parse_format(x4.fmt);
            auto time_pair = [&](const std::string& label) {
              DeviceQuantized q;
              ActQuantOptions opt;
              opt.mma_operand = quantized_matmul_needs_mma_operand(fa, v[0], m);
              if (fa.global == GlobalScale::PerTensor) opt.global_scale = 0.01f;  // a calibrated activation scale
              quantize_activations_cuda(fa, x.data(), DType::BF16, m, sh.k, q, opt);
              const double us_q = time_us([&](int) { quantize_activations_cuda(fa, x.data(), DType::BF16, m, sh.k, q, opt); });
              const double us_mm = time_us([&](int i) { matmul_quantized_cuda(q, v[size_t(i) % v.size()], y.data(), DType::BF16); });
              const double us = time_us([&](int i) {
                quantize_activations_cuda(fa, x.data(), DType::BF16, m, sh.k, q, opt);
                matmul_quantized_cuda(q, v[size_t(i) % v.size()], y.data(), DType::BF16);
              });
              rows.push_back({sname, m, fmt::format("{} (act quant {:.1f} + matmul {:.1f})", label, us_q, us_mm), us,
                              cublas_us, double(v[0].device_bytes()) + act_bytes + out_bytes});
            };
            if (v[0].i8_rows == 0 || quantized_matmul_needs_mma_operand(fa, v[0], m)) {  // no int8 route here
              time_pair(x4.name);
              continue;
            }
            // The int8 route (the default with an image), then the bf16 tensor-core route on the same weights.
            time_pair(fmt::format("{}, int8 route", x4.name));
            std::vector<int64_t> held;  // i8_rows = 0 turns the int8 route off (the image stays)
            for (auto& pc : v) held.push_back(std::exchange(pc.i8_rows, 0));
            time_pair(fmt::format("{}, bf16 route", x4.name));
            for (size_t c = 0; c < v.size(); ++c) v[c].i8_rows = held[c];
          }
        }
        if (wanted("q4_0 x q8_1")) {
          const Format q81 = parse_format("q8_1");
          DeviceQuantized q;
          quantize_activations_cuda(q81, x.data(), DType::BF16, m, sh.k, q);
          const double us = time_us([&](int i) {
            quantize_activations_cuda(q81, x.data(), DType::BF16, m, sh.k, q);
            matmul_q4_0_q8_1_cuda(q40[size_t(i) % q40.size()].data(), q.codes.data(), sh.n, m, sh.k, y.as<float>());
          });
          const bool dot = m <= 16 || (std::getenv("FPQ_CUDA_PROMOTE") && std::string(std::getenv("FPQ_CUDA_PROMOTE")) == "0");
          rows.push_back({sname, m, fmt::format("q4_0 x q8_1 ({}, act quant incl.)", dot ? "dp4a" : "tensor cores"), us, cublas_us,
                          double(q40_bytes) + act_bytes + double(m * sh.n * 4)});
        }
      }
    }

    std::printf("\n| N x K | M | kernel | us (median) | cuBLAS bf16 us | speed-up vs bf16 | GB/s | of copy BW |\n");
    std::printf("|---|---:|---|---:|---:|---:|---:|---:|\n");
    for (const Row& r : rows) {
      const double gbs = r.bytes / (r.us * 1e-6) / 1e9;
      std::printf("| %s | %lld | %s | %.1f | %.1f | %.2fx | %.0f | %.0f%% |\n", r.shape.c_str(), (long long)r.m,
                  r.kernel.c_str(), r.us, r.cublas_us, r.cublas_us / r.us, gbs, 100.0 * gbs * 1e9 / copy_bw);
    }
    if (!chain_rows.empty()) {
      std::printf("\nM = 1 in a chain of dependent launches (one CUDA graph over the rotating weight copies; fpq's "
                  "decode kernel with programmatic dependent launch):\n\n");
      std::printf("| N x K | kernel | us (alone) | us (chained) | cuBLAS bf16 us (chained) | chained vs bf16 | GB/s (chained) | of copy BW "
                  "| read probe us (alone / chained) | vs probe (alone / chained) |\n");
      std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
      for (const ChainRow& r : chain_rows) {
        const double gbs = r.bytes / (r.chained_us * 1e-6) / 1e9;
        std::printf("| %s | %s | %.1f | %.1f | %.1f | %.2fx | %.0f | %.0f%% | %.1f / %.1f | %.2fx / %.2fx |\n", r.shape.c_str(),
                    r.kernel.c_str(), r.us, r.chained_us, r.cublas_chained_us, r.cublas_chained_us / r.chained_us, gbs,
                    100.0 * gbs * 1e9 / copy_bw, r.probe_us, r.probe_chained_us, r.us / r.probe_us,
                    r.chained_us / r.probe_chained_us);
      }
      const double empty_alone = time_us([&](int) { bench::launch_empty(g_stream); });
      const double empty_chained = chained_us([&](int) { bench::launch_empty(g_stream); }, 64);
      // Alone, an empty kernel's time between its events is the host's enqueue time per launch (the GPU waits for
      // the launch after the first event); kernels longer than that, fpq's and the probe, keep the queue ahead.
      std::printf("\nread probe: a plain streaming read of the weight bytes (16-byte non-caching loads, resident CTAs); "
                  "an empty kernel: %.2f us per launch chained (%.1f us alone: the host's enqueue time per launch)\n",
                  empty_chained, empty_alone);
    }
    std::printf("\nmeasured copy bandwidth: %.2f TB/s (read + write)\n", copy_bw / 1e12);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: error: %s\n", e.what());
    return 1;
  }
}
