// Integer-dot kernels (one copy per instruction-set variant, see CMakeLists.txt): both operands hold integer
// multiples of a power of two, so each (row, unit) dot product is an exact int32 sum; the scales are applied
// per unit:  S += (idot * w_scale) * x_scale  (the last step fused), then y = float(S * (w_global * x_global)).
// Exact sums (ActView::exact, the default) keep S in float64: every term is exact in float64 and so are the
// sums for realistic scale ranges, so S is the exact dot product of the dequantized operands, the same number
// the pseudo path's float64 GEMM computes, and y has the same bits. Float32 sums round each step (relative
// error ~1e-7) and run faster where the units are short (NVFP4's 16 columns): Acc = VF instead of VD.
//   int8:  weights as unsigned bytes (value + offset), activations as signed bytes: vpdpbusd (AVX-512 VNNI),
//          vpmaddubsw + vpmaddwd (AVX2). The offset comes back out through the activations' per-unit sums.
//   int16: weights and activations as int16 pairs: vpdpwssd (AVX-512 VNNI), vpmaddwd + vpaddd (AVX2; the pairs
//          that vpmaddubsw would saturate: int8 x int8, q8_0 x q8_0, FP6 E3M2 x E3M2).
#include <cstdlib>
#include <type_traits>

#include "kernels/cpu/kernel_common.h"

namespace fpq::cpu::detail::FPQ_ISA_NS {
namespace {

// After unit u (weight group g) of a register tile: fold the int32 dot products into the accumulators.
// SC: the weight's scale code where the caller knows it at compile time (-1: read it from w).
template <int MR, int NV, bool Exact, int SC = -1>
FPQ_INLINE void unit_epilogue(const WeightView& w, const ActView& a, int64_t t0, int64_t m0, int64_t u, int64_t g,
                              VI (&idot)[MR][NV], typename AccFor<Exact>::T (&acc)[MR][NV]) {
  using Acc = typename AccFor<Exact>::T;
  const int code = SC >= 0 ? SC : w.scale_code;
  // (tiles t0.. share their group-of-four's scale block: consecutive entries of 16 lanes)
  const uint8_t* sp = w.scales + group_index(w, t0, g) * w.scale_bytes;
  const int64_t vstride = t0 % kTileGroup + NV <= kTileGroup ? int64_t(kTileRows) * w.scale_bytes : -1;
  auto scales_of = [&](int v) {
    return load_scales(code, vstride > 0 ? sp + v * vstride : w.scales + group_index(w, t0 + v, g) * w.scale_bytes);
  };
  if constexpr (Exact) {
    if (a.f32_product) {  // (never with zero points or mins: the driver's condition)
      double sxd[MR];  // (converted once for all tiles)
      for (int r = 0; r < MR; ++r) sxd[r] = double(a.sx[u * a.m + m0 + r]);
      for (int v = 0; v < NV; ++v) {
        const VF swf = scales_of(v);
        // double(idot * sw) == double(idot) * double(sw): the float32 product is exact (driver's bound)
        for (int r = 0; r < MR; ++r) acc[r][v] = vd_fma_bcd(vd_cvt(vf_mul(vf_cvt(idot[r][v]), swf)), &sxd[r], acc[r][v]);
      }
      return;
    }
  }
  for (int v = 0; v < NV; ++v) {
    const auto sw = acc_scale(scales_of(v), Acc{});
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

#if FPQ_KISA == 1
// AVX2 without VNNI: the emulated vpdpbusd above widens every product pair (vpmaddubsw, then vpmaddwd and an
// int32 add: three operations per 32 products). With several activation rows the kernel below instead lets
// the int16 pair sums of vpmaddubsw accumulate over up to ActView::i16_chunks chunks (exact: the driver's bound
// keeps every int16 lane below 2^15) and widens once per unit, and it works on one half of a tile (8 weight
// rows, one register) at a time so that 6 activation rows fit in the 16 registers (8 spill; measured: 6 beats
// 4 and 8): 4 vector operations per 64 products plus the decode, shared by the 6 rows. The int32 unit sums are the same integers as the generic
// kernel's, and the epilogue is the same, so the results keep their bits.
struct H8Nib {
  __m256i lut, mask;
  explicit H8Nib(const WeightView& w)
      : lut(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)w.lut_u8))), mask(_mm256_set1_epi8(0x0F)) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i& lo, __m256i& hi) const {
    const __m256i v = _mm256_load_si256((const __m256i*)(chunk + 32 * h));
    lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, mask));
    hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), mask));
  }
};
struct H8NibId {
  __m256i mask;
  explicit H8NibId(const WeightView&) : mask(_mm256_set1_epi8(0x0F)) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i& lo, __m256i& hi) const {
    const __m256i v = _mm256_load_si256((const __m256i*)(chunk + 32 * h));
    lo = _mm256_and_si256(v, mask);
    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
  }
};
struct H8Lut64 {
  Lut64B lut;
  explicit H8Lut64(const WeightView& w) : lut(w.lut_u8) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i& lo, __m256i& hi) const {
    lo = lut64_half(lut, _mm256_load_si256((const __m256i*)(chunk + 32 * h)));
    hi = lut64_half(lut, _mm256_load_si256((const __m256i*)(chunk + 64 + 32 * h)));
  }
};
struct H8Xor {
  explicit H8Xor(const WeightView&) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i& lo, __m256i& hi) const {
    const __m256i m = _mm256_set1_epi8(char(0x80));
    lo = _mm256_xor_si256(_mm256_load_si256((const __m256i*)(chunk + 32 * h)), m);
    hi = _mm256_xor_si256(_mm256_load_si256((const __m256i*)(chunk + 64 + 32 * h)), m);
  }
};
struct H8Id {
  explicit H8Id(const WeightView&) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i& lo, __m256i& hi) const {
    lo = _mm256_load_si256((const __m256i*)(chunk + 32 * h));
    hi = _mm256_load_si256((const __m256i*)(chunk + 64 + 32 * h));
  }
};

