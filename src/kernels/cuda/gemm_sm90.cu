// Prefill matrix multiply on Hopper tensor cores (wgmma, sm_90a): Y = X * dequant(W)^T * scales.
//
// Computed as Y^T = W * X^T: the weight is wgmma's A operand, taken from registers, and the activation tile
// is the B operand in shared memory. Each of the 8 warps owns one 16-row tile of the prepared weight
// (frag.cuh, already in the A-register layout): it streams its codes from global memory two tiles ahead,
// turns them into exact bf16 values -- decode(code) * group scale, exact in bf16 for E8M0 / E4M3 groups --
// and feeds them straight to wgmma: no shared-memory round trip for the weight. X is bf16 in device memory:
// the exact tensor-core operand that quantize_activations_cuda writes for W4A4 / W8A8, or plain bf16
// activations for weight-only prefill; its 64-column tiles come in through a 4-stage cp.async pipeline with
// 128-byte swizzle. Per-row scales (one per row of X or of W) and the global scales are applied in float32 at
// the end. Split-K (a partial-sum workspace and a fixed-order reduction) keeps the SMs busy for few tiles.
//
// CTA: 2 warpgroups = 128 weight rows x BN activation rows (BN = 256 or 128), float32 accumulators.
#include <algorithm>

#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/frag.cuh"

