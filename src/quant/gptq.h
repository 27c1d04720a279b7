#pragma once
// GPTQ (Frantar et al., 2022) for every planar format of the registry and llama.cpp's Q4_0 / Q8_0 / Q8_1, and
// MR-GPTQ (Egiazarian et al., 2025: GPTQ in a block-Hadamard-rotated space with format-aware scales).
//
// GPTQ, per layer with weight W (N x K: out x in) and H = 2/n X^T X from calibration inputs (Hessian):
//   1. dead inputs (H[i][i] == 0): H[i][i] = 1 and W[:, i] = 0;
//   2. the format's global scale (NVFP4: from the amax of the whole W) is fixed first;
//   3. act order: columns in order of decreasing H[i][i] (stable sort); the groups stay the original
//      contiguous groups of the format ("static groups"): every group's scale is chosen before any update,
//      from W, and each column is quantized with its original group's scale. Without act order, a group's
//      scale is chosen when its first column is reached, from the current (error-updated) values of its
//      columns (static_groups = true instead chooses all scales up front, as FP-Quant's harness does);
//   4. dampening H += percdamp * mean(diag H) * I, then U = chol(H^-1) upper (LAPACK dpotrf / dpotri / dpotrf;
//      on failure the dampening grows 10x, up to 6 times, recorded in the stats);
//   5. blocks of B = 128 columns: within a block each column is quantized (scale fixed as above), its error
//      e = (w - q) / U[i][i] is spread over the block's later columns, W[:, j] -= e * U[i][j]; after the
//      block, the lazy batch update W[:, rest] -= E * U[block, rest] (one dgemm).
// Everything runs in float64 except the quantization itself (float32, exactly fpq::quantize's arithmetic).
// Rows are independent given U, so the in-block work runs rows in parallel (deterministic for any thread count).
//
// Deviations from the GPTQ reference code (the test reference follows the same rules): (1) there, a group's scale
// is taken from the weights as they were at the start of the current 128-column block; here from the current
// values, i.e. including the updates from earlier columns of the same block (the block size is rounded to a
// multiple of the group, or to a divisor of a larger group, so a group's values are all current when its first
// column comes up); (2) dead inputs are the zero diagonal entries of H (GPTQ), where FP-Quant looks for all-zero
// weight columns; (3) FP-Quant's MSE observer scores unrounded candidate scales and rounds the winner to
// E4M3 / E8M0, fpq scores the representable scales themselves (ScaleSearch::Mse).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/format.h"
#include "formats/quantize.h"
#include "quant/group_codec.h"
#include "quant/transform.h"

namespace fpq::quant {

struct GptqOptions {
  int block_size = 128;
  double percdamp = 0.01;          // dampening: fraction of the mean diagonal of H
  bool act_order = false;          // quantize columns by decreasing H[i][i] (implies static groups)
  bool static_groups = false;      // choose every group's scale before any update
  bool zero_dead_columns = true;   // W[:, i] = 0 where H[i][i] == 0 (GPTQ)
  ScaleSearch scale_search = ScaleSearch::Format;
  MseOptions mse;
  std::optional<float> global_scale;  // fixed global scale (e.g. shared by fused q/k/v) instead of W's
  bool compute_error = true;          // the H-weighted relative errors of GPTQ and of RTN in the stats
  std::string progress_label;         // non-empty: an fpq::Progress bar over the column blocks
};

struct GptqStats {
  double proxy_loss = 0;      // GPTQ's sum over columns of (w - q)^2 / U[i][i]^2 / 2
  double rel_error = 0;       // tr(dW H dW^T) / tr(W H W^T), dW = Q - W (FP-Quant's "relative MSE")
  double rel_error_rtn = 0;   // the same for RTN of the input weight, same format and scale search (compute_error)
  int64_t dead_columns = 0;
  double damp = 0;            // the dampening added to the diagonal
  int damp_retries = 0;       // times the dampening was raised because the Cholesky factorisation failed
  double seconds = 0;
};

struct GptqResult {
  QuantizedTensor q;
  GptqStats stats;
};

// W: N x K row-major float32; H: K x K row-major float64 (symmetric, e.g. Hessian::matrix()).
GptqResult gptq_quantize(const Format& f, const float* w, int64_t n, int64_t k, const double* h,
                         const GptqOptions& opt = {});

// --- MR-GPTQ ---------------------------------------------------------------------------------------------
// W and H are given in the original (unrotated) space. MR-GPTQ builds the block Hadamard transform T (block =
// the format's group size unless set), rotates W -> W T^T and H -> T H T^T, and runs GPTQ there with the
// format-aware MSE scale search. The returned QuantizedTensor holds the rotated weight; the model engineer
// installs `transform` in the quantized linear module, which applies T.forward() to activations (x -> x T^T)
// before quantizing them, so that y = q(x T^T) deq(Q)^T ~ x W^T.
struct MrGptqOptions {
  GptqOptions gptq = defaults();
  int64_t hadamard_block = 0;           // 0: the format's group size (16 for NVFP4, 32 for MXFP4); -1: full K
  std::optional<uint64_t> sign_seed;    // random +-1 signs in the Hadamard (off in FP-Quant's harness)
  // FP-Quant's `--gptq --transform_class hadamard --w_observer mse --quantization_order activation`:
  // act order with static groups, MSE scale search with error norm 2.4, percdamp 0.01, block 128.
  static GptqOptions defaults();
};

struct MrGptqResult {
  QuantizedTensor q;
  BlockTransform transform;
  GptqStats stats;
};

MrGptqResult mr_gptq_quantize(const Format& f, const float* w, int64_t n, int64_t k, const double* h,
                              const MrGptqOptions& opt = {});

// The transform MR-GPTQ uses for a layer with `k` inputs (what mr_gptq_quantize returns in `transform`).
BlockTransform mr_gptq_transform(const Format& f, int64_t k, const MrGptqOptions& opt = {});

// tr(dW H dW^T) / tr(W H W^T) for dW = Q - W (N x K each, H K x K): the H-weighted relative error.
double hessian_relative_error(const float* w, const float* q, int64_t n, int64_t k, const double* h);

}  // namespace fpq::quant