FPQ_INLINE __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Calls f.template operator()<SC>() with scale code `code` as a template argument where it is a common one (-1
// otherwise): the unit epilogue is much of the AVX2 loops' work, and its scale decode is then known at compile
// time.
template <class F>
FPQ_INLINE void with_scale_code(int code, F&& f) {
  switch (code) {
    case kScaleE8M0Fast: f.template operator()<kScaleE8M0Fast>(); break;
    case kScaleE4M3Fast: f.template operator()<kScaleE4M3Fast>(); break;
    case kScaleF16: f.template operator()<kScaleF16>(); break;
    default: f.template operator()<-1>(); break;
  }
}

// Whether every unit's int16 pair sums fit one pass (FP4 x FP4, Q4_0 x Q8_1, ...): vec_group and rows_both.
FPQ_INLINE bool one_pass_units(const ActView& a) { return a.i16_chunks >= a.unit_chunks; }

// Register tiles of MR >= 2 rows and one weight tile (rows), or one row and NV tiles (vec).
template <class Dec, class Half, bool Exact>
struct Int8Avx2Block {
  using Acc = typename AccFor<Exact>::T;
  const WeightView& w;
  const ActView& a;
  const Dec& dec;
  const Half& half;
  float* y;
  int64_t ldy;
  // rows_f1 only: the weight tile's chunks [panel_c0, ..) already decoded, 128 bytes each as H8Id reads them
  // (int8_run decodes each tile's K block once for all its row tiles), or null: read the prepared weight.
  const uint8_t* panel = nullptr;
  int64_t panel_c0 = 0;

  template <int MR, int NV>
  FPQ_INLINE void run(int64_t t0, int64_t m0) const {
    static_assert(MR == 1 || NV == 1, "several rows come with one weight tile (for_register_tiles<MR, 1, NV1>)");
    if constexpr (MR == 1) {
      with_scale_code(w.scale_code, [&]<int SC>() { vec<NV, SC>(t0, m0); });
    } else if constexpr (MR <= kMRInt16Both) {
      // (int8_run tiles the rows for rows_both where the units are one pass; otherwise MR <= 4 is a remainder)
      if (one_pass_units(a)) with_scale_code(w.scale_code, [&]<int SC>() { rows_both<MR, SC>(t0, m0); });
      else if (a.i16_chunks == 1) with_scale_code(w.scale_code, [&]<int SC>() { rows_f1<MR, SC>(t0, m0); });
      else with_scale_code(w.scale_code, [&]<int SC>() { rows<MR, SC>(t0, m0); });
    } else {
      if (a.i16_chunks == 1) with_scale_code(w.scale_code, [&]<int SC>() { rows_f1<MR, SC>(t0, m0); });
      else with_scale_code(w.scale_code, [&]<int SC>() { rows<MR, SC>(t0, m0); });
    }
  }

  // One activation row (matrix-vector, bound by memory): NV whole tiles in flight, both halves at once.
  template <int NV, int SC>
  __attribute__((noinline)) void vec(int64_t t0, int64_t m0) const {
    if constexpr (NV == kTileGroup) {
      if (t0 % kTileGroup == 0 && one_pass_units(a) && !w.zeros) {
        vec_group<SC>(t0, m0);
        return;
      }
    }
    Acc dacc[1][NV];
    acc_begin<1, NV>(a, t0, m0, dacc);
    const int64_t uc = a.unit_chunks, nu = a.u1 > 0 ? a.u1 : a.nunits, flush = a.i16_chunks;
    const int8_t* xrow = act_row(a.xi8, a, m0);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t u = a.u0; u < nu; ++u) {
      const int64_t g = (u * uc) / w.group_chunks;
      const int32_t xs = a.xsum[u * a.m + m0];
      const __m256i base = _mm256_set1_epi32(int32_t(uint32_t(-w.offset) * uint32_t(xs)));
      __m256i s32[NV][2];
      for (int v = 0; v < NV; ++v) s32[v][0] = s32[v][1] = base;
      for (int64_t c = u * uc, c1 = (u + 1) * uc; c < c1;) {
        const int64_t ce = min64(c1, c + flush);
        __m256i acc[NV][2];
        for (int v = 0; v < NV; ++v) acc[v][0] = acc[v][1] = _mm256_setzero_si256();
        for (; c < ce; ++c) {
          prefetch_weights<1, NV>(w, t0, c);
          const int8_t* xc = xrow + c * a.cstride;
          const __m256i x0 = bcast4(xc), x1 = bcast4(xc + 4);
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) {
            const uint8_t* p = chunk_ptr(w, t0 + v, c);
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
              __m256i lo, hi;
              half.get(p, h, lo, hi);
              acc[v][h] = _mm256_add_epi16(acc[v][h], _mm256_add_epi16(_mm256_maddubs_epi16(lo, x0),
                                                                       _mm256_maddubs_epi16(hi, x1)));
            }
          }
        }
        for (int v = 0; v < NV; ++v)
          for (int h = 0; h < 2; ++h) s32[v][h] = _mm256_add_epi32(s32[v][h], _mm256_madd_epi16(acc[v][h], ones));
      }
      VI iacc[1][NV];
      for (int v = 0; v < NV; ++v) {
        iacc[0][v] = {s32[v][0], s32[v][1]};
        if (w.zeros) iacc[0][v] = vi_sub(iacc[0][v], vi_mullo(vi_u8x16(w.zeros + group_index(w, t0 + v, g)), vi_set1(xs)));
      }
      unit_epilogue<1, NV, Exact, SC>(w, a, t0, m0, u, g, iacc, dacc);
    }
    acc_end<1, NV>(w, a, y, ldy, t0, m0, nu, dacc);
  }

  // vec<kTileGroup> over one whole group of interleaved tiles, each unit summed in int16 in one pass (FP4 x FP4,
  // Q4_0 x Q8_1, int4 x int8, ...): the four tiles' chunks are one contiguous stream, walked by one pointer, and
  // the unit's set-up is a few operations, where the general loop spent as many on addressing and spills as on
  // its dot products (NVFP4's 16-column units). The same sums in the same order as vec: the same bits.
  template <int SC>
  __attribute__((noinline)) void vec_group(int64_t t0, int64_t m0) const {
    constexpr int NV = kTileGroup;
    Acc dacc[1][NV];
    acc_begin<1, NV>(a, t0, m0, dacc);
    const int64_t uc = a.unit_chunks, nu = a.u1 > 0 ? a.u1 : a.nunits, gc = w.group_chunks;
    const int64_t cb = w.chunk_bytes, step = NV * cb, cs = a.cstride;
    const uint8_t* wp = chunk_ptr(w, t0, a.u0 * uc);  // tile t0 + v at wp + v * cb
    const int8_t* xp = act_row(a.xi8, a, m0) + a.u0 * uc * cs;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t u = a.u0; u < nu; ++u) {
      const int64_t g = uc == gc ? u : (u * uc) / gc;
      __m256i acc[NV][2];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[v][0] = acc[v][1] = _mm256_setzero_si256();
      for (int64_t c = 0; c < uc; ++c, wp += step, xp += cs) {
        const uint8_t* pf = wp + kPrefetchChunks * step;  // (a prefetch past the end never faults)
        for (int64_t b = 0; b < step; b += 64) __builtin_prefetch(pf + b);
        const __m256i x0 = bcast4(xp), x1 = bcast4(xp + 4);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
#pragma GCC unroll 2
          for (int h = 0; h < 2; ++h) {
            __m256i lo, hi;
            half.get(wp + v * cb, h, lo, hi);
            acc[v][h] = _mm256_add_epi16(acc[v][h], _mm256_add_epi16(_mm256_maddubs_epi16(lo, x0),
                                                                     _mm256_maddubs_epi16(hi, x1)));
          }
        }
      }
      const int32_t xs = a.xsum[u * a.m + m0];
      const __m256i base = _mm256_set1_epi32(int32_t(uint32_t(-w.offset) * uint32_t(xs)));
      VI iacc[1][NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        iacc[0][v] = {_mm256_add_epi32(base, _mm256_madd_epi16(acc[v][0], ones)),
                      _mm256_add_epi32(base, _mm256_madd_epi16(acc[v][1], ones))};
      unit_epilogue<1, NV, Exact, SC>(w, a, t0, m0, u, g, iacc, dacc);
    }
    acc_end<1, NV>(w, a, y, ldy, t0, m0, nu, dacc);
  }

  // Several rows, each unit summed in int16 in one pass (FP4 x FP4, Q4_0 x Q8_1, ...): both halves of the tile
  // per chunk, so each activation broadcast feeds four vpmaddubsw instead of two (rows() walks the halves one
  // after the other with more rows, for units that need several passes). The same int32 unit sums: the same bits.
  template <int MR, int SC>
  __attribute__((noinline)) void rows_both(int64_t t0, int64_t m0) const {
    Acc dacc[MR][1];
    acc_begin<MR, 1>(a, t0, m0, dacc);
    const int64_t uc = a.unit_chunks, nu = a.u1 > 0 ? a.u1 : a.nunits, gc = w.group_chunks, cs = a.cstride;
    const int8_t* xp = act_row(a.xi8, a, m0) + a.u0 * uc * cs;
    const int64_t cb = w.chunk_bytes, step = kTileGroup * cb;  // chunk c + 1 of a tile: step bytes on
    const uint8_t* wp = chunk_ptr(w, t0, a.u0 * uc);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t u = a.u0; u < nu; ++u) {
      const int64_t g = uc == gc ? u : (u * uc) / gc;
      __m256i acc[MR][2];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
      for (int64_t c = 0; c < uc; ++c, wp += step, xp += cs) {
        // (few rows: the weights stream from memory, see rows())
        __builtin_prefetch(wp + kPrefetchChunks * step);
        if (cb > 64) __builtin_prefetch(wp + kPrefetchChunks * step + 64);
        __m256i lo0, hi0, lo1, hi1;
        half.get(wp, 0, lo0, hi0);
        half.get(wp, 1, lo1, hi1);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          const __m256i x0 = bcast4(xp + r * kChunkCols), x1 = bcast4(xp + r * kChunkCols + 4);
          acc[r][0] = _mm256_add_epi16(acc[r][0], _mm256_add_epi16(_mm256_maddubs_epi16(lo0, x0),
                                                                   _mm256_maddubs_epi16(hi0, x1)));
          acc[r][1] = _mm256_add_epi16(acc[r][1], _mm256_add_epi16(_mm256_maddubs_epi16(lo1, x0),
                                                                   _mm256_maddubs_epi16(hi1, x1)));
        }
      }
      VI iacc[MR][1];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const int32_t xs = a.xsum[u * a.m + m0 + r];
        const __m256i base = _mm256_set1_epi32(int32_t(uint32_t(-w.offset) * uint32_t(xs)));
        iacc[r][0] = {_mm256_add_epi32(base, _mm256_madd_epi16(acc[r][0], ones)),
                      _mm256_add_epi32(base, _mm256_madd_epi16(acc[r][1], ones))};
        if (w.zeros) iacc[r][0] = vi_sub(iacc[r][0], vi_mullo(vi_u8x16(w.zeros + group_index(w, t0, g)), vi_set1(xs)));
      }
      unit_epilogue<MR, 1, Exact, SC>(w, a, t0, m0, u, g, iacc, dacc);
    }
    acc_end<MR, 1>(w, a, y, ldy, t0, m0, nu, dacc);
  }

  // Several rows, units that widen their int16 pair sums every chunk (i16_chunks == 1: MXFP6 E2M3 x E2M3, whose
  // pair sums reach 2 x 124 x 60): the int32 sums of a half tile stay in registers, where rows() (any flush)
  // keeps them in memory (a load, an add and a store per row and chunk: the bulk of its loop). The same int32
  // unit sums (integer additions in another order): the same bits.
  template <int MR, int SC>
  __attribute__((noinline)) void rows_f1(int64_t t0, int64_t m0) const {
    Acc dacc[MR][1];
    acc_begin<MR, 1>(a, t0, m0, dacc);
    const int64_t uc = a.unit_chunks, nu = a.u1 > 0 ? a.u1 : a.nunits, cs = a.cstride;
    // chunk c + 1 of a tile: step bytes on
    const int64_t cb = panel ? 128 : w.chunk_bytes, step = panel ? cb : kTileGroup * cb;
    const int8_t* xrow = act_row(a.xi8, a, m0);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t u = a.u0; u < nu; ++u) {
      const int64_t g = (u * uc) / w.group_chunks;
      __m256i s[2][MR];
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) s[h][r] = _mm256_setzero_si256();
        const uint8_t* wp = panel ? panel + (u * uc - panel_c0) * cb : chunk_ptr(w, t0, u * uc);
        const int8_t* xp = xrow + u * uc * cs;
        for (int64_t c = 0; c < uc; ++c, wp += step, xp += cs) {
          if (h == 0 && !panel) {  // (see rows(): few rows stream the weights from memory)
            __builtin_prefetch(wp + kPrefetchChunks * step);
            if (cb > 64) __builtin_prefetch(wp + kPrefetchChunks * step + 64);
          }
          __m256i lo, hi;
          half.get(wp, h, lo, hi);
#pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
            const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast4(xp + r * kChunkCols)),
                                               _mm256_maddubs_epi16(hi, bcast4(xp + r * kChunkCols + 4)));
            s[h][r] = _mm256_add_epi32(s[h][r], _mm256_madd_epi16(p, ones));
          }
        }
      }
      VI iacc[MR][1];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const int32_t xs = a.xsum[u * a.m + m0 + r];
        const __m256i base = _mm256_set1_epi32(int32_t(uint32_t(-w.offset) * uint32_t(xs)));
        iacc[r][0] = {_mm256_add_epi32(base, s[0][r]), _mm256_add_epi32(base, s[1][r])};
        if (w.zeros) iacc[r][0] = vi_sub(iacc[r][0], vi_mullo(vi_u8x16(w.zeros + group_index(w, t0, g)), vi_set1(xs)));
      }
      unit_epilogue<MR, 1, Exact, SC>(w, a, t0, m0, u, g, iacc, dacc);
    }
    acc_end<MR, 1>(w, a, y, ldy, t0, m0, nu, dacc);
  }

  template <int MR, int SC>
  __attribute__((noinline)) void rows(int64_t t0, int64_t m0) const {
    Acc dacc[MR][1];
    acc_begin<MR, 1>(a, t0, m0, dacc);
    const int64_t uc = a.unit_chunks, nu = a.u1 > 0 ? a.u1 : a.nunits, flush = a.i16_chunks;
    const int8_t* xrow = act_row(a.xi8, a, m0);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t u = a.u0; u < nu; ++u) {
      const int64_t g = (u * uc) / w.group_chunks;
      alignas(32) int32_t raw[MR][16];
      const bool one_pass = flush >= uc;  // the common case: the whole unit in int16
      for (int h = 0; h < 2; ++h) {
        if (!one_pass)
          for (int r = 0; r < MR; ++r) _mm256_store_si256((__m256i*)(raw[r] + 8 * h), _mm256_setzero_si256());
        for (int64_t c = u * uc, c1 = (u + 1) * uc; c < c1;) {
          const int64_t ce = min64(c1, c + flush);
          __m256i acc[MR];
          for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_si256();
          for (; c < ce; ++c) {
            // Few rows: the weights stream from memory and the loads' latency would show (4x slower at M = 2
            // without this, measured); many rows: the tile's K block is in L1 and the prefetch costs nothing.
            if (h == 0) {
              const uint8_t* pf = w.codes + tile_offset(t0, c + kPrefetchChunks, w.nchunks) * w.chunk_bytes;
              __builtin_prefetch(pf);
              if (w.chunk_bytes > 64) __builtin_prefetch(pf + 64);
            }
            __m256i lo, hi;
            half.get(chunk_ptr(w, t0, c), h, lo, hi);
            const int8_t* xc = xrow + c * a.cstride;
#pragma GCC unroll 16
            for (int r = 0; r < MR; ++r) {
              const __m256i p0 = _mm256_maddubs_epi16(lo, bcast4(xc + r * kChunkCols));
              const __m256i p1 = _mm256_maddubs_epi16(hi, bcast4(xc + r * kChunkCols + 4));
              acc[r] = _mm256_add_epi16(acc[r], _mm256_add_epi16(p0, p1));
            }
          }
          for (int r = 0; r < MR; ++r) {
            __m256i* d = (__m256i*)(raw[r] + 8 * h);
            const __m256i s32 = _mm256_madd_epi16(acc[r], ones);
            _mm256_store_si256(d, one_pass ? s32 : _mm256_add_epi32(_mm256_load_si256(d), s32));
          }
        }
      }
      VI iacc[MR][1];
      for (int r = 0; r < MR; ++r) {
        const int32_t xs = a.xsum[u * a.m + m0 + r];
        const VI base = vi_set1(int32_t(uint32_t(-w.offset) * uint32_t(xs)));
        iacc[r][0] = {_mm256_add_epi32(base.a, _mm256_load_si256((const __m256i*)raw[r])),
                      _mm256_add_epi32(base.b, _mm256_load_si256((const __m256i*)(raw[r] + 8)))};
        if (w.zeros) iacc[r][0] = vi_sub(iacc[r][0], vi_mullo(vi_u8x16(w.zeros + group_index(w, t0, g)), vi_set1(xs)));
      }
      unit_epilogue<MR, 1, Exact, SC>(w, a, t0, m0, u, g, iacc, dacc);
    }
    acc_end<MR, 1>(w, a, y, ldy, t0, m0, nu, dacc);
  }
};