namespace fpq::cuda::detail {
namespace {

constexpr int kStages = 4;
constexpr int kWRows = 128;
constexpr int kThreads = 256;

__host__ __device__ constexpr int act_stage_bytes(int bn) { return bn * 128; }
__host__ __device__ constexpr int smem_bytes(int bn) { return kStages * act_stage_bytes(bn) + 512 + 1024; }
// The promoting kernel with activation group scales (Q4_0 x Q8_1) stages them after the activation tiles:
// per stage the 2 groups of 32 columns x 128 rows as float32.
constexpr int kActScaleStageBytes = 2 * 128 * 4;

__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

__device__ __forceinline__ uint64_t make_desc(uint32_t addr) {
  uint64_t d = 0;
  d |= uint64_t((addr & 0x3FFFFu) >> 4);
  d |= uint64_t(16 >> 4) << 16;    // leading byte offset (unused for swizzled K-major)
  d |= uint64_t(1024 >> 4) << 32;  // stride byte offset: 8 rows x 128 bytes
  d |= uint64_t(1) << 62;          // 128-byte swizzle
  return d;
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

__device__ __forceinline__ void wgmma_rs_n256(float (&d)[128], const uint32_t* a, uint64_t db) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %133, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79,"
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95,"
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111,"
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
      "}, {%128, %129, %130, %131}, %132, p, 1, 1, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
        "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "n"(1));
}

// m64n128k16 with a run-time scale-d: accumulate = 0 starts the accumulators afresh (the promoting kernel's
// per-group partial sums).
__device__ __forceinline__ void wgmma_rs_n128_acc(float (&d)[64], const uint32_t* a, uint64_t db, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

__device__ __forceinline__ void wgmma_rs_n128(float (&d)[64], const uint32_t* a, uint64_t db) {
  wgmma_rs_n128_acc(d, a, db, 1);
}

template <int N>
__device__ __forceinline__ void fence_acc(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}


// bf16 bits of every 1-byte scale code, both halves (E8M0 / E4M3 values are exact in bf16).
__shared__ uint32_t s_scale_lut[256];

struct Ctx {
  const GemmParams* p;
  GroupInfo G;
  PairDecoder dec;
  uint32_t act_base;  // shared address of stage 0
  int64_t m0, rt;
  int kb, nkt, lane, g;
  // Activation tile loads: this thread's first source row pointer (column chunk included), the rows it still
  // owns (chunks q = 0.. take rows r0 + 32 q), its column offset within a tile.
  const uint16_t* a_src;
  int64_t a_row_step;  // 32 rows, in elements
  int rows_left;       // M - m0 - r0
  int col;             // (tid & 7) * 8
  uint32_t a_dst;      // shared offset of chunk q = 0 within a stage
};

// A weight tile in registers: codes and, when folding or promoting, the raw scales of rows (g, g + 8) per step
// (1-byte scales in the low 16 bits, 2-byte scales in both halves).
template <int BITS>
struct WRegs {
  WTile<BITS> c;
  uint32_t sc[4];
};

// Activation tile kt -> stage s: BN rows x 8 chunks of 16 bytes, zero-filled past M and K.
template <int BN>
__device__ __forceinline__ void load_act(const Ctx& c, int s, int kt) {
  const bool kok = int64_t(kt) * 64 + c.col < c.p->w.k;
  const uint16_t* src = c.a_src + int64_t(kt) * 64;
  const uint32_t dst = c.act_base + uint32_t(s * act_stage_bytes(BN)) + c.a_dst;
#pragma unroll
  for (int q = 0; q < BN * 8 / kThreads; ++q) {
    // A zero-filled chunk (row past M or columns past K) reads nothing (source size 0), so its address is
    // left as computed rather than selected (two instructions less per chunk; the kernel is issue-bound).
    cp_async16(dst + uint32_t(q * 32 * 128), src, kok && q * 32 < c.rows_left);
    src += c.a_row_step;
  }
}

// Warps past the weight's last row tile load row tile 0 instead (c.rt is clamped at the start): their sums are
// never stored, and the load needs no branch. (With the branch, ptxas waited for the warp's outstanding loads
// there: Nsight Compute put 12% of all stall samples on it; without it the prefill kernel runs 1-7% faster.)
template <int BITS, bool FOLD, bool PROMOTE = false>
__device__ __forceinline__ void load_w(const Ctx& c, WRegs<BITS>& r, int kt) {
  load_wtile<BITS>(r.c, c.p->w, c.rt, kt, c.lane);
  if constexpr (PROMOTE) {
    const WeightView& w = c.p->w;
    const uint8_t* base = w.scales + (c.rt * w.n_groups * 16 + 2 * c.g) * w.sb;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint8_t* sp = base + int64_t(group_of(c.G, kt * 4 + j)) * 16 * w.sb;
      r.sc[j] = w.sb == 2 ? __ldg(reinterpret_cast<const uint32_t*>(sp))
                          : uint32_t(__ldg(reinterpret_cast<const uint16_t*>(sp)));
    }
  }
  if constexpr (FOLD) {
    const uint8_t* base = c.p->w.scales + (c.rt * c.p->w.n_groups * 16 + 2 * c.g);
#pragma unroll
    for (int j = 0; j < 4; ++j)
      r.sc[j] = __ldg(reinterpret_cast<const uint16_t*>(base + int64_t((kt * 4 + j) >> c.G.sshift) * 16));
  }
}

// Weight tile kt -> 16 A registers (4 per 16-column step), group scales multiplied in when folding.
template <int BITS, int DEC, bool FOLD>
__device__ __forceinline__ void convert(const Ctx& c, const WRegs<BITS>& r, uint32_t (&A)[16]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    uint32_t a[4];
    decode_step<BITS, DEC, false>(c.dec, r.c.lo, r.c.hi, j, a);
    if constexpr (FOLD) {
      const uint32_t s_lo = s_scale_lut[r.sc[j] & 0xFFu], s_hi = s_scale_lut[(r.sc[j] >> 8) & 0xFFu];
      A[4 * j + 0] = hmul2_bits<false>(a[0], s_lo);
      A[4 * j + 1] = hmul2_bits<false>(a[1], s_hi);
      A[4 * j + 2] = hmul2_bits<false>(a[2], s_lo);
      A[4 * j + 3] = hmul2_bits<false>(a[3], s_hi);
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) A[4 * j + i] = a[i];
    }
  }
}

// One k-tile: wgmma on tile `it` with A registers `ac`; meanwhile the next tile's registers `an` are made from
// the raw tile `rn` (tile it + 1), and `rn` is refilled with tile it + 3.
template <int BITS, int DEC, int BN, bool FOLD>
__device__ __forceinline__ void rs_step(const Ctx& c, int it, float (&d)[BN / 2], const uint32_t (&ac)[16],
                                        uint32_t (&an)[16], WRegs<BITS>& rn) {
  cp_async_wait<kStages - 2>();  // this thread's copies of tile it have landed
  fence_proxy_async();
  __syncthreads();               // ... and everyone's
  const uint32_t stage = c.act_base + uint32_t((it % kStages) * act_stage_bytes(BN));
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    const uint64_t db = make_desc(stage + uint32_t(kk * 32));
    if constexpr (BN == 256) wgmma_rs_n256(d, &ac[4 * kk], db);
    else wgmma_rs_n128(d, &ac[4 * kk], db);
  }
  wgmma_commit();
  wgmma_wait<1>();  // tile it - 1 is done: its stage and registers are free
  __syncthreads();
  if (it + kStages - 1 < c.nkt) load_act<BN>(c, (it + kStages - 1) % kStages, c.kb + it + kStages - 1);
  cp_async_commit();
  if (it + 1 < c.nkt) convert<BITS, DEC, FOLD>(c, rn, an);
  if (it + 3 < c.nkt) load_w<BITS, FOLD>(c, rn, c.kb + it + 3);
}

