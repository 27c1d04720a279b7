// The int8 route's GEMM with its scaling fused (internal.h, int8_gemm_scaled): a CUTLASS sm90 warp-specialized
// int8 GEMM (TMA loads, wgmma, int32 accumulators) whose epilogue visitor tree multiplies each accumulator by its
// column's and its row's scale in float64 and stores the output type once. The unfused route writes the M x N int32
// product to memory and reads it back in a separate epilogue kernel (2048 x 4096: 33.5 MB each way, ~26 us of
// ~97 on an H100, docs/BENCHMARKS.md).
//
// Exactness: the int32 accumulator is exact (|sum| <= 96 x 96 x k < 2^31 for k < 233000); to float64 exact; the
// column scale (a power of two times the weight's float global scale) and the row scale (a power of two) multiply
// in float64 -- the first product rounds only when acc x global needs more than 53 bits, as in the unfused
// epilogue -- and the result is rounded to float, then to bf16/fp16 where asked: the unfused epilogue's roundings,
// in its order.
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/gemm/kernel/tile_scheduler.hpp>

#include <cute/tensor.hpp>

#include "kernels/cuda/device_common.cuh"

namespace fpq::cuda::detail {
namespace {

using namespace cute;

// One kernel configuration (tile, cluster, schedules) for one output type.
template <class ElementD, class Tile, class Cluster, class MainloopSchedule, class EpilogueSchedule, class Scheduler>
struct ScaledInt8Gemm {
  static constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;
  // y[m, n] = row_scale[m] x (col_scale[n] x acc[m, n]), in float64. CUTLASS's "row" broadcast is a vector along
  // N (one value per output column), its "column" broadcast one along M.
  using ColumnScale = cutlass::epilogue::fusion::Sm90RowBroadcast<0, Tile, double, double, Stride<_0, _1, int64_t>>;
  using RowScale = cutlass::epilogue::fusion::Sm90ColBroadcast<0, Tile, float, double, Stride<_1, _0, int64_t>>;
  using Scaled = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, double, double, kRound>, ColumnScale,
      cutlass::epilogue::fusion::Sm90AccFetch>;
  using Output = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, ElementD, double, kRound>, RowScale, Scaled>;

  static constexpr int kAlignD = 16 / int(sizeof(ElementD));
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, Cluster, cutlass::epilogue::collective::EpilogueTileAuto,
      int32_t, double, void, cutlass::layout::RowMajor, kAlignD, ElementD, cutlass::layout::RowMajor, kAlignD,
      EpilogueSchedule, Output>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, int8_t, cutlass::layout::RowMajor, 16, int8_t,
      cutlass::layout::ColumnMajor, 16, int32_t, Tile, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      MainloopSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue, Scheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static void run(const Int8ScaledGemmParams& p, CUstream_st* stream) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    const int M = int(p.m), N = int(p.n), K = int(p.k);
    // A: m x k row-major (stride k); B: the weight, n x k row-major, i.e. k x n column-major; D: m x n, stride ldy.
    StrideA sa{int64_t(K), _1{}, int64_t(M) * K};
    StrideB sb{int64_t(K), _1{}, int64_t(N) * K};
    StrideD sd{int64_t(p.ldy), _1{}, int64_t(M) * p.ldy};
    cutlass::KernelHardwareInfo hw;
    hw.device_id = current_device();
    hw.sm_count = sm_count();
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {M, N, K, 1},
                                  {p.x, sa, p.w, sb},
                                  {{}, nullptr, sd, static_cast<ElementD*>(p.y), sd},
                                  hw};
    // {row scale, {column scale, acc, multiplies}, multiplies}
    args.epilogue.thread = {{p.row_scale, 0.0f, {}}, {{p.col_scale, 0.0, {}}, {}, {}}, {}};
    Gemm gemm;
    if (gemm.can_implement(args) != cutlass::Status::kSuccess)
      fail_message("int8 scaled matmul: CUTLASS cannot run this problem (alignment)");
    const size_t ws_bytes = Gemm::get_workspace_size(args);
    void* ws = nullptr;
    if (ws_bytes) check(cudaMallocAsync(&ws, ws_bytes, stream), "cudaMallocAsync");
    if (gemm.initialize(args, ws, stream) != cutlass::Status::kSuccess) fail_message("int8 scaled matmul: initialize failed");
    if (gemm.run(stream) != cutlass::Status::kSuccess) fail_message("int8 scaled matmul: launch failed");
    check_launch("int8 scaled matmul");
    if (ws) check(cudaFreeAsync(ws, stream), "cudaFreeAsync");
  }
};