// Many rows of a weight whose codes decode through tables (5- and 6-bit codes into bytes: ~6 operations per
// register, as many as the products of 2 rows; codes into int16 words: ~20 per 32 codes, the products of 3 rows):
// each tile's chunks of this call are decoded once, `chunk_bytes` each, into a buffer (16 KB for a K block: it
// stays in L1) that every row tile then reads as plain bytes or words: make_block(buf, c0) builds the register
// tile block reading it, decode(t, c, dst) fills one chunk. The same bytes and words in the same kernel: the
// same bits.
template <int MR, int64_t chunk_bytes, class MakeBlock, class Decode>
void decode_once(const ActView& a, int64_t t0, int64_t t1, int64_t m0, int64_t m1, MakeBlock&& make_block,
                 Decode&& decode) {
  const int64_t uc = a.unit_chunks, nu = a.u1 > 0 ? a.u1 : a.nunits, c0 = a.u0 * uc, c1 = nu * uc;
  uint8_t* buf = static_cast<uint8_t*>(std::aligned_alloc(64, size_t((c1 - c0) * chunk_bytes)));
  if (!buf) __builtin_trap();
  auto block = make_block(buf, c0);
  const int64_t rows = m1 - m0, ntiles = (rows + MR - 1) / MR, base = rows / ntiles, extra = rows % ntiles;
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t c = c0; c < c1; ++c) decode(t, c, buf + (c - c0) * chunk_bytes);
    for (int64_t i = 0, m = m0; i < ntiles; ++i) {
      const int mr = int(base + (i < extra ? 1 : 0));
      auto f = [&]<int R, int V>() { block.template run<R, V>(t, m); };
      with_mr<MR, 1>(mr, f);
      m += mr;
    }
  }
  std::free(buf);
}
constexpr int64_t kDecodeOnceRows = 2 * kMRInt16Avx2;  // int8 kernel: from two row tiles on