// ---- The promoting variant: group scales that cannot be folded into the bf16 operand exactly (INT4 / Q4_0 /
// Q8_0 with fp16 scales, ...). The codes go to wgmma unscaled (exact bf16 values); each scale group's products
// land in a fresh accumulator set t (scale-d = 0 at the group's first step, or at a split's first step) and,
// when the group ends (or the split does), t times the group scales of rows g, g + 8 is added to d in float32:
// the decode kernel's per-group promotion. A group that ends with a tile is promoted after the next tile's
// weights are converted (its wgmma still in flight meanwhile); one that ends inside a tile (groups of 16 / 32)
// waits there. BN = 128 only: d and t take 128 registers.
__device__ __forceinline__ bool group_starts(const GroupInfo& G, int ks) {
  return G.pow2 ? (ks & (G.spg - 1)) == 0 : ks == group_of(G, ks) * G.spg;
}
__device__ __forceinline__ bool group_ends(const GroupInfo& G, int ks) { return group_starts(G, ks + 1); }

__device__ __forceinline__ float2 lds_f2(uint32_t addr) {
  float2 v;
  asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr));
  return v;
}

// Activation group scales of tile kt -> stage s (PROMOTE == 2): threads 0..63 copy 16 bytes each, rows past M
// and groups past K zero-filled.
__device__ __forceinline__ void load_act_scales(const Ctx& c, int s, int kt) {
  if (threadIdx.x >= 64) return;
  const GemmParams& p = *c.p;
  const int gl = threadIdx.x >> 5, q = threadIdx.x & 31;
  const int64_t grp = int64_t(kt) * 2 + gl;
  const int64_t row = c.m0 + 4 * q;
  const bool ok = grp < p.w.k / 32 && row < p.m;
  const float* src = ok ? p.a_gscale + grp * p.a_gscale_ld + row : p.a_gscale;
  const uint32_t dst = c.act_base + uint32_t(kStages * act_stage_bytes(128) + s * kActScaleStageBytes + gl * 512 + q * 16);
  cp_async16(dst, src, ok);
}

template <int PROMOTE>
__device__ __forceinline__ void promote_group(const Ctx& c, float (&d)[64], const float (&t)[64], uint32_t raw,
                                              int stage, int kk) {
  const WeightView& w = c.p->w;
  float s_lo, s_hi;
  if (w.sb == 1) {
    s_lo = scale_code_value(w.scale, raw & 0xFFu);
    s_hi = scale_code_value(w.scale, (raw >> 8) & 0xFFu);
  } else {
    s_lo = scale_wide_value(w.scale, raw & 0xFFFFu);
    s_hi = scale_wide_value(w.scale, raw >> 16);
  }
  // t[cc * 4 + h * 2 + e] belongs to weight row g + 8h and activation row 8cc + 2(lane & 3) + e.
  if constexpr (PROMOTE == 2) {
    // Both operands' group scales (groups of 32: steps kk = 0, 1 are the tile's first group, 2, 3 its second);
    // f16 x f16 products are exact in float32.
    const uint32_t sa = c.act_base + uint32_t(kStages * act_stage_bytes(128) + stage * kActScaleStageBytes +
                                              (kk >> 1) * 512 + (c.lane & 3) * 8);
#pragma unroll
    for (int cc = 0; cc < 16; ++cc) {
      const float2 a = lds_f2(sa + uint32_t(cc * 32));
      d[cc * 4 + 0] = fmaf(t[cc * 4 + 0], s_lo * a.x, d[cc * 4 + 0]);
      d[cc * 4 + 1] = fmaf(t[cc * 4 + 1], s_lo * a.y, d[cc * 4 + 1]);
      d[cc * 4 + 2] = fmaf(t[cc * 4 + 2], s_hi * a.x, d[cc * 4 + 2]);
      d[cc * 4 + 3] = fmaf(t[cc * 4 + 3], s_hi * a.y, d[cc * 4 + 3]);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 64; ++i) d[i] = fmaf(t[i], (i & 2) ? s_hi : s_lo, d[i]);
  }
}

