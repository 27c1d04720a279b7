// Integer-dot kernels (one copy per instruction-set variant, see CMakeLists.txt): both operands hold integer
// multiples of a power of two, so each (row, unit) dot product is an exact int32 sum; the scales are applied
// per unit:  S += (idot * w_scale) * x_scale  (the last step fused), then y = float(S * (w_global * x_global)).
// Exact sums (ActView::exact, the default) keep S in float64: every term is exact in float64 and so are the
// sums for realistic scale ranges, so S is the exact dot product of the dequantized operands, the same number
// the pseudo path's float64 GEMM computes, and y has the same bits. Float32 sums round each step (relative
// error ~1e-7) and run faster where the units are short (NVFP4's 16 columns): Acc = VF instead of VD.
//   int8:  weights as unsigned bytes (value + offset), activations as signed bytes: vpdpbusd (AVX-512 VNNI),
//          vpmaddubsw + vpmaddwd (AVX2). The offset comes back out through the activations' per-unit sums.
//   int16: weights and activations as int16 pairs: vpdpwssd (AVX-512 VNNI). Not in the AVX2 variant.
#include "kernels/cpu/kernel_common.h"

namespace fpq::cpu::detail::FPQ_ISA_NS {
namespace {

// After unit u (weight group g) of a register tile: fold the int32 dot products into the accumulators.
template <int MR, int NV, bool Exact>
FPQ_INLINE void unit_epilogue(const WeightView& w, const ActView& a, int64_t t0, int64_t m0, int64_t u, int64_t g,
                              VI (&idot)[MR][NV], typename AccFor<Exact>::T (&acc)[MR][NV]) {
  using Acc = typename AccFor<Exact>::T;
  for (int v = 0; v < NV; ++v) {
    const auto sw = acc_scale(load_scales(w.scale_code, w.scales + group_index(w, t0 + v, g) * w.scale_bytes), Acc{});
    for (int r = 0; r < MR; ++r) acc_unit(acc[r][v], idot[r][v], sw, a.sx + u * a.m + m0 + r);
  }
  if (w.mins) {
    for (int v = 0; v < NV; ++v) {
      const auto mn = acc_scale(load_f16x16(w.mins + group_index(w, t0 + v, g)), Acc{});
      for (int r = 0; r < MR; ++r) acc_mins(acc[r][v], mn, a.msx + u * a.m + m0 + r);
    }
  }
}

struct I8Nib {
  Lut16B lut;
  explicit I8Nib(const WeightView& w) : lut(w.lut_u8) {}
  FPQ_INLINE void chunk(const uint8_t* p, VB& a, VB& b) const {
    const VB v = vb_load(p);
    a = lut16b(lut, vb_lo4(v));
    b = lut16b(lut, vb_hi4(v));
  }
};
struct I8NibId {
  explicit I8NibId(const WeightView&) {}
  FPQ_INLINE void chunk(const uint8_t* p, VB& a, VB& b) const {
    const VB v = vb_load(p);
    a = vb_lo4(v);
    b = vb_hi4(v);
  }
};
struct I8Lut64 {
  Lut64B lut;
  explicit I8Lut64(const WeightView& w) : lut(w.lut_u8) {}
  FPQ_INLINE void chunk(const uint8_t* p, VB& a, VB& b) const {
    a = lut64b(lut, vb_load(p));
    b = lut64b(lut, vb_load(p + 64));
  }
};
struct I8Xor {
  explicit I8Xor(const WeightView&) {}
  FPQ_INLINE void chunk(const uint8_t* p, VB& a, VB& b) const {
    a = vb_xor80(vb_load(p));
    b = vb_xor80(vb_load(p + 64));
  }
};
struct I8Id {
  explicit I8Id(const WeightView&) {}
  FPQ_INLINE void chunk(const uint8_t* p, VB& a, VB& b) const {
    a = vb_load(p);
    b = vb_load(p + 64);
  }
};

template <class Dec, bool Exact>
struct Int8Block {
  using Acc = typename AccFor<Exact>::T;
  const WeightView& w;
  const ActView& a;
  const Dec& dec;
  float* y;
  int64_t ldy;

