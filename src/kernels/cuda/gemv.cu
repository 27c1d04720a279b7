// Weight-only matrix multiply for decode and small batches (M <= 32): Y = X * dequant(W)^T.
//
// One CTA (16 warps for M <= 8, else 8) per 16 weight rows. Each warp streams its tiles (codes and raw scales,
// prepared fragment layout of frag.cuh) into a private
// shared-memory ring, kD - 1 stages ahead: each warp owns a contiguous range of tiles, and one lane fetches a
// stage (two tiles and their scales) with bulk copies that complete on the stage's mbarrier, so the loop body
// spends almost no instructions on loads and many bytes are in flight.
// Codes become exact half / bf16 values with a few bit operations and one packed multiply; mma.sync m16n8k16
// (the weight as A, up to four 8-row slices of X as B) accumulates each scale group in float32, and the
// group's partial sums are multiplied by the decoded scale and added into the float32 result (so any scale
// type works exactly, e.g. fp16 scales of INT4 groups). The warps' sums are added in a fixed order.
// From M = 5 the split kernel (KS below) instead splits K across CTAs and keeps each split's activations in
// shared memory; the splits' partial sums are added in a fixed order too.
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/frag.cuh"

namespace fpq::cuda::detail {
namespace {

// Ring depth per warp (stages in flight): a power of two chosen per weight so the CTA's ring fits.

template <bool HALF>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (HALF) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// A stage is ST consecutive 64-column tiles of one warp's contiguous K range, fetched by one lane with bulk
// copies (the copy engine) that complete on the stage's mbarrier. Issuing a stage costs about a hundred
// instructions of the warp, so 4-bit codes (the smallest tiles) take four tiles per stage, wider codes two.
// 6-bit codes with the fused fold take four in the kernels for several activation rows, where two measured
// 0.90-0.96x at M = 16 (H100, docs/BENCHMARKS.md 2026-12-06); two where `one` holds: NT == 1 outside the split
// kernel (M <= 4; at M = 1 two stages' worth leave room for the activation row in shared memory, 1.10-1.19x),
// and the split kernel's WIDE form (its two stages must fit beside 128 KB of activations).
__host__ __device__ constexpr int stage_tiles(int bits, bool fold, bool one) {
  return bits == 4 || (bits == 6 && fold && !one) ? 4 : 2;
}
__host__ __device__ constexpr int hi_lane_bytes(int bits) { return bits == 8 ? 16 : bits == 6 ? 8 : bits == 5 ? 4 : 0; }
// Scale groups a stage can touch. Stages start on tile boundaries, which are group boundaries only where the
// group divides 64: a warp's K range starts at tile KT * w / warps (a split's at KT * s / S), so a stage of 4
// tiles of a 128-column group can start mid-group and touch 3 groups (the region once held 2, and the copy
// overran into the next slot: int4 g128 at K = 2304 gave wrong rows).
__host__ __device__ inline int stage_groups(int group, int st) {
  const int cols = st * 64;
  return 64 % group == 0 ? cols / group : (cols - 1) / group + 2;
}
__host__ __device__ inline int scale_region(int group, int sb, int st) {
  return (stage_groups(group, st) * 16 * sb + 15) / 16 * 16;
}
// A slot holds RT row tiles' stage: [RT x codes (low planes)][RT x high planes][RT x scales].
__host__ __device__ inline int slot_bytes(int bits, int group, int sb, int rt, bool fold, bool one) {
  const int st = stage_tiles(bits, fold, one);
  return rt * (st * 512 + st * 32 * hi_lane_bytes(bits) + scale_region(group, sb, st));
}

__device__ __forceinline__ void mbar_init(uint32_t bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_expect(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}
// Four 8x8 b16 matrices from shared memory; lanes 8q..8q+7 give matrix q's row addresses.
__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred P;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 P, [%0], %1, 1000000;\n"
      "@!P bra WAIT_%=;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// Named barrier `id` (1..15; 0 is __syncthreads') over `threads` threads of the CTA, whole warps.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// A value the compiler must keep in a register: under the 64-register cap of 1024 threads per SM it otherwise
// recomputes lane offsets and constants in every tile (ncu counted ~25 such instructions per tile).
__device__ __forceinline__ uint32_t opaque(uint32_t v) {
  asm volatile("" : "+r"(v));
  return v;
}

// The split kernel's activations: rows 0 .. rows - 1 of x (rows >= m repeat row m - 1), vpr 16-byte words from
// column col0, to shared memory at row stride `stride` bytes; kU loads per thread in flight before their stores.
// A thread's word i = threadIdx.x + j * kThreads sits at (row r, word v); (r, v) advance by (dr, dv) per step
// with one carry, so a word costs a few adds: a division per word (i / vpr) made the staging ~50 instructions
// per 16 bytes, ~800 per warp of the wide form at M = 16, all on the path to the CTA's barrier (ncu, 2026-12-07).
// mid() runs once in every thread, after its first loads are issued (or at the end where it has none).
template <int kU, int kThreads, typename Mid>
__device__ __forceinline__ void stage_split_rows(uint8_t* xk, const uint16_t* x, int64_t ldx, int m, int rows, int vpr,
                                                 int64_t col0, uint32_t stride, Mid&& mid) {
  const int total = rows * vpr;
  const int dr = kThreads / vpr, dv = kThreads - dr * vpr;  // dv < vpr: one carry per step at most
  int r = int(threadIdx.x) / vpr, v = int(threadIdx.x) - r * vpr;
  auto step = [&]() {
    r += dr, v += dv;
    if (v >= vpr) v -= vpr, ++r;
  };
  bool mid_done = false;
  for (int i0 = threadIdx.x; i0 < total; i0 += kU * kThreads) {
    const int r0 = r, v0 = v;
    uint4 val[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (i0 + u * kThreads >= total) break;
      val[u] = *reinterpret_cast<const uint4*>(x + int64_t(r < m ? r : m - 1) * ldx + col0 + v * 8);
      step();
    }
    if (!mid_done) mid(), mid_done = true;
    r = r0, v = v0;
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (i0 + u * kThreads >= total) break;
      *reinterpret_cast<uint4*>(xk + uint32_t(r) * stride + uint32_t(v) * 16u) = val[u];
      step();
    }
  }
  if (!mid_done) mid();
}

// How scales are applied: kFold = multiplied into the bf16 operand (exact: 1-byte E8M0 / E4M3 group scales
// with small elements), kRow = one scale per row, applied at the end, kGroup = per-group partial sums.
// kFoldE8 = kFold with E8M0 scales, whose multiplier (a power of two) is computed, not looked up: exponent field
// code + 127 - bias - fold_shift, always in 1..254 for the codes present (choose_fused_fold; no NaN code).
enum ScaleMode : int { kFold = 0, kRow = 1, kGroup = 2, kFoldE8 = 3 };
__host__ __device__ constexpr bool is_fold(int mode) { return mode == kFold || mode == kFoldE8; }

// FAST = 0: any K and group. FAST = 1, 2, 4: K is a multiple of 64 (every tile and step lies inside K, so the
// loop carries no bounds checks) and a scale group spans 1, 2 or a multiple of 4 16-column steps (partial sums
// are promoted at compile-time known steps; they are also promoted at every tile's end, which is exact).
// kFold also takes FAST = 8 (groups of 8 or more steps: one multiplier load per tile).
// SB: scale bytes known at compile time (0: read from the weight). RT: row tiles per warp iteration (2: each
// activation fragment feeds two weight tiles, halving the activation traffic through L1/L2 at M > 8).
// KS (small batches, M >= 2, FAST only): the *split* kernel. CTA b takes K split b % S (p.splits) of every
// row tile it serves, stages the activations of that split (all rows) in shared memory once, and each of its
// warps owns whole row tiles over the split (no reduction between warps); the S partial sums of a row tile meet
// in p.ws and the last warp to finish one (a counter per row tile) adds them in split order and stores.
// Without it every CTA read its row tile's whole activation matrix from L2 (at M = 16, 58 MB for a
// 4096 x 14336 weight of 31 MB) and few CTAs were left to hide those loads.
template <int BITS, int DEC, bool HALF, int NT, int kWarps, int MODE, int FAST, int SB, int RT, bool KS = false>
__global__ void __launch_bounds__(kWarps * 32, KS ? (kWarps >= 16 ? 1 : 2) : RT == 2 ? (NT == 1 ? 3 : 2) : NT == 1 ? 2 : NT == 2 ? 3 : 2)
    gemv_kernel(GemvParams p, int ring_log2, int slot, int sreg, uint32_t e8_add) {
  constexpr bool FULL = FAST != 0;
  // WIDE (the split kernel as one 16-warp CTA per SM, launch_split_rt): warp w of CTA b serves units b + n_cta * w,
  // ..., so that every SM gets units (13 or 14 of 1792 on 132 SMs) where CTA-contiguous units left 20 SMs idle.
  // Its stages are those of the M <= 4 kernels (6-bit fused-fold codes: two tiles), so that a ring of two stages
  // fits beside 128 KB of activations.
  constexpr bool WIDE = KS && kWarps >= 16;
  constexpr int kST = stage_tiles(BITS, is_fold(MODE), (NT == 1 && !KS) || WIDE);
  const int kD = 1 << ring_log2;
  extern __shared__ __align__(16) uint8_t smem[];
  const WeightView& w = p.w;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  // Persistent: this CTA takes row tiles blockIdx.x, + gridDim.x, ...; each warp's ring of stages runs on
  // across them, so the next row tile's weights are in flight while this one finishes.
  // 32-bit: prepare_weight_cuda keeps the tile count below 2^32 (the 64-bit divisions cost ~100 instructions
  // per warp, measured with ncu).
  const int n_units = int((w.n_tiles + RT - 1) / RT);  // units of RT consecutive row tiles
  // Units this warp serves: u_first, + u_step, ... (KS: the warp's own; otherwise the CTA's, split by K).
  const int S = KS ? p.splits : 1;
  const int split = KS ? int(blockIdx.x) % S : 0;
  // KS: a group of P warps (p.split_warps) serves each unit, warp `sub` of it a P-th of the split's K range;
  // the group's sums meet in shared memory (P = 1: every warp a unit of its own).
  const int P = KS ? p.split_warps : 1;
  const int n_grp = kWarps / P, grp = warp / P, sub = warp - grp * P;
  const uint32_t n_cta = KS ? gridDim.x / uint32_t(S) : gridDim.x;
  const uint32_t u_first = KS ? (WIDE ? blockIdx.x / uint32_t(S) + n_cta * uint32_t(grp)
                                      : (blockIdx.x / uint32_t(S)) * n_grp + uint32_t(grp))
                              : blockIdx.x;
  const uint32_t u_step = KS ? n_cta * n_grp : n_cta;
  const int n_rt = int(u_first) < n_units ? (n_units - int(u_first) + int(u_step) - 1) / int(u_step) : 0;
  // KS with p.cluster: the CTAs of a cluster (the S splits of the same row tiles) meet at a cluster barrier once
  // per row tile, so every warp runs as many rounds as warp 0 (which has the most), idle in the ones past its own.
  const bool kc = KS && p.cluster;
  int n_rounds = n_rt;
  if (kc) {
    const int u0 = WIDE ? int(blockIdx.x) / S : int(u_first) - grp;
    n_rounds = u0 < n_units ? (n_units - u0 + int(u_step) - 1) / int(u_step) : 0;
  }
  const GroupInfo G = make_group_info(w.group, w.k);
  const PairDecoder dec = make_pair_decoder(w.bits, w.is_int, w.mbits, w.bias, HALF);
  // e8_add (kFoldE8): (127 - bias - fold_shift) in both bf16 exponent fields, a kernel parameter so that the
  // multiplier's multiply-add reads it from the constant bank.
  const uint16_t* x = static_cast<const uint16_t*>(p.x);

  // 1-byte scale codes -> float (kGroup) or bf16 pair (kFold); static, so lookups need no base register.
  __shared__ __align__(16) uint32_t lut_words[256];
  float* lut = reinterpret_cast<float*>(lut_words);
  if (w.sb == 1 && MODE != kFoldE8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) {
      const float v = scale_code_value(w.scale, uint32_t(i));
      if (MODE == kFold) {  // the fused multiplier: exact in bf16 for the codes this weight holds
        const uint32_t b = __bfloat16_as_ushort(__float2bfloat16_rn(ldexpf(v, 127 - w.bias - w.fold_shift)));
        reinterpret_cast<uint32_t*>(lut)[i] = b | (b << 16);
      } else {
        lut[i] = v;
      }
    }
  }
  // slot (slot_bytes) and sreg (scale_region) come from the host: their divisions by the group size cost as much
  // as a tile.
  constexpr int HB = hi_lane_bytes(BITS);  // high-plane bytes per lane and tile
  uint8_t* ring = smem + warp * kD * slot;
  const uint32_t ring_s = static_cast<uint32_t>(__cvta_generic_to_shared(ring));
  const uint32_t bar0 = static_cast<uint32_t>(__cvta_generic_to_shared(smem + kWarps * kD * slot)) + warp * kD * 8;
  // p.x_smem (M = 1, K a multiple of 64): the activation row lives in shared memory in its natural order;
  // lane t's eight B registers of a tile are two ldmatrix.x4 whose eight row addresses all point at the same
  // 16 bytes (words 4q .. 4q + 3 of the tile: B register 2j + h of step j is word 8j + 4h + t). The row is
  // staged with ordinary loads: one bulk copy of it (measured on an H200) queues behind the weight stages the
  // warps have already issued and arrives later.
  const bool xs = FULL && NT == 1 && p.x_smem;
  uint32_t* xs_words = reinterpret_cast<uint32_t*>(smem + kWarps * kD * (slot + 8));
  const uint32_t xs_s = opaque(static_cast<uint32_t>(__cvta_generic_to_shared(xs_words)) + uint32_t(lane >> 3) * 16u);
  const uint32_t lane16 = opaque(uint32_t(lane) * 16u), g2 = opaque(uint32_t(g) * 2u);
  // KS: this split's activations, rows 0 .. NT * 8 - 1 (rows >= M repeat row M - 1), row stride xk_stride bytes
  // (16 mod 128: the eight row addresses of an ldmatrix fall in different banks). Lane address: NT == 1,
  // matrix q = lane / 8 is columns 8q.. of rows 0-7 (two steps per ldmatrix.x4); NT >= 2, matrix q is
  // columns 8 (q & 1).. of rows 8 (q >> 1).. (one step of two 8-row slices).
  const int KT = int(w.k_tiles);
  const int ks0 = KS ? KT * split / S : 0, ks1 = KS ? KT * (split + 1) / S : 0;
  const uint32_t xk_stride = uint32_t(ks1 - ks0) * 128u + 16u;
  const uint32_t xk_lane =
      opaque(static_cast<uint32_t>(__cvta_generic_to_shared(xs_words)) +
             (NT == 1 ? uint32_t(lane & 7) * xk_stride + uint32_t(lane >> 3) * 16u
                      : uint32_t((lane >> 4) * 8 + (lane & 7)) * xk_stride + uint32_t((lane >> 3) & 1) * 16u));


