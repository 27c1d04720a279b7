// Fused activation quantization: optional block transform, scale choice, rounding, packing. Byte-identical to
// fpq::quantize (src/formats/quantize.cpp, ggml_blocks.cpp); see device_common.cuh for the arithmetic rules.
//
// Three kernels:
//   lanes   16 values per lane, G / 16 lanes per group of 16 or 32, 4- or 8-bit codes, no transform, mx / absmax.
//   unit    one thread per unit of max(group, transform block) <= 128 values, values in shared memory: any
//           element width, any transform, the mx / absmax / 4o6 rules and llama.cpp's q8_0 / q8_1 blocks.
//   row     one CTA per group of more than 128 values (one scale per row, typically): block-wide amax.
#include <cfloat>

#include <type_traits>

#include "kernels/cuda/device_common.cuh"

namespace fpq::cuda::detail {
namespace {

constexpr int kQ8Rule = 100;  // internal rule code for llama.cpp q8_0 / q8_1 blocks

struct ScaleChoice {
  float s = 1.0f;       // decoded group scale
  float g = 1.0f;       // global scale multiplied in (1 for mx)
  float s_eff = 1.0f;   // s * g
  float recip = 0.0f;   // exact 1 / s_eff when s_eff is a power of two, else 0
  bool zero = false;    // every code is encode(0) (non-finite group, or s_eff not positive and finite)
  uint8_t bytes[4] = {0, 0, 0, 0};
};

__device__ __forceinline__ float pow2_recip(float s) {
  const uint32_t b = __float_as_uint(s);
  if (b == 0x00400000u) return 0x1p127f;  // 2^-127
  const uint32_t e = b >> 23;
  if ((b & 0x007FFFFFu) == 0 && e >= 1 && e <= 253) return __uint_as_float((254u - e) << 23);
  return 0.0f;
}

__device__ __forceinline__ float quotient(float x, const ScaleChoice& c) {
  return c.recip != 0.0f ? __fmul_rn(x, c.recip) : __fdiv_rn(x, c.s_eff);
}

__device__ __forceinline__ void finish_choice(ScaleChoice& c) {
  c.s_eff = __fmul_rn(c.s, c.g);
  const bool ok = c.s_eff > 0.0f && is_finite_dev(c.s_eff);
  if (!ok) c.zero = true;
  c.recip = ok ? pow2_recip(c.s_eff) : 0.0f;
}

// encode_symmetric's squared error for scale s (global g), sequential double sums as on the CPU.
template <int N>
__device__ double group_sse(const ActQuantParams& p, const float* x, int n_rt, float s, float g) {
  const int n = N > 0 ? N : n_rt;
  const float s_eff = __fmul_rn(s, g);
  double sse = 0.0;
  if (!(s_eff > 0.0f) || !is_finite_dev(s_eff)) {
#pragma unroll
    for (int i = 0; i < n; ++i) sse = __dadd_rn(sse, __dmul_rn(double(x[i]), double(x[i])));
    return sse;
  }
  ScaleChoice c;
  c.s_eff = s_eff;
  c.recip = pow2_recip(s_eff);
#pragma unroll
  for (int i = 0; i < n; ++i) {
    const uint32_t code = encode_dev(p.e, quotient(x[i], c));
    const float v = __fmul_rn(__fmul_rn(decode_dev(p.e, code), s), g);
    const double d = __dsub_rn(double(v), double(x[i]));
    sse = __dadd_rn(sse, __dmul_rn(d, d));
  }
  return sse;
}

// The scale of a group whose rule reads only amax and finiteness (non-finite groups, mx, absmax); false for a
// rule that needs the values (four-over-six). Inlined apart from choose_scale so that a caller holding the
// values in registers (the lanes kernel) never takes their address: that put them in local memory.
__device__ __forceinline__ bool choose_scale_from_amax(const ActQuantParams& p, float amax, bool finite, float g,
                                                       ScaleChoice& c) {
  if (!finite) {
    c.zero = true;
    c.s = __uint_as_float(0x7FC00000u);
    c.s_eff = c.s;
    encode_scale_dev(p.scale, c.s, c.bytes);
    return true;
  }
  if (p.rule == kRuleMx) {
    int code = 0;
    if (amax > 0.0f) code = min(max(floor_log2_dev(amax) - p.e.emax, -127), 127) + 127;
    c.bytes[0] = uint8_t(code);
    c.s = e8m0_decode_dev(uint32_t(code));
    c.g = 1.0f;
  } else if (p.rule == kRuleAbsmax) {
    encode_scale_dev(p.scale, __fdiv_rn(__fdiv_rn(amax, p.ss), g), c.bytes);
    c.s = decode_scale_bytes(p.scale, c.bytes);
    c.g = g;
  } else {
    return false;
  }
  finish_choice(c);
  return true;
}

// The scale of one group (quantize_group's planar rules), from its amax / finiteness.
template <int N>
__device__ ScaleChoice choose_scale(const ActQuantParams& p, const float* x, int n_rt, float amax, bool finite,
                                    float g) {
  ScaleChoice c;
  if (choose_scale_from_amax(p, amax, finite, g, c)) return c;
  {  // four-over-six: the first candidate with the lowest squared error
    const float t0 = __fdiv_rn(__fdiv_rn(amax, p.ss), g);
    const float t1 = __fdiv_rn(__fdiv_rn(amax, __fmul_rn(p.ss, 4.0f / 6.0f)), g);
    double best = __longlong_as_double(0x7FF0000000000000ll);  // +inf
    float last_s = -1.0f;
    uint8_t cand[4] = {0, 0, 0, 0};
    uint8_t best_bytes[4] = {0, 0, 0, 0};
    for (int k = 0; k < 2; ++k) {
      encode_scale_dev(p.scale, k == 0 ? t0 : t1, cand);
      const float s = decode_scale_bytes(p.scale, cand);
      if (s == last_s) continue;
      last_s = s;
      const double err = group_sse<N>(p, x, n_rt, s, g);
      if (err < best) {
        best = err;
        for (int b = 0; b < 4; ++b) best_bytes[b] = cand[b];
      }
    }
    for (int b = 0; b < 4; ++b) c.bytes[b] = best_bytes[b];
    c.s = decode_scale_bytes(p.scale, c.bytes);
    c.g = g;
  }
  finish_choice(c);
  return c;
}

__device__ __forceinline__ void store_scale(const ActQuantParams& p, int64_t row, int64_t gi, const ScaleChoice& c) {
  const int64_t groups = p.cols / p.group;
  uint8_t* dst = p.scales + (row * groups + gi) * p.sb;
#pragma unroll
  for (int b = 0; b < 4; ++b)  // constant indices: c.bytes stays in registers
    if (b < p.sb) dst[b] = c.bytes[b];
  // One scale per row, kept out of the tensor-core operand: the matmul multiplies it in per row.
  if (p.row_scale && !p.mma_fold) p.row_scale[row] = c.s;
}

__device__ __forceinline__ void store_mma(const ActQuantParams& p, int64_t row, int64_t col, uint32_t code,
                                          const ScaleChoice& c) {
  float v = decode_dev(p.e, code);
  if (p.mma_fold) v = __fmul_rn(v, c.s);
  p.mma[row * p.mma_ld + col] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

__device__ __forceinline__ float global_scale(const ActQuantParams& p, int64_t row) {
  return p.global ? p.global[p.global_per_row ? row : 0] : 1.0f;
}

// E2M1 (OCP FP4) specialisations of encode_dev / decode_dev: same results, fewer instructions. The value is
// finite here (non-finite groups never reach the encoder).
__device__ __forceinline__ uint32_t encode_e2m1(float x) {
  const uint32_t u = __float_as_uint(x);
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t sign = (u >> 31) << 3;
  // All three cases computed and selected (no divergent branches per value).
  const uint32_t small = uint32_t(rintf(__fmul_rn(__uint_as_float(a), 2.0f)));   // below 1: 0, 0.5, 1
  const uint32_t normal = ((a + 0x1FFFFFu + ((a >> 22) & 1u)) >> 22) - 252u;      // 1 mantissa bit, bias 1
  const uint32_t mag = a >= 0x40C00000u ? 7u : (a < 0x3F800000u ? small : normal);  // >= 6: saturate
  return sign | mag;
}
__device__ __forceinline__ float decode_e2m1(uint32_t c) {
  // (m << 22) read as a float is m's value times 2^-126 (0.5 is the subnormal 2^-127); one exact multiply.
  return __fmul_rn(__uint_as_float(((c & 7u) << 22) | ((c & 8u) << 28)), 0x1p126f);
}

// ---------------------------------------------------------------------------------------------------------
// lanes kernel: G in {16, 32}, BITS in {4, 8}, no transform, mx / absmax rules: G / 16 lanes per group, each with
// 16 consecutive values, so that a warp's loads and stores are contiguous (a thread per group of 32 would stride
// by 64 bytes); the group's amax and finiteness combine with shuffles, and every lane then makes the same scale
// choice (those rules read only amax), so the bytes are those of one thread doing the whole group.
// ---------------------------------------------------------------------------------------------------------
// MMA: p.mma is set (the bf16 operand is computed and stored); without it that work is compiled out.
// XT: the input type (kF32, kBF16, kF16), a template argument: as a runtime test it put a branch on every value.
// 16-bit inputs get the group's amax and finiteness from the largest magnitude bit pattern (two per __vmaxu2):
// below the exponent-all-ones patterns, integer order is magnitude order.
// MXE2M1: MXFP4 (E2M1 codes, E8M0 scales by the mx rule, no global scale): those fields become compile-time
// constants of a local copy of the parameters, so the scale choice's rule and scale-type switches fold away.
template <int G, int BITS, bool E2M1, bool MMA, int XT, bool MXE2M1 = false>
__global__ void __launch_bounds__(256) act_quant_lanes(ActQuantParams p_in) {
  ActQuantParams p = p_in;
  if constexpr (MXE2M1) {
    p.rule = kRuleMx;
    p.scale = kScaleE8M0;
    p.sb = 1;
    p.e.emax = 2;
    p.global = nullptr;
    p.row_scale = nullptr;
  }
  constexpr int V = 16;     // values per lane: the scale choice is repeated by every lane of a group
  constexpr int L = G / V;
  const uint32_t groups_per_row = uint32_t(p.cols / G);
  const uint32_t total = uint32_t(p.rows) * groups_per_row * L;  // lanes of work (the launcher checks < 2^31)
  const uint32_t lane = threadIdx.x & 31u, sub = threadIdx.x % L;
  const uint32_t stride = gridDim.x * blockDim.x;
  // Warp-uniform loop (shuffles need every lane); lanes past the end work on a clamped index and store nothing.
  for (uint32_t w0 = blockIdx.x * blockDim.x + (threadIdx.x & ~31u); w0 < total; w0 += stride) {
    const bool active = w0 + lane < total;
    const uint32_t t = active ? w0 + lane : total - L + sub;
    const uint32_t gidx = t / L;
    const uint32_t row = gidx / groups_per_row, gi = gidx - row * groups_per_row;
    const float g = global_scale(p, row);
    const int64_t base = int64_t(row) * p.cols + int64_t(gi) * G + sub * V;
    float v[V];
    float amax = 0.0f;
    int finite = 1;
    if constexpr (XT == kF32) {
      const float4* src = reinterpret_cast<const float4*>(static_cast<const float*>(p.x) + base);
#pragma unroll
      for (int q = 0; q < V / 4; ++q) {
        const float4 a = src[q];
        v[4 * q] = a.x, v[4 * q + 1] = a.y, v[4 * q + 2] = a.z, v[4 * q + 3] = a.w;
      }
#pragma unroll
      for (int i = 0; i < V; ++i) {
        if (!is_finite_dev(v[i])) finite = 0;
        else amax = fmaxf(amax, fabsf(v[i]));
      }
    } else {
      uint32_t mag = 0;  // the largest |x| bit pattern of each half
#pragma unroll
      for (int q = 0; q < V / 8; ++q) {
        const uint4 w = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p.x) + base)[q];
        const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int h = 0; h < 4; ++h) {
          mag = __vmaxu2(mag, ws[h] & 0x7FFF7FFFu);
          const uint16_t lo = uint16_t(ws[h] & 0xFFFFu), hi = uint16_t(ws[h] >> 16);
          // (fp16: the hardware conversion, exact for every finite value; a non-finite group's values go unused.)
          v[8 * q + 2 * h] = XT == kBF16 ? bf16_to_f32_dev(lo) : __half2float(__ushort_as_half(lo));
          v[8 * q + 2 * h + 1] = XT == kBF16 ? bf16_to_f32_dev(hi) : __half2float(__ushort_as_half(hi));
        }
      }
      const uint32_t top = max(mag & 0xFFFFu, mag >> 16);
      constexpr uint32_t kInfBits = XT == kBF16 ? 0x7F80u : 0x7C00u;  // exponent all ones: Inf / NaN
      finite = top < kInfBits;
      // A non-finite group's amax is not used (its scale is NaN); a finite one's is the exact largest |x|.
      amax = finite ? (XT == kBF16 ? bf16_to_f32_dev(uint16_t(top)) : __half2float(__ushort_as_half(uint16_t(top)))) : 0.0f;
    }
#pragma unroll
    for (int o = 1; o < L; o <<= 1) {
      amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
      finite &= __shfl_xor_sync(0xFFFFFFFFu, finite, o);
    }
    ScaleChoice c;
    choose_scale_from_amax(p, amax, finite != 0, g, c);  // mx / absmax (the launcher's condition): amax alone
    if (!active) continue;
    if (sub == 0) store_scale(p, row, gi, c);
    const uint32_t zc = encode_dev(p.e, 0.0f);
    const uint32_t keep = c.zero ? 0u : 0xFu;
    constexpr int kWords = V * BITS / 32;
    uint32_t w[kWords];
    uint32_t mm[V / 2];
#pragma unroll
    for (int q = 0; q < kWords; ++q) w[q] = 0;
    // The quotients first, with the group's choice of multiply or division made once.
    if (c.recip != 0.0f) {
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = __fmul_rn(v[i], c.recip);
    } else {
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = __fdiv_rn(v[i], c.s_eff);
    }
#pragma unroll
    for (int i = 0; i < V; ++i) {
      uint32_t code;
      // E2M1: encoded unconditionally and masked (encode(0) is 0): the per-value `c.zero ?` compiled to a branch
      // region (BSSY / BRA / BSYNC and register moves) around each encode, ~5 of its ~19 instructions.
      if constexpr (E2M1) code = encode_e2m1(v[i]) & keep;
      else code = c.zero ? zc : encode_dev(p.e, v[i]);
      w[(i * BITS) / 32] |= code << ((i * BITS) % 32);
      if constexpr (MMA) {
        float mv;
        if constexpr (E2M1) mv = decode_e2m1(code);
        else mv = decode_dev(p.e, code);
        if (p.mma_fold) mv = __fmul_rn(mv, c.s);
        const uint32_t mb = __bfloat16_as_ushort(__float2bfloat16_rn(mv));
        if (i & 1) mm[i / 2] |= mb << 16;
        else mm[i / 2] = mb;
      }
    }
    if constexpr (MMA) {
      uint4* dm = reinterpret_cast<uint4*>(p.mma + int64_t(row) * p.mma_ld + int64_t(gi) * G + sub * V);
#pragma unroll
      for (int q = 0; q < V / 8; ++q) dm[q] = make_uint4(mm[4 * q], mm[4 * q + 1], mm[4 * q + 2], mm[4 * q + 3]);
    }
    uint8_t* dst = p.codes + int64_t(row) * p.row_code_bytes + int64_t(gi) * (G * BITS / 8) + sub * (V * BITS / 8);
    if constexpr (kWords == 2) *reinterpret_cast<uint2*>(dst) = make_uint2(w[0], w[1]);
    else *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// unit kernel: thread per unit of U = max(group, transform block) values, in shared memory
// ---------------------------------------------------------------------------------------------------------

// Loads the unit's values (transformed when p.T) into vals[0..U); scratch holds the raw values then.
__device__ void load_unit(const ActQuantParams& p, const float* Tsh, int64_t row, int64_t col0, int U, float* vals,
                          float* scratch) {
  const int64_t base = row * p.cols + col0;
  float* raw = p.T ? scratch : vals;
  for (int i = 0; i < U; ++i) raw[i] = load_as_float(p.x, p.xtype, base + i);
  if (!p.T) return;
  const int Gt = p.tblock;
  for (int b0 = 0; b0 < U; b0 += Gt) {
    const float* T = Tsh ? Tsh : p.T + (p.tper_block ? ((col0 + b0) / Gt) * int64_t(Gt) * Gt : 0);
    for (int i = 0; i < Gt; ++i) {
      const float* Ti = T + i * Gt;
      float acc = __fmul_rn(Ti[0], raw[b0]);
      for (int j = 1; j < Gt; ++j) acc = __fadd_rn(acc, __fmul_rn(Ti[j], raw[b0 + j]));
      vals[b0 + i] = acc;
    }
  }
}

struct BitWriter {
  uint8_t* dst;
  uint64_t acc = 0;
  int nbits = 0;
  __device__ explicit BitWriter(uint8_t* d) : dst(d) {}
  __device__ __forceinline__ void put(uint32_t code, int bits) {
    acc |= uint64_t(code) << nbits;
    nbits += bits;
    while (nbits >= 8) {
      *dst++ = uint8_t(acc & 0xFFu);
      acc >>= 8;
      nbits -= 8;
    }
  }
};

// llama.cpp q8_0 / q8_1 block of 32 values.
__device__ void quantize_q8_block(const ActQuantParams& p, const float* x, int64_t row, int64_t blk, bool with_sum) {
  const int bytes = with_sum ? 36 : 34;
  uint8_t* out = p.codes + row * p.row_code_bytes + blk * bytes;
  bool finite = true;
  for (int j = 0; j < 32; ++j)
    if (!is_finite_dev(x[j])) finite = false;
  int8_t* qs = reinterpret_cast<int8_t*>(out + (with_sum ? 4 : 2));
  if (!finite) {
    const uint16_t h = f32_to_f16_dev(__uint_as_float(0x7FC00000u));
    out[0] = uint8_t(h);
    out[1] = uint8_t(h >> 8);
    for (int j = 0; j < 32; ++j) qs[j] = 0;
    if (with_sum) {
      // s = f16(0 * d) with d = NaN: the reference (x86) keeps the NaN operand 0x7FC00000.
      const uint16_t s = f32_to_f16_dev(__uint_as_float(0x7FC00000u));
      out[2] = uint8_t(s);
      out[3] = uint8_t(s >> 8);
    }
    return;
  }
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = fmaxf(amax, fabsf(x[j]));
  const float d = __fdiv_rn(amax, 127.0f);
  const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
  const uint16_t dh = f32_to_f16_dev(d);
  out[0] = uint8_t(dh);
  out[1] = uint8_t(dh >> 8);
  int sum = 0;
  for (int j = 0; j < 32; ++j) {
    // int8_t(roundf(x * id)) as the x86-64 reference computes it: out-of-range (1/d overflowing to inf when
    // amax < ~2^-119) converts through cvttss2si to INT32_MIN, whose low byte is 0.
    const float r = roundf(__fmul_rn(x[j], id));
    const int32_t i32 = (r >= -2147483648.0f && r < 2147483648.0f) ? int32_t(r) : int32_t(0x80000000u);
    const int8_t q = int8_t(uint8_t(uint32_t(i32) & 0xFFu));
    qs[j] = q;
    sum += q;
  }
  if (with_sum) {
    const uint16_t s = f32_to_f16_dev(__fmul_rn(float(sum), d));
    out[2] = uint8_t(s);
    out[3] = uint8_t(s >> 8);
  }
}

__global__ void act_quant_unit(ActQuantParams p, int U, int q8_sum) {
  extern __shared__ float smem[];
  const bool shared_T = p.T && !p.tper_block;
  float* Tsh = nullptr;
  int off = 0;
  if (shared_T) {
    Tsh = smem;
    off = p.tblock * p.tblock;
    for (int i = threadIdx.x; i < off; i += blockDim.x) Tsh[i] = p.T[i];
    __syncthreads();
  }
  const int stride = U + 1;
  float* vals = smem + off + threadIdx.x * stride;
  float* scratch = smem + off + (blockDim.x + threadIdx.x) * stride;

  const int64_t units_per_row = p.cols / U;
  const int64_t total = p.rows * units_per_row;
  const uint32_t zc = p.rule == kQ8Rule ? 0u : encode_dev(p.e, 0.0f);
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    // Per-block transforms: neighbouring threads take the same column block of different rows (one T each warp).
    int64_t row, ui;
    if (p.T && p.tper_block) {
      row = idx % p.rows;
      ui = idx / p.rows;
    } else {
      row = idx / units_per_row;
      ui = idx % units_per_row;
    }
    const int64_t col0 = ui * U;
    load_unit(p, Tsh, row, col0, U, vals, scratch);
    if (p.rule == kQ8Rule) {
      for (int b = 0; b < U; b += 32) quantize_q8_block(p, vals + b, row, (col0 + b) / 32, q8_sum != 0);
      continue;
    }
    const int G = p.group;
    for (int gb = 0; gb < U; gb += G) {
      const float* x = vals + gb;
      float amax = 0.0f;
      bool finite = true;
      for (int i = 0; i < G; ++i) {
        if (!is_finite_dev(x[i])) finite = false;
        else amax = fmaxf(amax, fabsf(x[i]));
      }
      const int64_t gi = (col0 + gb) / G;
      const ScaleChoice c = choose_scale<0>(p, x, G, amax, finite, global_scale(p, row));
      store_scale(p, row, gi, c);
      BitWriter bw(p.codes + row * p.row_code_bytes + (gi * G * p.e.bits) / 8);
      for (int i = 0; i < G; ++i) {
        const uint32_t code = c.zero ? zc : encode_dev(p.e, quotient(x[i], c));
        bw.put(code, p.e.bits);
        if (p.mma) store_mma(p, row, col0 + gb + i, code, c);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// row kernel: one CTA per (row, group) for groups of more than 128 values; values staged in shared memory
// ---------------------------------------------------------------------------------------------------------
__global__ void __launch_bounds__(256) act_quant_row(ActQuantParams p) {
  extern __shared__ float smem[];
  const int G = p.group;
  const int64_t groups = p.cols / G;
  const int64_t row = blockIdx.x / groups, gi = blockIdx.x % groups;
  const int64_t col0 = gi * G;
  float* vals = smem;
  float* raw = smem + G;
  const float* src = p.T ? raw : vals;
  for (int i = threadIdx.x; i < G; i += blockDim.x)
    (p.T ? raw : vals)[i] = load_as_float(p.x, p.xtype, row * p.cols + col0 + i);
  __syncthreads();
  if (p.T) {
    const int Gt = p.tblock;
    for (int b = threadIdx.x; b < G / Gt; b += blockDim.x) {
      const float* T = p.T + (p.tper_block ? ((col0 / Gt) + b) * int64_t(Gt) * Gt : 0);
      for (int i = 0; i < Gt; ++i) {
        const float* Ti = T + i * Gt;
        float acc = __fmul_rn(Ti[0], src[b * Gt]);
        for (int j = 1; j < Gt; ++j) acc = __fadd_rn(acc, __fmul_rn(Ti[j], src[b * Gt + j]));
        vals[b * Gt + i] = acc;
      }
    }
    __syncthreads();
  }
  // amax and finiteness, block-wide (max is order independent).
  float amax = 0.0f;
  int nonfinite = 0;
  for (int i = threadIdx.x; i < G; i += blockDim.x) {
    const float v = vals[i];
    if (!is_finite_dev(v)) nonfinite = 1;
    else amax = fmaxf(amax, fabsf(v));
  }
  __shared__ float red_max[8];
  __shared__ int red_nf[8];
  for (int o = 16; o > 0; o >>= 1) {
    amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
    nonfinite |= __shfl_xor_sync(0xFFFFFFFFu, nonfinite, o);
  }
  if ((threadIdx.x & 31) == 0) {
    red_max[threadIdx.x >> 5] = amax;
    red_nf[threadIdx.x >> 5] = nonfinite;
  }
  __syncthreads();
  amax = 0.0f;
  nonfinite = 0;
  for (int w = 0; w < int(blockDim.x >> 5); ++w) {
    amax = fmaxf(amax, red_max[w]);
    nonfinite |= red_nf[w];
  }
  const ScaleChoice c = choose_scale<0>(p, vals, G, amax, nonfinite == 0, global_scale(p, row));
  if (threadIdx.x == 0) {
    store_scale(p, row, gi, c);
  }
  const uint32_t zc = encode_dev(p.e, 0.0f);
  const int bits = p.e.bits;
  // Chunks of 8 values = `bits` bytes, byte aligned.
  for (int ch = threadIdx.x; ch < G / 8; ch += blockDim.x) {
    BitWriter bw(p.codes + row * p.row_code_bytes + ((col0 + ch * 8) * bits) / 8);
    uint32_t mm[4];
    for (int i = 0; i < 8; ++i) {
      const float x = vals[ch * 8 + i];
      const uint32_t code = c.zero ? zc : encode_dev(p.e, quotient(x, c));
      bw.put(code, bits);
      float mv = decode_dev(p.e, code);
      if (p.mma_fold) mv = __fmul_rn(mv, c.s);
      const uint32_t mb = __bfloat16_as_ushort(__float2bfloat16_rn(mv));
      if (i & 1) mm[i / 2] |= mb << 16;
      else mm[i / 2] = mb;
    }
    if (p.mma)
      *reinterpret_cast<uint4*>(p.mma + row * p.mma_ld + col0 + ch * 8) = make_uint4(mm[0], mm[1], mm[2], mm[3]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// global scale from amax
// ---------------------------------------------------------------------------------------------------------
__global__ void amax_kernel(ActQuantParams p, float* amax_out) {
  extern __shared__ float smem[];
  const int Gt = p.T ? p.tblock : 1;
  float m = 0.0f;
  if (!p.T) {
    const int64_t n = p.rows * p.cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
      const float v = load_as_float(p.x, p.xtype, i);
      if (is_finite_dev(v)) m = fmaxf(m, fabsf(v));
    }
  } else {
    float* raw = smem + threadIdx.x * (Gt + 1);
    const int64_t blocks_per_row = p.cols / Gt;
    const int64_t nb = p.rows * blocks_per_row;
    for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < nb; b += int64_t(gridDim.x) * blockDim.x) {
      const int64_t row = b / blocks_per_row, cb = b % blocks_per_row;
      for (int j = 0; j < Gt; ++j) raw[j] = load_as_float(p.x, p.xtype, row * p.cols + cb * Gt + j);
      const float* T = p.T + (p.tper_block ? cb * int64_t(Gt) * Gt : 0);
      for (int i = 0; i < Gt; ++i) {
        const float* Ti = T + i * Gt;
        float acc = __fmul_rn(Ti[0], raw[0]);
        for (int j = 1; j < Gt; ++j) acc = __fadd_rn(acc, __fmul_rn(Ti[j], raw[j]));
        if (is_finite_dev(acc)) m = fmaxf(m, fabsf(acc));
      }
    }
  }
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, o));
  if ((threadIdx.x & 31) == 0) atomicMax(reinterpret_cast<unsigned int*>(amax_out), __float_as_uint(m));
}

__global__ void global_from_amax_kernel(const float* amax, float denom, float* global) {
  const float a = *amax;
  *global = (a > 0.0f && is_finite_dev(a)) ? __fdiv_rn(a, denom) : 1.0f;
}

__global__ void zero_pad_kernel(uint16_t* mma, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t pad = ld - cols;
  const int64_t n = rows * pad;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    mma[(i / pad) * ld + cols + i % pad] = 0;
}

__global__ void fill_float_kernel(float* dst, float v) { *dst = v; }
__global__ void fill_float_n_kernel(float* dst, int64_t n, float v) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) dst[i] = v;
}
// One warp per row: amax over the row's finite values, then the format's global scale (global_scale_from_amax).
__global__ void row_global_kernel(ActQuantParams p, float denom, float* out) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= p.rows) return;
  float m = 0.0f;
  for (int64_t c = threadIdx.x & 31; c < p.cols; c += 32) {
    const float v = load_as_float(p.x, p.xtype, row * p.cols + c);
    if (is_finite_dev(v)) m = fmaxf(m, fabsf(v));
  }
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, o));
  if ((threadIdx.x & 31) == 0) out[row] = (m > 0.0f && is_finite_dev(m)) ? __fdiv_rn(m, denom) : 1.0f;
}

