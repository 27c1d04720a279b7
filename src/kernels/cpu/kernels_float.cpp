// Float kernel (one copy per instruction-set variant): weight codes are decoded to float32 in registers (table
// permutes for <= 4-bit codes, bit arithmetic for wider float codes) and multiplied with float32 activations:
//   per-group scales:  w = value(code) * s  (= the dequantized weight before its global scale; (q - z) * s for
//                      asymmetric ints, q * d + m for Q4_1),  acc = fma(w, x_k, acc)  for k in order;
//   one scale per row: acc = fma(value(code), x_k, acc), then acc * s;
// summed in blocks of 64 columns (each block from zero, then added to the total).
//   y = (acc * w_global) * x_global.
// Used for weight-only products (float32 / bf16 activations) and, with Sums::Float32, for activation formats
// that are not integer multiples of a small power of two (FP8 E4M3 / E5M2, asymmetric activations), which the
// driver dequantizes first (the activations, never the weights). With Sums::Exact those go to the float64
// kernel below.
#include <cstdlib>

#include "kernels/cpu/kernel_common.h"

namespace fpq::cpu::detail::FPQ_ISA_NS {
namespace {

struct FNib {
  static constexpr bool kHalfScale = false;
  static constexpr int kQuads = 1;
  LutF16 lut;
  explicit FNib(const WeightView& w) : lut(w.lut_f) {}
  FPQ_INLINE void load(const uint8_t* p, VB* q) const { q[0] = vb_load(p); }
  FPQ_INLINE VF col(const VB* q, int j) const { return dec_nib(lut, q[0], j); }
};
#if FPQ_KISA == 1
// Byte b of every 32-bit lane of v, times 2^24, as float: one byte shuffle puts it in the top byte with zeros
// below (byte 3 is in place: a mask, which any vector port runs, instead of a shuffle, which two of four do),
// and the conversion reads it signed. A shift pair and a conversion (the int8 itself) cost one operation more
// on the shuffle ports, which bound the weight-only matrix-vector product (1.26x decode speed on a Zen 3).
FPQ_INLINE __m256 top_byte_f32(__m256i v, int b) {
  if (b == 3) return _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(int(0xFF000000u))));
  const int8_t z = -128;
  const __m256i ctl = _mm256_setr_epi8(z, z, z, char(b), z, z, z, char(4 + b), z, z, z, char(8 + b), z, z, z,
                                       char(12 + b), z, z, z, char(b), z, z, z, char(4 + b), z, z, z, char(8 + b), z,
                                       z, z, char(12 + b));
  return _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, ctl));
}
// AVX2, <= 4-bit codes with an int8 view (WeightView::lut_s8: E2M1, int4, Q4_0, ...): one byte shuffle turns 32
// codes into their int8s (value * 2^shift, the scales carrying the 2^-shift: kHalfScale), so the products and
// their rounding are FNib's. FNib's two vpermps and a blend per 8 codes kept the matrix-vector product at ~5 GB/s
// on a Zen 3 (bound by the permute port, llvm-mca). A column of 8 rows then comes out of
//   Top = false: a shift pair and a conversion (the int8 itself);
//   Top = true:  top_byte_f32: int8 * 2^24, the scales carrying 2^-24 more (WeightView::s8_top). Only with
//                per-group scales (a per-row scale applies to the sum, zero points and mins are added unscaled)
//                and activations whose group sums stay in float32's normal range (ActView::weight_only).
template <bool Top>
struct FNibI8 {
  static constexpr bool kHalfScale = true;
  static constexpr bool kGroupScalesOnly = Top;
  static constexpr int kQuads = 2;
  __m256i tab, mask;
  explicit FNibI8(const WeightView& w)
      : tab(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)w.lut_s8))), mask(_mm256_set1_epi8(0x0F)) {}
  static float scale_fix(const WeightView& w) { return Top ? w.half_fix * 0x1p-24f : w.half_fix; }
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    const VB v = vb_load(p);
    q[0] = {_mm256_shuffle_epi8(tab, _mm256_and_si256(v.a, mask)), _mm256_shuffle_epi8(tab, _mm256_and_si256(v.b, mask))};
    q[1] = {_mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(v.a, 4), mask)),
            _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(v.b, 4), mask))};
  }
  // Byte b of every 32-bit lane (row) as float: sign-extended (Top = false), or times 2^24 (Top = true).
  static FPQ_INLINE __m256 byte_col(__m256i v, int b) {
    if constexpr (Top) return top_byte_f32(v, b);
    const __m256i t = b == 3 ? v : _mm256_slli_epi32(v, 24 - 8 * b);
    return _mm256_cvtepi32_ps(_mm256_srai_epi32(t, 24));
  }
  FPQ_INLINE VF col(const VB* q, int j) const { return {byte_col(q[j >> 2].a, j & 3), byte_col(q[j >> 2].b, j & 3)}; }
};
// AVX2, float codes that fit IEEE half with mbits >= 2 (WeightView::half_mode: E3M2, E2M3, E2M2, E4M3, E5M2): the
// half pattern sign << 15 | magnitude << (10 - mbits) = value x 2^(bias - 15), converted by vcvtph2ps. FArith's
// float32 pattern is a denormal for subnormal codes, and x86 multiplies and FMAs with a denormal input are
// slow: 30x for MXFP6 E2M3 on an Intel core (~20% subnormal codes), 2x for FP6 E3M2 on a Zen 3 multiply
// (docs/BENCHMARKS.md). Half subnormals convert at full speed. Per 32 code bytes the sign moves to bit 7 (the
// magnitude stays in bits 0..bits-2); per two columns of 8 rows one byte shuffle puts that byte in the high byte
// of each 16-bit lane ([c0 rows 0-3, c1 rows 0-3] per 128-bit lane), an arithmetic shift by mbits - 2 and a mask
// place the fields (Shift), one qword permute gathers each column's 8 halves, and two conversions finish.
// Fold: the group scales carry 2^(15 - bias) (kScaled and kScaledSum weights only); otherwise one multiply per column restores
// the value, so the products are FArith's either way (same bits).
template <bool Fold, bool Shift>
struct FHalfAvx2 {
  static constexpr bool kHalfScale = Fold;
  static constexpr int kQuads = 2;
  __m256i mag8, sign_cnt, sh_cnt, mask16;
  __m256 fix;
  explicit FHalfAvx2(const WeightView& w)
      : mag8(_mm256_set1_epi8(char((1u << (w.bits - 1)) - 1u))),
        sign_cnt(_mm256_castsi128_si256(_mm_cvtsi32_si128(8 - w.bits))),
        sh_cnt(_mm256_castsi128_si256(_mm_cvtsi32_si128(w.mbits - 2))),
        mask16(_mm256_set1_epi16(short(0x8000u | ((((1u << (w.bits - 1)) - 1u) << 8) >> (w.mbits - 2))))),
        fix(_mm256_set1_ps(w.half_fix)) {}
  // Sign to bit 7, magnitude in the low bits (an 8-bit code's byte already is).
  FPQ_INLINE __m256i sign7(__m256i v) const {
    const __m256i s = _mm256_and_si256(_mm256_sll_epi16(v, _mm256_castsi256_si128(sign_cnt)), _mm256_set1_epi8(char(0x80)));
    return _mm256_or_si256(_mm256_and_si256(v, mag8), s);
  }
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    const VB a = vb_load(p), b = vb_load(p + 64);
    q[0] = {sign7(a.a), sign7(a.b)};
    q[1] = {sign7(b.a), sign7(b.b)};
  }
  // Columns c0 = 2 * (p & 1) and c0 + 1 of a quad register (8 rows), as halves: [c0 rows 0-7 | c0 + 1 rows 0-7].
  FPQ_INLINE __m256i pair(__m256i v, int p) const {
    const int c = 2 * (p & 1);
    const __m256i ctl = _mm256_setr_epi8(-128, char(c), -128, char(c + 4), -128, char(c + 8), -128, char(c + 12),
                                         -128, char(c + 1), -128, char(c + 5), -128, char(c + 9), -128, char(c + 13),
                                         -128, char(c), -128, char(c + 4), -128, char(c + 8), -128, char(c + 12),
                                         -128, char(c + 1), -128, char(c + 5), -128, char(c + 9), -128, char(c + 13));
    __m256i h = _mm256_shuffle_epi8(v, ctl);
    if constexpr (Shift) h = _mm256_and_si256(_mm256_sra_epi16(h, _mm256_castsi256_si128(sh_cnt)), mask16);
    return _mm256_permute4x64_epi64(h, 0xD8);
  }
  FPQ_INLINE __m256 half_col(__m256i pr, int odd) const {
    const __m256 f = _mm256_cvtph_ps(odd ? _mm256_extracti128_si256(pr, 1) : _mm256_castsi256_si128(pr));
    return Fold ? f : _mm256_mul_ps(f, fix);
  }
  FPQ_INLINE VF col(const VB* q, int j) const {
    const VB& v = q[j >> 2];
    const int p = j >> 1;
    return {half_col(pair(v.a, p), j & 1), half_col(pair(v.b, p), j & 1)};
  }
};
#endif
struct FArith {
  static constexpr bool kHalfScale = false;
  static constexpr int kQuads = 2;
  FloatArith d;
  explicit FArith(const WeightView& w) : d(w) {}
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    q[0] = vb_load(p);
    q[1] = vb_load(p + 64);
  }
  FPQ_INLINE VF col(const VB* q, int j) const { return dec_float(d, q[j >> 2], j & 3); }
};
#if FPQ_KISA == 2
// Half patterns (value x 2^(bias - 15)); Fold as in FHalfAvx2: the group scales carry 2^(15 - bias), else one
// multiply per column restores the value (the float64 kernel, one scale per row: the same bits as FArith without
// its denormal float32 patterns).
template <bool Fold>
struct FHalfT {
  static constexpr bool kHalfScale = Fold;
  static constexpr int kQuads = 4;
  HalfDec d;
  VF fix;
  explicit FHalfT(const WeightView& w) : d(w), fix(vf_set1(w.half_fix)) {}
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    d.quad(vb_load(p), q[0], q[1]);
    d.quad(vb_load(p + 64), q[2], q[3]);
  }
  FPQ_INLINE VF col(const VB* q, int j) const {
    const VF v = (j & 1) ? half_hi(q[j >> 1]) : half_lo(q[j >> 1]);
    if constexpr (Fold) return v;
    else return vf_mul(v, fix);
  }
};
using FHalf = FHalfT<true>;
#endif
struct FSInt {
  static constexpr bool kHalfScale = false;
  static constexpr int kQuads = 2;
  VF mul;
  explicit FSInt(const WeightView& w) : mul(vf_set1(w.float_mul)) {}
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    q[0] = vb_load(p);
    q[1] = vb_load(p + 64);
  }
  FPQ_INLINE VF col(const VB* q, int j) const { return dec_sint8(q[j >> 2], j & 3, mul); }
};
#if FPQ_KISA == 1
// AVX2, signed 8-bit codes (Q8_0, MXINT8) with per-group scales: code * 2^24 (top_byte_f32), the scales carrying
// float_mul * 2^-24 (WeightView::s8_top): two operations per column of 8 rows where FSInt takes four.
struct FSIntTop {
  static constexpr bool kHalfScale = true;
  static constexpr bool kGroupScalesOnly = true;
  static constexpr bool kBlockPasses = true;  // memory-bound at M = 1 (FloatBlock::kPassTiles)
  static constexpr int kQuads = 2;
  explicit FSIntTop(const WeightView&) {}
  static float scale_fix(const WeightView& w) { return w.float_mul * 0x1p-24f; }
  FPQ_INLINE void load(const uint8_t* p, VB* q) const {
    q[0] = vb_load(p);
    q[1] = vb_load(p + 64);
  }
  FPQ_INLINE VF col(const VB* q, int j) const {
    return {top_byte_f32(q[j >> 2].a, j & 3), top_byte_f32(q[j >> 2].b, j & 3)};
  }
};
#endif
struct FUInt {
  static constexpr bool kHalfScale = false;
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
  static constexpr bool kHalfScale = false;
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

// The power of two a kHalfScale decoder leaves to the scales, whether the matrix-vector case reads its four
// interleaved tiles block by block (FloatBlock::kPassTiles), and whether it serves per-group scales only.
template <class Dec>
FPQ_INLINE float scale_fix(const WeightView& w) {
  if constexpr (requires { Dec::scale_fix(w); }) return Dec::scale_fix(w);
  else return w.half_fix;
}
template <class Dec>
constexpr bool block_passes() {
  if constexpr (requires { Dec::kBlockPasses; }) return Dec::kBlockPasses;
  else return false;
}
template <class Dec>
constexpr bool group_scales_only() {
  if constexpr (requires { Dec::kGroupScalesOnly; }) return Dec::kGroupScalesOnly;
  else return false;
}

// Mode: Single = one scale per row (sum over K, scale once); Scaled = per-group scales multiplied into the
// decoded weights (w = value * s, exactly the dequantized value of fpq::dequantize before its global scale);
// Zero = asymmetric (w = (q - z) * s); Mins = llama.cpp Q4_1 (w = q * d + m).
// kScaledSum: kScaled whose groups span >= kScaledSumMinChunks chunks, each group's scale applied to its sum
// (FloatBlock::kFactored); weight-only products only (ActView::weight_only).
enum Mode { kSingle, kScaled, kZero, kMins, kScaledSum };
constexpr int64_t kScaledSumMinChunks = 4;
// A group's data of tile t: scales (times the decoder's power-of-two fix), zero points, mins (as the mode needs).
struct GroupData {
  VF s, z, m;
};
template <int M>
FPQ_INLINE GroupData load_group(const WeightView& w, int64_t t, int64_t g, bool fix, VF vfix) {
  GroupData d{load_scales(w.scale_code, w.scales + group_index(w, t, g) * w.scale_bytes), vf_zero(), vf_zero()};
  if (fix) d.s = vf_mul(d.s, vfix);
  if constexpr (M == kZero) d.z = vf_cvt(vi_u8x16(w.zeros + group_index(w, t, g)));
  if constexpr (M == kMins) d.m = load_f16x16(w.mins + group_index(w, t, g));
  return d;
}
// The dequantized weight (before the global scale) from the decoded value, as fpq::dequantize computes it:
// value * s, (q - z) * s, q * d + m; kSingle: the value itself (its scale applies to the sum).
template <int M>
FPQ_INLINE VF dequant(VF v, const GroupData& d) {
  if constexpr (M == kZero) return vf_mul(vf_sub(v, d.z), d.s);
  else if constexpr (M == kMins) return vf_add(vf_mul(v, d.s), d.m);
  else if constexpr (M == kSingle) return v;
  else return vf_mul(v, d.s);
}

constexpr int64_t kBlockChunks = 8;   // 64 columns
constexpr int64_t kSpanChunks = 128;  // 1024 columns: a 128-row block of activations is 512 KB

template <class Dec, int M>
struct FloatBlock {
  const WeightView& w;
  const ActView& a;
  const Dec& dec;
  float* y;
  int64_t ldy;

