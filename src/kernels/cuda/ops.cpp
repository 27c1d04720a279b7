// Host entry points: checks, buffer management and dispatch to the kernels.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "formats/ggml_blocks.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/internal.h"
#include "util/error.h"

namespace fpq::cuda {
namespace {

using detail::check;

detail::ElemDesc elem_desc(const ElementType& e) {
  detail::ElemDesc d;
  d.is_int = e.kind == NumberKind::Int ? 1 : 0;
  d.bits = e.bits;
  d.ebits = e.ebits;
  d.mbits = e.mbits;
  d.bias = e.bias;
  d.is_signed = e.is_signed ? 1 : 0;
  d.specials = e.specials == Specials::Finite ? 0 : e.specials == Specials::Fn ? 1 : 2;
  d.max_magnitude = e.max_magnitude;
  d.max_f32 = e.max_magnitude_f32;
  d.qmin = e.qmin;
  d.qmax = e.qmax;
  d.emax = e.emax;
  return d;
}

int scale_code(ScaleType s) {
  switch (s) {
    case ScaleType::None: return detail::kScaleNone;
    case ScaleType::E8M0: return detail::kScaleE8M0;
    case ScaleType::E4M3: return detail::kScaleE4M3;
    case ScaleType::F16: return detail::kScaleF16;
    case ScaleType::BF16: return detail::kScaleBF16;
    case ScaleType::F32: return detail::kScaleF32;
  }
  return detail::kScaleNone;
}

int dtype_code(DType t) { return t == DType::F32 ? detail::kF32 : t == DType::BF16 ? detail::kBF16 : detail::kF16; }

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// Significant bits of an element's values (for exactness in bf16).
int element_sig_bits(const ElementType& e) {
  if (e.kind == NumberKind::Int) return e.bits - 1;
  return e.mbits + 1;
}

bool mma_foldable(const Format& f) {
  const int sbits = f.scale == ScaleType::E8M0 ? 1 : f.scale == ScaleType::E4M3 ? 4 : 99;
  return element_sig_bits(*f.element) + sbits <= 8;
}

void ensure(DeviceBuffer& b, size_t bytes) {
  if (b.size() != bytes) b.reset(bytes);
}

// Fills one float in device memory, in stream order (a kernel, so no host synchronisation).
void set_float_async(float* dst, float v, cudaStream_t stream) { detail::launch_fill_float(dst, v, stream); }

detail::WeightView view_of(const PreparedWeight& w) {
  detail::WeightView v;
  v.plane4 = w.plane4.as<uint8_t>();
  v.plane_hi = w.plane_hi.as<uint8_t>();
  v.scales = w.scales.as<uint8_t>();
  v.row_global = w.row_global.as<float>();
  v.global = w.global;
  v.n = w.n;
  v.k = w.k;
  v.n_tiles = w.n_tiles;
  v.k_tiles = w.k_tiles;
  v.bits = w.bits;
  v.is_int = w.is_int ? 1 : 0;
  v.ebits = w.ebits;
  v.mbits = w.mbits;
  v.bias = w.bias;
  v.scale = scale_code(w.scale);
  v.sb = scale_type_bytes(w.scale);
  v.group = w.group;
  v.n_groups = (w.k_tiles * 64 + w.group - 1) / w.group;
  v.fold_ok = w.fold_ok ? 1 : 0;
  v.fold_shift = w.fold_shift;
  v.rescale_ok = w.rescale_ok ? 1 : 0;
  return v;
}

// FPQ_CUDA_PROMOTE=0 keeps group scales that cannot be folded (and Q4_0 x Q8_1 beyond M = 16) off the promoting
// tensor-core kernel: the routes before it, for A/B runs. By default weights with PreparedWeight::rescale_ok take
// the one-set rescaling kernel where its tile is 256 wide (gemm_two_sets); FPQ_CUDA_PROMOTE=sets / rescale force
// one kernel at every M.
const std::string& promote_mode() {
  static const std::string mode = [] {
    const char* e = std::getenv("FPQ_CUDA_PROMOTE");
    return std::string(e ? e : "");
  }();
  return mode;
}
bool promote_enabled() { return promote_mode() != "0"; }
int promote_sets() { return promote_mode() == "sets" ? 1 : promote_mode() == "rescale" ? -1 : 0; }

// Q4_0 x Q8_1 batches up to this size take the dp4a kernel (H100, 2026-12-06: at M = 16 it took 170 us for
// 4096 x 14336 against 206 us for the conversions + tensor-core kernel; at M = 128, 1092 against 228).
constexpr int64_t kQ4Q8DotMaxM = 16;

void run_gemm(detail::GemmParams gp, cudaStream_t stream) {
  gp.splits = detail::gemm_choose_splits(gp.m, gp.w.n, gp.w.k, detail::gemm_two_sets(gp));
  void* ws = nullptr;
  if (gp.splits > 1) {
    check(cudaMallocAsync(&ws, size_t(gp.splits) * gp.m * gp.w.n * sizeof(float), stream), "cudaMallocAsync");
    gp.workspace = static_cast<float*>(ws);
  }
  detail::launch_gemm(gp, stream);
  if (ws) check(cudaFreeAsync(ws, stream), "cudaFreeAsync");
}

}  // namespace

void apply_block_transform_reference(const float* T, int G, bool per_block, const float* x, int64_t rows, int64_t cols,
                                     float* y) {
  if (G <= 0 || cols % G != 0) fail("block transform: {} columns are not a multiple of the block {}", cols, G);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < cols / G; ++b) {
      const float* Tb = T + (per_block ? b * int64_t(G) * G : 0);
      const float* xb = x + r * cols + b * G;
      float* yb = y + r * cols + b * G;
      for (int i = 0; i < G; ++i) {
        float acc = Tb[i * G] * xb[0];
        for (int j = 1; j < G; ++j) {
          const float prod = Tb[i * G + j] * xb[j];
          acc = acc + prod;
        }
        yb[i] = acc;
      }
    }
}

