// The real-path driver: picks the kernel kind for a (weight, activation) pair, stages the activations (integer
// lanes with per-unit sums and scales, or padded float rows) and runs the variant's kernel over tiles x rows
// with fpq::parallel_for. Each output element is computed by one kernel call over all of K, so the result does
// not depend on how the work is split.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "formats/ggml_blocks.h"
#include "formats/packing.h"
#include "kernels/cpu/operand_range.h"
#include "kernels/cpu/prepared.h"
#include "util/error.h"
#include "util/half.h"
#include "util/parallel.h"

namespace fpq::cpu {
namespace detail {

struct Variant {
  GemmFn int8, int16, bf16, flt, f64;
};

const Variant& variant(Isa isa) {
  static const Variant v[3] = {
      {scalar::gemm_int8, scalar::gemm_int16, scalar::gemm_bf16, scalar::gemm_float, scalar::gemm_float64},
      {avx2::gemm_int8, avx2::gemm_int16, avx2::gemm_bf16, avx2::gemm_float, avx2::gemm_float64},
      {avx512::gemm_int8, avx512::gemm_int16, avx512::gemm_bf16, avx512::gemm_float, avx512::gemm_float64},
  };
  return v[int(isa)];
}

struct Plan {
  KernelKind kind = KernelKind::Float;
  int64_t unit = 0;  // columns per unit (multiple of 8)
  CodeInfo act;      // activation code info (int kernels)
};

int32_t max_abs(const CodeInfo& c) { return std::max(std::abs(c.int_min), std::abs(c.int_max)); }

Plan make_plan(const PreparedWeight& w, const Format* act, Isa isa) {
  Plan p;
  if (!w.tiled) {
    p.kind = KernelKind::Pseudo;
    return p;
  }
  p.kind = KernelKind::Float;
  p.unit = w.gw;
  if (!act) return p;
  p.act = code_info(*act);
  const CodeInfo& a = p.act;
  if (!w.info.int_ok || !a.int_ok || a.has_zero_points || a.has_mins) return p;
  const int64_t kp = w.view.kp;
  const int64_t glen = group_len(*act, w.k);
  int64_t ga = glen == w.k ? kp : glen;
  if (ga % kChunkCols != 0) return p;
  int64_t u;
  if (w.gw % ga == 0) u = ga;
  else if (ga % w.gw == 0) u = w.gw;
  else return p;
  const int64_t ra = max_abs(a), rw = max_abs(w.info);
  const bool s8 = a.int_min >= -128 && a.int_max <= 127;
  auto fit = [&](int64_t cap) {
    int64_t v = u;
    while (v > cap && v % (2 * kChunkCols) == 0) v /= 2;
    return v <= cap ? v : int64_t(0);
  };
  if (w.int8_capable && s8 && (isa != Isa::Avx2 || 2 * int64_t(w.u8_max) * ra <= 32767)) {
    // |sum| <= unit * ra * (u8_max + offset + zero point) < 2^31
    const int64_t v = fit(((int64_t(1) << 31) - 1) / (std::max<int64_t>(ra, 1) * 1024));
    if (v) {
      p.kind = KernelKind::Int8Dot;
      p.unit = v;
      return p;
    }
  }
  if (w.int16_capable) {
    const int64_t v = fit(((int64_t(1) << 31) - 1) / (std::max<int64_t>(ra, 1) * (2 * std::max<int64_t>(rw, 1) + 256)));
    if (v) {
      p.kind = KernelKind::Int16Dot;
      p.unit = v;
      return p;
    }
  }
  return p;
}

// Every code of the type has a value that bfloat16 holds exactly (NaN stays NaN, infinities stay infinite).
bool bf16_exact(const CodeInfo& c) {
  for (int i = 0; i < (1 << c.bits); ++i) {
    const float v = c.values[i];
    if (!std::isnan(v) && bf16_to_f32(f32_to_bf16(v)) != v) return false;
  }
  return true;
}

// The bf16 kernel decodes each weight tile into a buffer once per call: worth it from a few rows on.
constexpr int64_t kBf16MinRows = 8;

// AVX-512 BF16: pairs whose codes are exact in bfloat16 but not small integers (FP8 with FP8 or FP4...), for
// m >= kBf16MinRows rows (m = 0: any).
void maybe_bf16(const PreparedWeight& w, const Format& act, Isa isa, int64_t m, Plan& p) {
  if (isa != Isa::Avx512 || p.kind != KernelKind::Float || (m > 0 && m < kBf16MinRows)) return;
  const CodeInfo& a = p.act;
  if (a.has_zero_points || a.has_mins || w.info.has_zero_points || w.info.has_mins || w.specials_present) return;
  if (act.layout == Layout::GgmlQ4_1) return;
  const int dec = w.view.float_decode;
  if (dec != kDecLut16 && dec != kDecFloat && dec != kDecSInt8) return;
  if (!bf16_exact(w.info) || !bf16_exact(a)) return;
  const int64_t kp = w.view.kp;
  const int64_t glen = group_len(act, w.k);
  const int64_t ga = glen == w.k ? kp : glen;
  if (ga % kChunkCols != 0) return;
  // Units of at most 64 columns keep the float32 sums short (the pseudo path's accuracy).
  p.kind = KernelKind::Bf16Dot;
  p.unit = std::gcd(std::gcd(w.gw, ga), int64_t(64));
}

// Sums::Exact: quantized activations that no integer kernel serves go to the float64 kernel (the pseudo
// path's bits) instead of the float32-summing bf16 / float kernels.
void maybe_float64(const Format* act, Sums sums, Plan& p) {
  if (act && sums == Sums::Exact && (p.kind == KernelKind::Float || p.kind == KernelKind::Bf16Dot))
    p.kind = KernelKind::Float64;
}

// Staged activations of one call (owns the buffers the ActView points to).
struct ActStage {
  AlignedBuffer xi8, xi16, xf, xd, xsum, sx, msx, gx;
  ActView view;
};

float ldexp_f(float v, int e) { return v * std::ldexp(1.0f, e); }

// Activation rows per task (and per staging block): all of them for small M.
int64_t row_block(int64_t m) { return m <= 192 ? m : 128; }

// Columns per K block of the integer kernels (run()): the block's weight stretch of one tile (reused by every
// row tile: 8 or 16 bytes per column) and two row tiles of activations (10 rows x 1 or 2 bytes) fit in a 48 KB L1.
constexpr int64_t kKBlockColsInt8 = 1024, kKBlockColsInt16 = 512;

// Offset of (row i, chunk c) in the blocked chunk-major activation layout (kernel_abi.h).
int64_t act_offset(int64_t i, int64_t c, int64_t rb, int64_t kp) {
  return (i / rb) * kp * rb + c * rb * kChunkCols + (i % rb) * kChunkCols;
}

void set_layout(ActView& v, int64_t m, int64_t kp) {
  v.m = m;
  v.kp = kp;
  v.rb = row_block(m);
  v.cstride = v.rb * kChunkCols;
  v.bstride = kp * v.rb;
}

int64_t act_elems(int64_t m, int64_t kp) {
  const int64_t rb = row_block(m);
  return (m + rb - 1) / rb * rb * kp;
}

void stage_float(const PreparedWeight& w, const float* x, int64_t m, int64_t unit, ActStage& st) {
  const int64_t k = w.k, kp = w.view.kp, nu = kp / unit, nc = kp / kChunkCols, rb = row_block(m);
  st.xf.resize(size_t(act_elems(m, kp) * 4));
  float* xf = st.xf.as<float>();
  parallel_for(m, std::max<int64_t>(1, 16384 / kp), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = x + r * k;
      for (int64_t c = 0; c < nc; ++c) {
        float* dst = xf + act_offset(r, c, rb, kp);
        const int64_t n = std::min<int64_t>(kChunkCols, k - c * kChunkCols);
        std::memcpy(dst, src + c * kChunkCols, size_t(n) * 4);  // the tail stays zero
      }
    }
  });
  ActView& v = st.view;
  set_layout(v, m, kp);
  v.xf = xf;
  v.unit_chunks = unit / kChunkCols;
  v.nunits = nu;
}