// 128 x 256 x 128 tiles, two CTAs per cluster along M (sharing the weight tile's loads), both consumer warp
// groups on one tile. Measured against the other candidates (H100, 2026-12-06 15:22 UTC, M = 2048, matmul alone,
// 4096x4096 / 28672x4096 / 4096x14336): this 65.2 / 332-336 / 179-181 us; 256 x 128 tiles, cluster 1 x 2:
// 65-66 / 339-340 / 179; 128 x 128 ping-pong, cluster 2 x 1: 70-71 / 381-386 / 212-213.
template <class ElementD>
using LargeTiles = ScaledInt8Gemm<ElementD, Shape<_128, _256, _128>, Shape<_2, _1, _1>,
                                  cutlass::gemm::KernelTmaWarpSpecializedCooperative,
                                  cutlass::epilogue::TmaWarpSpecializedCooperative, cutlass::gemm::PersistentScheduler>;
// Few output tiles (M = 128..512 at N = 4096: 16-64 tiles of 128 x 256, so most SMs idle while each tile runs the
// whole K): 128 x 128 tiles, no cluster, and stream-K, which splits the K loop of the tiles over the SMs and adds
// the int32 partial sums (exactly) before the epilogue.
template <class ElementD>
using StreamK = ScaledInt8Gemm<ElementD, Shape<_128, _128, _128>, Shape<_1, _1, _1>,
                               cutlass::gemm::KernelTmaWarpSpecializedCooperative,
                               cutlass::epilogue::TmaWarpSpecializedCooperative, cutlass::gemm::StreamKScheduler>;

template <template <class> class Config>
void run_typed(const Int8ScaledGemmParams& p, CUstream_st* stream) {
  switch (p.ytype) {
    case kF32: Config<float>::run(p, stream); break;
    case kBF16: Config<cutlass::bfloat16_t>::run(p, stream); break;
    default: Config<cutlass::half_t>::run(p, stream); break;
  }
}

}  // namespace

bool int8_gemm_scaled_supported(int64_t n, int64_t k, int ytype, int64_t ldy, const void* y) {
  const int64_t esz = ytype == kF32 ? 4 : 2;
  return k % 16 == 0 && (ldy * esz) % 16 == 0 && n <= ldy && (reinterpret_cast<uintptr_t>(y) % 16) == 0 &&
         k < (int64_t(1) << 31) / (96 * 96);
}

void int8_gemm_scaled(const Int8ScaledGemmParams& p, CUstream_st* stream) {
  if (p.m == 0 || p.n == 0) return;
  if (!int8_gemm_scaled_supported(p.n, p.k, p.ytype, p.ldy, p.y)) fail_message("int8 scaled matmul: unsupported operands");
  // Stream-K where the large tiles leave SMs idle: fewer than 3/4 as many 128 x 256 output tiles as SMs, or a
  // single 128-row tile (the 2 x 1 cluster then pairs it with an empty one). H100, 2026-12-06 16:23 UTC, matmul
  // alone, large / stream-K: N = 4096 at M = 128, 256, 512: 37 / 34, 37 / 31, 38 / 28 us (K = 4096) and 89 / 56,
  // 90 / 55, 91 / 63 (K = 14336); M = 1024 (128 tiles): 39 / 42 and 96 / 102; 28672 x 4096 at M = 128: 71 / 64,
  // at M = 256 (224 tiles): 74 / 78. FPQ_INT8_TILE=large|streamk forces one (A/B runs, tests).
  static const std::string choice = env_choice("FPQ_INT8_TILE", {"auto", "large", "streamk"});
  const int64_t m_tiles = (p.m + 127) / 128, tiles = m_tiles * ((p.n + 255) / 256);
  const bool large = choice == "large" || (choice != "streamk" && m_tiles >= 2 && tiles * 4 >= int64_t(sm_count()) * 3);
  if (large) run_typed<LargeTiles>(p, stream);
  else run_typed<StreamK>(p, stream);
}

}  // namespace fpq::cuda::detail