  float acc[RT][NT][4], part[RT][NT][4];

  // Activation rows this lane feeds into B; their values for a tile are loaded one tile ahead into registers:
  // x[nt][2j], x[nt][2j + 1] = the two B registers of step j. Lanes of rows >= M read row M - 1 instead: B's
  // column n only reaches output column n, and those outputs are never stored.
  const uint16_t* xrow[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int m = nt * 8 + g;
    xrow[nt] = x + int64_t(m < p.m ? m : int(p.m) - 1) * p.ldx + 2 * t;
  }
  auto load_x = [&](int kt, uint32_t (&dst)[NT][8]) {
    if constexpr (KS) {
      const uint32_t a = xk_lane + uint32_t(kt - ks0) * 128u;
      if constexpr (NT == 1) {
        ldmatrix_x4(a, dst[0][0], dst[0][1], dst[0][2], dst[0][3]);
        ldmatrix_x4(a + 64u, dst[0][4], dst[0][5], dst[0][6], dst[0][7]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int pp = 0; pp < NT / 2; ++pp)
            ldmatrix_x4(a + uint32_t(j) * 32u + uint32_t(pp) * 16u * xk_stride, dst[2 * pp][2 * j], dst[2 * pp][2 * j + 1],
                        dst[2 * pp + 1][2 * j], dst[2 * pp + 1][2 * j + 1]);
      }
      return;
    }
    if (xs) {
      const uint32_t a = xs_s + uint32_t(kt) * 128u;
      ldmatrix_x4(a, dst[0][0], dst[0][1], dst[0][2], dst[0][3]);
      ldmatrix_x4(a + 64u, dst[0][4], dst[0][5], dst[0][6], dst[0][7]);
      return;
    }
    const bool full = FULL || kt * 4 + 3 < G.ksteps;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const bool ok = full || kt * 4 + j < G.ksteps;
        const uint16_t* xp = xrow[nt] + kt * 64 + j * 16;
        dst[nt][2 * j] = ok ? __ldg(reinterpret_cast<const unsigned int*>(xp)) : 0u;
        dst[nt][2 * j + 1] = ok ? __ldg(reinterpret_cast<const unsigned int*>(xp + 8)) : 0u;
      }
  };