  // Scaled groups of >= 32 columns (kScaledSum: MXFP, int4 g32+) sum the decoded values times x per segment (a
  // group, or its part inside a 64-column block) from zero and apply the group's scale to that sum once:
  // acc = fma(S, s, acc). The per-column multiply by the scale was a fifth of a matrix-vector product's
  // operations (a decode, a multiply and an FMA per 8 weights and column). Shorter groups (NVFP4's 16 columns)
  // keep the multiply: their panels (many rows) would fold four segments per block, 25% slower at M = 512.
  // Other modes add the block's sum.
  static constexpr bool kFactored = M == kScaledSum;
  FPQ_INLINE static VF weight_value(VF v, const GroupData& d) { return kFactored ? v : dequant<M>(v, d); }

  template <int MR, int NV>
  FPQ_INLINE static void fold(VF (&acc)[MR][NV], VF (&seg)[MR][NV], const GroupData* gd) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        acc[r][v] = kFactored ? vf_fma(seg[r][v], gd[v].s, acc[r][v]) : vf_add(acc[r][v], seg[r][v]);
        seg[r][v] = vf_zero();
      }
  }

  // Tiles per pass over a block: the AVX2 matrix-vector case takes the four interleaved tiles of a stream
  // (tile_offset: their chunks side by side) in two passes of two per 64-column block, so each block's
  // 512-byte stretches of 8-bit codes are read whole and close together while only two tiles' sums and codes
  // occupy the registers (all four at once spilled): Q8_0 1.1-1.3x at 4096x14336 (memory-bound). Decoders
  // without Dec::kBlockPasses (compute-bound here: 4- and 6-bit codes) run the pairs over the whole K one after
  // the other (the passes cost them ~10%). Each tile's operations and their order stay the same.
  template <int MR, int NV>
  static constexpr int kPassTiles = (FPQ_KISA == 1 && MR == 1 && NV == 4) ? 2 : NV;

  template <int MR, int NV>
  __attribute__((noinline)) void run(int64_t t0, int64_t m0) const {
    constexpr int NS = kPassTiles<MR, NV>, NP = NV / NS;
    if constexpr (NP > 1 && !block_passes<Dec>()) {
      for (int p = 0; p < NP; ++p) run<MR, NS>(t0 + p * NS, m0);
      return;
    }
    const float* xrow = act_row(a.xf, a, m0);  // + c * cstride + r * 8 + j
    // Two-level sum (the float32 rounding error grows with the square root of the block, not of K): a segment
    // of at most kBlockChunks chunks is summed into seg from zero, then folded into acc.
    VF acc[NP][MR][NS], seg[MR][NS];
    for (int p = 0; p < NP; ++p)
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NS; ++v) acc[p][r][v] = seg[r][v] = vf_zero();
    GroupData gd[NP][NS]{};
    const int64_t gc = M == kSingle ? w.nchunks : w.group_chunks;
    // Decoders that produce value * 2^-e (half patterns) carry the 2^e in the scales.
    const bool fix = Dec::kHalfScale;
    const VF vfix = vf_set1(scale_fix<Dec>(w));
    int64_t group = 0, next_group = 0;
    // Weight and activation pointers advance by a stride per chunk (an index product per chunk and tile cost
    // the matrix-vector product a quarter of its instructions).
    const uint8_t* wp[NP][NS];
    for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
      for (int v = 0; v < NS; ++v) wp[p][v] = chunk_ptr(w, t0 + p * NS + v, 0);
    const int64_t wstride = kTileGroup * int64_t(w.chunk_bytes), xstride = a.cstride;
    for (int64_t c0 = 0; c0 < w.nchunks; c0 += kBlockChunks) {
      const int64_t c1 = min64(w.nchunks, c0 + kBlockChunks);
      const int64_t group0 = group, next_group0 = next_group;
#pragma GCC unroll 2
      for (int p = 0; p < NP; ++p) {
        group = group0, next_group = next_group0;
        const float* xc = xrow + c0 * xstride;
        for (int64_t c = c0; c < c1; ++c) {
          if (M != kSingle && c == next_group) {  // a new scale group (counted: no division per chunk)
            if (kFactored && c != c0) fold<MR, NS>(acc[p], seg, gd[p]);
#pragma GCC unroll 4
            for (int v = 0; v < NS; ++v) gd[p][v] = load_group<M>(w, t0 + p * NS + v, group, fix, vfix);
            ++group;
            next_group += gc;
          }
          if (MR == 1 && p == 0) {
            // (all NV tiles' lines; past the last chunk these point beyond the codes: a prefetch never faults)
            for (int q = 0; q < NP; ++q)
#pragma GCC unroll 4
              for (int v = 0; v < NS; ++v) {
                __builtin_prefetch(wp[q][v] + kPrefetchChunks * wstride);
                if (w.chunk_bytes > 64) __builtin_prefetch(wp[q][v] + kPrefetchChunks * wstride + 64);
              }
          }
          accumulate_chunk<MR, NS>(wp[p], xc, gd[p], seg);
#pragma GCC unroll 4
          for (int v = 0; v < NS; ++v) wp[p][v] += wstride;
          xc += xstride;
        }
        fold<MR, NS>(acc[p], seg, gd[p]);
      }
    }
    VF out[MR][NV];
    for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
      for (int v = 0; v < NS; ++v) {
        VF s = vf_zero();
        if constexpr (M == kSingle) {
          s = load_scales(w.scale_code, w.scales + group_index(w, t0 + p * NS + v, 0) * w.scale_bytes);
          if (fix) s = vf_mul(s, vfix);
        }
#pragma GCC unroll 32
        for (int r = 0; r < MR; ++r) out[r][p * NS + v] = M == kSingle ? vf_mul(acc[p][r][v], s) : acc[p][r][v];
      }
    store_tile<MR, NV>(w, a, y, ldy, t0, m0, out);
  }

  // Many activation rows: decode a block of 64 columns of NV tiles once into an L1 buffer (a 16 x 64 panel per
  // tile, the packing step of any GEMM; the weight matrix itself is never materialised) and run every row tile
  // of [m0, m1) over it with plain FMAs. Per lane the operations and their order are those of run(), so both
  // give the same bits. Chunks [cb, ce) only (the caller walks K in spans that keep the activations in L2);
  // fbuf (rows x NV x 16) carries the sums from span to span: zeroed on the first, stored to y on the last.
  template <int NV>
  __attribute__((noinline)) void panel(int64_t t0, int64_t m0, int64_t m1, int64_t cb, int64_t ce, float* fbuf) const {
    constexpr int kCols = int(kBlockChunks) * kChunkCols;
    alignas(64) float wbuf[kCols * NV * kTileRows];
    const int64_t rows = m1 - m0;
    if (cb == 0)
      for (int64_t i = 0; i < rows * NV * kTileRows; ++i) fbuf[i] = 0.0f;
    GroupData gd[NV]{};
    const int64_t gc = M == kSingle ? w.nchunks : w.group_chunks;
    const bool fix = Dec::kHalfScale;
    const VF vfix = vf_set1(scale_fix<Dec>(w));
    const int64_t ntiles = (rows + kMRPanel - 1) / kMRPanel, base = rows / ntiles, extra = rows % ntiles;
    for (int64_t c0 = cb; c0 < ce; c0 += kBlockChunks) {
      const int64_t c1 = min64(ce, c0 + kBlockChunks);
      // The block's segments (run()'s): [seg_c[i], seg_c[i + 1]) with the scales seg_s[i] (kFactored).
      int64_t seg_c[kBlockChunks + 1];
      alignas(64) float seg_s[kBlockChunks][NV * kTileRows];
      int nseg = 0;
      for (int64_t c = c0; c < c1; ++c) {
        if (M != kSingle && (c % gc == 0 || c == cb)) {
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) gd[v] = load_group<M>(w, t0 + v, c / gc, fix, vfix);
        }
        if (c == c0 || (kFactored && c % gc == 0)) {
          seg_c[nseg] = c;
          if (kFactored)
            for (int v = 0; v < NV; ++v) vf_store(seg_s[nseg] + v * kTileRows, gd[v].s, kTileRows);
          ++nseg;
        }
        VB q[NV][Dec::kQuads];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) dec.load(chunk_ptr(w, t0 + v, c), q[v]);
#pragma GCC unroll 8
        for (int j = 0; j < kChunkCols; ++j) {
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) {
            const VF wv = weight_value(dec.col(q[v], j), gd[v]);
            vf_store(wbuf + (((c - c0) * kChunkCols + j) * NV + v) * kTileRows, wv, kTileRows);
          }
        }
      }
      seg_c[nseg] = c1;
      for (int64_t i = 0, m = m0; i < ntiles; ++i) {
        const int mr = int(base + (i < extra ? 1 : 0));
        auto f = [&]<int R, int V>() { panel_tile<R, NV>(m, m0, c0, seg_c, nseg, seg_s, wbuf, fbuf); };
        with_mr<kMRPanel, NV>(mr, f);
        m += mr;
      }
    }
    if (ce < w.nchunks) return;
    VF acc[1][NV];
    VF s[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if constexpr (M == kSingle) {
        s[v] = load_scales(w.scale_code, w.scales + group_index(w, t0 + v, 0) * w.scale_bytes);
        if (fix) s[v] = vf_mul(s[v], vfix);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        acc[0][v] = vf_load(fbuf + (r * NV + v) * kTileRows);
        if constexpr (M == kSingle) acc[0][v] = vf_mul(acc[0][v], s[v]);
      }
      store_tile<1, NV>(w, a, y, ldy, t0, m0 + r, acc);
    }
  }

  // For each segment sg of the block (chunks [seg_c[sg], seg_c[sg + 1]), the block starting at chunk c0):
  // fbuf[rows m..m+MR) += the sum over the segment's columns of w * x (from zero, in column order); with scales
  // (kFactored: seg_s[sg], NV x 16 floats) fbuf = fma(sum, scale, fbuf), as run() folds a segment.
  template <int MR, int NV>
  __attribute__((noinline)) void panel_tile(int64_t m, int64_t m0, int64_t c0, const int64_t* seg_c, int nseg,
                                            const float (*seg_s)[NV * kTileRows], const float* wbuf,
                                            float* fbuf) const {
    const float* xrow = act_row(a.xf, a, m);
    float* fb = fbuf + (m - m0) * NV * kTileRows;
    for (int sg = 0; sg < nseg; ++sg) {
      VF g[MR][NV];
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) g[r][v] = vf_zero();
      for (int64_t c = seg_c[sg]; c < seg_c[sg + 1]; ++c) {
        const float* xc = xrow + c * a.cstride;
        const float* wc = wbuf + (c - c0) * kChunkCols * NV * kTileRows;
#pragma GCC unroll 8
        for (int j = 0; j < kChunkCols; ++j) {
          VF wv[NV];
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) wv[v] = vf_load(wc + (j * NV + v) * kTileRows);
#pragma GCC unroll 32
          for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) g[r][v] = vf_fma_bc(wv[v], xc + r * kChunkCols + j, g[r][v]);
        }
      }
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          float* p = fb + (r * NV + v) * kTileRows;
          vf_store(p, kFactored ? vf_fma(g[r][v], vf_load(seg_s[sg] + v * kTileRows), vf_load(p))
                                : vf_add(vf_load(p), g[r][v]),
                   kTileRows);
        }
    }
  }

  // acc[r][v] = fma(w(t0 + v, k), x[r][k], acc[r][v]) for the 8 columns k of a chunk (tile t0 + v's codes at
  // wp[v], the activations at xc), in order.
  template <int MR, int NV>
  FPQ_INLINE void accumulate_chunk(const uint8_t* const* wp, const float* xc, const GroupData* gd,
                                   VF (&acc)[MR][NV]) const {
    VB q[NV][Dec::kQuads];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) dec.load(wp[v], q[v]);