// The float64 kernel's activations, widened to float64 from the float32 rows that row(r, dst) writes; gx (the
// activations' global scale per row) where given.
template <class RowFn>
void stage_double_rows(const PreparedWeight& w, int64_t m, RowFn&& row_of, const float* gx_src, ActStage& st) {
  const int64_t k = w.k, kp = w.view.kp, nc = kp / kChunkCols, rb = row_block(m);
  st.xd.resize(size_t(act_elems(m, kp) * 8));
  double* xd = st.xd.as<double>();
  if (gx_src) {
    st.gx.resize(size_t(m * 4));
    std::memcpy(st.gx.data(), gx_src, size_t(m) * 4);
  }
  parallel_for(m, std::max<int64_t>(1, 8192 / kp), [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = row_of(r, row.data());
      for (int64_t c = 0; c < nc; ++c) {
        double* dst = xd + act_offset(r, c, rb, kp);
        for (int64_t j = 0; j < kChunkCols; ++j) {
          const int64_t col = c * kChunkCols + j;
          dst[j] = col < k ? double(src[col]) : 0.0;
        }
      }
    }
  });
  ActView& v = st.view;
  set_layout(v, m, kp);
  v.xd = xd;
  v.gx = gx_src ? st.gx.as<float>() : nullptr;
}