// One k-tile of the promoting kernel: wgmma on tile `it` (A registers ac, raw scales sc) into t; meanwhile tile
// it + 1's registers an / sn are made from rn, and rn is refilled with tile it + 3.
// The promoting kernels' start: the first kStages - 1 activation stages in flight, tiles 0 and 1 of the
// weight loaded, tile 0 converted (A0, its raw scales S0), raw0 refilled with tile 2.
template <int BITS, int DEC, int BN, bool ACT_SCALES>
__device__ __forceinline__ void promote_prologue(const Ctx& c, WRegs<BITS>& raw0, WRegs<BITS>& raw1, uint32_t (&A0)[16],
                                                 uint32_t (&S0)[4]) {
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < c.nkt) {
      load_act<BN>(c, s, c.kb + s);
      if constexpr (ACT_SCALES) load_act_scales(c, s, c.kb + s);
    }
    cp_async_commit();
  }
  load_w<BITS, false, true>(c, raw0, c.kb);
  if (c.nkt > 1) load_w<BITS, false, true>(c, raw1, c.kb + 1);
  convert<BITS, DEC, false>(c, raw0, A0);
#pragma unroll
  for (int j = 0; j < 4; ++j) S0[j] = raw0.sc[j];
  if (c.nkt > 2) load_w<BITS, false, true>(c, raw0, c.kb + 2);
}

// The promoting kernels' second half of a k-tile step, once its wgmma are issued: commit them, wait for tile
// it - 1's, refill its stage with tile it + 3's activations (and activation scales), make tile it + 1's
// registers an / sn from rn and refill rn with tile it + 3's weight.
template <int BITS, int DEC, int BN, bool ACT_SCALES>
__device__ __forceinline__ void promote_step_refill(const Ctx& c, int it, uint32_t (&an)[16], uint32_t (&sn)[4],
                                                    WRegs<BITS>& rn) {
  wgmma_commit();
  wgmma_wait<1>();  // tile it - 1 is done: its stage is free
  __syncthreads();
  if (it + kStages - 1 < c.nkt) {
    load_act<BN>(c, (it + kStages - 1) % kStages, c.kb + it + kStages - 1);
    if constexpr (ACT_SCALES) load_act_scales(c, (it + kStages - 1) % kStages, c.kb + it + kStages - 1);
  }
  cp_async_commit();
  if (it + 1 < c.nkt) {
    convert<BITS, DEC, false>(c, rn, an);
#pragma unroll
    for (int j = 0; j < 4; ++j) sn[j] = rn.sc[j];
  }
  if (it + 3 < c.nkt) load_w<BITS, false, true>(c, rn, c.kb + it + 3);
}

template <int BITS, int DEC, int PROMOTE>
__device__ __forceinline__ void rs_step_promote(const Ctx& c, int it, float (&d)[64], float (&t)[64],
                                                const uint32_t (&ac)[16], const uint32_t (&sc)[4], uint32_t (&an)[16],
                                                uint32_t (&sn)[4], WRegs<BITS>& rn) {
  cp_async_wait<kStages - 2>();
  fence_proxy_async();
  __syncthreads();
  const uint32_t stage = c.act_base + uint32_t((it % kStages) * act_stage_bytes(128));
  const int ks0 = (c.kb + it) * 4;
  const bool last_tile = it == c.nkt - 1;
  bool pending = false;
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    const int ks = ks0 + kk;
    const bool fresh = (it == 0 && kk == 0) || group_starts(c.G, ks);
    wgmma_rs_n128_acc(t, &ac[4 * kk], make_desc(stage + uint32_t(kk * 32)), fresh ? 0 : 1);
    if (group_ends(c.G, ks) || (last_tile && kk == 3)) {
      if (kk < 3) {
        wgmma_commit();
        wgmma_wait<0>();
        fence_acc(t);
        promote_group<PROMOTE>(c, d, t, sc[kk], it % kStages, kk);
        wgmma_fence();
      } else {
        pending = true;
      }
    }
  }
  promote_step_refill<BITS, DEC, 128, PROMOTE == 2>(c, it, an, sn, rn);
  if (pending) {
    wgmma_wait<0>();
    fence_acc(t);
    promote_group<PROMOTE>(c, d, t, sc[3], it % kStages, 3);
  }
}