// decode_once for the int8 kernel's rows_f1: 128 bytes per chunk, as H8Id reads them.
template <class Dec, bool Exact>
void decode_once_bytes(const WeightView& w, const ActView& a, const Dec& dec, const H8Lut64& half, float* y,
                       int64_t ldy, int64_t t0, int64_t t1, int64_t m0, int64_t m1) {
  const H8Id id(w);
  decode_once<kMRInt16Avx2, 128>(
      a, t0, t1, m0, m1,
      [&](const uint8_t* buf, int64_t c0) { return Int8Avx2Block<Dec, H8Id, Exact>{w, a, dec, id, y, ldy, buf, c0}; },
      [&](int64_t t, int64_t c, uint8_t* dst) {
        for (int h = 0; h < 2; ++h) {
          __m256i lo, hi;
          half.get(chunk_ptr(w, t, c), h, lo, hi);
          _mm256_store_si256((__m256i*)(dst + 32 * h), lo);
          _mm256_store_si256((__m256i*)(dst + 64 + 32 * h), hi);
        }
      });
}

template <class Dec, class Half>
void int8_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
              int64_t m1) {
  if (a.i16_chunks < 1) {
    run_blocks<Int8Block, kMRInt, kMRIntF, kNVInt, kNV1Int, Dec>(w, a, y, ldy, t0, t1, m0, m1);
    return;
  }
  const Dec dec(w);
  const Half half(w);
  const bool both = one_pass_units(a);  // rows_both: fewer rows per register tile
  if constexpr (std::is_same_v<Half, H8Lut64>) {
    if (a.i16_chunks == 1 && !both && m1 - m0 >= kDecodeOnceRows) {
      if (a.exact) decode_once_bytes<Dec, true>(w, a, dec, half, y, ldy, t0, t1, m0, m1);
      else decode_once_bytes<Dec, false>(w, a, dec, half, y, ldy, t0, t1, m0, m1);
      return;
    }
  }
  if (a.exact) {
    Int8Avx2Block<Dec, Half, true> block{w, a, dec, half, y, ldy};
    if (both) for_register_tiles<kMRInt16Both, 1, kNV1Int>(t0, t1, m0, m1, block);
    else for_register_tiles<kMRInt16Avx2, 1, kNV1Int>(t0, t1, m0, m1, block);
  } else {
    Int8Avx2Block<Dec, Half, false> block{w, a, dec, half, y, ldy};
    if (both) for_register_tiles<kMRInt16Both, 1, kNV1Int>(t0, t1, m0, m1, block);
    else for_register_tiles<kMRInt16Avx2, 1, kNV1Int>(t0, t1, m0, m1, block);
  }
}
#else
template <class Dec, class>
void int8_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
              int64_t m1) {
  run_blocks<Int8Block, kMRInt, kMRIntF, kNVInt, kNV1Int, Dec>(w, a, y, ldy, t0, t1, m0, m1);
}
struct H8Nib {};
struct H8NibId {};
struct H8Lut64 {};
struct H8Xor {};
struct H8Id {};
#endif

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

