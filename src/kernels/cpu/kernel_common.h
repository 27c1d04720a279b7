#pragma once
// Internal: shared pieces of the kernel variants (register-tile dispatch and the output epilogue).
#include "kernels/cpu/simd.h"

namespace fpq::cpu::detail::FPQ_ISA_NS {

// Register tile: MR activation rows x NV weight tiles (16 rows each). kNV1 is the NV used for one activation
// row (the matrix-vector case), where more weight tiles in flight hide latency.
#if FPQ_KISA == 2
// (int kernels with exact sums: 8 rows, as each row holds two float64 accumulator registers besides its int32
// one; with float32 sums 10)
constexpr int kMRInt = 8, kNVInt = 1, kNV1Int = 4;
constexpr int kMRInt16 = 8, kNVInt16 = 1, kNV1Int16 = 4;
constexpr int kMRIntF = 10, kMRInt16F = 10;
constexpr int kMRFloat = 12, kNVFloat = 1, kNV1Float = 4;
constexpr int kMRPanel = 12, kNVPanel = 2, kPanelMinRows = 16;  // float kernel, many rows: decoded panels
constexpr int kMRBf16 = 12;
constexpr int kMRF64 = 10, kNVF64 = 1, kNV1F64 = 4;  // float64 kernel: two registers per accumulator
constexpr int kMRF64Panel = 12;
#elif FPQ_KISA == 1
// (kNV1Int 4: the matrix-vector case reads all four interleaved tiles of a stream in one pass; with 2 it read
// 51-65% of the read bandwidth on a Zen 3, with 4 59-88%)
constexpr int kMRInt = 2, kNVInt = 1, kNV1Int = 4;
constexpr int kMRInt16Avx2 = 6;  // int8 kernel with int16 sums (kernels_int.cpp): rows per half-tile pass
constexpr int kMRInt16Both = 4;  // the same, one-pass units: rows per whole-tile pass (rows_both)
constexpr int kMRInt16 = 3, kNVInt16 = 1, kNV1Int16 = 2;  // int16 kernel: 2 registers per accumulator
constexpr int kMRInt16Half = 8;  // int16 kernel, several rows: rows per half-tile pass (Int16Avx2Block)
constexpr int kMRIntF = 2, kMRInt16F = 3;
constexpr int kMRFloat = 3, kNVFloat = 1, kNV1Float = 4;  // (M = 1: 4 tiles in two passes, FloatBlock::kPassTiles)
constexpr int kMRPanel = 4, kNVPanel = 1, kPanelMinRows = 16;
constexpr int kMRF64 = 2, kNVF64 = 1, kNV1F64 = 2;
constexpr int kMRF64Panel = 2;
#else
constexpr int kMRInt = 2, kNVInt = 1, kNV1Int = 1;
constexpr int kMRInt16 = 2, kNVInt16 = 1, kNV1Int16 = 1;
constexpr int kMRIntF = 2, kMRInt16F = 2;
constexpr int kMRFloat = 2, kNVFloat = 1, kNV1Float = 1;
constexpr int kMRPanel = 2, kNVPanel = 1, kPanelMinRows = 16;
constexpr int kMRF64 = 2, kNVF64 = 1, kNV1F64 = 1;
constexpr int kMRF64Panel = 2;
#endif

// Largest row block the driver hands one kernel call (matmul.cpp: row_block).
constexpr int64_t kMaxBlockRows = 192;

FPQ_INLINE int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Calls f.template operator()<R, NV>() for R == mr (1 <= mr <= MR).
template <int MR, int NV, class F>
FPQ_INLINE void with_mr(int mr, F& f) {
  if constexpr (MR >= 1) {
    if (mr == MR) f.template operator()<MR, NV>();
    else with_mr<MR - 1, NV>(mr, f);
  }
}

// Walks tiles [t0, t1) x rows [m0, m1) in register tiles; `block(t, m, mr, nv)` is generic over <MR, NV>.
template <int MR, int NV, int NV1, class Block>
FPQ_INLINE void for_register_tiles(int64_t t0, int64_t t1, int64_t m0, int64_t m1, Block& block) {
  if (m1 - m0 == 1) {
    int64_t t = t0;
    for (; t + NV1 <= t1; t += NV1) {
      auto f = [&]<int R, int V>() { block.template run<R, V>(t, m0); };
      with_mr<1, NV1>(1, f);
    }
    for (; t < t1; ++t) {
      auto f = [&]<int R, int V>() { block.template run<R, V>(t, m0); };
      with_mr<1, 1>(1, f);
    }
    return;
  }
  // Balanced row tiles: as few as MR allows, as equal as possible (16 rows -> 8 + 8 rather than 14 + 2).
  const int64_t rows = m1 - m0, ntiles = (rows + MR - 1) / MR, base = rows / ntiles, extra = rows % ntiles;
  int64_t t = t0;
  for (; t + NV <= t1; t += NV) {
    for (int64_t i = 0, m = m0; i < ntiles; ++i) {
      const int mr = int(base + (i < extra ? 1 : 0));
      auto f = [&]<int R, int V>() { block.template run<R, V>(t, m); };
      with_mr<MR, NV>(mr, f);
      m += mr;
    }
  }
  for (; t < t1; ++t) {
    for (int64_t i = 0, m = m0; i < ntiles; ++i) {
      const int mr = int(base + (i < extra ? 1 : 0));
      auto f = [&]<int R, int V>() { block.template run<R, V>(t, m); };
      with_mr<MR, 1>(mr, f);
      m += mr;
    }
  }
}

// y = (acc * row_global) * gx, rows [m0, m0 + MR), tiles [t0, t0 + NV), skipping rows past n (float32 sums).
template <int MR, int NV>
FPQ_INLINE void store_tile(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t m0,
                           VF (&acc)[MR][NV]) {
  for (int v = 0; v < NV; ++v) {
    const int64_t n0 = (t0 + v) * kTileRows;
    const int valid = int(min64(kTileRows, w.n - n0));
    VF rg = vf_set1(1.0f);
    if (w.row_global) rg = vf_load(w.row_global + n0);
    for (int r = 0; r < MR; ++r) {
      VF o = acc[r][v];
      if (w.row_global) o = vf_mul(o, rg);
      if (a.gx) o = vf_mul(o, vf_bcast(a.gx + m0 + r));
      vf_store(y + (m0 + r) * ldy + n0, o, valid);
    }
  }
}

// Exact variant (float64 sums): y = float(S * (double(row_global) * double(gx))), the pseudo path's finish
// (model/builtin_backends.cpp), so both give the same bits.
template <int MR, int NV>
FPQ_INLINE void store_tile(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t m0,
                           VD (&acc)[MR][NV]) {
  for (int v = 0; v < NV; ++v) {
    const int64_t n0 = (t0 + v) * kTileRows;
    const int valid = int(min64(kTileRows, w.n - n0));
    const VD gw = w.row_global ? vd_cvt(vf_load(w.row_global + n0)) : vd_set1(1.0);
    for (int r = 0; r < MR; ++r) {
      const VD g = vd_mul(gw, vd_set1(a.gx ? double(a.gx[m0 + r]) : 1.0));
      vf_store(y + (m0 + r) * ldy + n0, vf_from_vd(vd_mul(acc[r][v], g)), valid);
    }
  }
}

// The per-unit epilogue of the integer kernels, for either accumulator: acc += (idot * s_w) * s_x, and
// acc += m_w * (x_sum * s_x) for weights with mins. Float64 (VD): every term and sum exact, as the pseudo path
// computes them; float32 (VF): rounded, faster (half the conversions and register width).
// (Chosen by a bool: a vector type as a template argument loses its alignment attributes.)
template <bool Exact>
struct AccFor {
  using T = VD;
};
template <>
struct AccFor<false> {
  using T = VF;
};
FPQ_INLINE void acc_zero(VF& acc) { acc = vf_zero(); }
FPQ_INLINE void acc_zero(VD& acc) { acc = vd_zero(); }
FPQ_INLINE VF acc_scale(VF s, VF) { return s; }
FPQ_INLINE VD acc_scale(VF s, VD) { return vd_cvt(s); }
FPQ_INLINE void acc_unit(VF& acc, VI idot, VF sw, const float* sx) { acc = vf_fma_bc(vf_mul(vf_cvt(idot), sw), sx, acc); }
FPQ_INLINE void acc_unit(VD& acc, VI idot, VD sw, const float* sx) { acc = vd_fma_bc(vd_mul(vd_cvti(idot), sw), sx, acc); }
FPQ_INLINE void acc_mins(VF& acc, VF mn, const float* msx) { acc = vf_fma_bc(mn, msx, acc); }
FPQ_INLINE void acc_mins(VD& acc, VD mn, const float* msx) { acc = vd_fma_bc(mn, msx, acc); }

// The running sums of a K-blocked call (ActView::u0/u1/partial): taken up from and handed on through memory.
template <int MR, int NV, class Acc>
FPQ_INLINE void acc_resume(const ActView& a, int64_t t0, int64_t m0, Acc (&acc)[MR][NV]) {
  const Acc* p = static_cast<const Acc*>(a.partial);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) std::memcpy(&acc[r][v], p + (m0 + r - a.pm0) * a.pld + (t0 + v - a.pt0), sizeof(Acc));
}
template <int MR, int NV, class Acc>
FPQ_INLINE void acc_suspend(const ActView& a, int64_t t0, int64_t m0, Acc (&acc)[MR][NV]) {
  Acc* p = static_cast<Acc*>(a.partial);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) std::memcpy(p + (m0 + r - a.pm0) * a.pld + (t0 + v - a.pt0), &acc[r][v], sizeof(Acc));
}