int64_t DeviceQuantized::row_code_bytes() const {
  switch (format.layout) {
    case Layout::GgmlQ8_0: return cols / kGgmlBlock * kQ8_0Bytes;
    case Layout::GgmlQ8_1: return cols / kGgmlBlock * kQ8_1Bytes;
    default: return (cols * format.element->bits + 7) / 8;
  }
}

int64_t DeviceQuantized::groups_per_row() const { return format.is_ggml() ? 0 : cols / format.group_for(cols); }

QuantizedTensor DeviceQuantized::download() const {
  QuantizedTensor q;
  q.format = format;
  q.rows = rows;
  q.cols = cols;
  q.codes.resize(size_t(rows * row_code_bytes()));
  codes.download(q.codes.data(), q.codes.size());
  if (!format.is_ggml()) {
    q.scales.resize(size_t(rows * groups_per_row() * scale_type_bytes(format.scale)));
    scales.download(q.scales.data(), q.scales.size());
    if (format.global == GlobalScale::PerTensor) {
      q.global_scale.resize(1);
      global.download(q.global_scale.data(), sizeof(float));
    } else if (format.global == GlobalScale::PerRow) {
      q.global_scale.resize(size_t(rows));
      global.download(q.global_scale.data(), size_t(rows) * sizeof(float));
    }
  }
  return q;
}

std::string act_quant_unsupported(const Format& f) {
  if (f.layout == Layout::GgmlQ8_0 || f.layout == Layout::GgmlQ8_1) return {};
  if (f.is_ggml()) return fmt::format("format '{}': llama.cpp activation blocks other than q8_0 / q8_1", f.name);
  if (!(f.rule == ScaleRule::Mx || f.rule == ScaleRule::Absmax || f.rule == ScaleRule::FourOverSix))
    return fmt::format("format '{}': scale rule {} is not supported on CUDA (mx, absmax, 4o6)", f.name,
                       scale_rule_name(f.rule));
  if (f.scale == ScaleType::None) return fmt::format("format '{}': plain casts (no scale) are not supported on CUDA", f.name);
  const ElementType& e = *f.element;
  if (e.kind == NumberKind::Int && !e.is_signed)
    return fmt::format("format '{}': unsigned integer elements are not supported on CUDA", f.name);
  if (e.bits < 2 || e.bits > 8) return fmt::format("format '{}': {}-bit elements", f.name, e.bits);
  if (f.group > 0 && f.group % 8 != 0)
    return fmt::format("format '{}': group size {} (CUDA takes multiples of 8)", f.name, f.group);
  if (f.rule == ScaleRule::FourOverSix && (f.group == 0 || f.group > 128))
    return fmt::format("format '{}': four-over-six with groups of more than 128 values", f.name);
  return {};
}