#pragma GCC unroll 8
    for (int j = 0; j < kChunkCols; ++j) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        const VF wv = weight_value(dec.col(q[v], j), gd[v]);
#pragma GCC unroll 32
        for (int r = 0; r < MR; ++r) acc[r][v] = vf_fma(wv, vf_bcast(xc + r * kChunkCols + j), acc[r][v]);
      }
    }
  }
};

#if FPQ_KISA == 2
// bf16 kernel: weights decoded once per call into bf16 pairs (k0 k2 | k1 k3 per quad, as the activations), the
// whole K of one tile at a time (an L2-sized buffer, not the weight matrix); then every row tile streams it:
//   per unit (<= 64 columns):  g = sum of vdpbf16ps  (products exact, float32 sums)
//                              acc = fma(g * w_scale, x_scale, acc)
//   y = (acc * w_global) * x_global.
template <class Dec>
struct Bf16Block {
  const WeightView& w;
  const ActView& a;
  const Dec& dec;
  float* y;
  int64_t ldy;
  VI* buf;  // w.nchunks * 4 vectors

  void decode_tile(int64_t t) const {
    for (int64_t c = 0; c < w.nchunks; ++c) {
      VB q[Dec::kQuads];
      dec.load(chunk_ptr(w, t, c), q);
      VF col[kChunkCols];
#pragma GCC unroll 8
      for (int j = 0; j < kChunkCols; ++j) col[j] = dec.col(q, j);
      VI* o = buf + c * 4;
      vi_store(o + 0, bf16_pair(col[0], col[2]));
      vi_store(o + 1, bf16_pair(col[1], col[3]));
      vi_store(o + 2, bf16_pair(col[4], col[6]));
      vi_store(o + 3, bf16_pair(col[5], col[7]));
    }
  }