// Quantized activations for the float64 kernel: the dequantized values without the global scale (exact in
// float32, as the pseudo path computes them); the global scale per row goes to gx.
void stage_double(const PreparedWeight& w, const QuantizedTensor& x, ActStage& st) {
  const int64_t m = x.rows;
  std::vector<float> gx;
  if (!x.format.is_ggml() && !x.global_scale.empty())
    for (int64_t r = 0; r < m; ++r) gx.push_back(x.global(r));
  stage_double_rows(
      w, m,
      [&](int64_t r, float* buf) {
        dequantize_rows(x, r, r + 1, buf, false);
        return static_cast<const float*>(buf);
      },
      gx.empty() ? nullptr : gx.data(), st);
}

// Integer lanes of quantized activations (codes -> value * 2^shift), per-unit sums and scales.
void stage_int(const PreparedWeight& w, const QuantizedTensor& x, const Plan& plan, ActStage& st) {
  const CodeInfo& a = plan.act;
  const bool bf = plan.kind == KernelKind::Bf16Dot;  // bf16 bits of the code values, laid out as for int16
  const bool i16 = plan.kind == KernelKind::Int16Dot || bf;
  const int64_t m = x.rows, k = x.cols, kp = w.view.kp, unit = plan.unit, nu = kp / unit;
  const Format& f = x.format;
  const int64_t glen = group_len(f, k);
  const bool per_row = glen == k;
  const int64_t rb = row_block(m);
  if (i16) st.xi16.resize(size_t(act_elems(m, kp) * 2));
  else st.xi8.resize(size_t(act_elems(m, kp)));
  st.xsum.resize(size_t(m * nu * 4));
  st.sx.resize(size_t(m * nu * 4));
  if (w.info.has_mins) st.msx.resize(size_t(m * nu * 4));
  const bool has_global = !f.is_ggml() && !x.global_scale.empty();
  if (has_global) st.gx.resize(size_t(m * 4));
  const int shift = bf ? 0 : a.shift + w.info.shift;
  parallel_for(m, std::max<int64_t>(1, 8192 / kp), [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(size_t(kp), 0);
    std::vector<float> gscale(static_cast<size_t>(k / (per_row ? k : glen)));
    std::vector<int16_t> vals(size_t(kp), 0);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* src = x.row_codes(r);
      // codes and group scales of the row
      switch (f.layout) {
        case Layout::Planar:
          unpack_codes(src, 0, k, f.element->bits, codes.data());
          for (size_t g = 0; g < gscale.size(); ++g) gscale[g] = x.scale(r, int64_t(g));
          break;
        case Layout::GgmlQ4_0:
        case Layout::GgmlQ8_0:
        case Layout::GgmlQ8_1: {
          const bool q4 = f.layout == Layout::GgmlQ4_0;
          const int bb = q4 ? kQ4_0Bytes : f.layout == Layout::GgmlQ8_0 ? kQ8_0Bytes : kQ8_1Bytes;
          const int qo = f.layout == Layout::GgmlQ8_1 ? 4 : 2;
          for (int64_t b = 0; b < k / kGgmlBlock; ++b) {
            const uint8_t* blk = src + b * bb;
            uint16_t h;
            std::memcpy(&h, blk, 2);
            gscale[size_t(b)] = f16_to_f32(h);
            if (q4) {
              for (int j = 0; j < 16; ++j) {
                codes[size_t(b * 32 + j)] = blk[qo + j] & 0x0F;
                codes[size_t(b * 32 + 16 + j)] = blk[qo + j] >> 4;
              }
            } else {
              std::memcpy(codes.data() + b * 32, blk + qo, 32);
            }
          }
          break;
        }
        default: fail("internal: activation layout not supported by the integer kernels");
      }
      if (bf) {
        for (int64_t c = 0; c < k; ++c) vals[size_t(c)] = int16_t(uint16_t(f32_bits(a.values[codes[size_t(c)]]) >> 16));
      } else {
        for (int64_t c = 0; c < k; ++c) vals[size_t(c)] = int16_t(a.ints[codes[size_t(c)]]);
      }
      if (i16) {
        for (int64_t c = 0; c < kp / kChunkCols; ++c) {
          int16_t* dst = st.xi16.as<int16_t>() + act_offset(r, c, rb, kp);
          const int16_t* v = vals.data() + c * kChunkCols;
          for (int q = 0; q < 2; ++q) {
            dst[4 * q + 0] = v[4 * q + 0];
            dst[4 * q + 1] = v[4 * q + 2];
            dst[4 * q + 2] = v[4 * q + 1];
            dst[4 * q + 3] = v[4 * q + 3];
          }
        }
      } else {
        int8_t* base = reinterpret_cast<int8_t*>(st.xi8.data());
        for (int64_t c = 0; c < kp / kChunkCols; ++c) {
          int8_t* dst = base + act_offset(r, c, rb, kp);
          for (int j = 0; j < kChunkCols; ++j) dst[j] = int8_t(vals[size_t(c * kChunkCols + j)]);
        }
      }
      int32_t* xs = st.xsum.as<int32_t>();
      float* sx = st.sx.as<float>();
      for (int64_t u = 0; u < nu; ++u) {
        int32_t s = 0;
        for (int64_t c = u * unit; c < (u + 1) * unit; ++c) s += vals[size_t(c)];
        xs[u * m + r] = s;
        const float sa = gscale[size_t(per_row ? 0 : (u * unit) / glen)];
        sx[u * m + r] = ldexp_f(sa, -shift);
        if (w.info.has_mins) st.msx.as<float>()[u * m + r] = float(s) * ldexp_f(sa, -a.shift);
      }
      if (has_global) st.gx.as<float>()[r] = x.global(r);
    }
  });
  ActView& v = st.view;
  set_layout(v, m, kp);
  v.xi8 = i16 ? nullptr : reinterpret_cast<const int8_t*>(st.xi8.data());
  v.xi16 = i16 && !bf ? st.xi16.as<int16_t>() : nullptr;
  v.xbf = bf ? st.xi16.as<uint16_t>() : nullptr;
  v.unit_chunks = unit / kChunkCols;
  v.nunits = nu;
  if (plan.kind == KernelKind::Int8Dot) {
    // |vpmaddubsw pair sum| <= 2 * u8_max * max|x|; a chunk adds two of them per int16 lane.
    const int64_t pair = 2 * int64_t(std::max(w.u8_max, 1)) * std::max<int64_t>(max_abs(a), 1);
    v.i16_chunks = int32_t(std::min<int64_t>(32767 / pair / 2, 1 << 20));
  }
  if (plan.kind == KernelKind::Int8Dot || plan.kind == KernelKind::Int16Dot) {
    // |unit sum| <= unit * max|w| * max|x| (zero points and mins add terms of their own: not covered)
    const int64_t bound = unit * int64_t(max_abs(w.info)) * int64_t(max_abs(a));
    int bits = 0;
    while (bits < 62 && (int64_t(1) << bits) <= bound) ++bits;
    const detail::WeightView& wv = w.view;
    v.f32_product = wv.scale_sig_bits > 0 && !w.info.has_zero_points && !w.info.has_mins &&
                    bits + wv.scale_sig_bits <= 24 && bits + wv.scale_exp_max < 128;
  } else {
    v.f32_product = 0;
  }
  v.xsum = st.xsum.as<int32_t>();
  v.sx = st.sx.as<float>();
  v.msx = w.info.has_mins ? st.msx.as<float>() : nullptr;
  v.gx = has_global ? st.gx.as<float>() : nullptr;
}

