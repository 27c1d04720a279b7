#pragma once
// Internal: the plain-data views the instruction-set variants of the kernels work on, and the functions each
// variant exports. Included by the variant sources (compiled with -mavx2 / -mavx512*), so it holds nothing but
// PODs and declarations: no inline function, no template from the standard library.
//
// Prepared weight layout ("tiles"): rows are taken 16 at a time (a tile; one 32-bit SIMD lane per row) and
// columns 8 at a time (a chunk). Tiles are interleaved four at a time: chunk c of the tiles 4g .. 4g + 3 lie
// side by side, then chunk c + 1 (a matrix-vector product walks four tiles as one sequential stream; see
// tile_offset()). A chunk holds 128 codes:
//   nibble storage (codes of <= 4 bits), 64 bytes:  byte 4*r + j = code(r, 8c + j) | code(r, 8c + 4 + j) << 4
//   byte storage (5..8-bit codes), 128 bytes:       byte 4*r + j = code(r, 8c + j), byte 64 + 4*r + j = code(r, 8c + 4 + j)
// so 32-bit lane r holds four consecutive columns of row r, as VNNI's vpdpbusd wants them. Scales and other
// per-group data are stored per (tile, group) as 16 entries, one per lane, in the tensor's own scale encoding,
// interleaved the same way (group g of the four tiles side by side).
#include <cstdint>

namespace fpq::cpu::detail {

constexpr int kTileRows = 16;
constexpr int kChunkCols = 8;
constexpr int kTileGroup = 4;  // tiles interleaved per stream

// Index of unit `i` (chunk or scale group) of tile t, in units, when each tile has `per_tile` of them.
// (static: internal linkage, so copies compiled with wider instructions never stand in for the baseline one.)
static inline int64_t tile_offset(int64_t t, int64_t i, int64_t per_tile) {
  return ((t / kTileGroup) * per_tile + i) * kTileGroup + t % kTileGroup;
}

// Scale encodings. The *Fast codes are used when prepare_weight found no byte that needs special decoding
// (E8M0: 0x00 = 2^-127 and 0xFF = NaN; E4M3: a sign bit or the NaN code), so a shift (and a multiply) decodes.
enum ScaleCode : int32_t {
  kScaleOne = 0, kScaleE8M0, kScaleE4M3, kScaleF16, kScaleBF16, kScaleF32, kScaleE8M0Fast, kScaleE4M3Fast
};
enum Storage : int32_t { kNibble = 0, kByte = 1 };
// How the float kernel turns a code into its value.
enum FloatDecode : int32_t {
  kDecLut16 = 0,   // <= 4-bit codes: 16-entry table
  kDecFloat,       // float element of 5..8 bits without special codes present: bit arithmetic
  kDecSInt8,       // signed 8-bit integer codes (int8, mxint8): value = code * 2^-int_shift
  kDecUInt8,       // unsigned 8-bit integer codes (uint8)
  kDecTable,       // anything else (special codes present): table lookup (gather)
};
// How the int8 kernel turns a code into an unsigned byte (value * 2^int_shift + offset).
enum IntDecode : int32_t {
  kIntNib = 0,     // <= 4-bit codes: 16-entry byte table
  kIntNibId,       // <= 4-bit codes whose byte is the code itself (llama.cpp Q4_0, asymmetric uint4)
  kIntLut64,       // 5..6-bit codes: 64-entry byte table
  kIntXor80,       // signed 8-bit integer codes: code ^ 0x80 (offset 128)
  kIntIdentity,    // unsigned 8-bit integer codes (offset 0)
};

struct WeightView {
  const uint8_t* codes = nullptr;  // 64-byte aligned
  int32_t chunk_bytes = 64;
  int32_t storage = kNibble;
  int32_t bits = 4;                // code bits
  int64_t n = 0, nt = 0, kp = 0, nchunks = 0;  // rows, tiles, padded K (multiple of 8), chunks per tile

  const uint8_t* scales = nullptr;  // [tile][group][16] * scale_bytes
  int32_t scale_code = kScaleOne;
  int32_t scale_bytes = 0;
  // Significant bits of any scale, and an exponent e with every |scale| < 2^e (0: not known). An int kernel's
  // unit sum times its weight scale is then exact in float32 where bits(|sum|) + scale_sig_bits <= 24 and
  // bits(|sum|) + scale_exp_max < 128 (the driver decides: ActView::f32_product).
  int32_t scale_sig_bits = 0;
  int32_t scale_exp_max = 0;
  int64_t ngroups = 1;              // groups per row (of padded K)
  int64_t group_chunks = 1;         // chunks per group
  const uint8_t* zeros = nullptr;   // [tile][group][16] zero points (minmax), or null
  const uint16_t* mins = nullptr;   // [tile][group][16] f16 "m" of Q4_1 (value = q * d + m), or null
  const float* row_global = nullptr;  // [nt * 16] global scale per row, or null