#if FPQ_KISA == 1
// AVX2, several rows: Int16Block's register tile (two registers per accumulator, all of a chunk's decoded
// words live) spills at 3 rows. Here a register tile is one half tile (8 weight rows, one register) x
// kMRInt16Half rows, the two halves one after the other, as Int8Avx2Block::rows does; the int32 unit sums are
// the same integers, so the results keep their bits. e[0..3]: the half's column pairs (0, 2), (1, 3), (4, 6),
// (5, 7) as int16 words.
struct H16Lut {
  LutW lut;
  explicit H16Lut(const WeightView& w) : lut(w.lut_i16, w.bits) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i* e) const {
    words_lut_half(lut, _mm256_load_si256((const __m256i*)(chunk + 32 * h)), e[0], e[1]);
    words_lut_half(lut, _mm256_load_si256((const __m256i*)(chunk + 64 + 32 * h)), e[2], e[3]);
  }
};
struct H16Nib {
  LutW lut;
  explicit H16Nib(const WeightView& w) : lut(w.lut_i16, 4) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i* e) const {
    const __m256i v = _mm256_load_si256((const __m256i*)(chunk + 32 * h)), m = _mm256_set1_epi8(0x0F);
    words_lut_half(lut, _mm256_and_si256(v, m), e[0], e[1]);
    words_lut_half(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m), e[2], e[3]);
  }
};
struct H16SInt {
  explicit H16SInt(const WeightView&) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i* e) const {
    words_sint8_half(_mm256_load_si256((const __m256i*)(chunk + 32 * h)), e[0], e[1]);
    words_sint8_half(_mm256_load_si256((const __m256i*)(chunk + 64 + 32 * h)), e[2], e[3]);
  }
};
struct H16UInt {
  explicit H16UInt(const WeightView&) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i* e) const {
    words_uint8_half(_mm256_load_si256((const __m256i*)(chunk + 32 * h)), e[0], e[1]);
    words_uint8_half(_mm256_load_si256((const __m256i*)(chunk + 64 + 32 * h)), e[2], e[3]);
  }
};