void quantize_activations_cuda(const Format& f, const void* x, DType xtype, int64_t rows, int64_t cols,
                               DeviceQuantized& out, const ActQuantOptions& opt, cudaStream_t stream) {
  if (const std::string why = act_quant_unsupported(f); !why.empty()) fail("quantize_activations_cuda: {}", why);
  check_format_cols(f, cols);
  if (rows < 0) fail("quantize_activations_cuda: negative row count");
  const BlockTransform& tr = opt.transform;
  if (tr.matrices) {
    if (!(tr.block == 16 || tr.block == 32 || tr.block == 64 || tr.block == 128))
      fail("quantize_activations_cuda: transform block {} (use 16, 32, 64 or 128)", tr.block);
    if (cols % tr.block != 0) fail("quantize_activations_cuda: {} columns are not a multiple of the transform block {}", cols, tr.block);
  }
  if (opt.global_scale && !(*opt.global_scale > 0 && std::isfinite(*opt.global_scale)))
    fail("the global scale must be positive and finite (got {})", *opt.global_scale);

  out.format = f;
  out.rows = rows;
  out.cols = cols;
  out.has_mma = false;
  ensure(out.codes, size_t(std::max<int64_t>(1, rows * out.row_code_bytes())));

  detail::ActQuantParams p;
  p.x = x;
  p.xtype = dtype_code(xtype);
  p.rows = rows;
  p.cols = cols;
  p.e = elem_desc(*f.element);
  p.codes = out.codes.as<uint8_t>();
  p.row_code_bytes = out.row_code_bytes();
  p.T = tr.matrices;
  p.tblock = tr.matrices ? tr.block : 0;
  p.tper_block = tr.per_block ? 1 : 0;

  if (f.layout == Layout::GgmlQ8_0 || f.layout == Layout::GgmlQ8_1) {
    if (opt.mma_operand) fail("quantize_activations_cuda: format '{}' has no tensor-core operand (use the q4_0 x q8_1 matmul)", f.name);
    p.group = 32;
    out.scales.reset();
    detail::launch_quantize_q8(p, f.layout == Layout::GgmlQ8_1, stream);
    return;
  }

  const int G = f.group_for(cols);
  if (tr.matrices && G <= 128 && tr.block > G && tr.block % G != 0)
    fail("quantize_activations_cuda: transform block {} and group {} do not nest", tr.block, G);
  if (tr.matrices && G > 128 && G % tr.block != 0)
    fail("quantize_activations_cuda: group {} is not a multiple of the transform block {}", G, tr.block);
  if (tr.matrices && G <= 128 && tr.block < G && G % tr.block != 0)
    fail("quantize_activations_cuda: group {} is not a multiple of the transform block {}", G, tr.block);
  if (G > 128 && size_t(G) * (tr.matrices ? 2 : 1) * sizeof(float) > 200 * 1024)
    fail("quantize_activations_cuda: groups of {} values are too large for one CTA", G);
  if (G > 128 && G % 8 != 0) fail("quantize_activations_cuda: group {} is not a multiple of 8", G);

  const int sb = scale_type_bytes(f.scale);
  ensure(out.scales, size_t(std::max<int64_t>(1, rows * (cols / G) * sb)));
  p.scale = scale_code(f.scale);
  p.sb = sb;
  p.group = G;
  p.rule = f.rule == ScaleRule::Mx ? detail::kRuleMx : f.rule == ScaleRule::Absmax ? detail::kRuleAbsmax : detail::kRuleFourOverSix;
  p.ss = f.effective_scale_scale();
  p.scales = out.scales.as<uint8_t>();

  // global_scale_from_amax: amax / (scale_scale * scale type max), with 256 for four-over-six on E4M3.
  const float smax = f.rule == ScaleRule::FourOverSix && f.scale == ScaleType::E4M3 ? 256.0f : scale_type_max(f.scale);
  const float denom = f.effective_scale_scale() * smax;
  if (f.global == GlobalScale::PerTensor) {
    ensure(out.global, sizeof(float));
    p.global = out.global.as<float>();
    if (opt.global_scale) {
      set_float_async(out.global.as<float>(), *opt.global_scale, stream);
    } else {
      void* scratch = nullptr;
      check(cudaMallocAsync(&scratch, sizeof(float), stream), "cudaMallocAsync");
      detail::launch_global_from_amax(p, denom, static_cast<float*>(scratch), out.global.as<float>(), stream);
      check(cudaFreeAsync(scratch, stream), "cudaFreeAsync");
    }
  } else if (f.global == GlobalScale::PerRow) {
    if (tr.matrices) fail("quantize_activations_cuda: format '{}': per-row global scales with a block transform", f.name);
    if (opt.mma_operand) fail("quantize_activations_cuda: format '{}': per-row global scales have no tensor-core operand", f.name);
    ensure(out.global, size_t(std::max<int64_t>(1, rows)) * sizeof(float));
    p.global = out.global.as<float>();
    p.global_per_row = 1;
    if (opt.global_scale) detail::launch_fill_float_n(out.global.as<float>(), rows, *opt.global_scale, stream);
    else detail::launch_row_global_from_amax(p, denom, out.global.as<float>(), stream);
  } else {
    ensure(out.global, sizeof(float));
    set_float_async(out.global.as<float>(), 1.0f, stream);
    p.global = nullptr;
  }

  if (opt.mma_operand) {
    const bool per_row = G == cols;
    if (!per_row && !((f.scale == ScaleType::E8M0 || f.scale == ScaleType::E4M3) && mma_foldable(f)))
      fail("quantize_activations_cuda: format '{}' has no exact bf16 tensor-core operand (needs E8M0 / E4M3 group "
           "scales or one scale per row)", f.name);
    if (f.element->kind == NumberKind::Float && f.element->ebits > 8)
      fail("quantize_activations_cuda: format '{}' does not fit bf16", f.name);
    const int64_t ld = round_up(cols, 64);
    ensure(out.mma, size_t(std::max<int64_t>(1, rows * ld)) * 2);
    p.mma = out.mma.as<uint16_t>();
    p.mma_ld = ld;
    p.mma_fold = per_row ? 0 : 1;
    if (per_row) {
      ensure(out.row_scale, size_t(std::max<int64_t>(1, rows)) * sizeof(float));
      p.row_scale = out.row_scale.as<float>();
    } else {
      out.row_scale.reset();
    }
    out.has_mma = true;
    detail::launch_zero_pad_mma(p, stream);
  }
  detail::launch_act_quant(p, stream);
}