  // LA (several activation rows, FAST): a tile's activation registers are loaded two tiles ahead, step by step
  // as the previous tile frees them; loaded at the tile's start they left each warp waiting on an L2 round trip
  // per tile (at M = 16 a 4096-row weight fills only 128 CTAs of 8 warps: too few warps to hide it).
  constexpr bool LA = FULL && NT == 2 && kST % 2 == 0 && !KS;
  auto load_x_step = [&](int kt, int j, uint32_t (&dst)[NT][8]) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint16_t* xp = xrow[nt] + kt * 64 + j * 16;
      dst[nt][2 * j] = __ldg(reinterpret_cast<const unsigned int*>(xp));
      dst[nt][2 * j + 1] = __ldg(reinterpret_cast<const unsigned int*>(xp + 8));
    }
  };
  uint32_t xq[2][NT][8];

  // This warp's contiguous range of tiles, in stages of kST tiles.
  const int kt_begin = KS ? ks0 + (ks1 - ks0) * sub / P : KT * warp / kWarps,
            kt_end = KS ? ks0 + (ks1 - ks0) * (sub + 1) / P : KT * (warp + 1) / kWarps;
  const int nstages = (kt_end - kt_begin + kST - 1) / kST;
  const int total_stages = n_rt * nstages;
  // Lane 0 issues the flat stages f = 0, 1, 2, ... in order; (row-tile unit, stage) advance with it (no
  // divisions). Tile and scale offsets are 32-bit (prepare_weight_cuda checks the weight's size), the stage's copies
  // one multiply-add each from them.
  int is_f = 0, is_kt = kt_begin;
  uint32_t is_unit = u_first;
  const int sbc = SB ? SB : w.sb;
  const uint32_t rt_scale_bytes = uint32_t(w.n_groups) * 16u * uint32_t(sbc);
  auto issue = [&]() {  // lane 0 only: issues stage is_f
    if (is_f >= total_stages) return;
    const int f = is_f, kt0 = is_kt;
    const uint32_t rt_first = is_unit * RT;
    is_kt += kST;
    if (is_kt >= kt_end) is_kt = kt_begin, is_unit += u_step;
    ++is_f;
    const int ntiles = min(kST, kt_end - kt0);
    const uint32_t sl = uint32_t(f & (kD - 1));
    const uint32_t s = ring_s + sl * uint32_t(slot), bar = bar0 + sl * 8u;
    const int nr = RT == 1 ? 1 : min(RT, int(uint32_t(w.n_tiles) - rt_first));  // row tiles of this unit inside N
    uint32_t bytes = uint32_t(nr * ntiles * (512 + 32 * HB));
    int gi0 = 0, cnt = 0;
    if (MODE != kRow) {
      gi0 = FULL ? (kt0 * 4) >> G.sshift : group_of(G, kt0 * 4);
      const int last = min((kt0 + ntiles) * 4, G.ksteps) - 1;
      const int gi1 = FULL ? last >> G.sshift : group_of(G, last);
      cnt = gi1 - gi0 + 1;
      bytes += uint32_t(nr * cnt * 16 * sbc);
    }
    mbar_expect(bar, bytes);
#pragma unroll
    for (int r = 0; r < RT; ++r) {
      if (r >= nr) break;
      const uint32_t tile = (rt_first + r) * uint32_t(KT) + uint32_t(kt0);
      bulk_copy(s + r * kST * 512, w.plane4 + size_t(tile) * 512u, uint32_t(ntiles * 512), bar);
      if (BITS != 4)
        bulk_copy(s + RT * kST * 512 + r * kST * 32 * HB, w.plane_hi + size_t(tile) * (32u * HB), uint32_t(ntiles * 32 * HB), bar);
      if (MODE != kRow)
        bulk_copy(s + RT * (kST * 512 + kST * 32 * HB) + r * sreg,
                  w.scales + size_t((rt_first + r) * rt_scale_bytes + uint32_t(gi0 * 16 * sbc)), uint32_t(cnt * 16 * sbc), bar);
    }
  };
  // Lane 0 sets up its warp's barriers and issues the first stages before the CTA stages its activation row,
  // so the first weight bytes are on their way meanwhile.
  // With programmatic dependent launch this runs while the previous kernel finishes: the weights do not depend
  // on it, the activations (and the output, which it may still read) do, so everything after waits for it.
  // KS, p.split_early (FPQ_GEMV_SPLIT_EARLY; the launcher's default: 2 at M <= 8 with P > 1, else 0): 1 = the
  // ring's last stage too is issued after the activation loads (so they are ahead of it), 2 = every ring stage
  // after them and none before; the loop then refills a slot after it is consumed, not before the wait. Measured
  // on an H100 (docs/BENCHMARKS.md, 2026-12-07): 2 is 1.09x faster at 4096 x 4096, M = 8, about even at M = 16;
  // 1 0.98-1.00x.
  const int early = KS ? p.split_early : 0;
  griddep_launch_dependents();
  if (lane == 0) {
    for (int i = 0; i < kD; ++i) mbar_init(bar0 + i * 8);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    // (Issuing every stage here where a warp's stages fit its ring measured 0.91-0.96x at 4096 x 4096, M = 16:
    // the weight copies then compete with the activation staging, which is the critical path. H100, 2026-12-07.)
    for (int i = 0; i < (early == 2 ? 0 : kD - 1); ++i) issue();
  }
  griddep_wait();
  // RMSNorm prologue: y = rsqrt(mean(x^2) + eps) * (W . bf16(x * w)). Every CTA stages bf16(x * w) where the
  // plain row goes and reduces sum(x^2) from the same loads; the factor multiplies the float32 outputs. One pass
  // over the row: staging bf16(x * inv * w) needed the reduction first, a second L2 round trip after the
  // programmatic-launch wait in every CTA (docs/BENCHMARKS.md, 2026-12-06).
  // The warps' sums of squares go where the warps' results are added at the end (used there only after two
  // barriers): an array of their own (64 bytes more static shared memory in every instantiation) measured 1.5%
  // slower on the unfused decode path of bench_decode (H100, docs/BENCHMARKS.md 2026-12-06).
  __shared__ float red[KS ? 1 : kWarps][RT * NT * 4][32];
  float* rms_red = &red[0][0][0];
  if (xs && p.rms_x) {
    const float4* xv = reinterpret_cast<const float4*>(p.rms_x);
    const float4* wv = reinterpret_cast<const float4*>(p.rms_w);
    const int nv = int(w.k / 4);
    auto pack = [](float a, float b) {
      return uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(a))) | (uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(b))) << 16);
    };
    float ss = 0.0f;
    constexpr int kU = 4;  // a thread's loads in flight
    for (int v0 = threadIdx.x; v0 < nv; v0 += kU * kWarps * 32) {
      float4 a[kU], wt[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int v = v0 + u * kWarps * 32;
        if (v < nv) a[u] = xv[v], wt[u] = wv[v];
      }
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int v = v0 + u * kWarps * 32;
        if (v >= nv) break;
        ss += a[u].x * a[u].x + a[u].y * a[u].y + a[u].z * a[u].z + a[u].w * a[u].w;
        reinterpret_cast<uint2*>(xs_words)[v] =
            make_uint2(pack(a[u].x * wt[u].x, a[u].y * wt[u].y), pack(a[u].z * wt[u].z, a[u].w * wt[u].w));
      }
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xFFFFFFFFu, ss, o);
    if (lane == 0) rms_red[warp] = ss;
  } else if (xs && (reinterpret_cast<uintptr_t>(p.x) & 15) == 0) {
    // Each warp stages only its own tiles' slice of the row (the only part its ldmatrix reads), four 16-byte
    // loads in flight per lane, so no warp waits for the others' loads or a CTA barrier.
    const uint4* xv = static_cast<const uint4*>(p.x);
    uint4* d = reinterpret_cast<uint4*>(xs_words);
    const int v_end = kt_end * 8;  // 8 16-byte words per tile
    for (int v0 = kt_begin * 8 + lane; v0 < v_end; v0 += 128) {
      uint4 r[4];
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (v0 + 32 * u < v_end) r[u] = xv[v0 + 32 * u];
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (v0 + 32 * u < v_end) d[v0 + 32 * u] = r[u];
    }
  } else if (xs) {
    const uint32_t* xw = static_cast<const uint32_t*>(p.x);
    for (int i = kt_begin * 32 + lane; i < kt_end * 32; i += 32) xs_words[i] = xw[i];
  }
  if constexpr (KS) {  // the split's activations, 16 bytes at a time (the host checked the alignment)
    // (Staging them by cp.async instead, all of a thread's copies in flight and no registers between, measured
    // 1-6% slower on an H100: docs/BENCHMARKS.md, 2026-12-05; by one bulk copy per row from thread 0, 1.03-1.17x
    // slower at M 8..16, the copy engine's rate from L2 below the CTA's 512 threads' loads, 2026-12-07.)
    const int vpr = (ks1 - ks0) * 8;  // 16-byte words per row
    uint8_t* xk = reinterpret_cast<uint8_t*>(xs_words);
    auto mid = [&]() {
      if (early != 0 && lane == 0)
        for (int i = 0; i < (early == 2 ? kD : 1); ++i) issue();
    };
    if (WIDE || p.split_batch) {
      // Sixteen 16-byte loads per thread issued before the first store (one L2 round trip, not one per word;
      // the wide form's 128 KB per CTA).
      // (Each CTA starting its walk at another word, so that the CTAs ask different L2 lines at a time, measured
      // 0.98-1.01x at 4096 x 4096, M = 16: H100, 2026-12-07.)
      stage_split_rows<16, kWarps * 32>(xk, x, p.ldx, int(p.m), NT * 8, vpr, int64_t(ks0) * 64, xk_stride, mid);
    } else {  // four or fewer words per thread: four loads in flight (sixteen measured 0.97-1.00x there)
      stage_split_rows<4, kWarps * 32>(xk, x, p.ldx, int(p.m), NT * 8, vpr, int64_t(ks0) * 64, xk_stride, mid);
    }
  }
  // The lookup table, the RMSNorm row and the split's activations are the CTA's; barriers and a plain row
  // slice are the warp's own.
  if ((w.sb == 1 && MODE != kFoldE8) || (xs && p.rms_x) || KS) __syncthreads();
  else __syncwarp();
  float out_scale = 1.0f;  // the RMSNorm factor (warps' sums added in a fixed order: every CTA gets the same bits)
  if (xs && p.rms_x) {
    float tot = 0.0f;
#pragma unroll
    for (int q = 0; q < kWarps; ++q) tot += rms_red[q];
    out_scale = rsqrtf(tot / float(w.k) + p.rms_eps);
  }

  // FAST: each tile loads its activations at its start (many warps per SM hide the latency, and no copies
  // between prefetch buffers); otherwise one tile ahead.
  // One output of the row-tile unit at rt0: slot sl (row tile h, 8-row slice nt, accumulator r) of lane l.
  // Warp-uniform calls only (the SwiGLU pairs rows through a shuffle).
  auto store_out = [&](int64_t rt0, int sl, int l, float v) {
    const int h = sl / (NT * 4), nt = (sl / 4) % NT, r = sl % 4;
    int64_t n = (rt0 + h) * 16 + (l >> 2) + (r >= 2 ? 8 : 0);
    const int64_t m = nt * 8 + 2 * (l & 3) + (r & 1);
    const bool inside = n < w.n && m < p.m;
    v *= out_scale;
    v *= w.global;
    if (w.row_global && inside) v *= w.row_global[n];
    if (p.swiglu) {
      // Rows n (even: gate) and n + 1 (up) are lanes l and l + 4 of this warp.
      const float up = __shfl_down_sync(0xFFFFFFFFu, v, 4);
      if (((l >> 2) & 1) != 0) return;
      v = v / (1.0f + __expf(-v)) * up;
      n >>= 1;
    }
    if (!inside) return;
    const int64_t o = m * p.ldy + n;
    if (p.accumulate) static_cast<float*>(p.y)[o] += v;
    else if (p.ytype == kF32) static_cast<float*>(p.y)[o] = v;
    else if (p.ytype == kBF16) static_cast<__nv_bfloat16*>(p.y)[o] = __float2bfloat16_rn(v);
    else static_cast<__half*>(p.y)[o] = __float2half_rn(v);
  };