// Words already decoded (int16_run's decode_once_words buffer): 256 bytes per chunk, half h at 128 * h.
struct H16Words {
  explicit H16Words(const WeightView&) {}
  FPQ_INLINE void get(const uint8_t* chunk, int h, __m256i* e) const {
    for (int i = 0; i < 4; ++i) e[i] = _mm256_load_si256((const __m256i*)(chunk + 128 * h + 32 * i));
  }
};

template <class Dec, class Half, bool Exact>
struct Int16Avx2Block {
  using Acc = typename AccFor<Exact>::T;
  const WeightView& w;
  const ActView& a;
  const Dec& dec;
  const Half& half;
  float* y;
  int64_t ldy;
  // The weight tile's chunks [panel_c0, ..) already decoded (H16Words), or null: read the prepared weight.
  const uint8_t* panel = nullptr;
  int64_t panel_c0 = 0;

  template <int MR, int NV>
  FPQ_INLINE void run(int64_t t0, int64_t m0) const {
    if constexpr (MR == 1) {
      Int16Block<Dec, Exact>{w, a, dec, y, ldy}.template run<1, NV>(t0, m0);
    } else {
      static_assert(NV == 1, "several rows come with one weight tile");
      with_scale_code(w.scale_code, [&]<int SC>() { rows<MR, SC>(t0, m0); });
    }
  }