void matmul_weight_only_cuda(const PreparedWeight& w, const void* x, DType xtype, int64_t m, void* y, DType ytype,
                             cudaStream_t stream, int64_t ldx) {
  if (xtype == DType::F32) fail("matmul_weight_only_cuda: activations must be bf16 or fp16");
  if (ldx == 0) ldx = w.k;
  if (ldx < w.k || ldx % 2 != 0) fail("matmul_weight_only_cuda: bad activation row stride {} for K = {}", ldx, w.k);
  if (m <= 0 || w.n == 0) return;
  const detail::WeightView v = view_of(w);
  const int fold = w.group < w.k ? 1 : 0;
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && ldx % 8 == 0;  // cp.async of 16-byte chunks
  // Prefill on the tensor cores: group scales folded into the bf16 operand where that is exact, else applied
  // per group in float32 (promote); the decode kernel, 32 rows at a time, for the rest.
  const bool folds = detail::gemm_supported(v, fold) && (!fold || weight_fold_exact(w));
  const bool promote = promote_enabled() && !folds && fold && detail::gemm_promote_supported(v);
  if (m > 32 && xtype == DType::BF16 && aligned && (folds || promote)) {
    detail::GemmParams gp;
    gp.w = v;
    gp.a = static_cast<const uint16_t*>(x);
    gp.lda = ldx;
    gp.m = m;
    gp.fold_b = promote ? 0 : fold;
    gp.promote = promote ? 1 : 0;
    gp.promote_sets = promote_sets();
    gp.y = y;
    gp.ytype = dtype_code(ytype);
    gp.ldy = w.n;
    run_gemm(gp, stream);
    return;
  }
  const int eb = 2;
  for (int64_t m0 = 0; m0 < m; m0 += 32) {
    detail::GemvParams gp;
    gp.w = v;
    gp.x = static_cast<const char*>(x) + m0 * ldx * eb;
    gp.xtype = dtype_code(xtype);
    gp.ldx = ldx;
    gp.m = std::min<int64_t>(32, m - m0);
    gp.y = static_cast<char*>(y) + m0 * w.n * dtype_bytes(ytype);
    gp.ytype = dtype_code(ytype);
    gp.ldy = w.n;
    detail::launch_gemv(gp, stream);
  }
}

std::string decode_fusion_unsupported(const PreparedWeight& w, const DecodeFusion& f, DType ytype) {
  if (f.rms_x) {
    if (!f.rms_w) return "RMSNorm prologue without its weight";
    if (reinterpret_cast<uintptr_t>(f.rms_x) % 16 != 0 || reinterpret_cast<uintptr_t>(f.rms_w) % 16 != 0)
      return "RMSNorm prologue: the row and the norm weight must be 16-byte aligned";
    const std::string why = detail::gemv_rms_prologue_unsupported(view_of(w));
    if (!why.empty()) return fmt::format("weight format '{}': {}", w.format.name, why);
  }
  if (f.swiglu && w.n % 2 != 0) return fmt::format("SwiGLU epilogue needs an even number of rows (N = {})", w.n);
  if (f.accumulate && ytype != DType::F32) return "the accumulating epilogue needs a float32 output";
  return {};
}

void matmul_decode_fused_cuda(const PreparedWeight& w, const void* x, void* y, DType ytype, const DecodeFusion& f,
                              cudaStream_t stream) {
  const std::string why = decode_fusion_unsupported(w, f, ytype);
  if (!why.empty()) fail("matmul_decode_fused_cuda: {}", why);
  if (w.n == 0) return;
  detail::GemvParams gp;
  gp.w = view_of(w);
  gp.x = x;
  gp.xtype = dtype_code(DType::BF16);
  gp.ldx = w.k;
  gp.m = 1;
  gp.y = y;
  gp.ytype = dtype_code(ytype);
  gp.ldy = f.swiglu ? w.n / 2 : w.n;
  gp.rms_x = f.rms_x;
  gp.rms_w = f.rms_w;
  gp.rms_eps = f.rms_eps;
  gp.swiglu = f.swiglu ? 1 : 0;
  gp.accumulate = f.accumulate ? 1 : 0;
  gp.pdl = f.programmatic ? 1 : 0;
  detail::launch_gemv(gp, stream);
}

std::string quantized_matmul_unsupported(const Format& act, const PreparedWeight& w) {
  const detail::WeightView v = view_of(w);
  const int fold = w.group < w.k ? 1 : 0;
  if (!detail::gemm_supported(v, fold))
    return fmt::format("weight format '{}' has no exact bf16 tensor-core operand (needs E8M0 / E4M3 group scales "
                       "of a power-of-two size, or one scale per row)", w.format.name);
  if (fold && !weight_fold_exact(w)) {
    return fmt::format("weight format '{}': element times scale does not fit bf16 exactly", w.format.name);
  }
  if (act.is_ggml()) return fmt::format("activation format '{}' has no tensor-core operand", act.name);
  return {};
}