// Start of a register tile's walk over units [a.u0, ...): zero sums, or those a previous K block left.
template <int MR, int NV, class Acc>
FPQ_INLINE void acc_begin(const ActView& a, int64_t t0, int64_t m0, Acc (&acc)[MR][NV]) {
  if (a.u0 > 0) {
    acc_resume<MR, NV>(a, t0, m0, acc);
  } else {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc_zero(acc[r][v]);
  }
}
// End of the walk at unit u_end: hand the sums to the next K block, or finish the outputs.
template <int MR, int NV, class Acc>
FPQ_INLINE void acc_end(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t m0,
                        int64_t u_end, Acc (&acc)[MR][NV]) {
  if (u_end < a.nunits) acc_suspend<MR, NV>(a, t0, m0, acc);
  else store_tile<MR, NV>(w, a, y, ldy, t0, m0, acc);
}

// First activation element of row m0 (chunk 0); chunk c of row m0 + r is at + c * cstride + r * 8.
template <typename T>
FPQ_INLINE const T* act_row(const T* base, const ActView& a, int64_t m0) {
  return base + (m0 / a.rb) * a.bstride + (m0 % a.rb) * kChunkCols;
}

FPQ_INLINE const uint8_t* chunk_ptr(const WeightView& w, int64_t t, int64_t c) {
  return w.codes + tile_offset(t, c, w.nchunks) * w.chunk_bytes;
}
// Matrix-vector case (one activation row): prefetch the weight stream kPrefetchChunks chunks ahead (of each of
// the NV tiles; 4 interleaved tiles make 4-8 cache lines per chunk step). The hardware prefetchers alone kept
// 2 cores at ~50% of the read bandwidth; with this, 60-77% (measured, fpq bench gemm, 4-bit weights).
constexpr int64_t kPrefetchChunks = 16;
template <int MR, int NV>
FPQ_INLINE void prefetch_weights(const WeightView& w, int64_t t0, int64_t c) {
  if constexpr (MR == 1) {
    for (int v = 0; v < NV; ++v) {
      // (past the last chunk this points beyond the codes; a prefetch never faults)
      const uint8_t* p = w.codes + tile_offset(t0 + v, c + kPrefetchChunks, w.nchunks) * w.chunk_bytes;
      __builtin_prefetch(p);
      if (w.chunk_bytes > 64) __builtin_prefetch(p + 64);
    }
  }
}
FPQ_INLINE int64_t group_index(const WeightView& w, int64_t t, int64_t g) {
  return tile_offset(t, g, w.ngroups) * kTileRows;
}

}  // namespace fpq::cpu::detail::FPQ_ISA_NS