// ---- The rescaling variant (PROMOTE == 3, PreparedWeight::rescale_ok: integer codes, fp16 scales): one
// accumulator set, so BN = 256 as in the folding kernel. The sums are kept in units of the current group's scale
// u (per weight row): when a group starts -- after the previous group's wgmma has finished -- they are
// multiplied by u / s_new and u = s_new; the epilogue multiplies by u. One float32 rounding per group and row
// more than the two-set kernel (a relative 2^-24 each); a zero scale (its codes are all zero) keeps u.
__device__ __forceinline__ void scale_pair(const WeightView& w, uint32_t raw, float& lo, float& hi) {
  if (w.sb == 1) {
    lo = scale_code_value(w.scale, raw & 0xFFu);
    hi = scale_code_value(w.scale, (raw >> 8) & 0xFFu);
  } else {
    lo = scale_wide_value(w.scale, raw & 0xFFFFu);
    hi = scale_wide_value(w.scale, raw >> 16);
  }
}

template <int N>
__device__ __forceinline__ void rescale_to(const WeightView& w, float (&d)[N], float (&u)[2], uint32_t raw) {
  float s[2], r[2];
  scale_pair(w, raw, s[0], s[1]);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    r[h] = s[h] != 0.0f ? __fdiv_rn(u[h], s[h]) : 1.0f;
    u[h] = s[h] != 0.0f ? s[h] : u[h];
  }
#pragma unroll
  for (int i = 0; i < N; ++i) d[i] *= r[(i >> 1) & 1];
}

template <int BITS, int DEC, int BN>
__device__ __forceinline__ void rs_step_rescale(const Ctx& c, int it, float (&d)[BN / 2], float (&u)[2],
                                                const uint32_t (&ac)[16], const uint32_t (&sc)[4], uint32_t (&an)[16],
                                                uint32_t (&sn)[4], WRegs<BITS>& rn) {
  cp_async_wait<kStages - 2>();
  fence_proxy_async();
  __syncthreads();
  const uint32_t stage = c.act_base + uint32_t((it % kStages) * act_stage_bytes(BN));
  const int ks0 = (c.kb + it) * 4;
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    if (kk > 0 && group_starts(c.G, ks0 + kk)) {  // a group starts inside the tile: the previous one finishes first
      wgmma_commit();
      wgmma_wait<0>();
      fence_acc(d);
      rescale_to(c.p->w, d, u, sc[kk]);
      wgmma_fence();
    }
    const uint64_t db = make_desc(stage + uint32_t(kk * 32));
    if constexpr (BN == 256) wgmma_rs_n256(d, &ac[4 * kk], db);
    else wgmma_rs_n128(d, &ac[4 * kk], db);
  }
  promote_step_refill<BITS, DEC, BN, false>(c, it, an, sn, rn);
  if (it + 1 < c.nkt && group_starts(c.G, ks0 + 4)) {  // the next tile starts a group
    wgmma_wait<0>();
    fence_acc(d);
    rescale_to(c.p->w, d, u, sn[0]);
  }
}

__device__ __forceinline__ float row_scale_w(const GemmParams& p, int64_t n) {
  const WeightView& w = p.w;
  float s = 1.0f;
  if (!p.fold_b && !p.promote && w.scale != kScaleNone) {
    const int64_t rt = n >> 4;
    const int r = int(n & 15);
    const uint8_t* sp = w.scales + ((rt * w.n_groups) * 16 + 2 * (r & 7) + (r >> 3)) * w.sb;
    s = decode_scale_bytes(w.scale, sp);
  }
  if (w.row_global) s *= w.row_global[n];
  return s;
}

__device__ __forceinline__ void store_out(const GemmParams& p, int64_t m, int64_t n, float v) {
  store_typed(p.y, p.ytype, m * p.ldy + n, v);
}