  template <int MR, int SC>
  __attribute__((noinline)) void rows(int64_t t0, int64_t m0) const {
    Acc dacc[MR][1];
    acc_begin<MR, 1>(a, t0, m0, dacc);
    const int64_t uc = a.unit_chunks, nu = a.u1 > 0 ? a.u1 : a.nunits;
    const int16_t* xrow = act_row(a.xi16, a, m0);
    for (int64_t u = a.u0; u < nu; ++u) {
      const int64_t g = (u * uc) / w.group_chunks;
      alignas(32) int32_t raw[MR][16];
      for (int h = 0; h < 2; ++h) {
        __m256i acc[MR];
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_si256();
        for (int64_t c = u * uc; c < (u + 1) * uc; ++c) {
          if (h == 0 && !panel) prefetch_weights<MR, 1>(w, t0, c);  // (few rows: the weights stream from memory)
          __m256i e[4];
          half.get(panel ? panel + (c - panel_c0) * 256 : chunk_ptr(w, t0, c), h, e);
          const int16_t* xc = xrow + c * a.cstride;
#pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
            const int16_t* xp = xc + r * kChunkCols;
            const __m256i p01 = _mm256_add_epi32(_mm256_madd_epi16(e[0], bcast_pair(xp)), _mm256_madd_epi16(e[1], bcast_pair(xp + 2)));
            const __m256i p23 = _mm256_add_epi32(_mm256_madd_epi16(e[2], bcast_pair(xp + 4)), _mm256_madd_epi16(e[3], bcast_pair(xp + 6)));
            acc[r] = _mm256_add_epi32(acc[r], _mm256_add_epi32(p01, p23));
          }
        }
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) _mm256_store_si256((__m256i*)(raw[r] + 8 * h), acc[r]);
      }
      VI iacc[MR][1];
      for (int r = 0; r < MR; ++r) {
        iacc[r][0] = {_mm256_load_si256((const __m256i*)raw[r]), _mm256_load_si256((const __m256i*)(raw[r] + 8))};
        if (w.zeros)
          iacc[r][0] = vi_sub(iacc[r][0], vi_mullo(vi_u8x16(w.zeros + group_index(w, t0, g)), vi_set1(a.xsum[u * a.m + m0 + r])));
      }
      unit_epilogue<MR, 1, Exact, SC>(w, a, t0, m0, u, g, iacc, dacc);
    }
    acc_end<MR, 1>(w, a, y, ldy, t0, m0, nu, dacc);
  }
};