  template <int MR, int NV>
  __attribute__((noinline)) void run(int64_t t0, int64_t m0) const {
    static_assert(NV == 1, "one weight tile per buffer");
    const uint16_t* xrow = act_row(a.xbf, a, m0);
    const int64_t uc = a.unit_chunks, nu = a.nunits;
    VF facc[MR];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) facc[r] = vf_zero();
    const VF vfix = vf_set1(w.half_fix);
    for (int64_t u = 0; u < nu; ++u) {
      VF g[MR];
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) g[r] = vf_zero();
      for (int64_t c = u * uc; c < (u + 1) * uc; ++c) {
        const VI* wc = buf + c * 4;
        const uint16_t* xc = xrow + c * a.cstride;
#pragma GCC unroll 4
        for (int p = 0; p < 4; ++p) {
          const VI wv = vi_load(wc + p);
#pragma GCC unroll 32
          for (int r = 0; r < MR; ++r) g[r] = dpbf16(g[r], wv, xc + r * kChunkCols + 2 * p);
        }
      }
      const int64_t gi = (u * uc) / w.group_chunks;
      VF sw = load_scales(w.scale_code, w.scales + group_index(w, t0, gi) * w.scale_bytes);
      if (Dec::kHalfScale) sw = vf_mul(sw, vfix);
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) facc[r] = vf_fma(vf_mul(g[r], sw), vf_bcast(a.sx + u * a.m + m0 + r), facc[r]);
    }
    VF acc[MR][1];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) acc[r][0] = facc[r];
    store_tile<MR, 1>(w, a, y, ldy, t0, m0, acc);
  }
};