void run(const PreparedWeight& w, KernelKind kind, const ActView& a, int64_t m, float* y, Isa isa) {
  const Variant& var = variant(isa);
  const GemmFn fn = kind == KernelKind::Int8Dot    ? var.int8
                    : kind == KernelKind::Int16Dot ? var.int16
                    : kind == KernelKind::Bf16Dot  ? var.bf16
                    : kind == KernelKind::Float64  ? var.f64
                                                   : var.flt;
  const WeightView& wv = w.view;
  const int64_t nt = wv.nt;
  const int64_t mb = row_block(m);            // activation rows per task (= the staging block)
  const int64_t ntm = (m + mb - 1) / mb;
  // Tiles per task: 8 (128 weight rows), fewer where that would leave under 4 tasks per thread (small layers:
  // N = 576 made 5 tasks for 2 threads). Each output is still one kernel call over all of K: the same bits.
  int64_t tb = 8;
  while (tb > 1 && ((nt + tb - 1) / tb) * ntm < 4 * int64_t(num_threads())) tb /= 2;
  const int64_t ntt = (nt + tb - 1) / tb;
  const int64_t ldy = w.n;
  // Integer kernels with several rows and a long K walk K in blocks of kKBlockCols* columns: a tile's stretch
  // of weights then stays in L1 across the row tiles, where whole rows of K = 14336 would not (measured at
  // M = 512, K = 14336: 1.2-1.45x).
  const bool int_kind = kind == KernelKind::Int8Dot || kind == KernelKind::Int16Dot;
  const int64_t unit_cols = a.unit_chunks * kChunkCols;
  const int64_t kb_cols = kind == KernelKind::Int16Dot ? kKBlockColsInt16 : kKBlockColsInt8;
  const int64_t kb_units = std::max<int64_t>(1, kb_cols / unit_cols);
  const bool kblock = int_kind && m > 1 && a.nunits > kb_units;
  const size_t acc_bytes = a.exact ? 16 * sizeof(double) : 16 * sizeof(float);
  parallel_for(ntt * ntm, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t tt = i / ntm, mm = i % ntm;
      const int64_t t0 = tt * tb, t1 = std::min(nt, tt * tb + tb), m0 = mm * mb, m1 = std::min(m, mm * mb + mb);
      if (!kblock) {
        fn(wv, a, y, ldy, t0, t1, m0, m1);
        continue;
      }
      thread_local std::vector<uint8_t> partial;
      partial.resize(size_t(mb * tb) * acc_bytes);
      ActView ak = a;
      ak.partial = partial.data();
      ak.pm0 = m0;
      ak.pt0 = t0;
      ak.pld = tb;
      for (int64_t u = 0; u < a.nunits; u += kb_units) {
        ak.u0 = u;
        ak.u1 = std::min(a.nunits, u + kb_units);
        fn(wv, ak, y, ldy, t0, t1, m0, m1);
      }
    }
  });
}