int grid_for(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  const int64_t cap = int64_t(sm_count()) * 16;
  return int(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

}  // namespace

int probe_kernel_image() {
  cudaFuncAttributes attr{};
  return int(cudaFuncGetAttributes(&attr, act_quant_unit));
}

void launch_act_quant(const ActQuantParams& p, CUstream_st* stream) {
  if (p.rows == 0) return;
  const int G = p.group;
  const bool aligned = (reinterpret_cast<uintptr_t>(p.x) % 16) == 0 && (reinterpret_cast<uintptr_t>(p.codes) % 16) == 0;
  // Lanes kernel where its accesses line up (16-byte buffers, mma operand rows on 16-byte boundaries: always for
  // the buffers quantize_activations_cuda allocates); otherwise the general unit kernel below.
  const bool mma_aligned = !p.mma || ((reinterpret_cast<uintptr_t>(p.mma) % 16) == 0 && p.mma_ld % 8 == 0);
  const int64_t groups = G > 0 ? p.rows * (p.cols / G) : 0;
  if (!p.T && aligned && mma_aligned && (G == 16 || G == 32) && (p.e.bits == 4 || p.e.bits == 8) &&
      p.rule != kRuleFourOverSix && p.row_code_bytes % 8 == 0 && groups * (G / 16) < (int64_t(1) << 31)) {
    const bool e2m1 = !p.e.is_int && p.e.bits == 4 && p.e.ebits == 2 && p.e.mbits == 1 && p.e.specials == 0;
    const int grid = grid_for(groups * (G / 16), 256);
    const bool mx_e2m1 = e2m1 && p.rule == kRuleMx && p.scale == kScaleE8M0 && p.sb == 1 && !p.global && !p.row_scale;
    auto run = [&](auto mma, auto xt) {
      constexpr bool M = decltype(mma)::value;
      constexpr int X = decltype(xt)::value;
      if (G == 32 && mx_e2m1) act_quant_lanes<32, 4, true, M, X, true><<<grid, 256, 0, stream>>>(p);
      else if (G == 16 && e2m1) act_quant_lanes<16, 4, true, M, X><<<grid, 256, 0, stream>>>(p);
      else if (G == 32 && e2m1) act_quant_lanes<32, 4, true, M, X><<<grid, 256, 0, stream>>>(p);
      else if (G == 16 && p.e.bits == 4) act_quant_lanes<16, 4, false, M, X><<<grid, 256, 0, stream>>>(p);
      else if (G == 16 && p.e.bits == 8) act_quant_lanes<16, 8, false, M, X><<<grid, 256, 0, stream>>>(p);
      else if (G == 32 && p.e.bits == 4) act_quant_lanes<32, 4, false, M, X><<<grid, 256, 0, stream>>>(p);
      else act_quant_lanes<32, 8, false, M, X><<<grid, 256, 0, stream>>>(p);
    };
    auto run_x = [&](auto mma) {
      if (p.xtype == kF32) run(mma, std::integral_constant<int, kF32>{});
      else if (p.xtype == kBF16) run(mma, std::integral_constant<int, kBF16>{});
      else run(mma, std::integral_constant<int, kF16>{});
    };
    if (p.mma) run_x(std::true_type{});
    else run_x(std::false_type{});
    check_launch("act_quant_lanes");
    return;
  }
  if (G <= 128) {
    const int U = p.T ? (p.tblock > G ? p.tblock : G) : G;
    const int threads = U >= 128 ? 64 : 128;
    const size_t T_floats = (p.T && !p.tper_block) ? size_t(p.tblock) * p.tblock : 0;
    const size_t smem = (T_floats + size_t(2) * threads * (U + 1)) * sizeof(float);
    const auto kernel = act_quant_unit;
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), "cudaFuncSetAttribute");
    const int64_t units = p.rows * (p.cols / U);
    act_quant_unit<<<grid_for(units, threads), threads, smem, stream>>>(p, U, 0);
    check_launch("act_quant_unit");
    return;
  }
  const size_t smem = size_t(p.T ? 2 : 1) * G * sizeof(float);
  check(cudaFuncSetAttribute(act_quant_row, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
        "cudaFuncSetAttribute");
  const int64_t blocks = p.rows * (p.cols / G);
  act_quant_row<<<unsigned(blocks), 256, smem, stream>>>(p);
  check_launch("act_quant_row");
}