namespace {

// W4A4 mxfp4 products from this many activation rows take the int8 route when the weight has an int8 image
// (H100, 2026-12-06, matmul alone, int8 / bf16 route: M = 2048 89.5 / 131.1 us (4096 x 4096), 458.7 / 937.8
// (28672 x 4096), 207.7 / 389.5 (4096 x 14336); at M = 128 the int8 route's fixed steps lose on two shapes of
// three: 39.9 / 26.1, 82.5 / 100.0, 57.1 / 53.3). FPQ_CUDA_W4A4=bf16 keeps such products on the bf16 tensor-core
// kernel, =int8 takes the int8 route at every M (A/B runs and tests).
constexpr int64_t kInt8MinM = 256;
const std::string& w4a4_mode() {
  static const std::string mode = detail::env_choice("FPQ_CUDA_W4A4", {"int8", "bf16"});
  return mode;
}

bool int8_route(const Format& act, const PreparedWeight& w, int64_t m) {
  if (w.i8_rows == 0 || !int8_route_unsupported(act).empty() || w.k % 32 != 0 || w4a4_mode() == "bf16") return false;
  return m >= kInt8MinM || w4a4_mode() == "int8";
}

// The int8 route's GEMM: by default CUTLASS with the scaling fused into its epilogue (over the weight rows' top
// bands; rows with several bands are redone apart) where the output's rows are 16-byte aligned; otherwise (or
// FPQ_INT8_GEMM=cublas, for A/B runs and tests) cuBLASLt's int32 product over every band and a separate epilogue.
bool int8_fused(const PreparedWeight& w, const void* y, DType ytype) {
  static const bool cublas = detail::env_choice("FPQ_INT8_GEMM", {"fused", "cublas"}) == "cublas";
  return !cublas && detail::int8_gemm_scaled_supported(w.n, w.k, dtype_code(ytype), w.n, y);
}

void matmul_w4a4_int8(const DeviceQuantized& a, const PreparedWeight& w, void* y, DType ytype, cudaStream_t stream) {
  const int64_t M = a.rows, K = a.cols, N = w.n, G = K / 32;
  const bool fused = int8_fused(w, y, ytype);
  // The int32 product D: every virtual row (unfused), or the banded rows' image only (fused; often none).
  const int64_t NV = fused ? w.i8_band_rows : w.i8_rows;
  auto up = [](size_t b) { return (b + 255) / 256 * 256; };
  // One scratch allocation: int8 activations, per-row exponent / slot, the fix-up counter, the fix-up rows'
  // inputs and row numbers, the row scales (fused), D. The fix-up inputs are sized for every row (the count is
  // known only on the device); their outputs go straight into y.
  const size_t b_x = up(size_t(M * K)), b_e = up(size_t(M) * 4), b_s = up(size_t(M) * 4), b_c = 256,
               b_fx = up(size_t(M * K) * 2), b_fs = up(size_t(M * G) * 4), b_fr = up(size_t(M) * 4),
               b_rs = fused ? up(size_t(M) * 4) : 0, b_d = up(size_t(M * NV) * 4);
  uint8_t* mem = nullptr;
  check(cudaMallocAsync(reinterpret_cast<void**>(&mem), b_x + b_e + b_s + b_c + b_fx + b_fs + b_fr + b_rs + b_d, stream),
        "cudaMallocAsync");
  uint8_t* at = mem;
  auto take = [&](size_t b) {
    uint8_t* r = at;
    at += b;
    return r;
  };
  detail::Int8FoldParams fp;
  fp.codes = a.codes.as<uint8_t>();
  fp.scales = a.scales.as<uint8_t>();
  fp.m = M;
  fp.k = K;
  fp.out = reinterpret_cast<int8_t*>(take(b_x));
  fp.exp = reinterpret_cast<int*>(take(b_e));
  fp.slot = reinterpret_cast<int*>(take(b_s));
  fp.fix_count = reinterpret_cast<int*>(take(b_c));
  fp.fix_x = reinterpret_cast<uint16_t*>(take(b_fx));
  fp.fix_s = reinterpret_cast<float*>(take(b_fs));
  fp.fix_row = reinterpret_cast<int*>(take(b_fr));
  if (fused) fp.row_scale = reinterpret_cast<float*>(take(b_rs));
  int32_t* d = reinterpret_cast<int32_t*>(take(b_d));
  check(cudaMemsetAsync(fp.fix_count, 0, sizeof(int), stream), "cudaMemsetAsync");
  detail::launch_int8_fold(fp, stream);
  if (fused) {
    detail::Int8ScaledGemmParams gp;
    gp.x = fp.out;
    gp.w = w.i8_codes.as<int8_t>();  // its first N rows: the top bands
    gp.col_scale = w.i8_col_scale.as<double>();
    gp.row_scale = fp.row_scale;
    gp.m = M;
    gp.n = N;
    gp.k = K;
    gp.y = y;
    gp.ytype = dtype_code(ytype);
    gp.ldy = N;
    detail::int8_gemm_scaled(gp, stream);
    if (NV) detail::int8_gemm(w.i8_band_codes.as<int8_t>(), fp.out, d, M, NV, K, stream);
  } else {
    detail::int8_gemm(w.i8_codes.as<int8_t>(), fp.out, d, M, NV, K, stream);
  }
  // Rows that did not fold: the exact float64 kernel, over as many rows as the fold counted (on the device). It
  // runs after the GEMM: the fused GEMM writes those rows too (zeros; NaN rows: NaN).
  detail::ExactParams ep;
  ep.w = view_of(w);
  ep.x = fp.fix_x;
  ep.m = M;
  ep.m_dev = fp.fix_count;
  ep.xs = fp.fix_s;
  ep.xgroup = 32;
  ep.xgroups = G;
  ep.y_typed = y;
  ep.y_row = fp.fix_row;
  ep.ytype = dtype_code(ytype);
  ep.ldy = N;
  detail::launch_exact(ep, stream);
  // The epilogue: every column (unfused), or the banded rows' columns over the fused GEMM's partial ones.
  if (NV) {
    detail::Int8EpilogueParams pp;
    pp.d = d;
    pp.m = M;
    pp.n = fused ? w.i8_band_n : N;
    pp.nv = NV;
    pp.extra_first = (fused ? w.i8_band_extra_first : w.i8_extra_first).as<int32_t>();
    pp.col = fused ? w.i8_band_cols.as<int32_t>() : nullptr;
    pp.direct = !fused && NV == N && N % 4 == 0 ? 1 : 0;
    pp.wscale = (fused ? w.i8_band_scale : w.i8_scale).as<double>();
    pp.exp = fp.exp;
    pp.slot = fp.slot;
    pp.wglobal = w.global;
    pp.row_global = w.row_global.size() ? w.row_global.as<float>() : nullptr;
    pp.y = y;
    pp.ytype = dtype_code(ytype);
    pp.ldy = N;
    detail::launch_int8_epilogue(pp, stream);
  }
  check(cudaFreeAsync(mem, stream), "cudaFreeAsync");
}

}  // namespace