void check_y(const float* y, int64_t m) {
  if (m < 0) fail("matmul: negative row count {}", m);
  if (m > 0 && !y) fail("matmul: null output");
}

}  // namespace detail

using detail::ActStage;

KernelKind kernel_kind(const PreparedWeight& w, const Format* act, Isa isa, int64_t m, Sums sums) {
  if (int(isa) > int(detected_isa())) isa = detected_isa();
  detail::Plan p = detail::make_plan(w, act, isa);
  if (act) detail::maybe_bf16(w, *act, isa, m, p);
  detail::maybe_float64(act, sums, p);
  return p.kind;
}

const char* kernel_kind_name(KernelKind k) {
  switch (k) {
    case KernelKind::Int8Dot: return "int8-dot";
    case KernelKind::Int16Dot: return "int16-dot";
    case KernelKind::Bf16Dot: return "bf16-dot";
    case KernelKind::Float: return "float";
    case KernelKind::Float64: return "float64";
    case KernelKind::Pseudo: return "pseudo";
  }
  return "?";
}

bool has_real_kernel(const Format& w, const Format* act) {
  (void)act;
  if (w.is_ggml() || w.group == 0) return true;
  return w.group % detail::kChunkCols == 0;
}

void matmul_weight_only(const PreparedWeight& w, const float* x, int64_t m, float* y) {
  detail::check_y(y, m);
  if (m == 0) return;
  // The finite nonzero |x| of each row (zeros, NaN and infinities give the same results in every kernel).
  std::vector<detail::OperandRange> rows = detail::float_row_ranges(x, m, w.k);
  // Rows whose every |x| is below 2^-60 (subnormal ones included) would lose their bits to the kernels' scaled
  // sums near FLT_MIN: they run as x * 2^-e (e = floor(log2 max |x|), exact) and their outputs are multiplied
  // by 2^e. Rows with a few tiny values among ordinary ones need nothing: those values' products are lost in
  // the row's sums anyway.
  std::vector<int> row_exp;
  std::vector<float> scaled;
  for (int64_t r = 0; r < m; ++r) {
    if (rows[size_t(r)].hi == 0 || rows[size_t(r)].hi >= 0x1p-60) continue;
    if (row_exp.empty()) {
      row_exp.assign(size_t(m), 0);
      scaled.assign(x, x + m * w.k);
    }
    const int e = std::ilogb(rows[size_t(r)].hi);
    row_exp[size_t(r)] = e;
    for (float* p = scaled.data() + r * w.k; p < scaled.data() + (r + 1) * w.k; ++p) *p = std::ldexp(*p, -e);
    rows[size_t(r)].lo = std::ldexp(rows[size_t(r)].lo, -e);
    rows[size_t(r)].hi = std::ldexp(rows[size_t(r)].hi, -e);
  }
  if (!row_exp.empty()) x = scaled.data();
  auto unscale = [&] {
    for (int64_t r = 0; r < int64_t(row_exp.size()); ++r)
      if (row_exp[size_t(r)] != 0)
        for (float* p = y + r * w.n; p < y + (r + 1) * w.n; ++p) *p = std::ldexp(*p, row_exp[size_t(r)]);
  };
  if (!w.tiled) {
    matmul_pseudo(nullptr, x, m, w.fallback, y);
    unscale();
    return;
  }
  const Isa isa = active_isa();
  ActStage st;
  const detail::OperandRange xr = detail::merged(rows);
  if (xr.hi >= 0x1p90 || !detail::float32_safe(w.range, xr, w.k, false)) {
    // Activations at 2^90 and beyond, or large enough for these weights: the float32 kernels sum x times the
    // weights before their global scale (up to 2688 for NVFP4) and before the group scale (kScaledSum), so those
    // sums can overflow where the product itself is finite. The float64 kernel (exact sums, scales applied in
    // float64) cannot.
    detail::stage_double_rows(
        w, m, [&](int64_t r, float*) { return x + r * w.k; }, nullptr, st);
    st.view.exact = 1;
    detail::run(w, KernelKind::Float64, st.view, m, y, isa);
    unscale();
    return;
  }
  detail::stage_float(w, x, m, w.gw, st);
  // 2: every finite nonzero |x| in [2^-100, 2^90) (ActView::weight_only)
  st.view.weight_only = xr.lo == 0 || xr.lo >= 0x1p-100 ? 2 : 1;
  detail::run(w, KernelKind::Float, st.view, m, y, isa);
  unscale();
}