template <class Dec>
void bf16_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
              int64_t m1) {
  const Dec dec(w);
  VI* buf = static_cast<VI*>(std::aligned_alloc(64, size_t(w.nchunks) * 4 * sizeof(VI)));
  if (!buf) __builtin_trap();
  Bf16Block<Dec> block{w, a, dec, y, ldy, buf};
  const int64_t rows = m1 - m0, ntiles = (rows + kMRBf16 - 1) / kMRBf16, base = rows / ntiles, extra = rows % ntiles;
  for (int64_t t = t0; t < t1; ++t) {
    block.decode_tile(t);
    for (int64_t i = 0, m = m0; i < ntiles; ++i) {
      const int mr = int(base + (i < extra ? 1 : 0));
      auto f = [&]<int R, int V>() { block.template run<R, V>(t, m); };
      with_mr<kMRBf16, 1>(mr, f);
      m += mr;
    }
  }
  std::free(buf);
}
#endif

// Float64 kernel (Sums::Exact for quantized activations that no integer kernel serves: FP8 x FP8, FP4 x FP8,
// asymmetric activations...): each weight is decoded to its dequantized value in float32 — decode(code) x
// scale, (q - z) x scale, q x d + m: the very float32 operations of fpq::dequantize — and multiplied with the
// dequantized activation in float64. Both factors have at most 24 significant bits, so every product is exact
// in float64, and so is every sum while the terms of a row span less than ~2^29: the pseudo path's own
// assumption (model/builtin_backends.cpp). Hence y = float(S * (double(g_w) * double(g_x))) has the pseudo
// path's bits, in any order of summation. (The bf16 and float kernels sum in float32: Sums::Float32.)
template <class Dec, int M>
struct Float64Block {
  const WeightView& w;
  const ActView& a;
  const Dec& dec;
  float* y;
  int64_t ldy;