bool quantized_matmul_needs_mma_operand(const Format& act, const PreparedWeight& w, int64_t m) {
  return !int8_route(act, w, m);
}

void matmul_quantized_cuda(const DeviceQuantized& a, const PreparedWeight& w, void* y, DType ytype, cudaStream_t stream) {
  if (a.cols != w.k) fail("matmul_quantized_cuda: activation has {} columns, weight {}", a.cols, w.k);
  if (int8_route(a.format, w, a.rows)) {
    if (const std::string why = exact_matmul_unsupported(a.format, w); !why.empty())
      fail("matmul_quantized_cuda: int8 route: {}", why);  // the fix-up kernel's requirements
    if (a.rows == 0 || w.n == 0) return;
    matmul_w4a4_int8(a, w, y, ytype, stream);
    return;
  }
  if (!a.has_mma) fail("matmul_quantized_cuda: the activation was quantized without opt.mma_operand");
  if (const std::string why = quantized_matmul_unsupported(a.format, w); !why.empty()) fail("matmul_quantized_cuda: {}", why);
  if (a.rows == 0 || w.n == 0) return;
  detail::GemmParams gp;
  gp.w = view_of(w);
  gp.a = a.mma.as<uint16_t>();
  gp.lda = round_up(a.cols, 64);
  gp.m = a.rows;
  gp.a_row_scale = a.row_scale.size() ? a.row_scale.as<float>() : nullptr;
  gp.a_global = a.format.global == GlobalScale::PerTensor ? a.global.as<float>() : nullptr;
  gp.fold_b = w.group < w.k ? 1 : 0;
  gp.y = y;
  gp.ytype = dtype_code(ytype);
  gp.ldy = w.n;
  run_gemm(gp, stream);
}

void upload_quantized(const QuantizedTensor& q, DeviceQuantized& out) {
  if (q.format.is_ggml()) fail("upload_quantized: llama.cpp block layout '{}' is not supported", q.format.name);
  out.format = q.format;
  out.rows = q.rows;
  out.cols = q.cols;
  out.has_mma = false;
  ensure(out.codes, std::max<size_t>(16, q.codes.size()));
  out.codes.upload(q.codes.data(), q.codes.size());
  if (!q.scales.empty()) {
    ensure(out.scales, q.scales.size());
    out.scales.upload(q.scales.data(), q.scales.size());
  } else {
    out.scales.reset();
  }
  std::vector<float> g = q.global_scale;
  if (g.empty()) g.assign(1, 1.0f);
  ensure(out.global, g.size() * sizeof(float));
  out.global.upload(g.data(), g.size() * sizeof(float));
}

namespace {
int log2_exact(int64_t v) {
  int s = 0;
  while ((int64_t(1) << s) < v) ++s;
  return (int64_t(1) << s) == v ? s : -1;
}
}  // namespace