// decode_once for the int16 kernel: 256 bytes of words per chunk, as H16Words reads them.
constexpr int64_t kDecodeOnceRows16 = 2 * kMRInt16Half;

template <class Dec, class Half, bool Exact>
void decode_once_words(const WeightView& w, const ActView& a, const Dec& dec, const Half& half, float* y,
                       int64_t ldy, int64_t t0, int64_t t1, int64_t m0, int64_t m1) {
  const H16Words words(w);
  decode_once<kMRInt16Half, 256>(
      a, t0, t1, m0, m1,
      [&](const uint8_t* buf, int64_t c0) {
        return Int16Avx2Block<Dec, H16Words, Exact>{w, a, dec, words, y, ldy, buf, c0};
      },
      [&](int64_t t, int64_t c, uint8_t* dst) {
        for (int h = 0; h < 2; ++h) {
          __m256i e[4];
          half.get(chunk_ptr(w, t, c), h, e);
          for (int i = 0; i < 4; ++i) _mm256_store_si256((__m256i*)(dst + 128 * h + 32 * i), e[i]);
        }
      });
}

template <class Dec, class Half>
void int16_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
               int64_t m1) {
  const Dec dec(w);
  const Half half(w);
  if constexpr (std::is_same_v<Half, H16Lut> || std::is_same_v<Half, H16Nib>) {
    if (m1 - m0 >= kDecodeOnceRows16) {
      if (a.exact) decode_once_words<Dec, Half, true>(w, a, dec, half, y, ldy, t0, t1, m0, m1);
      else decode_once_words<Dec, Half, false>(w, a, dec, half, y, ldy, t0, t1, m0, m1);
      return;
    }
  }
  if (a.exact) {
    Int16Avx2Block<Dec, Half, true> block{w, a, dec, half, y, ldy};
    for_register_tiles<kMRInt16Half, 1, kNV1Int16>(t0, t1, m0, m1, block);
  } else {
    Int16Avx2Block<Dec, Half, false> block{w, a, dec, half, y, ldy};
    for_register_tiles<kMRInt16Half, 1, kNV1Int16>(t0, t1, m0, m1, block);
  }
}
#else
template <class Dec, class>
void int16_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
               int64_t m1) {
  run_blocks<Int16Block, kMRInt16, kMRInt16F, kNVInt16, kNV1Int16, Dec>(w, a, y, ldy, t0, t1, m0, m1);
}
struct H16Lut {};
struct H16Nib {};
struct H16SInt {};
struct H16UInt {};
#endif

}  // namespace

void gemm_int8(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
               int64_t m1) {
  switch (w.int_decode) {
    case kIntNib: int8_run<I8Nib, H8Nib>(w, a, y, ldy, t0, t1, m0, m1); break;
    case kIntNibId: int8_run<I8NibId, H8NibId>(w, a, y, ldy, t0, t1, m0, m1); break;
    case kIntLut64: int8_run<I8Lut64, H8Lut64>(w, a, y, ldy, t0, t1, m0, m1); break;
    case kIntXor80: int8_run<I8Xor, H8Xor>(w, a, y, ldy, t0, t1, m0, m1); break;
    default: int8_run<I8Id, H8Id>(w, a, y, ldy, t0, t1, m0, m1); break;
  }
}

void gemm_int16(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
                int64_t m1) {
  if (w.storage == kNibble) int16_run<I16Nib, H16Nib>(w, a, y, ldy, t0, t1, m0, m1);
  else if (w.int_decode == kIntXor80) int16_run<I16SInt, H16SInt>(w, a, y, ldy, t0, t1, m0, m1);
  else if (w.int_decode == kIntIdentity) int16_run<I16UInt, H16UInt>(w, a, y, ldy, t0, t1, m0, m1);
  else int16_run<I16Lut, H16Lut>(w, a, y, ldy, t0, t1, m0, m1);
}

}  // namespace fpq::cpu::detail::FPQ_ISA_NS