#pragma unroll 1
  for (int j = 0; j < n_rounds; ++j) {
  if (kc && j >= n_rt) {  // an idle round: only the cluster barrier of the round
    cluster_barrier();
    continue;
  }
  const uint32_t unit = u_first + uint32_t(j) * u_step;
  const int64_t rt0 = int64_t(unit) * RT;  // first row tile of this unit
#pragma unroll
  for (int h = 0; h < RT; ++h)
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) acc[h][nt][r] = part[h][nt][r] = 0.0f;
  uint32_t xn[NT][8];
  if (!FULL && nstages > 0) load_x(kt_begin, xn);
  if (LA && nstages > 0) {
    load_x(kt_begin, xq[0]);
    if (kt_begin + 1 < kt_end) load_x(kt_begin + 1, xq[1]);
  }
#pragma unroll 1
  for (int i = 0; i < nstages; ++i) {
    const int f = int(j) * nstages + i;
    if (lane == 0 && early == 0) issue();  // stage f + kD - 1
    mbar_wait(bar0 + uint32_t((f & (kD - 1)) * 8), uint32_t((f >> ring_log2) & 1));
    const uint8_t* sl = ring + (f & (kD - 1)) * slot;
    const int kt0 = kt_begin + i * kST;
    const int sc_gi0 = MODE == kRow ? 0 : FULL ? (kt0 * 4) >> G.sshift : group_of(G, kt0 * 4);
    const uint8_t* sc_base = sl + RT * (kST * 512 + kST * 32 * HB);
    const uint8_t* sl_lane = sl + lane16;
    const uint8_t* sc_g = sc_base + g2;
#pragma unroll
    for (int u = 0; u < kST; ++u) {
      const int kt = kt0 + u;
      if (u > 0 && kt >= kt_end) break;
      uint32_t xc[NT][8];
      if constexpr (LA) {  // (kt - kt_begin) & 1 == u & 1: stages hold an even number of tiles
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int q = 0; q < 8; ++q) xc[nt][q] = xq[u & 1][nt][q];
      } else if constexpr (FULL) {
        load_x(kt, xc);
      } else {
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int q = 0; q < 8; ++q) xc[nt][q] = xn[nt][q];
        if (kt + 1 < kt_end) load_x(kt + 1, xn);
      }
      WTile<BITS> cur[RT];
#pragma unroll
      for (int h = 0; h < RT; ++h) {
        const uint4 v = *reinterpret_cast<const uint4*>(sl_lane + (h * kST + u) * 512);
        cur[h].lo[0] = v.x;
        cur[h].lo[1] = v.y;
        cur[h].lo[2] = v.z;
        cur[h].lo[3] = v.w;
        const uint8_t* hp = sl + RT * kST * 512 + (h * kST + u) * 32 * HB;
        if constexpr (BITS == 8) {
          const uint4 hv = *reinterpret_cast<const uint4*>(hp + lane16);
          cur[h].hi[0] = hv.x;
          cur[h].hi[1] = hv.y;
          cur[h].hi[2] = hv.z;
          cur[h].hi[3] = hv.w;
        } else if constexpr (BITS == 6) {
          const uint2 hv = *reinterpret_cast<const uint2*>(hp + lane * 8);
          cur[h].hi[0] = hv.x;
          cur[h].hi[1] = hv.y;
        } else if constexpr (BITS == 5) {
          cur[h].hi[0] = *reinterpret_cast<const uint32_t*>(hp + lane * 4);
        } else {
          cur[h].hi[0] = 0;
        }
      }
      const int gi0 = sc_gi0;
      uint32_t m_lo[RT], m_hi[RT];  // kFold: fused multipliers of the current group, rows g and g + 8
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int kstep = kt * 4 + j;
        if (!FULL && kstep >= G.ksteps) break;
#pragma unroll
        for (int h = 0; h < RT; ++h) {
        const uint8_t* sc = sc_base + h * sreg;
        uint32_t a[4];
        if constexpr (is_fold(MODE)) {
          // A group's multipliers are loaded at its first step: FAST = 1, 2, 4 is the group's steps (tiles start
          // on group boundaries, so the slot's group index is a constant), FAST = 8 groups of 8+ steps (one per
          // tile), FAST = 0 any step.
          constexpr int LSTEP = FAST == 0 ? 1 : FAST >= 4 ? 4 : FAST;
          if (j % LSTEP == 0) {
            const int q = (FAST >= 1 && FAST <= 4) ? (u * 4 + j) / FAST : (kstep >> G.sshift) - gi0;
            const uint32_t r = *reinterpret_cast<const uint16_t*>(sc_g + h * sreg + q * 16);
            if constexpr (MODE == kFoldE8) {  // bf16 2^(code - bias - fold_shift) in both halves
              m_lo[h] = (r & 0xFFu) * 0x00800080u + e8_add;
              m_hi[h] = (r >> 8) * 0x00800080u + e8_add;
            } else {
              m_lo[h] = lut_words[r & 0xFFu];
              m_hi[h] = lut_words[r >> 8];
            }
          }
          decode_step_scaled<BITS, DEC, HALF>(dec, cur[h].lo, cur[h].hi, j, m_lo[h], m_hi[h], a);
        } else {
          decode_step<BITS, DEC, HALF>(dec, cur[h].lo, cur[h].hi, j, a);
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) mma16816<HALF>(part[h][nt], a, xc[nt][2 * j], xc[nt][2 * j + 1]);
        if constexpr (LA) {  // step j's registers are free: refill them with tile kt + 2's
          if (h == RT - 1 && kt + 2 < kt_end) load_x_step(kt + 2, j, xq[u & 1]);
        }
        if constexpr (MODE == kGroup) {
          if (FAST ? (j == 3 || FAST == 1 || (FAST == 2 && j == 1)) : step_promotes(G, kstep, j)) {
            const int q = (FULL ? kstep >> G.sshift : group_of(G, kstep)) - gi0;
            float s_lo, s_hi;
            const int sb = SB ? SB : w.sb;
            if (sb == 1) {
              const uint32_t r = *reinterpret_cast<const uint16_t*>(sc_g + h * sreg + q * 16);
              s_lo = lut[r & 0xFFu];
              s_hi = lut[r >> 8];
            } else if (sb == 2) {
              const uint32_t r = *reinterpret_cast<const uint32_t*>(sc + (q * 16 + 2 * g) * 2);
              s_lo = scale_wide_value(w.scale, r & 0xFFFFu);
              s_hi = scale_wide_value(w.scale, r >> 16);
            } else {
              const uint2 r = *reinterpret_cast<const uint2*>(sc + (q * 16 + 2 * g) * 4);
              s_lo = __uint_as_float(r.x);
              s_hi = __uint_as_float(r.y);
            }
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
              acc[h][nt][0] = fmaf(part[h][nt][0], s_lo, acc[h][nt][0]);
              acc[h][nt][1] = fmaf(part[h][nt][1], s_lo, acc[h][nt][1]);
              acc[h][nt][2] = fmaf(part[h][nt][2], s_hi, acc[h][nt][2]);
              acc[h][nt][3] = fmaf(part[h][nt][3], s_hi, acc[h][nt][3]);
#pragma unroll
              for (int r = 0; r < 4; ++r) part[h][nt][r] = 0.0f;
            }
          }
        }
        }  // row tiles of the unit
      }
    }
    __syncwarp();  // everyone is done with this slot before lane 0 refills it
    if (lane == 0 && early != 0) issue();  // stage f + kD, into this slot
  }

  if constexpr (MODE != kGroup) {
#pragma unroll
    for (int h = 0; h < RT; ++h) {
      // kFold: the products carry 2^-fold_shift (exact powers of two both ways).
      float s_lo = is_fold(MODE) ? ldexpf(1.0f, w.fold_shift) : 1.0f, s_hi = s_lo;
      const int64_t rt = min(rt0 + h, w.n_tiles - 1);
      if (MODE == kRow) {  // one scale per row: group 0 of this row tile
        const uint8_t* sp = w.scales + (rt * w.n_groups * 16 + 2 * g) * w.sb;
        if (w.sb == 1) {
          s_lo = scale_code_value(w.scale, sp[0]);
          s_hi = scale_code_value(w.scale, sp[1]);
        } else if (w.sb == 2) {
          s_lo = scale_wide_value(w.scale, uint32_t(sp[0]) | (uint32_t(sp[1]) << 8));
          s_hi = scale_wide_value(w.scale, uint32_t(sp[2]) | (uint32_t(sp[3]) << 8));
        } else {
          s_lo = __uint_as_float(*reinterpret_cast<const uint32_t*>(sp));
          s_hi = __uint_as_float(*reinterpret_cast<const uint32_t*>(sp + 4));
        }
      }
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        acc[h][nt][0] = part[h][nt][0] * s_lo;
        acc[h][nt][1] = part[h][nt][1] * s_lo;
        acc[h][nt][2] = part[h][nt][2] * s_hi;
        acc[h][nt][3] = part[h][nt][3] * s_hi;
      }
    }
  }

  if constexpr (KS) {
    constexpr int kSl = RT * NT * 4;
    // The buffer after the largest split's activations (the same offset in every CTA of a cluster): a group's
    // sums, the cluster form's partial sums or the last split's flag, one at a time (never both forms on).
    float* const after_x =
        reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(xs_words) + NT * 8 * (uint32_t((KT + S - 1) / S) * 128u + 16u));
    // FPQ_GEMV_SPLIT_LAST: the last split's whole group adds the splits' partial sums (global-memory form only).
    const bool last_group = P > 1 && S > 1 && !kc && p.split_last;
    if (P > 1) {
      // Every warp of a group but warp 0 (at S = 1 every warp) leaves its sums in shared memory, after the largest
      // split's activations, where the cluster form keeps its buffers: the two are never both on.
      // S = 1 (the whole K range in this CTA): warp `sub` adds slots sub, sub + P, ... over the group's warps in
      // warp order and stores them, so the group's stores run in parallel and each warp runs the store code of
      // one slot. (Warp 0 adding the others' sums and storing every slot, the form S > 1 keeps, put 17% of the
      // 4096 x 4096, M = 16 kernel's stall samples there; spreading them was 1.07-1.09x faster. H100, 2026-12-07.)
      // S > 1: warp 0 adds them in warp order and goes on as the unit's only warp.
      // The second barrier frees the buffer for the group's next round.
      const bool spread = S == 1 && !kc;
      if (spread || sub != 0) {
#pragma unroll
        for (int h = 0; h < RT; ++h)
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int r = 0; r < 4; ++r) after_x[warp * (kSl * 32) + ((h * NT + nt) * 4 + r) * 32 + lane] = acc[h][nt][r];
      }
      named_barrier_sync(1 + grp, P * 32);
      const float* g0 = after_x + (grp * P) * (kSl * 32) + lane;  // the group's warp 0
      if (spread) {
#pragma unroll 1
        for (int sl = sub; sl < kSl; sl += P) {  // warp-uniform
          float v = 0.0f;
          for (int q = 0; q < P; ++q) v += g0[q * (kSl * 32) + sl * 32];
          store_out(rt0, sl, lane, v);
        }
      } else if (sub == 0) {
        for (int q = 1; q < P; ++q)
#pragma unroll
          for (int h = 0; h < RT; ++h)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
              for (int r = 0; r < 4; ++r) acc[h][nt][r] += g0[q * (kSl * 32) + ((h * NT + nt) * 4 + r) * 32];
      }
      named_barrier_sync(1 + grp, P * 32);
      if (spread || (sub != 0 && !last_group)) continue;
    }
    if (kc) {
      // The split's partial sums -> this CTA's buffer [round & 1][warp][slot][lane] (after the split's
      // activations); after the cluster barrier, CTA `split` adds slots split, split + S, ... over the cluster's
      // CTAs in split order (the bits of the global-memory form) and stores them. Two buffers: a round's writes
      // cannot reach a buffer still being read, since every CTA passed this round's barrier after its reads.
      float* mine = after_x + ((j & 1) * kWarps + warp) * (kSl * 32);
#pragma unroll
      for (int h = 0; h < RT; ++h)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int r = 0; r < 4; ++r) mine[((h * NT + nt) * 4 + r) * 32 + lane] = acc[h][nt][r];
      cluster_barrier();
      const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(mine)) + uint32_t(lane) * 4u;
      for (int sl = split; sl < kSl; sl += S) {  // warp-uniform
        float t[8];
#pragma unroll
        for (int q = 0; q < 8; ++q)
          if (q < S) t[q] = load_cluster_f32(base + uint32_t(sl * 32) * 4u, uint32_t(q));
        float v = 0.0f;
#pragma unroll
        for (int q = 0; q < 8; ++q)
          if (q < S) v += t[q];
        store_out(rt0, sl, lane, v);
      }
      continue;
    }
    if (S == 1) {  // the whole K range: nothing to add
#pragma unroll
      for (int h = 0; h < RT; ++h)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int r = 0; r < 4; ++r) store_out(rt0, (h * NT + nt) * 4 + r, lane, acc[h][nt][r]);
      continue;
    }
    // This split's partial sums -> p.ws[unit][split][lane][slot]; the unit's last warp adds the splits in order.
    float* wsu = p.ws + size_t(unit) * size_t(S) * (kSl * 32);
    uint32_t before = 0;
    if (P == 1 || sub == 0) {
      float4* dst = reinterpret_cast<float4*>(wsu + (size_t(split) * 32 + lane) * kSl);
#pragma unroll
      for (int h = 0; h < RT; ++h)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          __stcg(dst + h * NT + nt, make_float4(acc[h][nt][0], acc[h][nt][1], acc[h][nt][2], acc[h][nt][3]));
      __threadfence();
      __syncwarp();
      if (lane == 0) before = atomicAdd(p.counters + unit, 1u);
      before = __shfl_sync(0xFFFFFFFFu, before, 0);
    }
    if (last_group) {
      // FPQ_GEMV_SPLIT_LAST (default at M > 8, launch_split_rt): the last split's whole group adds the splits,
      // warp `sub` taking slot quads sub, sub + P, ... (split order per slot, as below), so its stores run in
      // parallel as at S = 1. Warp 0 passes the counter's answer through the group's shared-memory buffer (free
      // since the group's second barrier); the second barrier here frees it again.
      volatile uint32_t* flag = reinterpret_cast<volatile uint32_t*>(after_x + (grp * P) * (kSl * 32));
      if (sub == 0 && lane == 0) *flag = before;
      named_barrier_sync(1 + grp, P * 32);
      before = *flag;
      named_barrier_sync(1 + grp, P * 32);
      if (before != uint32_t(S - 1)) continue;
      __threadfence();
#pragma unroll 1
      for (int qd = sub; qd < kSl / 4; qd += P) {  // warp-uniform
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int q = 0; q < S; ++q) {
          const float4 t = __ldcg(reinterpret_cast<const float4*>(wsu + (size_t(q) * 32 + lane) * kSl) + qd);
          v.x += t.x;
          v.y += t.y;
          v.z += t.z;
          v.w += t.w;
        }
        store_out(rt0, 4 * qd, lane, v.x);
        store_out(rt0, 4 * qd + 1, lane, v.y);
        store_out(rt0, 4 * qd + 2, lane, v.z);
        store_out(rt0, 4 * qd + 3, lane, v.w);
      }
      if (sub == 0 && lane == 0) p.counters[unit] = 0u;  // every split has arrived: zero for the next launch
      continue;
    }
    if (before != uint32_t(S - 1)) continue;
    __threadfence();
    float v[kSl];