std::string exact_matmul_unsupported(const Format& act, const PreparedWeight& w) {
  if (act.is_ggml()) return fmt::format("activation format '{}': llama.cpp blocks (the exact product takes planar formats)", act.name);
  if (act.asymmetric()) return fmt::format("activation format '{}' is asymmetric", act.name);
  const ElementType& e = *act.element;
  if (e.bits > 8) return fmt::format("activation format '{}': {}-bit elements", act.name, e.bits);
  const int sig = e.kind == NumberKind::Int ? e.bits - (e.is_signed ? 1 : 0) : e.mbits + 1;
  if (sig > 8 || (e.kind == NumberKind::Float && (e.ebits > 8)))
    return fmt::format("activation element {} is not exact in bf16", e.name);
  const int64_t ag = act.group_for(w.k);
  if (ag % 16 != 0) return fmt::format("activation group {} is not a multiple of 16", ag);
  const int64_t wsteps = w.group / 16, xsteps = ag / 16;
  const int64_t lo = std::min(wsteps, xsteps), hi = std::max(wsteps, xsteps);
  if (hi % lo != 0) return fmt::format("activation groups of {} and weight groups of {} do not nest", ag, w.group);
  if (log2_exact(lo) < 0 && lo != w.k / 16) return fmt::format("groups of {} values (pieces must be a power of two)", lo * 16);
  return {};
}

bool exact_matmul_bit_exact(const Format& act, const PreparedWeight& w) {
  if (!exact_matmul_unsupported(act, w).empty()) return false;
  // Every value of an element type is an integer multiple of its smallest subnormal; `grid_bits` bits hold
  // the largest such multiple. A piece's sum of code products needs x + w + log2(piece) bits, which must fit
  // float32's 24; then the two group scales multiply it exactly in float64 when their significant bits fit.
  auto grid_bits = [](bool is_int, int bits, int ebits, int mbits, int bias) {
    if (is_int) return bits;
    const double max = std::ldexp(2.0 - std::ldexp(1.0, -mbits), (1 << ebits) - 1 - bias);
    const double tiny = std::ldexp(1.0, 1 - bias - mbits);
    return int(std::ceil(std::log2(max / tiny + 1.0)));
  };
  const ElementType& e = *act.element;
  const int xb = grid_bits(e.kind == NumberKind::Int, e.bits, e.ebits, e.mbits, e.bias);
  const int wb = grid_bits(w.is_int, w.bits, w.ebits, w.mbits, w.bias);
  const int64_t piece = std::min<int64_t>({act.group_for(w.k), int64_t(w.group), 64});  // pieces end at tile ends
  const int sum_bits = xb + wb + int(std::ceil(std::log2(double(piece))));
  if (sum_bits > 24) return false;
  auto scale_bits = [](ScaleType s) {
    switch (s) {
      case ScaleType::None: case ScaleType::E8M0: return 1;
      case ScaleType::E4M3: return 4;
      case ScaleType::BF16: return 8;
      case ScaleType::F16: return 11;
      default: return 24;
    }
  };
  return sum_bits + scale_bits(act.scale) + scale_bits(w.scale) <= 53;
}

void matmul_exact_cuda(const DeviceQuantized& a, const PreparedWeight& w, float* y, cudaStream_t stream) {
  if (const std::string why = exact_matmul_unsupported(a.format, w); !why.empty()) fail("matmul_exact_cuda: {}", why);
  if (a.cols != w.k) fail("matmul_exact_cuda: activation has {} columns, weight {}", a.cols, w.k);
  if (a.rows == 0 || w.n == 0) return;
  const Format& f = a.format;
  const int64_t ag = f.group_for(a.cols);
  const int64_t groups = a.cols / ag;
  void* xdec = nullptr;
  void* sdec = nullptr;
  check(cudaMallocAsync(&xdec, size_t(a.rows * a.cols) * 2, stream), "cudaMallocAsync");
  if (f.scale != ScaleType::None) check(cudaMallocAsync(&sdec, size_t(a.rows * groups) * sizeof(float), stream), "cudaMallocAsync");
  detail::DecodeActParams dp;
  dp.codes = a.codes.as<uint8_t>();
  dp.rows = a.rows;
  dp.cols = a.cols;
  dp.row_code_bytes = a.row_code_bytes();
  dp.e = elem_desc(*f.element);
  dp.out = static_cast<uint16_t*>(xdec);
  dp.scales = f.scale != ScaleType::None ? a.scales.as<uint8_t>() : nullptr;
  dp.scale = scale_code(f.scale);
  dp.sb = scale_type_bytes(f.scale);
  dp.groups = groups;
  dp.scale_out = static_cast<float*>(sdec);
  detail::launch_decode_act(dp, stream);
  detail::ExactParams ep;
  ep.w = view_of(w);
  ep.x = static_cast<const uint16_t*>(xdec);
  ep.m = a.rows;
  ep.xs = static_cast<const float*>(sdec);
  ep.xgroup = int(ag);
  ep.xgroups = groups;
  const bool per_row = f.global == GlobalScale::PerRow;
  ep.xg = per_row ? a.global.as<float>() : nullptr;
  if (!per_row) {
    if (f.global == GlobalScale::PerTensor) a.global.download(&ep.xg_scalar, sizeof(float));  // host value: synchronous
    else ep.xg_scalar = 1.0f;
  }
  ep.y = y;
  detail::launch_exact(ep, stream);
  check(cudaFreeAsync(xdec, stream), "cudaFreeAsync");
  if (sdec) check(cudaFreeAsync(sdec, stream), "cudaFreeAsync");
}