  template <int MR, int NV>
  __attribute__((noinline)) void run(int64_t t0, int64_t m0) const {
    Acc dacc[MR][NV];
    acc_begin<MR, NV>(a, t0, m0, dacc);
    const int64_t uc = a.unit_chunks, nu = a.u1 > 0 ? a.u1 : a.nunits;
    const int8_t* xrow = act_row(a.xi8, a, m0);  // + c * cstride + r * 8
    for (int64_t u = a.u0; u < nu; ++u) {
      const int64_t g = (u * uc) / w.group_chunks;
      int32_t xs[MR];
      for (int r = 0; r < MR; ++r) xs[r] = a.xsum[u * a.m + m0 + r];
      VI iacc[MR][NV];
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) iacc[r][v] = vi_set1(int32_t(uint32_t(-w.offset) * uint32_t(xs[r])));
      if (w.zeros) {
        for (int v = 0; v < NV; ++v) {
          const VI z = vi_u8x16(w.zeros + group_index(w, t0 + v, g));
          for (int r = 0; r < MR; ++r) iacc[r][v] = vi_sub(iacc[r][v], vi_mullo(z, vi_set1(xs[r])));
        }
      }
      for (int64_t c = u * uc; c < (u + 1) * uc; ++c) {
        prefetch_weights<MR, NV>(w, t0, c);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) {
          VB qa, qb;
          dec.chunk(chunk_ptr(w, t0 + v, c), qa, qb);
#pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
            const int8_t* xp = xrow + c * a.cstride + r * kChunkCols;
            iacc[r][v] = dpbusd(iacc[r][v], qa, xp);
            iacc[r][v] = dpbusd(iacc[r][v], qb, xp + 4);
          }
        }
      }
      unit_epilogue<MR, NV, Exact>(w, a, t0, m0, u, g, iacc, dacc);
    }
    acc_end<MR, NV>(w, a, y, ldy, t0, m0, nu, dacc);
  }
};

// Runs Block<Dec, exact> over the register tiles: MR_EXACT rows per tile with float64 sums, MR_FAST with float32.
template <template <class, bool> class Block, int MR_EXACT, int MR_FAST, int NV, int NV1, class Dec>
void run_blocks(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
                int64_t m1) {
  const Dec dec(w);
  if (a.exact) {
    Block<Dec, true> block{w, a, dec, y, ldy};
    for_register_tiles<MR_EXACT, NV, NV1>(t0, t1, m0, m1, block);
  } else {
    Block<Dec, false> block{w, a, dec, y, ldy};
    for_register_tiles<MR_FAST, NV, NV1>(t0, t1, m0, m1, block);
  }
}

template <class Dec>
void int8_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
              int64_t m1) {
  run_blocks<Int8Block, kMRInt, kMRIntF, kNVInt, kNV1Int, Dec>(w, a, y, ldy, t0, t1, m0, m1);
}

#if FPQ_KISA != 1
struct I16Nib {
  LutW lut;
  explicit I16Nib(const WeightView& w) : lut(w.lut_i16, 4) {}
  FPQ_INLINE void chunk(const uint8_t* p, VI* e) const {
    const VB v = vb_load(p);
    words_lut(lut, vb_lo4(v), e[0], e[1]);
    words_lut(lut, vb_hi4(v), e[2], e[3]);
  }
};
struct I16Lut {
  LutW lut;
  explicit I16Lut(const WeightView& w) : lut(w.lut_i16, w.bits) {}
  FPQ_INLINE void chunk(const uint8_t* p, VI* e) const {
    words_lut(lut, vb_load(p), e[0], e[1]);
    words_lut(lut, vb_load(p + 64), e[2], e[3]);
  }
};
struct I16SInt {
  explicit I16SInt(const WeightView&) {}
  FPQ_INLINE void chunk(const uint8_t* p, VI* e) const {
    words_sint8(vb_load(p), e[0], e[1]);
    words_sint8(vb_load(p + 64), e[2], e[3]);
  }
};
struct I16UInt {
  explicit I16UInt(const WeightView&) {}
  FPQ_INLINE void chunk(const uint8_t* p, VI* e) const {
    words_uint8(vb_load(p), e[0], e[1]);
    words_uint8(vb_load(p + 64), e[2], e[3]);
  }
};