#pragma unroll
    for (int i = 0; i < kSl; ++i) v[i] = 0.0f;
    for (int q0 = 0; q0 < S; q0 += 4) {  // four splits' loads in flight, added in split order
      float4 t[4][kSl / 4];
#pragma unroll
      for (int d = 0; d < 4; ++d)
#pragma unroll
        for (int i = 0; i < kSl / 4; ++i)
          if (q0 + d < S) t[d][i] = __ldcg(reinterpret_cast<const float4*>(wsu + (size_t(q0 + d) * 32 + lane) * kSl) + i);
#pragma unroll
      for (int d = 0; d < 4; ++d)
#pragma unroll
        for (int i = 0; i < kSl / 4; ++i)
          if (q0 + d < S) {
            v[4 * i] += t[d][i].x;
            v[4 * i + 1] += t[d][i].y;
            v[4 * i + 2] += t[d][i].z;
            v[4 * i + 3] += t[d][i].w;
          }
    }
#pragma unroll
    for (int sl = 0; sl < kSl; ++sl) store_out(rt0, sl, lane, v[sl]);
    if (lane == 0) p.counters[unit] = 0u;  // every split has arrived: zero for the next launch
    continue;
  }
  // Sum the warps' results in a fixed order (the first barrier: everyone is done reading the previous row
  // tile's sums).
  __syncthreads();
#pragma unroll
  for (int h = 0; h < RT; ++h)
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) red[warp][(h * NT + nt) * 4 + r][lane] = acc[h][nt][r];
  __syncthreads();
  for (int e = threadIdx.x; e < RT * NT * 4 * 32; e += blockDim.x) {
    const int sl = e / 32, l = e % 32;
    float v = 0.0f;
#pragma unroll
    for (int q = 0; q < kWarps; ++q) v += red[q][sl][l];
    store_out(rt0, sl, l, v);  // the loop is warp-uniform
  }
  }  // row tiles
  if (kc) cluster_barrier();  // no CTA leaves while the others may still read its shared memory
}

// Per-instantiation launch state (a function-local static of the launcher): the dynamic shared-memory limit
// already raised and up to four cached occupancy queries. Racing threads store the same values.
struct LaunchCache {
  int done = 0;
  size_t sizes[4] = {0, 0, 0, 0};
  int blocks[4] = {0, 0, 0, 0};
  size_t cl_smem = 0;  // cluster_count's last query: shared memory, cluster size, answer
  unsigned cl_x = 0;
  int cl_n = 0;
};
// One LaunchCache per device: the shared-memory limit is an attribute of the kernel in each device's context
// (raised on one GPU only, a launch on a second one failed) and the occupancy answers are the device's.
struct DeviceLaunchCaches {
  static constexpr int kDevices = 16;
  LaunchCache per[kDevices];
  LaunchCache& current() {
    const int dev = current_device();
    if (dev >= 0 && dev < kDevices) return per[dev];
    static thread_local LaunchCache uncached;  // beyond 16 devices: asked afresh every launch
    uncached = LaunchCache{};
    return uncached;
  }
};

// Raises a kernel's dynamic shared-memory limit once (the host call costs about a microsecond per launch).
template <typename K>
void ensure_smem(K kernel, size_t smem, LaunchCache& c) {
  if (int(smem) <= c.done) return;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), "cudaFuncSetAttribute");
  c.done = int(smem);
}

// CTAs per SM of an instantiation at a shared-memory size (cached: the query costs microseconds).
template <typename K>
int blocks_per_sm(K kernel, int threads, size_t smem, LaunchCache& c) {
  int i = 0;
  for (; i < 4 && c.blocks[i] > 0; ++i)
    if (c.sizes[i] == smem) return c.blocks[i];
  int b = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, threads, smem), "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  b = b > 0 ? b : 1;
  if (i == 4) i = 3;  // (a launcher asks about at most three sizes)
  c.sizes[i] = smem;
  c.blocks[i] = b;
  return b;
}

// cluster_capacity (device_common.cuh), cached per instantiation: the query costs microseconds.
template <typename K>
int cluster_count(K kernel, int threads, size_t smem, unsigned cluster_x, LaunchCache& c) {
  if (c.cl_x != cluster_x || c.cl_smem != smem) {
    c.cl_n = cluster_capacity(kernel, dim3(unsigned(threads)), smem, dim3(cluster_x));
    c.cl_smem = smem;
    c.cl_x = cluster_x;
  }
  return c.cl_n;
}