template <int BITS, int DEC, int BN, bool FOLD, int PROMOTE>
__global__ void __launch_bounds__(kThreads, 1) gemm_rs_kernel(GemmParams p) {
  static_assert(!PROMOTE || (!FOLD && (PROMOTE == 3 || BN == 128)), "the two-set promoting kernel is BN = 128");
  constexpr int NACC = BN / 2;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  const WeightView& w = p.w;
  const int warp = threadIdx.x >> 5;
  if (FOLD)
    for (int i = threadIdx.x; i < 256; i += blockDim.x) {
      const uint32_t b = __bfloat16_as_ushort(__float2bfloat16_rn(scale_code_value(w.scale, uint32_t(i))));
      s_scale_lut[i] = b | (b << 16);
    }
  __syncthreads();
  Ctx c;
  c.p = &p;
  c.G = make_group_info(w.group, w.k);
  c.dec = make_pair_decoder(w.bits, w.is_int, w.mbits, w.bias, false);
  c.act_base = smem_addr(base);
  c.m0 = int64_t(blockIdx.x) * BN;
  const int64_t n0 = int64_t(blockIdx.y) * kWRows;
  c.rt = n0 / 16 + warp;
  if (c.rt >= w.n_tiles) c.rt = 0;  // see load_w
  c.lane = threadIdx.x & 31;
  c.g = c.lane >> 2;
  const int KT = int(w.k_tiles);
  c.kb = int(int64_t(KT) * blockIdx.z / p.splits);
  const int ke = int(int64_t(KT) * (blockIdx.z + 1) / p.splits);
  c.nkt = ke - c.kb;
  {
    const int r0 = threadIdx.x >> 3;
    c.col = (threadIdx.x & 7) * 8;
    const int64_t left = p.m - c.m0 - r0;
    c.rows_left = int(left < (int64_t(1) << 30) ? left : (int64_t(1) << 30));
    c.a_row_step = 32 * p.lda;
    c.a_src = p.a + (c.m0 + r0) * p.lda + c.col;
    c.a_dst = uint32_t(r0 * 128 + (((threadIdx.x & 7) ^ (r0 & 7)) << 4));
  }

  float d[NACC];
#pragma unroll
  for (int i = 0; i < NACC; ++i) d[i] = 0.0f;

  float u[2] = {1.0f, 1.0f};  // PROMOTE == 3: the scale units of rows g, g + 8
  if constexpr (PROMOTE == 3) {
    if (c.nkt > 0) {
      WRegs<BITS> raw0, raw1;
      uint32_t A0[16], A1[16], S0[4], S1[4];
      promote_prologue<BITS, DEC, BN, false>(c, raw0, raw1, A0, S0);
      rescale_to(w, d, u, S0[0]);  // the sums are 0: this sets u to the first group's scale
      fence_acc(d);
      for (int it = 0; it < c.nkt; it += 2) {
        rs_step_rescale<BITS, DEC, BN>(c, it, d, u, A0, S0, A1, S1, raw1);
        if (it + 1 < c.nkt) rs_step_rescale<BITS, DEC, BN>(c, it + 1, d, u, A1, S1, A0, S0, raw0);
      }
      wgmma_wait<0>();
      fence_acc(d);
    }
  } else if constexpr (PROMOTE) {
    if (c.nkt > 0) {
      WRegs<BITS> raw0, raw1;
      uint32_t A0[16], A1[16], S0[4], S1[4];
      float t[NACC];
#pragma unroll
      for (int i = 0; i < NACC; ++i) t[i] = 0.0f;
      promote_prologue<BITS, DEC, BN, PROMOTE == 2>(c, raw0, raw1, A0, S0);
      fence_acc(d);
      fence_acc(t);
      for (int it = 0; it < c.nkt; it += 2) {
        rs_step_promote<BITS, DEC, PROMOTE>(c, it, d, t, A0, S0, A1, S1, raw1);
        if (it + 1 < c.nkt) rs_step_promote<BITS, DEC, PROMOTE>(c, it + 1, d, t, A1, S1, A0, S0, raw0);
      }
      wgmma_wait<0>();
      fence_acc(d);
    }
  } else if (c.nkt > 0) {
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < c.nkt) load_act<BN>(c, s, c.kb + s);
      cp_async_commit();
    }
    WRegs<BITS> raw0, raw1;
    uint32_t A0[16], A1[16];
    load_w<BITS, FOLD>(c, raw0, c.kb);
    if (c.nkt > 1) load_w<BITS, FOLD>(c, raw1, c.kb + 1);
    convert<BITS, DEC, FOLD>(c, raw0, A0);
    if (c.nkt > 2) load_w<BITS, FOLD>(c, raw0, c.kb + 2);
    fence_acc(d);
    for (int it = 0; it < c.nkt; it += 2) {
      rs_step<BITS, DEC, BN, FOLD>(c, it, d, A0, A1, raw1);
      if (it + 1 < c.nkt) rs_step<BITS, DEC, BN, FOLD>(c, it + 1, d, A1, A0, raw0);
    }
    wgmma_wait<0>();
    fence_acc(d);
  }

  // Epilogue: d[c * 4 + h * 2 + e] is (weight row 16 * warp + g + 8h, activation row 8c + 2t + e).
  const int t = c.lane & 3;
  const float alpha = w.global * (p.a_global ? *p.a_global : 1.0f);
  const bool partial = p.splits > 1;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t n = n0 + warp * 16 + c.g + h * 8;
    if (n >= w.n) continue;
    const float rb = (partial ? 1.0f : alpha * row_scale_w(p, n)) * u[h];  // u: 1 unless PROMOTE == 3