  template <int MR, int NV>
  __attribute__((noinline)) void run(int64_t t0, int64_t m0) const {
    const double* xrow = act_row(a.xd, a, m0);
    VD acc[MR][NV];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = vd_zero();
    GroupData gd[NV]{};
    const int64_t gc = w.ngroups == 1 ? w.nchunks : w.group_chunks;
    for (int64_t c = 0; c < w.nchunks; ++c) {
      if (c % gc == 0)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) gd[v] = load_group<M>(w, t0 + v, c / gc, false, vf_zero());
      prefetch_weights<MR, NV>(w, t0, c);
      VB q[NV][Dec::kQuads];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) dec.load(chunk_ptr(w, t0 + v, c), q[v]);
      const double* xc = xrow + c * a.cstride;
#pragma GCC unroll 8
      for (int j = 0; j < kChunkCols; ++j) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          const VD wd = vd_cvt(dequant<M>(dec.col(q[v], j), gd[v]));
#pragma GCC unroll 32
          for (int r = 0; r < MR; ++r) acc[r][v] = vd_fma_bcd(wd, xc + r * kChunkCols + j, acc[r][v]);
        }
      }
    }
    store_tile<MR, NV>(w, a, y, ldy, t0, m0, acc);
  }

  // The dequantized float64 weights of chunks [c0, c1) of tile t into wbuf (column-major: 16 values per column).
  FPQ_INLINE void decode_panel(int64_t t, int64_t c0, int64_t c1, double* wbuf) const {
    GroupData gd{};
    const int64_t gc = w.ngroups == 1 ? w.nchunks : w.group_chunks;
    for (int64_t c = c0; c < c1; ++c) {
      if (c % gc == 0 || c == c0) gd = load_group<M>(w, t, c / gc, false, vf_zero());
      VB q[Dec::kQuads];
      dec.load(chunk_ptr(w, t, c), q);
#pragma GCC unroll 8
      for (int j = 0; j < kChunkCols; ++j) {
        vd_store(wbuf + ((c - c0) * kChunkCols + j) * kTileRows, vd_cvt(dequant<M>(dec.col(q, j), gd)));
      }
    }
  }

  // Many rows: tile t's weights decoded once per panel of kBlockChunks chunks (as the float kernel's panel()),
  // every row tile of [m0, m1) run over the panel, the sums carried in dbuf (rows x 16) from panel to panel.
  // Exact sums, so the grouping of the additions does not change the bits.
  __attribute__((noinline)) void panels(int64_t t, int64_t m0, int64_t m1, int64_t cb, int64_t ce, double* dbuf) const {
    alignas(64) double wbuf[kBlockChunks * kChunkCols * kTileRows];
    const int64_t rows = m1 - m0;
    if (cb == 0)
      for (int64_t i = 0; i < rows * kTileRows; ++i) dbuf[i] = 0.0;
    const int64_t ntiles = (rows + kMRF64Panel - 1) / kMRF64Panel, base = rows / ntiles, extra = rows % ntiles;
    for (int64_t c0 = cb; c0 < ce; c0 += kBlockChunks) {
      const int64_t c1 = min64(ce, c0 + kBlockChunks);
      decode_panel(t, c0, c1, wbuf);
      for (int64_t i = 0, m = m0; i < ntiles; ++i) {
        const int mr = int(base + (i < extra ? 1 : 0));
        auto f = [&]<int R, int V>() { panel_tile<R>(m, m0, c0, c1 - c0, wbuf, dbuf); };
        with_mr<kMRF64Panel, 1>(mr, f);
        m += mr;
      }
    }
    if (ce < w.nchunks) return;
    for (int64_t r = 0; r < rows; ++r) {
      VD acc[1][1] = {{vd_load(dbuf + r * kTileRows)}};
      store_tile<1, 1>(w, a, y, ldy, t, m0 + r, acc);
    }
  }

  template <int MR>
  __attribute__((noinline)) void panel_tile(int64_t m, int64_t m0, int64_t c0, int64_t nch, const double* wbuf,
                                            double* dbuf) const {
    const double* xrow = act_row(a.xd, a, m);
    VD g[MR];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) g[r] = vd_zero();
    for (int64_t cc = 0; cc < nch; ++cc) {
      const double* xc = xrow + (c0 + cc) * a.cstride;
      const double* wc = wbuf + cc * kChunkCols * kTileRows;
#pragma GCC unroll 8
      for (int j = 0; j < kChunkCols; ++j) {
        const VD wv = vd_load(wc + j * kTileRows);
#pragma GCC unroll 32
        for (int r = 0; r < MR; ++r) g[r] = vd_fma_bcd(wv, xc + r * kChunkCols + j, g[r]);
      }
    }
    double* db = dbuf + (m - m0) * kTileRows;
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) vd_store(db + r * kTileRows, vd_add(vd_load(db + r * kTileRows), g[r]));
  }
};

