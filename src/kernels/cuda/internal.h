#pragma once
// Internal interface between the host code (runtime.cpp, weights.cpp, dispatch) and the kernel files (*.cu).
// Plain structs only, so both g++ and nvcc compile it.
#include <cstdint>
#include <initializer_list>
#include <string>

struct CUstream_st;

namespace fpq::cuda::detail {

// Throws fpq::Error naming `what` when err (a cudaError_t) is not cudaSuccess.
void check(int err, const char* what);
// Checks cudaGetLastError after a launch.
void check_launch(const char* kernel);
// Throws fpq::Error with this message.
[[noreturn]] void fail_message(const char* what);
int sm_count();
// The current device (cudaGetDevice, checked).
int current_device();
// An A/B switch from the environment: "" when unset or empty, else the value, which must be one of `allowed`
// (a clear error naming the variable otherwise; read once per call site, which caches it).
std::string env_choice(const char* name, std::initializer_list<const char*> allowed);
// Scratch for the split decode kernel: at least counter_bytes of counters, zero between launches (a launch
// leaves the ones it used zero), and at least ws_bytes of partial sums *after the whole counter region* (a
// cached buffer's counter region may be larger than this launch asks for, and its counters beyond the request
// must stay zero for a later, larger launch). owned: the caller frees `mem` after the launch (cudaFreeAsync;
// under stream capture).
struct SplitScratch {
  uint8_t* mem = nullptr;
  unsigned* counters = nullptr;
  float* ws = nullptr;
  bool owned = false;
};
SplitScratch split_scratch(CUstream_st* stream, size_t counter_bytes, size_t ws_bytes);

// Element type as the device code sees it (mirrors fpq::ElementType).
struct ElemDesc {
  int is_int = 0;
  int bits = 0, ebits = 0, mbits = 0, bias = 0;
  int is_signed = 1;
  int specials = 0;  // 0 Finite, 1 Fn, 2 Ieee
  uint32_t max_magnitude = 0, max_f32 = 0;
  int qmin = 0, qmax = 0;
  int emax = 0;
};

enum ScaleCode : int { kScaleNone = 0, kScaleE8M0 = 1, kScaleE4M3 = 2, kScaleF16 = 3, kScaleBF16 = 4, kScaleF32 = 5 };
enum RuleCode : int { kRuleMx = 0, kRuleAbsmax = 1, kRuleFourOverSix = 2 };
enum DTypeCode : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

struct ActQuantParams {
  const void* x = nullptr;
  int xtype = kF32;
  int64_t rows = 0, cols = 0;
  ElemDesc e;
  int scale = kScaleNone;
  int sb = 0;           // scale bytes
  int group = 0;        // values per group (cols for one per row)
  int rule = kRuleMx;
  float ss = 0;         // effective scale scale
  const float* global = nullptr;  // device: the global scale (null: 1)
  int global_per_row = 0;         // 1: global[row] (a per-row tensor scale, e.g. NVFP4 per-token activations)
  uint8_t* codes = nullptr;
  uint8_t* scales = nullptr;
  int64_t row_code_bytes = 0;
  // transform
  const float* T = nullptr;
  int tblock = 0;
  int tper_block = 0;
  // tensor-core operand
  uint16_t* mma = nullptr;  // bf16 bits
  int64_t mma_ld = 0;
  float* row_scale = nullptr;
  int mma_fold = 0;  // 1: multiply the group scale into the operand
};

// act_quant.cu
void launch_act_quant(const ActQuantParams& p, CUstream_st* stream);
// Global scale from the amax of the (transformed) tensor: *global_out = amax > 0 ? amax / denom : 1.
void launch_global_from_amax(const ActQuantParams& p, float denom, float* amax_scratch, float* global_out,
                             CUstream_st* stream);
// llama.cpp q8_0 (with_sum = false) / q8_1 blocks, optional transform.
void launch_quantize_q8(const ActQuantParams& p, bool with_sum, CUstream_st* stream);
void launch_fill_float(float* dst, float value, CUstream_st* stream);
void launch_fill_float_n(float* dst, int64_t n, float value, CUstream_st* stream);
// Per-row global scales: global_out[r] = amax(row r) > 0 ? amax / denom : 1 (no transform).
void launch_row_global_from_amax(const ActQuantParams& p, float denom, float* global_out, CUstream_st* stream);
// Writes zeros into the mma operand's padding columns [cols, ld).
void launch_zero_pad_mma(const ActQuantParams& p, CUstream_st* stream);

// Prepared weight as the matmul kernels see it.
struct WeightView {
  const uint8_t* plane4 = nullptr;
  const uint8_t* plane_hi = nullptr;
  const uint8_t* scales = nullptr;
  const float* row_global = nullptr;
  float global = 1.0f;
  int64_t n = 0, k = 0, n_tiles = 0, k_tiles = 0;
  int bits = 4, is_int = 0, ebits = 0, mbits = 0, bias = 0;
  int scale = kScaleNone, sb = 0;
  int group = 0;         // values per scale group (k for one per row)
  int64_t n_groups = 0;  // scale groups per row in the prepared (padded) scale array
  int fold_ok = 0, fold_shift = 0;  // PreparedWeight's fused fold
  int rescale_ok = 0;               // PreparedWeight::rescale_ok
};

struct GemvParams {
  WeightView w;
  const void* x = nullptr;
  int xtype = kBF16;
  int64_t ldx = 0, m = 0;
  void* y = nullptr;
  int ytype = kF32;
  int64_t ldy = 0;
  int x_smem = 0;  // set by launch_gemv: the activation row is staged in shared memory (M = 1)
  // Decode-step fusions (DecodeFusion of cuda_kernels.h; M = 1 with the row in shared memory):
  const float* rms_x = nullptr;  // prologue: the staged row is bf16(rms_x * rms_w), outputs x rsqrt(mean(rms_x^2) + eps)
  const float* rms_w = nullptr;
  float rms_eps = 0.0f;
  int swiglu = 0;      // epilogue: output rows (2i, 2i + 1) -> y[i] = silu(row 2i) * row 2i + 1
  int accumulate = 0;  // epilogue: y (float32) += result
  int pdl = 0;         // programmatic dependent launch
  // Set by launch_gemv for the split kernel (M >= 2): K splits, their partial sums, a counter per row tile.
  int splits = 1;
  int cluster = 0;  // the S splits of a row tile are one thread-block cluster: partial sums meet in shared memory
  int split_batch = 0;  // the split's activations staged with many loads per thread in flight (always in WIDE)
  int split_early = 0;  // the split kernel's weight stages issued after its activation loads (FPQ_GEMV_SPLIT_EARLY)
  int split_last = 0;  // FPQ_GEMV_SPLIT_LAST (gemv.cu; on at M > 8): the last split's group adds and stores together
  int split_warps = 1;  // warps per row-tile unit: they split the split's K range again, sums added in shared memory
  float* ws = nullptr;
  unsigned* counters = nullptr;
};
// Whether the decode kernel can take the RMSNorm prologue for this weight (M = 1, bf16 activations: the paths
// that stage the activation row in shared memory); empty when it can, else why not.
const char* gemv_rms_prologue_unsupported(const WeightView& w);
void launch_gemv(const GemvParams& p, CUstream_st* stream);

struct GemmParams {
  WeightView w;
  const uint16_t* a = nullptr;  // bf16 operand, m x k (row stride lda); columns >= k are never read
  int64_t lda = 0, m = 0;
  const float* a_row_scale = nullptr;  // optional per-row factor of A
  const float* a_global = nullptr;     // optional device scalar
  int fold_b = 1;                      // 1: fold B's group scales into the bf16 operand; 0: per-row scale in epilogue
  int promote = 0;                     // 1: B's group scales applied per group in float32 (fold_b = 0)
  int promote_sets = 1;                // with promote: 1 = two sets; 0 = one rescaled set where w.rescale_ok
                                       // and the tile is 256 wide; -1 = rescaled wherever w.rescale_ok
  // With promote, int4 weights in groups of 32 and K a multiple of 64: A's group scales too (Q4_0 x Q8_1),
  // group-major: a_gscale[g * a_gscale_ld + row], a_gscale_ld a multiple of 4.
  const float* a_gscale = nullptr;
  int64_t a_gscale_ld = 0;
  void* y = nullptr;
  int ytype = kF32;
  int64_t ldy = 0;
  float* workspace = nullptr;  // split-K partial sums (splits x m x n floats)
  int splits = 1;
};
// Returns false when the shape/format is not handled (the caller falls back).
bool gemm_supported(const WeightView& w, int fold_b);
// Group-scaled weights whose scales cannot be folded (GemmParams::promote): 1- or 2-byte scales, groups of a
// multiple of 16 columns.
bool gemm_promote_supported(const WeightView& w);
// Whether this product takes the promoting kernel's two accumulator sets (BN = 128) rather than one rescaled set.
bool gemm_two_sets(const GemmParams& p);
void launch_gemm(GemmParams p, CUstream_st* stream);
// Chooses the split-K factor for a shape (1 = none).
int gemm_choose_splits(int64_t m, int64_t n, int64_t k, bool two_sets = false);

// exact.cu: the model runtime's exact products (see the file's header).
struct ExactParams {
  WeightView w;
  const uint16_t* x = nullptr;  // bf16 code values (no scales), m x w.k
  int64_t m = 0;
  const float* xs = nullptr;    // activation group scales, m x xgroups (null: 1)
  int xgroup = 0;               // activation values per scale group (w.k for one per row)
  int64_t xgroups = 1;
  const float* xg = nullptr;    // activation tensor scale per row (null: xg_scalar)
  float xg_scalar = 1.0f;
  float* y = nullptr;           // m x w.n float32 (y_row null), or:
  void* y_typed = nullptr;      // row y_row[i] of a ytype matrix with row stride ldy gets input row i's result
  const int* y_row = nullptr;   //   (the int8 route's fix-up rows, written straight into its output)
  int ytype = kF32;
  int64_t ldy = 0;
  const int* m_dev = nullptr;   // device count of rows to compute (<= m; the rest are skipped); null: m
};
void launch_exact(const ExactParams& p, CUstream_st* stream);

struct DecodeActParams {
  const uint8_t* codes = nullptr;  // planar codes, rows x row_code_bytes
  int64_t rows = 0, cols = 0, row_code_bytes = 0;
  ElemDesc e;
  uint16_t* out = nullptr;         // rows x cols bf16
  const uint8_t* scales = nullptr; // rows x groups x sb (null: no scales)
  int scale = kScaleNone, sb = 0;
  int64_t groups = 0;
  float* scale_out = nullptr;      // rows x groups
};
void launch_decode_act(const DecodeActParams& p, CUstream_st* stream);
// The float32 entry point's range guard (exact.cu): max |x| on the device (amax: float32 bits), the weight's
// value_log2 and ceil(log2(k)); split3 / sum3 prescale by the exponent it implies (amax null: no guard).
struct RangeGuard {
  const unsigned* amax = nullptr;
  int w_log2 = 0, k_log2 = 0;
};
void launch_amax(const float* x, int64_t n, unsigned* amax, CUstream_st* stream);
void launch_split3(const float* x, int64_t n, uint16_t* out, const RangeGuard& g, CUstream_st* stream);
void launch_sum3(const float* y3, int64_t n, float* y, const RangeGuard& g, CUstream_st* stream);

// w4a4_int8.cu: W4A4 mxfp4 on the int8 tensor cores (see the file's header).
struct Int8FoldParams {
  const uint8_t* codes = nullptr;   // m x k/2 (E2M1 codes, first in the low nibble)
  const uint8_t* scales = nullptr;  // m x k/32 E8M0 codes
  int64_t m = 0, k = 0;             // k a multiple of 32
  int8_t* out = nullptr;            // m x k
  int* exp = nullptr;               // per row: value = out x 2^exp
  int* slot = nullptr;              // per row: -1 folded, -2 NaN scale, >= 0 fix-up slot
  int* fix_count = nullptr;         // zero before the launch
  uint16_t* fix_x = nullptr;        // fix-up rows: bf16 code values (slots x k)
  float* fix_s = nullptr;           // fix-up rows: group scales (slots x k/32)
  int* fix_row = nullptr;           // fix-up rows: the activation row of each slot
  float* row_scale = nullptr;       // optional, per row: 2^exp; NaN for a NaN-scale row, 0 for a fix-up row
};
void launch_int8_fold(const Int8FoldParams& p, CUstream_st* stream);
// D (m x nv int32, row-major) = X (m x k int8) * W (nv x k int8)^T on cuBLASLt.
void int8_gemm(const int8_t* w, const int8_t* x, int32_t* d, int64_t m, int64_t nv, int64_t k, CUstream_st* stream);
// y (m x n, row stride ldy, type ytype) = (X (m x k int8) * W (n x k int8)^T)[i, j] x col_scale[j] x row_scale[i],
// in float64, rounded to float and then to ytype (the unfused epilogue's roundings): a CUTLASS GEMM with the
// scaling in its epilogue (int8_gemm_scaled.cu).
struct Int8ScaledGemmParams {
  const int8_t* x = nullptr;
  const int8_t* w = nullptr;
  const double* col_scale = nullptr;  // n
  const float* row_scale = nullptr;   // m
  int64_t m = 0, n = 0, k = 0;
  void* y = nullptr;
  int ytype = kF32;
  int64_t ldy = 0;
};
// Whether int8_gemm_scaled can run these operands: 16-byte aligned rows of x, w and y, k < 233016.
bool int8_gemm_scaled_supported(int64_t n, int64_t k, int ytype, int64_t ldy, const void* y);
void int8_gemm_scaled(const Int8ScaledGemmParams& p, CUstream_st* stream);
// y[i, col(j)] = float((D[i, j] x wscale[j] + sum over j's other bands b of D[i, b] x wscale[b]) x 2^exp[i] x
// global(col(j))) for the n entries j of an int8 image (Int8Image's layout).
struct Int8EpilogueParams {
  const int32_t* d = nullptr;  // m x nv
  int64_t m = 0, n = 0, nv = 0;
  const int32_t* extra_first = nullptr;  // n + 1: entry j's other bands are virtual rows extra_first[j] .. [j + 1] - 1
  const int32_t* col = nullptr;          // n: entry j's output column (null: j)
  int direct = 0;                        // nv == n, n % 4 == 0 and no col: vector path
  const double* wscale = nullptr;        // per virtual row
  const int* exp = nullptr;
  const int* slot = nullptr;     // rows with a fix-up slot are skipped: the exact kernel wrote them
  float wglobal = 1.0f;
  const float* row_global = nullptr;
  void* y = nullptr;
  int ytype = kF32;
  int64_t ldy = 0;
};
void launch_int8_epilogue(const Int8EpilogueParams& p, CUstream_st* stream);

void launch_q4_0_q8_1(const void* w, const void* a, int64_t n, int64_t m, int64_t k, float* y, CUstream_st* stream);
// Q4_0 weight blocks -> a prepared int4 weight's planes (plane4: n_tiles x k_tiles x 512 bytes) and fp16 scales
// (n_tiles x n_groups x 16).
void launch_repack_q4_0(const void* w, int64_t n, int64_t k, int64_t n_tiles, int64_t k_tiles, int64_t n_groups,
                        uint8_t* plane4, uint16_t* scales, CUstream_st* stream);
// Q8_1 activation blocks -> bf16 codes (m x k) and float32 block scales, group-major (scales[b * ld + row]).
void launch_unpack_q8_1(const void* a, int64_t m, int64_t k, int64_t ld, uint16_t* codes, float* scales,
                        CUstream_st* stream);

}  // namespace fpq::cuda::detail