void launch_quantize_q8(const ActQuantParams& p_in, bool with_sum, CUstream_st* stream) {
  if (p_in.rows == 0) return;
  ActQuantParams p = p_in;
  p.rule = kQ8Rule;
  const int U = p.T ? (p.tblock > 32 ? p.tblock : 32) : 32;
  const int threads = U >= 128 ? 64 : 128;
  const size_t T_floats = (p.T && !p.tper_block) ? size_t(p.tblock) * p.tblock : 0;
  const size_t smem = (T_floats + size_t(2) * threads * (U + 1)) * sizeof(float);
  check(cudaFuncSetAttribute(act_quant_unit, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
        "cudaFuncSetAttribute");
  const int64_t units = p.rows * (p.cols / U);
  act_quant_unit<<<grid_for(units, threads), threads, smem, stream>>>(p, U, with_sum ? 1 : 0);
  check_launch("act_quant_unit(q8)");
}

void launch_global_from_amax(const ActQuantParams& p, float denom, float* amax_scratch, float* global_out,
                             CUstream_st* stream) {
  check(cudaMemsetAsync(amax_scratch, 0, sizeof(float), stream), "cudaMemsetAsync");
  const int threads = 256;
  const int Gt = p.T ? p.tblock : 1;
  const size_t smem = p.T ? size_t(threads) * (Gt + 1) * sizeof(float) : 0;
  if (smem > 48 * 1024)
    check(cudaFuncSetAttribute(amax_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          "cudaFuncSetAttribute");
  const int64_t work = p.T ? p.rows * (p.cols / Gt) : p.rows * p.cols;
  amax_kernel<<<grid_for(work, threads), threads, smem, stream>>>(p, amax_scratch);
  check_launch("amax_kernel");
  global_from_amax_kernel<<<1, 1, 0, stream>>>(amax_scratch, denom, global_out);
  check_launch("global_from_amax_kernel");
}

void launch_fill_float_n(float* dst, int64_t n, float value, CUstream_st* stream) {
  if (n <= 0) return;
  fill_float_n_kernel<<<grid_for(n, 256), 256, 0, stream>>>(dst, n, value);
  check_launch("fill_float_n_kernel");
}

void launch_row_global_from_amax(const ActQuantParams& p, float denom, float* global_out, CUstream_st* stream) {
  if (p.rows == 0) return;
  row_global_kernel<<<unsigned((p.rows + 7) / 8), 256, 0, stream>>>(p, denom, global_out);
  check_launch("row_global_kernel");
}

void launch_fill_float(float* dst, float value, CUstream_st* stream) {
  fill_float_kernel<<<1, 1, 0, stream>>>(dst, value);
  check_launch("fill_float_kernel");
}

void launch_zero_pad_mma(const ActQuantParams& p, CUstream_st* stream) {
  if (p.mma_ld == p.cols || p.rows == 0) return;
  zero_pad_kernel<<<grid_for(p.rows * (p.mma_ld - p.cols), 256), 256, 0, stream>>>(p.mma, p.rows, p.cols, p.mma_ld);
  check_launch("zero_pad_kernel");
}

}  // namespace fpq::cuda::detail