template <class Dec>
void float64_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
                 int64_t m1) {
  const Dec dec(w);
  auto go = [&]<int M>() {
    Float64Block<Dec, M> block{w, a, dec, y, ldy};
    if (m1 - m0 < kPanelMinRows) {
      for_register_tiles<kMRF64, kNVF64, kNV1F64>(t0, t1, m0, m1, block);
      return;
    }
    // K in spans whose activations stay in L2 across the tiles (as float_run), sums carried per tile.
    const int64_t rows = m1 - m0, span = kSpanChunks / 2;  // float64 activations: half the float kernel's span
    double* dbuf = static_cast<double*>(std::aligned_alloc(64, size_t((t1 - t0) * rows * kTileRows) * 8));
    if (!dbuf) __builtin_trap();
    for (int64_t cb = 0; cb < w.nchunks; cb += span) {
      const int64_t ce = min64(w.nchunks, cb + span);
      for (int64_t t = t0; t < t1; ++t) block.panels(t, m0, m1, cb, ce, dbuf + (t - t0) * rows * kTileRows);
    }
    std::free(dbuf);
  };
  if (w.zeros) go.template operator()<kZero>();
  else if (w.mins) go.template operator()<kMins>();
  else go.template operator()<kScaled>();
}

template <class Dec, int M>
void float_run(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
               int64_t m1) {
  const Dec dec(w);
  FloatBlock<Dec, M> block{w, a, dec, y, ldy};
  if (m1 - m0 >= kPanelMinRows && m1 - m0 <= kMaxBlockRows) {
    // K in spans whose activations (rows x span x 4 bytes) stay in L2 across the tiles; every tile keeps its
    // running sums in fbuf between spans.
    const int64_t rows = m1 - m0;
    float* fbuf = static_cast<float*>(std::aligned_alloc(64, size_t((t1 - t0) * rows * kTileRows) * 4));
    if (!fbuf) __builtin_trap();
    for (int64_t cb = 0; cb < w.nchunks; cb += kSpanChunks) {
      const int64_t ce = min64(w.nchunks, cb + kSpanChunks);
      int64_t t = t0;
      for (; t + kNVPanel <= t1; t += kNVPanel)
        block.template panel<kNVPanel>(t, m0, m1, cb, ce, fbuf + (t - t0) * rows * kTileRows);
      for (; t < t1; ++t) block.template panel<1>(t, m0, m1, cb, ce, fbuf + (t - t0) * rows * kTileRows);
    }
    std::free(fbuf);
  } else {
    for_register_tiles<kMRFloat, kNVFloat, kNV1Float>(t0, t1, m0, m1, block);
  }
}