#pragma unroll
    for (int cc = 0; cc < BN / 8; ++cc) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t m = c.m0 + cc * 8 + 2 * t + e;
        if (m >= p.m) continue;
        const float v = d[cc * 4 + h * 2 + e];
        if (partial) p.workspace[(int64_t(blockIdx.z) * p.m + m) * w.n + n] = v * rb;  // rb = u[h] here
        else store_out(p, m, n, v * rb * (p.a_row_scale ? p.a_row_scale[m] : 1.0f));
      }
    }
  }
}

__global__ void splitk_reduce(GemmParams p) {
  const int64_t total = p.m * p.w.n;
  const float alpha = p.w.global * (p.a_global ? *p.a_global : 1.0f);
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = idx / p.w.n, n = idx % p.w.n;
    float v = 0.0f;
    for (int z = 0; z < p.splits; ++z) v += p.workspace[int64_t(z) * total + idx];
    store_out(p, m, n, v * alpha * row_scale_w(p, n) * (p.a_row_scale ? p.a_row_scale[m] : 1.0f));
  }
}

template <int BITS, int DEC, int BN, bool FOLD, int PROMOTE = 0>
void launch_fold(const GemmParams& p, const dim3& grid, CUstream_st* stream) {
  const int smem = smem_bytes(BN) + (PROMOTE == 2 ? kStages * kActScaleStageBytes : 0);
  check(cudaFuncSetAttribute(gemm_rs_kernel<BITS, DEC, BN, FOLD, PROMOTE>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             smem),
        "cudaFuncSetAttribute");
  gemm_rs_kernel<BITS, DEC, BN, FOLD, PROMOTE><<<grid, kThreads, smem, stream>>>(p);
}
template <int BITS, int DEC, int BN>
void launch_one(const GemmParams& p, const dim3& grid, CUstream_st* stream) {
  if constexpr (BN == 128) {
    if (p.promote && gemm_two_sets(p)) {
      if (!p.a_gscale) return launch_fold<BITS, DEC, BN, false, 1>(p, grid, stream);
      if constexpr (BITS == 4 && DEC == kDecInt4) return launch_fold<BITS, DEC, BN, false, 2>(p, grid, stream);
      fail_message("launch_gemm: activation group scales need int4 weights in groups of 32");
    }
  }
  if (p.promote && !gemm_two_sets(p)) {
    if constexpr (DEC == kDecInt4 || DEC == kDecInt8) return launch_fold<BITS, DEC, BN, false, 3>(p, grid, stream);
    fail_message("launch_gemm: the rescaling kernel takes integer codes");
  }
  if constexpr (DEC == kDecE2M1 || DEC == kDecFp) {
    if (p.fold_b) return launch_fold<BITS, DEC, BN, true>(p, grid, stream);
  }
  launch_fold<BITS, DEC, BN, false>(p, grid, stream);
}