// Tuning knobs for before / after runs on a GPU without a rebuild (read once; unset: the measured defaults).
//   FPQ_GEMV_RING_KB    ring budget per CTA in KB (default 110 for 4-bit codes, so that two 16-warp CTAs share an
//                       SM, else 200); when set, up to 8 stages per warp instead of 4
//   FPQ_GEMV_RT2_TILES  row tiles per SM from which M <= 8 runs two row tiles per 8-warp CTA (default 8)
//   FPQ_GEMV_SPLIT      0: M >= 2 without the split kernel (default 1: with it where it applies)
//   FPQ_GEMV_SPLIT_M    smallest M for the split kernel (default 5)
//   FPQ_GEMV_SPLIT_S    K splits of the split kernel, a power of two (default 0: chosen per shape)
//   FPQ_GEMV_SPLIT_CLUSTER  0: the split kernel's partial sums meet in global memory (default 1: in a cluster's
//                       shared memory for M 17..32 where S <= 8 and the ring keeps two stages; 2: for M 5..16 too)
//   FPQ_GEMV_SPLIT_CLUSTER_CAP  0: the cluster form's grid not capped at the clusters the device runs at once
//   FPQ_GEMV_SPLIT_WIDE 0: the split kernel always as two 8-warp CTAs per SM; 2: always as one 16-warp CTA per
//                       SM where the split's activations fit (tests); default 1: where it needs fewer splits
//   FPQ_GEMV_SPLIT_BATCH 0: the two-CTA split form stages its activations one 16-byte load per thread at a time;
//                       1: sixteen in flight, as the wide form always does; default: 1 where a thread copies more
//                       than four words
//   FPQ_GEMV_SPLIT_EARLY 0: the split kernel issues all but one ring stage before staging its activations;
//                       1: the last one after the activation loads; 2: all of them after; default: 2 at M <= 8
//                       with groups of warps per unit (FPQ_GEMV_SPLIT_P), else 0
//   FPQ_GEMV_SPLIT_LAST 1: at S > 1 with warp groups, the last split's whole group adds the splits' sums and
//                       stores them, a share of the slots each; 0: its first warp alone; default: 1 at M > 8
//   FPQ_GEMV_SPLIT_P    warps per row-tile unit of the split kernel, 1, 2, 4, 8 or 16; 0: more than one where
//                       that needs fewer K splits (plan_split, the default)
//   FPQ_GEMV_SLOT_PAD   bytes added to the end of every ring slot (default 0)
//   FPQ_GEMV_SREG_PAD   bytes added to each row tile's scale region in a slot (default 0)
//   FPQ_GEMV_ROW6       0: 6-bit codes keep their full ring at M = 1, so the activation row stays in global memory
//                       where it does not fit beside it (always, for codes without the fused fold); default 1:
//                       the ring halved to make room for the row
// The split kernel's warps per unit unless FPQ_GEMV_SPLIT_P says otherwise: the per-shape rule (plan_split).
constexpr int kSplitWarpsDefault = 0;
int tuning_knob(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "bad %s=%s (an integer from %d to %d expected)", name, v, lo, hi);
    fail_message(msg);
  }
  return int(x);
}
int pow2_knob(const char* name, int fallback, int lo, int hi, const char* bad) {  // 0 or a power of two
  const int x = tuning_knob(name, fallback, lo, hi);
  if ((x & (x - 1)) != 0) fail_message(bad);
  return x;
}
struct Tuning {
  int ring_kb = tuning_knob("FPQ_GEMV_RING_KB", -1, 8, 200);
  int rt2_tiles = tuning_knob("FPQ_GEMV_RT2_TILES", 8, 0, 1 << 20);
  int split = tuning_knob("FPQ_GEMV_SPLIT", 1, 0, 1);
  int split_m = tuning_knob("FPQ_GEMV_SPLIT_M", 5, 2, 33);
  int split_s = tuning_knob("FPQ_GEMV_SPLIT_S", 0, 0, 64);
  int split_cluster = tuning_knob("FPQ_GEMV_SPLIT_CLUSTER", 1, 0, 2);
  int split_cluster_cap = tuning_knob("FPQ_GEMV_SPLIT_CLUSTER_CAP", 1, 0, 1);
  int split_wide = tuning_knob("FPQ_GEMV_SPLIT_WIDE", 1, 0, 2);
  int split_batch = tuning_knob("FPQ_GEMV_SPLIT_BATCH", -1, 0, 1);
  int split_early = tuning_knob("FPQ_GEMV_SPLIT_EARLY", -1, 0, 2);
  int split_last = tuning_knob("FPQ_GEMV_SPLIT_LAST", -1, 0, 1);
  int split_p = pow2_knob("FPQ_GEMV_SPLIT_P", kSplitWarpsDefault, 0, 16, "bad FPQ_GEMV_SPLIT_P (0, 1, 2, 4, 8 or 16 expected)");
  int slot_pad = tuning_knob("FPQ_GEMV_SLOT_PAD", 0, 0, 4096) / 16 * 16;
  int sreg_pad = tuning_knob("FPQ_GEMV_SREG_PAD", 0, 0, 4096) / 16 * 16;
  int row6 = tuning_knob("FPQ_GEMV_ROW6", 1, 0, 1);
  int row5 = tuning_knob("FPQ_GEMV_ROW5", 0, 0, 1);  // 5-bit codes as 6-bit ones: not yet measured, so off
};
const Tuning& tuning() {
  static const Tuning t;
  return t;
}

// One stage of a warp's weight ring: its data bytes (codes, high planes, scales), where the scales start, and
// the slot it occupies (data + its barrier's 8 bytes).
struct RingStage {
  int data = 0, sreg = 0;
  size_t slot = 0;
};
template <int BITS, int MODE, int RT, bool ONE>
RingStage ring_stage(const GemvParams& p) {
  RingStage r;
  r.sreg = scale_region(p.w.group, p.w.sb, stage_tiles(BITS, is_fold(MODE), ONE)) + tuning().sreg_pad;
  r.data = slot_bytes(BITS, p.w.group, p.w.sb, RT, is_fold(MODE), ONE) + RT * tuning().sreg_pad + tuning().slot_pad;
  r.slot = size_t(r.data) + 8;
  return r;
}
// log2 of the stages per warp: the largest lg <= lg_max whose ring (warps x 2^lg slots) plus `extra` bytes fits
// in budget_kb; 0 (one stage) if none does.
int ring_log2(int warps, size_t slot, size_t extra, int budget_kb, int lg_max) {
  int lg = lg_max;
  while (lg > 0 && size_t(warps) * (size_t(1) << lg) * slot + extra > size_t(budget_kb) * 1024) --lg;
  return lg;
}
template <typename K>
void start_kernel(K kernel, int64_t grid, int warps, size_t smem, CUstream_st* stream, const GemvParams& p, int lg,
                 const RingStage& r, const char* what) {
  check(launch_kernel_clustered(kernel, dim3(unsigned(grid)), dim3(warps * 32), smem, stream, p.pdl != 0,
                                dim3(p.cluster ? unsigned(p.splits) : 1u), p, lg, r.data, r.sreg,
                                uint32_t(127 - p.w.bias - p.w.fold_shift) * 0x00800080u),
        what);
}

// 6- and 5-bit codes take the activation row (and, where it costs CTAs, the half ring) per FPQ_GEMV_ROW6/ROW5.
bool row_by_knob(int bits) { return (bits == 6 && tuning().row6 != 0) || (bits == 5 && tuning().row5 != 0); }

// The M = 1 paths that stage the activation row in shared memory.
bool row_smem_kind(int fast, int nt, int bits, bool fold) {
  return fast != 0 && nt == 1 && (bits == 4 || bits == 8 || (bits == 6 && fold) || row_by_knob(bits));
}
inline bool row_smem_path(int fast, int nt, int bits, bool fold, const GemvParams& p) {
  return row_smem_kind(fast, nt, bits, fold) && p.m == 1 && p.ldx % 2 == 0;
}

template <int BITS, int DEC, bool HALF, int NT, int MODE, int FAST, int SB, int RT, int W>
void launch_rt(GemvParams p, CUstream_st* stream) {
  const RingStage rs = ring_stage<BITS, MODE, RT, NT == 1>(p);
  // Up to 4 stages in flight per warp, fewer where the ring would stop two CTAs sharing an SM (4-bit: 2
  // stages of 4 tiles) or exceed 200 KB.
  const int budget_kb = tuning().ring_kb >= 0 ? tuning().ring_kb : BITS == 4 ? 110 : 200;
  const int lg = ring_log2(W, rs.slot, 0, budget_kb, tuning().ring_kb >= 0 ? 3 : 2);
  int lg_run = lg;
  const size_t ring = size_t(W) * (size_t(1) << lg) * rs.slot;
  const auto kernel = gemv_kernel<BITS, DEC, HALF, NT, W, MODE, FAST, SB, RT>;
  static DeviceLaunchCaches caches;  // per instantiation
  LaunchCache& cache = caches.current();
  size_t smem = ring;
  int per_sm = 0;
  p.x_smem = 0;
  if (row_smem_path(FAST, NT, BITS, is_fold(MODE), p)) {
    // One activation row in shared memory, unless it costs CTAs per SM (measured on an H200: 4- and 8-bit codes
    // gain up to 1.2x and 1.1x at M = 1; 5- and 6-bit codes, with their larger rings, 0.96-1.02x: left out).
    // The RMSNorm prologue needs the row there.
    const size_t with_x = ring + size_t(p.w.k) * 2;
    if (with_x <= 200 * 1024) {
      ensure_smem(kernel, with_x, cache);
      const int b_ring = blocks_per_sm(kernel, W * 32, ring, cache);
      const int b_x = blocks_per_sm(kernel, W * 32, with_x, cache);
      // 6-bit codes: where the row costs CTAs per SM, a ring of half the stages next to it keeps them (4096 x
      // 14336 fp6_e3m2: 4 stages of 1.5 KB per warp without the row, 2 with it); 5-bit codes the same under
      // FPQ_GEMV_ROW5=1.
      const bool halve = b_x < b_ring && row_by_knob(BITS) && lg >= 2 && tuning().ring_kb < 0;
      const size_t half_x = ring / 2 + size_t(p.w.k) * 2;
      const int b_half = halve ? blocks_per_sm(kernel, W * 32, half_x, cache) : 0;
      if (halve && b_half >= b_ring) smem = half_x, p.x_smem = 1, per_sm = b_half, lg_run = lg - 1;
      else if (b_x >= b_ring || p.rms_x) smem = with_x, p.x_smem = 1, per_sm = b_x;
    }
  }
  if (p.rms_x && !p.x_smem) fail_message("decode kernel: the RMSNorm prologue needs the activation row in shared memory (K too large for it)");
  ensure_smem(kernel, smem, cache);
  if (per_sm == 0) per_sm = blocks_per_sm(kernel, W * 32, smem, cache);
  const int64_t grid = std::min<int64_t>((p.w.n_tiles + RT - 1) / RT, int64_t(per_sm) * sm_count());
  start_kernel(kernel, grid, W, smem, stream, p, lg_run, rs, "gemv_kernel launch");
}