template <class Dec, bool Exact>
struct Int16Block {
  using Acc = typename AccFor<Exact>::T;
  const WeightView& w;
  const ActView& a;
  const Dec& dec;
  float* y;
  int64_t ldy;

  template <int MR, int NV>
  __attribute__((noinline)) void run(int64_t t0, int64_t m0) const {
    Acc dacc[MR][NV];
    acc_begin<MR, NV>(a, t0, m0, dacc);
    const int64_t uc = a.unit_chunks, nu = a.u1 > 0 ? a.u1 : a.nunits;
    const int16_t* xrow = act_row(a.xi16, a, m0);
    for (int64_t u = a.u0; u < nu; ++u) {
      const int64_t g = (u * uc) / w.group_chunks;
      VI iacc[MR][NV];
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) iacc[r][v] = vi_zero();
      if (w.zeros) {
        for (int v = 0; v < NV; ++v) {
          const VI z = vi_u8x16(w.zeros + group_index(w, t0 + v, g));
          for (int r = 0; r < MR; ++r) iacc[r][v] = vi_sub(iacc[r][v], vi_mullo(z, vi_set1(a.xsum[u * a.m + m0 + r])));
        }
      }
      for (int64_t c = u * uc; c < (u + 1) * uc; ++c) {
        prefetch_weights<MR, NV>(w, t0, c);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) {
          VI e[4];
          dec.chunk(chunk_ptr(w, t0 + v, c), e);
#pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
            const int16_t* xp = xrow + c * a.cstride + r * kChunkCols;
            iacc[r][v] = dpwssd(iacc[r][v], e[0], xp);
            iacc[r][v] = dpwssd(iacc[r][v], e[1], xp + 2);
            iacc[r][v] = dpwssd(iacc[r][v], e[2], xp + 4);
            iacc[r][v] = dpwssd(iacc[r][v], e[3], xp + 6);
          }
        }
      }
      unit_epilogue<MR, NV, Exact>(w, a, t0, m0, u, g, iacc, dacc);
    }
    acc_end<MR, NV>(w, a, y, ldy, t0, m0, nu, dacc);
  }
};

template <class Dec>
void int16_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
               int64_t m1) {
  run_blocks<Int16Block, kMRInt16, kMRInt16F, kNVInt16, kNV1Int16, Dec>(w, a, y, ldy, t0, t1, m0, m1);
}
#endif

}  // namespace

void gemm_int8(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
               int64_t m1) {
  switch (w.int_decode) {
    case kIntNib: int8_run<I8Nib>(w, a, y, ldy, t0, t1, m0, m1); break;
    case kIntNibId: int8_run<I8NibId>(w, a, y, ldy, t0, t1, m0, m1); break;
    case kIntLut64: int8_run<I8Lut64>(w, a, y, ldy, t0, t1, m0, m1); break;
    case kIntXor80: int8_run<I8Xor>(w, a, y, ldy, t0, t1, m0, m1); break;
    default: int8_run<I8Id>(w, a, y, ldy, t0, t1, m0, m1); break;
  }
}

void gemm_int16(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
                int64_t m1) {
#if FPQ_KISA != 1
  if (w.storage == kNibble) int16_run<I16Nib>(w, a, y, ldy, t0, t1, m0, m1);
  else if (w.int_decode == kIntXor80) int16_run<I16SInt>(w, a, y, ldy, t0, t1, m0, m1);
  else if (w.int_decode == kIntIdentity) int16_run<I16UInt>(w, a, y, ldy, t0, t1, m0, m1);
  else int16_run<I16Lut>(w, a, y, ldy, t0, t1, m0, m1);
#else
  (void)w, (void)a, (void)y, (void)ldy, (void)t0, (void)t1, (void)m0, (void)m1;
  __builtin_trap();  // the AVX2 variant has no int16 kernel; the driver never asks for it
#endif
}

}  // namespace fpq::cpu::detail::FPQ_ISA_NS