  // Decoding. Tables are 64-byte aligned.
  const float* lut_f = nullptr;     // [256] value of every code (unscaled)
  const uint8_t* lut_u8 = nullptr;  // [64] code -> value * 2^int_shift + offset (int8 kernel)
  const int16_t* lut_i16 = nullptr; // [64] code -> value * 2^int_shift (int16 kernel)
  int32_t float_decode = kDecLut16;
  int32_t int_decode = kIntNib;
  int32_t offset = 0;               // added to the int8 kernel's unsigned bytes
  int32_t int_shift = 0;            // integer values are value * 2^int_shift
  int32_t ebits = 0, mbits = 0;     // kDecFloat: exponent and mantissa bits (sign bit at bits - 1)
  float float_mul = 1.0f;           // kDecFloat: 2^(127 - bias); kDecSInt8/kDecUInt8: 2^-int_shift
  // kDecFloat codes that also fit IEEE half (ebits <= 5): the AVX-512 variant (byte permutes) and the AVX2 variant
  // (byte shuffles, mbits >= 2) build half-precision bit patterns (sign << 15 | magnitude << (10 - mbits), i.e.
  // value * 2^(bias - 15)) and convert them with vcvtph2ps; half_fix = 2^(15 - bias) compensates exactly, in
  // the scales where they multiply each weight, else in one multiply per decoded column.
  int32_t half_mode = 0;            // 0: not used; 1: 5..6-bit codes via the byte tables; 2: E4M3 bytes; 3: E5M2 bytes
  float half_fix = 1.0f;
  const uint8_t* lut_hb = nullptr;  // [64] high byte of the half pattern of each code (half_mode 1)
  const uint8_t* lut_lb = nullptr;  // [64] low byte (half_mode 1; null when all zero)
  // <= 4-bit codes whose values are int8 * 2^-int_shift (E2M1, int4, Q4_0, ...), when every scale times
  // 2^-int_shift stays a normal float: [16] code -> that int8. The AVX2 float kernel decodes through it, with
  // the scales times half_fix = 2^-int_shift (exact); null otherwise.
  const int8_t* lut_s8 = nullptr;
  // The int8 values (lut_s8's, or kDecSInt8's codes) may also decode as int8 * 2^24 (one byte shuffle puts a
  // column's byte in the top byte of each 32-bit lane, and the conversion reads it there): set where the weight
  // has per-group scales only and every scale times its power-of-two fix times 2^-24 stays normal.
  int32_t s8_top = 0;
};

// Activations for one call, zero-padded to kp columns, in blocks of rb rows (the driver's row block per task),
// each block chunk-major: element (row i, column k) at
//   [(i / rb) * bstride + (k / 8) * cstride + (i % rb) * 8 + k % 8],  cstride = 8 * rb, bstride = kp * rb,
// so a register tile's rows of one chunk are contiguous and successive chunks are close together.
// Per-unit values are stored unit-major: [u * m + i].
struct ActView {
  int64_t m = 0, kp = 0;
  int64_t rb = 0;                   // rows per block
  int64_t cstride = 0;              // elements per chunk within a block (8 * rb)
  int64_t bstride = 0;              // elements per block (kp * rb)
  const int8_t* xi8 = nullptr;      // int8 kernel: values * 2^int_shift
  const int16_t* xi16 = nullptr;    // int16 kernel: values * 2^int_shift; each 4 columns stored as k0 k2 k1 k3
  const float* xf = nullptr;        // float kernel
  const uint16_t* xbf = nullptr;    // bf16 kernel: bf16 bits of the code values; 4 columns stored as k0 k2 k1 k3
  const double* xd = nullptr;       // float64 kernel: dequantized activations (without their global scale)
  int64_t unit_chunks = 1;          // chunks per unit (the span over which one pair of scales applies)
  int64_t nunits = 1;
  const int32_t* xsum = nullptr;    // [u][m] sum of the integer values over the unit (int kernels)
  const float* sx = nullptr;        // [u][m] activation scale of the unit times 2^-(shifts) (int kernels)
  const float* msx = nullptr;       // [u][m] int kernels with weight mins: xsum * scale (value units)
  const float* gx = nullptr;        // [m] activation global scale, or null
  int32_t exact = 1;                // int kernels: float64 unit sums (the pseudo path's bits) or float32 (faster)
  // Exact sums: every unit sum times its weight scale is exact in float32 (WeightView::scale_sig_bits), so the
  // epilogue converts one product to float64 instead of the sum and the scale: the same value, fewer operations.
  int32_t f32_product = 0;
  // AVX2 int8 kernel: chunks whose vpmaddubsw pair sums may accumulate in int16 before they are widened
  // (32767 / (2 * 2 * u8_max * max |x|), set by the driver; 0: widen every product pair).
  int32_t i16_chunks = 0;
  // Float kernel: float activations of a weight-only product (not dequantized activation codes). Only these
  // apply a group's scale to its sum (kScaledSum): with quantized activations the products stay those of the
  // pseudo path, whose roundings `real-fast` tracks through the layers' re-quantized activations (the other
  // rounding moved a 192-token MXFP8 W8A8 perplexity by 3.8% where the products' own error is ~3e-8).
  // 2: also every finite nonzero |x| in [2^-100, 2^90), so a segment's sum of 64 products of decoded values
  // below 2^31 (WeightView::s8_top: int8 * 2^24) and x stays below 2^127, and no product or sum of the values
  // rounds below FLT_MIN: decoders whose values carry a power of two (the scales its inverse) then give the
  // group sums' bits; with 1 they do not serve kScaledSum.
  int32_t weight_only = 0;
  // Int kernels, long K: only units [u0, u1) (u1 0 = all) per call, the driver walking K in blocks so that a
  // register tile's stretch of activations and weights stays in L1. The running sums go through `partial`
  // between calls (the same additions in the same order, so the same bits): one accumulator (16 lanes of
  // float64 if exact, else float32) per (row, tile) at (row - pm0) * pld + (tile - pt0).
  int64_t u0 = 0, u1 = 0;
  void* partial = nullptr;
  int64_t pm0 = 0, pt0 = 0, pld = 0;
};

// y(m, n) for rows [m0, m1) of the activations and tiles [t0, t1) of the weight; y row-major with stride ldy.
using GemmFn = void (*)(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1,
                        int64_t m0, int64_t m1);

// Element encoding for the activation quantizer: exactly ElementType::encode (round to nearest even,
// saturating) of x / s_eff, with s_eff one float per group.
struct EncodeParams {
  int32_t is_float = 1;
  // float elements
  int32_t ebits = 0, mbits = 0, bias = 0, is_signed = 1;
  uint32_t max_mag = 0, max_mag_f32 = 0, nan_pos = 0, nan_neg = 0;
  // int elements: q = clamp(nearbyint(x / s_eff * 2^frac_bits), qmin, qmax) & mask
  int32_t frac_bits = 0, qmin = 0, qmax = 0;
  uint32_t mask = 0xFF;
};

}  // namespace fpq::cpu::detail