// The split kernel (KS) for M >= FPQ_GEMV_SPLIT_M (5): false where it does not apply (activation rows not
// 16-byte aligned, the RMSNorm prologue, a split's activations over what the CTA form leaves them).
// S (a power of two) grows while the (row-tile unit, split) pairs stay under one per warp slot (16 per SM),
// each split keeps at least 4 tiles, and until the split's activations fit: in 60 KB for two 8-warp CTAs per
// SM (the ring takes what they leave); in what a ring of two stages leaves of 220 KB for the WIDE form, one
// 16-warp CTA per SM. WIDE is taken where it needs fewer splits and every warp gets at most one unit (28672 x
// 4096 at M 5..16: S = 1, no partial sums at all, where two 8-warp CTAs needed S = 2 or 4 for their 60 KB).
struct SplitPlan {
  int64_t s = 1;
  bool wide = false;
  int p = 1;  // warps per unit (GemvParams::split_warps)
};
// Shared memory for one K split's activations: NT x 8 rows of ceil(KT / s) tiles (128 bytes each), 16 bytes of
// row padding.
size_t split_x_bytes(int nt, int64_t kt, int64_t s) { return size_t(nt * 8) * size_t(((kt + s - 1) / s) * 128 + 16); }
// Shared memory where the warps of a unit's group add their sums (split_warps > 1): a float per lane and slot
// for every warp of the CTA.
size_t split_group_bytes(int nt, int warps, int p) { return p > 1 ? size_t(warps) * size_t(nt * 4 * 32) * sizeof(float) : 0; }
// The plan for P warps per unit (P = 1: each warp a unit of its own).
template <int NT>
SplitPlan plan_split_warps(const GemvParams& p, size_t slot_wide, int P) {
  const int64_t KT = p.w.k_tiles, units = p.w.n_tiles;
  const int64_t slots = int64_t(16) * sm_count();
  auto x_bytes = [&](int64_t s, int warps) { return split_x_bytes(NT, KT, s) + split_group_bytes(NT, warps, P); };
  int64_t s0 = 1;
  while (2 * s0 * units * P <= slots && KT / (2 * s0 * P) >= 4) s0 *= 2;
  auto grow = [&](int64_t s, size_t budget, int warps) {
    while (x_bytes(s, warps) > budget && KT / (2 * s * P) >= 2) s *= 2;
    return s;
  };
  const size_t wide_budget = size_t(220 * 1024) > 16 * 2 * slot_wide ? size_t(220 * 1024) - 16 * 2 * slot_wide : 0;
  SplitPlan narrow{grow(s0, 60 * 1024, 8), false, P}, wide{grow(s0, wide_budget, 16), true, P};
  if (tuning().split_s > 0) narrow.s = wide.s = std::min<int64_t>(tuning().split_s, KT);
  // Every warp of a unit's group needs a tile of the split.
  const bool narrow_ok = P <= 8 && KT >= narrow.s * P && x_bytes(narrow.s, 8) <= 60 * 1024;
  const bool wide_ok = KT >= wide.s * P && x_bytes(wide.s, 16) <= wide_budget;
  const int knob = tuning().split_wide;
  if (wide_ok && (knob == 2 || (knob == 1 && (!narrow_ok || (wide.s < narrow.s && wide.s * units * P <= slots)))))
    return wide;
  if (narrow_ok) return narrow;
  return SplitPlan{0, false, 1};  // no split form fits
}
// Groups of P > 1 warps per unit where they need fewer K splits than P = 1 (fewer partial sums through L2: at
// 4096 x 4096, M = 16, S = 8 -> S = 1 with P = 8, every warp still 8 tiles) and every group still finds a warp
// slot of the GPU (16 per SM) in one round. Measured on an H100 (docs/BENCHMARKS.md, 2026-12-07): 4096 x 4096
// 1.01-1.27x faster at M 8..32 over all weight formats; 4096 x 14336 (P = 2, S = 4 instead of S = 8) 0.97-1.10x;
// 28672 x 4096 (S = 1 already) unchanged.
template <int NT>
SplitPlan plan_split(const GemvParams& p, size_t slot_wide) {
  const int knob = tuning().split_p;
  if (knob > 0) return plan_split_warps<NT>(p, slot_wide, knob);
  SplitPlan best = plan_split_warps<NT>(p, slot_wide, 1);
  const int64_t slots = int64_t(16) * sm_count(), units = p.w.n_tiles;
  for (int P = 2; P <= 16 && best.s > 1; P *= 2) {
    const SplitPlan c = plan_split_warps<NT>(p, slot_wide, P);
    if (c.s > 0 && c.s < best.s && units * c.s * P <= slots) best = c;
  }
  return best;
}
template <int BITS, int DEC, bool HALF, int NT, int MODE, int FAST, int SB, int RT, int W>
bool launch_split_rt(GemvParams p, int64_t S, int P, CUstream_st* stream) {
  constexpr int kSl = RT * NT * 4;
  const int64_t KT = p.w.k_tiles, units = (p.w.n_tiles + RT - 1) / RT;
  // Cluster form (8-warp CTAs, S <= 8, a portable cluster size): the S splits of a row tile are a cluster's
  // CTAs, and their partial sums meet in shared memory (two buffers of W x kSl x 32 floats per CTA) instead of
  // global memory, a fence and a counter per row tile.
  // Measured on an H100 (docs/BENCHMARKS.md, 2026-12-06): a win at M 17..32 (kSl = 16: the global form moved
  // units x S x 2 KB through L2, 29 MB at 28672 x 4096), none at M <= 16; and only while the buffers leave the
  // ring two stages (6-bit codes, one stage: slower).
  const RingStage rs = ring_stage<BITS, MODE, RT, (W >= 16)>(p);
  const auto kernel = gemv_kernel<BITS, DEC, HALF, NT, W, MODE, FAST, SB, RT, true>;
  static DeviceLaunchCaches caches;  // per instantiation
  LaunchCache& cache = caches.current();
  const int budget_kb = W >= 16 ? 220 : 110;
  auto smem_of = [&](bool cl, int& lg_out) {  // the split's activations (+ the cluster buffers) and the ring
    const size_t x = split_x_bytes(NT, KT, S) + (cl ? size_t(2 * W * kSl * 32) * sizeof(float) : split_group_bytes(NT, W, P));
    lg_out = ring_log2(W, rs.slot, x, budget_kb, 2);
    return size_t(W) * (size_t(1) << lg_out) * rs.slot + x;
  };
  int lg = 0, n_clusters = 0;
  bool cluster = W == 8 && S > 1 && S <= 8 && P == 1 && (NT == 4 ? tuning().split_cluster != 0 : tuning().split_cluster == 2);
  if (cluster) {
    const size_t sc = smem_of(true, lg);
    cluster = lg >= 1;  // two ring stages left
    if (cluster) {  // and a device that can co-schedule the cluster's CTAs (not, e.g., a small MIG slice)
      ensure_smem(kernel, sc, cache);
      n_clusters = cluster_count(kernel, W * 32, sc, unsigned(S), cache);
      cluster = n_clusters > 0;
    }
  }
  const size_t smem = smem_of(cluster, lg);
  ensure_smem(kernel, smem, cache);
  const int per_sm = blocks_per_sm(kernel, W * 32, smem, cache);
  // WIDE: as many CTAs per split as units (up to the GPU's), its warps spread over them (the kernel's mapping).
  const int64_t ctas_per_split =
      std::max<int64_t>(1, std::min<int64_t>(W >= 16 ? units : (units + W / P - 1) / (W / P), int64_t(per_sm) * sm_count() / S));
  p.x_smem = 0;
  p.splits = int(S);
  p.split_warps = P;
  p.cluster = cluster ? 1 : 0;
  // Batched staging where a thread copies more than four 16-byte words (4096 x 14336 at M 8..16: 1.01-1.04x);
  // at four or fewer (4096 x 4096) it measured 0.97-1.00x (H100, docs/BENCHMARKS.md 2026-12-06).
  const int64_t words_per_thread = int64_t(NT * 8) * ((KT + S - 1) / S) * 8 / (W * 32);
  p.split_batch = tuning().split_batch >= 0 ? tuning().split_batch : words_per_thread > 4 ? 1 : 0;
  // Ring stages after the activation loads at M <= 8 where groups of warps share a unit (each warp's weight
  // stream 1/P of the row tile's, so the activation staging is the critical path): M = 8 1.09x at 4096 x 4096
  // (P = 8), 1.05x at 14336 x 4096 and 1.01x at 4096 x 14336 (P = 2); with P = 1 (28672 x 4096) 4-bit codes lost
  // 4.5%, and at M = 12..16 it measured 0.97-1.03x per format (H100, docs/BENCHMARKS.md 2026-12-07).
  p.split_early = tuning().split_early >= 0 ? tuning().split_early : NT == 1 && P > 1 ? 2 : 0;
  // The last split's whole group adds the splits' sums at M > 8 (the kernel takes it where S > 1 and P > 1):
  // 4096 x 14336 at M = 12 / 16 (S = 4, P = 2) 1.02-1.03x for 4-bit codes, 1.02-1.03x for 6-bit; at M = 8 it
  // measured 0.98-1.00x, so M <= 8 keeps warp 0 alone (H100, docs/BENCHMARKS.md 2026-12-07 19:21 UTC).
  p.split_last = tuning().split_last >= 0 ? tuning().split_last : NT > 1 ? 1 : 0;
  if (cluster) {
    // No more clusters than run at once: CTAs loop over their units, and a second wave of clusters would run
    // after the first one's last round (the SM count per GPC limits clusters below CTAs per SM x SMs / S).
    const int64_t cl = tuning().split_cluster_cap != 0 ? std::min<int64_t>(ctas_per_split, n_clusters) : ctas_per_split;
    start_kernel(kernel, cl * S, W, smem, stream, p, lg, rs, "gemv_kernel (split, clusters) launch");
    return true;
  }
  SplitScratch scratch{};
  if (S > 1) {  // S = 1 stores its sums directly
    const size_t ws_bytes = size_t(units) * size_t(S) * kSl * 32 * sizeof(float);
    const size_t counter_bytes = (size_t(units) * sizeof(unsigned) + 255) / 256 * 256;
    scratch = split_scratch(stream, counter_bytes, ws_bytes);
    p.counters = scratch.counters;
    p.ws = scratch.ws;
  }
  start_kernel(kernel, ctas_per_split * S, W, smem, stream, p, lg, rs, "gemv_kernel (split) launch");
  if (scratch.owned) check(cudaFreeAsync(scratch.mem, stream), "cudaFreeAsync");
  return true;
}
// (RT = 2, two row tiles per warp unit, measured on an H200 at M = 12 and 16: 1.4-1.7x slower at 4096 rows,
// 1.02-1.1x faster at 28672: not kept.)
template <int BITS, int DEC, bool HALF, int NT, int MODE, int FAST, int SB>
bool launch_split(const GemvParams& p, CUstream_st* stream) {
  if (tuning().split == 0 || p.m < tuning().split_m || p.rms_x) return false;
  if ((reinterpret_cast<uintptr_t>(p.x) & 15) != 0 || p.ldx % 8 != 0) return false;
  const SplitPlan plan = plan_split<NT>(p, ring_stage<BITS, MODE, 1, true>(p).slot);
  if (plan.s == 0) return false;
  if (plan.wide) return launch_split_rt<BITS, DEC, HALF, NT, MODE, FAST, SB, 1, 16>(p, plan.s, plan.p, stream);
  return launch_split_rt<BITS, DEC, HALF, NT, MODE, FAST, SB, 1, 8>(p, plan.s, plan.p, stream);
}