template <int BN>
void launch_bn(const GemmParams& p, const dim3& grid, CUstream_st* stream) {
  const int dk = decode_kind(p.w.bits, p.w.is_int, p.w.mbits, p.w.bias);
  switch (p.w.bits) {
    case 4:
      if (dk == kDecE2M1) launch_one<4, kDecE2M1, BN>(p, grid, stream);
      else launch_one<4, kDecInt4, BN>(p, grid, stream);  // other 4-bit floats do not reach here
      break;
    case 5: launch_one<5, kDecFp, BN>(p, grid, stream); break;
    case 6: launch_one<6, kDecFp, BN>(p, grid, stream); break;
    default:
      if (dk == kDecInt8) launch_one<8, kDecInt8, BN>(p, grid, stream);
      else launch_one<8, kDecFp, BN>(p, grid, stream);
      break;
  }
}

}  // namespace

bool gemm_supported(const WeightView& w, int fold_b) {
  if (!(w.bits == 4 || w.bits == 5 || w.bits == 6 || w.bits == 8)) return false;
  if (w.is_int && !(w.bits == 4 || w.bits == 8)) return false;
  if (w.bits == 4 && !w.is_int && decode_kind(w.bits, w.is_int, w.mbits, w.bias) != kDecE2M1) return false;
  if (fold_b) {
    if (w.is_int) return false;
    if (!(w.scale == kScaleE8M0 || w.scale == kScaleE4M3)) return false;
    if (w.group < 16 || (w.group & (w.group - 1)) != 0) return false;
  }
  return true;
}

bool gemm_promote_supported(const WeightView& w) {
  if (w.scale == kScaleNone || !(w.sb == 1 || w.sb == 2)) return false;
  if (w.group % 16 != 0 || w.group >= w.k) return false;
  return gemm_supported(w, 0);
}

// Up to this many activation rows the tile is 128 wide whatever the kernel.
constexpr int64_t kNarrowTileMaxM = 128;

// The rescaling kernel's gain is its 256-wide tile; with a 128-wide one its per-group rescales only cost (H100,
// 2026-12-06, M = 128: q4_0 0.92-0.98x of two sets, int4 1.04x), so by default (promote_sets == 0) it runs where
// the tile is 256 wide. promote_sets: 1 = two sets always, -1 = rescale at every M (A/B runs).
bool gemm_two_sets(const GemmParams& p) {
  if (!p.promote) return false;
  if (p.a_gscale || p.promote_sets > 0 || !p.w.rescale_ok) return true;
  return p.promote_sets == 0 && p.m <= kNarrowTileMaxM;
}

static int64_t gemm_bn(int64_t m, bool two_sets) { return two_sets || m <= kNarrowTileMaxM ? 128 : 256; }

int gemm_choose_splits(int64_t m, int64_t n, int64_t k, bool two_sets) {
  const int64_t bn = gemm_bn(m, two_sets);
  const int64_t tiles = ((m + bn - 1) / bn) * ((n + kWRows - 1) / kWRows);
  const int64_t kt = (k + 63) / 64;
  const int64_t sms = sm_count();
  if (tiles * 2 > sms) return 1;
  int64_t s = sms / tiles;  // one wave
  s = std::min<int64_t>(s, kt / 8);
  return int(s < 1 ? 1 : s);
}

void launch_gemm(GemmParams p, CUstream_st* stream) {
  if (p.m == 0 || p.w.n == 0) return;
  const int64_t bn = gemm_bn(p.m, gemm_two_sets(p));
  const dim3 grid(unsigned((p.m + bn - 1) / bn), unsigned((p.w.n + kWRows - 1) / kWRows), unsigned(p.splits));
  if (bn == 256) launch_bn<256>(p, grid, stream);
  else launch_bn<128>(p, grid, stream);
  check_launch("gemm_rs_kernel");
  if (p.splits > 1) {
    const int64_t total = p.m * p.w.n;
    int blocks = int((total + 255) / 256);
    if (blocks > sm_count() * 8) blocks = sm_count() * 8;
    splitk_reduce<<<blocks, 256, 0, stream>>>(p);
    check_launch("splitk_reduce");
  }
}

}  // namespace fpq::cuda::detail