#define FPQ_KCPU_DECLARE_VARIANT(ns)                                                                          \
  namespace fpq::cpu::detail::ns {                                                                            \
  void gemm_int8(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1,       \
                 int64_t m0, int64_t m1);                                                                     \
  void gemm_int16(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1,      \
                  int64_t m0, int64_t m1);                                                                    \
  /* bf16 dot products of exactly representable code values (AVX-512 only; the others trap). */             \
  void gemm_bf16(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1,       \
                 int64_t m0, int64_t m1);                                                                     \
  void gemm_float(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1,      \
                  int64_t m0, int64_t m1);                                                                    \
  /* dequantized weights x float64 activations, float64 sums: the pseudo path's bits */                   \
  void gemm_float64(const WeightView& w, const ActView& a, float* y, int64_t ldy, int64_t t0, int64_t t1,    \
                    int64_t m0, int64_t m1);                                                                  \
  /* Reads `bytes` (64-byte aligned) as `streams` interleaved streams and returns a checksum. */           \
  uint64_t stream_read(const void* p, int64_t bytes, int32_t streams);                                        \
  /* Per group of `group` values (n a multiple of group, group a multiple of 8): the largest magnitude of   */ \
  /* the finite values, and whether all values are finite (1) or not (0).                                  */ \
  void row_amax(const float* x, int64_t n, int32_t group, float* amax, uint8_t* finite);                       \
  /* codes[i] = encode(x[i] / s_eff[i / group]) as one byte per code (n, group multiples of 8). */             \
  void encode_row(const float* x, int64_t n, int32_t group, const float* s_eff, const EncodeParams& p,        \
                  uint8_t* codes);                                                                            \
  /* llama.cpp Q8: qs[i] = (int8) roundf(x[i] * id[i / 32]); returns nothing (sums done by the caller). */     \
  void encode_q8_row(const float* x, int64_t n, const float* id, int8_t* qs);                                  \
  /* y[r] = dot(w + r * ldw, x) over k columns, r < rows (float32; kernels_f32.cpp). */                       \
  void f32_dot_rows(const float* w, int64_t ldw, const float* x, int64_t k, int64_t rows, float* y);         \
  /* y[c] = sum over r < rows of p[r] * v[r * ldv + c], c < cols (float32). */                                 \
  void f32_gemv_t(const float* v, int64_t ldv, const float* p, int64_t rows, int64_t cols, float* y);         \
  }

FPQ_KCPU_DECLARE_VARIANT(scalar)
FPQ_KCPU_DECLARE_VARIANT(avx2)
FPQ_KCPU_DECLARE_VARIANT(avx512)