// (One row tile per CTA runs 16 warps: 8 warps measured 19.8 us against 17.1 for 4096x14336 mxfp4 at M = 1 on an
// H200, 19.9 against 12.3 chained.)
// Two row tiles per activation fragment at M <= 16 (M <= 8 only when there are enough row tiles to fill the
// GPU with 8-warp CTAs; otherwise one row tile per 16-warp CTA keeps more warps busy).
template <int BITS, int DEC, bool HALF, int NT, int MODE, int FAST, int SB>
void launch_full(const GemvParams& p, CUstream_st* stream) {
  if constexpr (FAST != 0)
    if (launch_split<BITS, DEC, HALF, NT, MODE, FAST, SB>(p, stream)) return;
  if constexpr (NT == 2) {
    launch_rt<BITS, DEC, HALF, NT, MODE, FAST, SB, 2, 8>(p, stream);
  } else if constexpr (NT == 1) {
    if (p.w.n_tiles >= tuning().rt2_tiles * int64_t(sm_count())) launch_rt<BITS, DEC, HALF, NT, MODE, FAST, SB, 2, 8>(p, stream);
    else launch_rt<BITS, DEC, HALF, NT, MODE, FAST, SB, 1, 16>(p, stream);
  } else {
    launch_rt<BITS, DEC, HALF, NT, MODE, FAST, SB, 1, 8>(p, stream);
  }
}

template <int BITS, int DEC, bool HALF, int NT, int MODE>
void launch_one(const GemvParams& p, CUstream_st* stream) {
  const int spg = p.w.group / 16;
  const bool pow2 = p.w.group % 16 == 0 && (spg & (spg - 1)) == 0;
  if constexpr (!HALF) {
    if (p.w.k % 64 == 0) {
      if constexpr (MODE == kRow) {
        return launch_full<BITS, DEC, HALF, NT, MODE, 4, 0>(p, stream);
      } else if constexpr (is_fold(MODE)) {
        if (pow2 && spg == 1) return launch_full<BITS, DEC, HALF, NT, MODE, 1, 1>(p, stream);
        if (pow2 && spg == 2) return launch_full<BITS, DEC, HALF, NT, MODE, 2, 1>(p, stream);
        if (pow2 && spg == 4) return launch_full<BITS, DEC, HALF, NT, MODE, 4, 1>(p, stream);
        if (pow2) return launch_full<BITS, DEC, HALF, NT, MODE, 8, 1>(p, stream);
      } else {
        const int fast = !pow2 ? 0 : spg == 1 ? 1 : spg == 2 ? 2 : 4;
        if (fast && p.w.sb == 1) {
          if (fast == 1) return launch_full<BITS, DEC, HALF, NT, MODE, 1, 1>(p, stream);
          if (fast == 2) return launch_full<BITS, DEC, HALF, NT, MODE, 2, 1>(p, stream);
          return launch_full<BITS, DEC, HALF, NT, MODE, 4, 1>(p, stream);
        }
        if (fast && p.w.sb == 2) {  // fp16 / bf16 scales (int4 groups, q4_0)
          if (fast == 2) return launch_full<BITS, DEC, HALF, NT, MODE, 2, 2>(p, stream);
          if (fast == 4) return launch_full<BITS, DEC, HALF, NT, MODE, 4, 2>(p, stream);
        }
      }
    }
  }
  launch_full<BITS, DEC, HALF, NT, MODE, 0, 0>(p, stream);
}

template <int BITS, int DEC, bool HALF, int MODE>
void launch_nt(const GemvParams& p, CUstream_st* stream) {
  if (p.m <= 8) launch_one<BITS, DEC, HALF, 1, MODE>(p, stream);
  else if (p.m <= 16) launch_one<BITS, DEC, HALF, 2, MODE>(p, stream);
  else launch_one<BITS, DEC, HALF, 4, MODE>(p, stream);
}

template <int BITS, int DEC, bool HALF>
void launch_mode(const GemvParams& p, int mode, CUstream_st* stream) {
  if constexpr (!HALF && (DEC == kDecE2M1 || DEC == kDecFp)) {
    if (mode == kFold && p.w.scale == kScaleE8M0) return launch_nt<BITS, DEC, HALF, kFoldE8>(p, stream);
    if (mode == kFold) return launch_nt<BITS, DEC, HALF, kFold>(p, stream);
  }
  if (mode == kRow) launch_nt<BITS, DEC, HALF, kRow>(p, stream);
  else launch_nt<BITS, DEC, HALF, kGroup>(p, stream);
}

// The fused fold (one multiply decodes and scales a code pair) where it is exact for this weight
// (PreparedWeight::fold_ok: power-of-two groups of 1-byte scales within bf16's range); otherwise per-group
// float32 partial sums times the decoded scale.
int scale_mode(const WeightView& w, bool half) {
  if (w.group == w.k) return kRow;
  if (!half && w.fold_ok && w.sb == 1) return kFold;
  return kGroup;
}

// The FAST value launch_one picks for bf16 activations (0: the general path).
int fast_kind(const WeightView& w, int mode) {
  if (w.k % 64 != 0) return 0;
  const int spg = w.group / 16;
  const bool pow2 = w.group % 16 == 0 && (spg & (spg - 1)) == 0;
  if (mode == kRow) return 4;
  if (is_fold(mode)) return !pow2 ? 0 : spg <= 2 ? spg : spg == 4 ? 4 : 8;
  const int fast = !pow2 ? 0 : spg == 1 ? 1 : spg == 2 ? 2 : 4;
  if (w.sb == 1) return fast;
  return w.sb == 2 && fast >= 2 ? fast : 0;
}

template <bool HALF>
void launch_kind(const GemvParams& p, CUstream_st* stream) {
  const WeightView& w = p.w;
  const int dk = decode_kind(w.bits, w.is_int, w.mbits, w.bias);
  const int mode = scale_mode(w, HALF);
  switch (w.bits) {
    case 4:
      if (dk == kDecE2M1) launch_mode<4, kDecE2M1, HALF>(p, mode, stream);
      else if (dk == kDecInt4) launch_mode<4, kDecInt4, HALF>(p, mode, stream);
      else launch_mode<4, kDecFp, HALF>(p, mode, stream);
      break;
    case 5: launch_mode<5, kDecFp, HALF>(p, mode, stream); break;
    case 6: launch_mode<6, kDecFp, HALF>(p, mode, stream); break;
    default:
      if (dk == kDecInt8) launch_mode<8, kDecInt8, HALF>(p, mode, stream);
      else launch_mode<8, kDecFp, HALF>(p, mode, stream);
      break;
  }
}

}  // namespace

const char* gemv_rms_prologue_unsupported(const WeightView& w) {
  const int mode = scale_mode(w, false);
  if (!row_smem_kind(fast_kind(w, mode), 1, w.bits, is_fold(mode)))
    return "the RMSNorm prologue needs K a multiple of 64, power-of-two scale groups and 4- or 8-bit codes "
           "(6-bit codes with exactly foldable 1-byte scales)";
  return "";
}

void launch_gemv(const GemvParams& p, CUstream_st* stream) {
  if (p.m == 0 || p.w.n == 0) return;
  if (p.xtype == kF16) launch_kind<true>(p, stream);
  else launch_kind<false>(p, stream);
  check_launch("gemv_kernel");
}

}  // namespace fpq::cuda::detail