template <class Dec>
void float_mode(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
                int64_t m1) {
  if constexpr (!group_scales_only<Dec>()) {
    if (w.zeros) return float_run<Dec, kZero>(w, a, y, ldy, t0, t1, m0, m1);
    if (w.mins) return float_run<Dec, kMins>(w, a, y, ldy, t0, t1, m0, m1);
    if (w.ngroups == 1) return float_run<Dec, kSingle>(w, a, y, ldy, t0, t1, m0, m1);
  }
  if (a.weight_only && w.group_chunks >= kScaledSumMinChunks) float_run<Dec, kScaledSum>(w, a, y, ldy, t0, t1, m0, m1);
  else float_run<Dec, kScaled>(w, a, y, ldy, t0, t1, m0, m1);
}

// Whether a half-pattern decoder leaves its 2^(15 - bias) to the scales: only where they multiply each weight
// (no zero points or mins added unscaled, no per-row scale applied to the sum).
FPQ_INLINE bool fold_half_fix(const WeightView& w, bool half_ok) {
  return half_ok && w.ngroups > 1 && !w.zeros && !w.mins;
}

// Calls f.template operator()<Dec>() with the decoder of the weight's codes (half_ok: decoders whose values
// carry a power of two, the scales its inverse, may serve -- AVX2's int8 views (FNibI8, FSIntTop) and the half
// patterns' folded form (fold_half_fix)).
template <class F>
void with_decoder(const WeightView& w, bool half_ok, F&& f) {
  switch (w.float_decode) {
    case kDecLut16:
#if FPQ_KISA == 1
      if (half_ok && w.lut_s8) {
        if (w.s8_top) f.template operator()<FNibI8<true>>();
        else f.template operator()<FNibI8<false>>();
        break;
      }
#endif
      f.template operator()<FNib>();
      break;
    case kDecFloat:
#if FPQ_KISA == 2
      if (w.half_mode) {
        if (fold_half_fix(w, half_ok)) f.template operator()<FHalf>();
        else f.template operator()<FHalfT<false>>();
        break;
      }
#elif FPQ_KISA == 1
      if (w.half_mode && w.mbits >= 2) {
        const bool fold = fold_half_fix(w, half_ok);
        const bool shift = w.mbits > 2;
        if (fold && shift) f.template operator()<FHalfAvx2<true, true>>();
        else if (fold) f.template operator()<FHalfAvx2<true, false>>();
        else if (shift) f.template operator()<FHalfAvx2<false, true>>();
        else f.template operator()<FHalfAvx2<false, false>>();
        break;
      }
#endif
      f.template operator()<FArith>();
      break;
    case kDecSInt8:
#if FPQ_KISA == 1
      if (half_ok && w.s8_top) {
        f.template operator()<FSIntTop>();
        break;
      }
#endif
      f.template operator()<FSInt>();
      break;
    case kDecUInt8: f.template operator()<FUInt>(); break;
    default: f.template operator()<FTable>(); break;
  }
}

}  // namespace

void gemm_float(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
                int64_t m1) {
  // A power of two carried by the decoded values moves kScaledSum's group sums (weight-only activations, groups
  // of >= 32 columns) by the same factor, which changes their bits where the sums would overflow or round below
  // FLT_MIN: only for activations checked to stay clear of both (ActView::weight_only 2). Per-weight scale
  // products (kScaled) are the same real numbers either way.
  const bool half_ok = a.weight_only != 1 || w.group_chunks < kScaledSumMinChunks;
  with_decoder(w, half_ok, [&]<class Dec>() { float_mode<Dec>(w, a, y, ldy, t0, t1, m0, m1); });
}

void gemm_float64(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
                  int64_t m1) {
  // (half patterns only with the value restored per column: a scale carrying 2^(15 - bias) could overflow)
  with_decoder(w, false, [&]<class Dec>() { float64_run<Dec>(w, a, y, ldy, t0, t1, m0, m1); });
}

void gemm_bf16(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1, int64_t m0,
               int64_t m1) {
#if FPQ_KISA == 2
  switch (w.float_decode) {
    case kDecLut16: bf16_run<FNib>(w, a, y, ldy, t0, t1, m0, m1); break;
    case kDecFloat:
      if (w.half_mode) bf16_run<FHalf>(w, a, y, ldy, t0, t1, m0, m1);
      else bf16_run<FArith>(w, a, y, ldy, t0, t1, m0, m1);
      break;
    case kDecSInt8: bf16_run<FSInt>(w, a, y, ldy, t0, t1, m0, m1); break;
    default: __builtin_trap();  // the driver does not pick bf16 for other decoders
  }
#else
  (void)w, (void)a, (void)y, (void)ldy, (void)t0, (void)t1, (void)m0, (void)m1;
  __builtin_trap();  // AVX-512 BF16 only; the driver never asks the other variants
#endif
}

}  // namespace fpq::cpu::detail::FPQ_ISA_NS
