// Float kernel (one copy per instruction-set variant): weight codes are decoded to float32 in registers (table
// permutes for <= 4-bit codes, bit arithmetic for wider float codes) and multiplied with float32 activations:
//   per unit (a weight scale group):  gacc = sum_k fma(value(code_k) [- zero], x_k)   in k order,
//                                     acc = fma(gacc, w_scale, acc)   [+ fma(min, sum x, acc) for Q4_1]
//   y = (acc * w_global) * x_global.
// Used for weight-only products (float32 / bf16 activations) and for activation formats that are not
// integer multiples of a small power of two (FP8 E4M3 / E5M2, asymmetric activations), which the driver
// dequantizes first (the activations, never the weights).
#include "kernels/cpu/kernel_common.h"

namespace fpq::cpu::detail::FPQ_ISA_NS {
namespace {

struct FNib {
  static constexpr int kQuads = 1;
  LutF16 lut;
  explicit FNib(const WeightView& w) : lut(w.lut_f) {}
  FPQ_INLINE void load(const uint8_t* p, VB* q) const { q[0] = vb_load(p); }
  FPQ_INLINE VF col(const VB* q, int j) const { return dec_nib(lut, q[0], j); }
};
struct FArith {
  static constexpr int kQuads = 2;
  FloatArith d;
  explicit FArith(const WeightView& w) : d(w) {}
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    q[0] = vb_load(p);
    q[1] = vb_load(p + 64);
  }
  FPQ_INLINE VF col(const VB* q, int j) const { return dec_float(d, q[j >> 2], j & 3); }
};
struct FSInt {
  static constexpr int kQuads = 2;
  VF mul;
  explicit FSInt(const WeightView& w) : mul(vf_set1(w.float_mul)) {}
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    q[0] = vb_load(p);
    q[1] = vb_load(p + 64);
  }
  FPQ_INLINE VF col(const VB* q, int j) const { return dec_sint8(q[j >> 2], j & 3, mul); }
};
struct FUInt {
  static constexpr int kQuads = 2;
  VF mul;
  explicit FUInt(const WeightView& w) : mul(vf_set1(w.float_mul)) {}
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    q[0] = vb_load(p);
    q[1] = vb_load(p + 64);
  }
  FPQ_INLINE VF col(const VB* q, int j) const { return dec_uint8(q[j >> 2], j & 3, mul); }
};
struct FTable {
  static constexpr int kQuads = 2;
  const float* lut;
  int bits;
  explicit FTable(const WeightView& w) : lut(w.lut_f), bits(w.bits) {}
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    q[0] = vb_load(p);
    q[1] = vb_load(p + 64);
  }
  FPQ_INLINE VF col(const VB* q, int j) const { return dec_table(lut, q[j >> 2], j & 3, bits); }
};

template <class Dec, bool Zero>
struct FloatBlock {
  const WeightView& w;
  const ActView& a;
  const Dec& dec;
  float* y;
  int64_t ldy;

  template <int MR, int NV>
  __attribute__((noinline)) void run(int64_t t0, int64_t m0) const {
    VF facc[MR][NV];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) facc[r][v] = vf_zero();
    const int64_t uc = a.unit_chunks, nu = a.nunits;
    const float* xrow[MR];
    for (int r = 0; r < MR; ++r) xrow[r] = a.xf + (m0 + r) * a.ld;
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t g = (u * uc) / w.group_chunks;
      VF gacc[MR][NV];
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) gacc[r][v] = vf_zero();
      VF zf[NV];
      if constexpr (Zero) {
        for (int v = 0; v < NV; ++v) zf[v] = vf_cvt(vi_u8x16(w.zeros + group_index(w, t0 + v, g)));
      }
      for (int64_t c = u * uc; c < (u + 1) * uc; ++c) {
        VB q[NV][Dec::kQuads];
        for (int v = 0; v < NV; ++v) dec.load(chunk_ptr(w, t0 + v, c), q[v]);
        for (int j = 0; j < kChunkCols; ++j) {
          for (int v = 0; v < NV; ++v) {
            VF wv = dec.col(q[v], j);
            if constexpr (Zero) wv = vf_sub(wv, zf[v]);
            for (int r = 0; r < MR; ++r) gacc[r][v] = vf_fma(wv, vf_bcast(xrow[r] + c * kChunkCols + j), gacc[r][v]);
          }
        }
      }
      for (int v = 0; v < NV; ++v) {
        const VF sw = load_scales(w.scale_code, w.scales + group_index(w, t0 + v, g) * w.scale_bytes);
        for (int r = 0; r < MR; ++r) facc[r][v] = vf_fma(gacc[r][v], sw, facc[r][v]);
      }
      if (w.mins) {
        for (int v = 0; v < NV; ++v) {
          const VF mn = load_f16x16(w.mins + group_index(w, t0 + v, g));
          for (int r = 0; r < MR; ++r) facc[r][v] = vf_fma(mn, vf_bcast(a.xsumf + (m0 + r) * nu + u), facc[r][v]);
        }
      }
    }
    store_tile<MR, NV>(w, a, y, ldy, t0, m0, facc);
  }
};

template <class Dec, bool Zero>
void float_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
               int64_t m1) {
  const Dec dec(w);
  FloatBlock<Dec, Zero> block{w, a, dec, y, ldy};
  for_register_tiles<kMRFloat, kNVFloat, kNV1Float>(t0, t1, m0, m1, block);
}

}  // namespace

void gemm_float(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
                int64_t m1) {
  const bool z = w.zeros != nullptr;
  switch (w.float_decode) {
    case kDecLut16:
      if (z) float_run<FNib, true>(w, a, y, ldy, t0, t1, m0, m1);
      else float_run<FNib, false>(w, a, y, ldy, t0, t1, m0, m1);
      break;
    case kDecFloat: float_run<FArith, false>(w, a, y, ldy, t0, t1, m0, m1); break;
    case kDecSInt8: float_run<FSInt, false>(w, a, y, ldy, t0, t1, m0, m1); break;
    case kDecUInt8:
      if (z) float_run<FUInt, true>(w, a, y, ldy, t0, t1, m0, m1);
      else float_run<FUInt, false>(w, a, y, ldy, t0, t1, m0, m1);
      break;
    default: float_run<FTable, false>(w, a, y, ldy, t0, t1, m0, m1); break;
  }
}

}  // namespace fpq::cpu::detail::FPQ_ISA_NS