void matmul_weight_only_bf16(const PreparedWeight& w, const uint16_t* x, int64_t m, float* y) {
  std::vector<float> xf(static_cast<size_t>(m * w.k));
  parallel_for(m * w.k, 1 << 16, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) xf[size_t(i)] = bf16_to_f32(x[i]);
  });
  matmul_weight_only(w, xf.data(), m, y);
}

void matmul_quantized(const PreparedWeight& w, const QuantizedTensor& x, float* y, Sums sums) {
  if (x.cols != w.k) fail("matmul: activations have {} columns, the weight {}", x.cols, w.k);
  detail::check_y(y, x.rows);
  if (x.rows == 0) return;
  if (!w.tiled) {
    matmul_pseudo(&x, nullptr, x.rows, w.fallback, y);
    return;
  }
  const Isa isa = active_isa();
  detail::Plan plan = detail::make_plan(w, &x.format, isa);
  detail::maybe_bf16(w, x.format, isa, x.rows, plan);
  detail::maybe_float64(&x.format, sums, plan);
  // Operands whose magnitudes could take the float32 kernels' intermediates out of float32's normal range (sums
  // before the global scales, unit scales times the integer views' powers of two): the float64 kernel, which
  // gives the pseudo path's bits. Never for the magnitudes of real models (operand_range.h).
  if (plan.kind != KernelKind::Float64 && !detail::float32_safe(w.range, detail::operand_range(x, plan.act), w.k))
    plan.kind = KernelKind::Float64;
  ActStage st;
  if (plan.kind == KernelKind::Float64) {
    detail::stage_double(w, x, st);
  } else if (plan.kind == KernelKind::Int8Dot || plan.kind == KernelKind::Int16Dot || plan.kind == KernelKind::Bf16Dot) {
    detail::stage_int(w, x, plan, st);
  } else {
    const std::vector<float> xf = dequantize(x);
    detail::stage_float(w, xf.data(), x.rows, plan.unit, st);
  }
  st.view.exact = sums == Sums::Exact || plan.kind == KernelKind::Float64 ? 1 : 0;
  detail::run(w, plan.kind, st.view, x.rows, y, isa);
}

void linear(const PreparedWeight& w, const Format* act, const float* x, int64_t m, float* y,
            const QuantizeOptions& act_opt, Sums sums) {
  if (!act) {
    matmul_weight_only(w, x, m, y);
    return;
  }
  const QuantizedTensor xq = quantize_activations(*act, x, m, w.k, act_opt);
  matmul_quantized(w, xq, y, sums);
}

}  // namespace fpq::cpu