void matmul_weight_only_f32_cuda(const PreparedWeight& w, const float* x, int64_t m, float* y, cudaStream_t stream) {
  if (m <= 0 || w.n == 0) return;
  void* parts = nullptr;
  void* y3 = nullptr;
  const size_t parts_bytes = (size_t(3 * m * w.k) * 2 + 15) / 16 * 16;
  check(cudaMallocAsync(&parts, parts_bytes + 16, stream), "cudaMallocAsync");
  check(cudaMallocAsync(&y3, size_t(3 * m * w.n) * sizeof(float), stream), "cudaMallocAsync");
  detail::RangeGuard guard;
  unsigned* amax = reinterpret_cast<unsigned*>(static_cast<char*>(parts) + parts_bytes);
  guard.amax = amax;
  guard.w_log2 = w.value_log2;
  while ((int64_t(1) << guard.k_log2) < w.k) ++guard.k_log2;
  detail::launch_amax(x, m * w.k, amax, stream);
  detail::launch_split3(x, m * w.k, static_cast<uint16_t*>(parts), guard, stream);
  matmul_weight_only_cuda(w, parts, DType::BF16, 3 * m, y3, DType::F32, stream);
  detail::launch_sum3(static_cast<const float*>(y3), m * w.n, y, guard, stream);
  check(cudaFreeAsync(parts, stream), "cudaFreeAsync");
  check(cudaFreeAsync(y3, stream), "cudaFreeAsync");
}

void matmul_q4_0_q8_1_cuda(const void* w_blocks, const void* a_blocks, int64_t n, int64_t m, int64_t k, float* y,
                           cudaStream_t stream) {
  if (m < 0 || n < 0 || k < 0) fail("matmul_q4_0_q8_1_cuda: negative size (M = {}, N = {}, K = {})", m, n, k);
  if (k % 32 != 0) fail("matmul_q4_0_q8_1_cuda: K = {} is not a multiple of 32", k);
  if (m <= kQ4Q8DotMaxM || n == 0 || !promote_enabled()) return detail::launch_q4_0_q8_1(w_blocks, a_blocks, n, m, k, y, stream);
  // Prefill: both operands converted (exactly) for the tensor-core kernel, which promotes each 32-column group's
  // integer sum with d_w * d_a as the dp4a kernel does.
  detail::WeightView v;
  v.n = n;
  v.k = k;
  v.n_tiles = (n + 15) / 16;
  v.k_tiles = (k + 63) / 64;
  v.bits = 4;
  v.is_int = 1;
  v.scale = detail::kScaleF16;
  v.sb = 2;
  v.group = 32;
  v.n_groups = v.k_tiles * 2;
  const int64_t lds = (m + 3) / 4 * 4;
  const size_t plane_bytes = size_t(v.n_tiles * v.k_tiles * 512), scale_bytes = size_t(v.n_tiles * v.n_groups * 32);
  const size_t code_bytes = size_t(m * k * 2), ascale_bytes = size_t(k / 32 * lds * 4);
  auto up16 = [](size_t b) { return (b + 255) / 256 * 256; };
  void* mem = nullptr;
  check(cudaMallocAsync(&mem, up16(plane_bytes) + up16(scale_bytes) + up16(code_bytes) + up16(ascale_bytes), stream),
        "cudaMallocAsync");
  uint8_t* p = static_cast<uint8_t*>(mem);
  uint8_t* plane4 = p;
  uint16_t* wscales = reinterpret_cast<uint16_t*>(p + up16(plane_bytes));
  uint16_t* codes = reinterpret_cast<uint16_t*>(p + up16(plane_bytes) + up16(scale_bytes));
  float* ascales = reinterpret_cast<float*>(p + up16(plane_bytes) + up16(scale_bytes) + up16(code_bytes));
  detail::launch_repack_q4_0(w_blocks, n, k, v.n_tiles, v.k_tiles, v.n_groups, plane4, wscales, stream);
  detail::launch_unpack_q8_1(a_blocks, m, k, lds, codes, ascales, stream);
  v.plane4 = plane4;
  v.scales = reinterpret_cast<const uint8_t*>(wscales);
  detail::GemmParams gp;
  gp.w = v;
  gp.a = codes;
  gp.lda = k;
  gp.m = m;
  gp.fold_b = 0;
  gp.promote = 1;
  gp.a_gscale = ascales;
  gp.a_gscale_ld = lds;
  gp.y = y;
  gp.ytype = detail::kF32;
  gp.ldy = n;
  run_gemm(gp, stream);
  check(cudaFreeAsync(mem, stream), "cudaFreeAsync");
}

}  // namespace fpq::cuda
