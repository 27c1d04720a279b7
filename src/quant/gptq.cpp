#include "quant/gptq.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>

#include "quant/rtn.h"
#include "util/error.h"
#include "util/parallel.h"
#include "util/progress.h"

namespace fpq::quant {
namespace {

// U upper triangular with (H + damp I)^-1 = U^T U, as GPTQ: chol -> cholesky_inverse -> chol(upper).
// H is row-major and symmetric, so it is its own column-major transpose: LAPACK's column-major 'L' routines
// work on the row-major upper triangle (no transposed copies) and leave the row-major strictly lower triangle,
// i.e. the original H, untouched for retries with more dampening.
std::vector<double> inverse_cholesky_upper(std::vector<double> A, int64_t k, double percdamp, double* damp_out,
                                           int* retries) {
  std::vector<double> diag(static_cast<size_t>(k));
  double mean = 0.0;
  for (int64_t i = 0; i < k; ++i) mean += diag[size_t(i)] = A[size_t(i * k + i)];
  mean /= double(k);
  double damp = percdamp * mean;
  const lapack_int kk = lapack_int(k);
  for (int attempt = 0; attempt <= 6; ++attempt) {
    if (attempt > 0)
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = i + 1; j < k; ++j) A[size_t(i * k + j)] = A[size_t(j * k + i)];
    for (int64_t i = 0; i < k; ++i) A[size_t(i * k + i)] = diag[size_t(i)] + damp;
    lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', kk, A.data(), kk);
    if (info == 0) info = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', kk, A.data(), kk);
    if (info == 0) info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', kk, A.data(), kk);
    if (info == 0) {
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < i; ++j) A[size_t(i * k + j)] = 0.0;
      *damp_out = damp;
      return A;
    }
    ++*retries;
    damp = damp > 0 ? damp * 10.0 : std::max(1e-2 * std::fabs(mean), 1e-12);
  }
  fail("gptq: the Hessian is not positive definite even with dampening {} (are the calibration inputs all zero?)", damp);
}

// Block size used: a multiple of the group when the group is smaller, else a divisor of the group, so that a
// group's first column is always where the group's current values are all known (see gptq.h).
int64_t effective_block(int64_t block, int64_t group) {
  if (group <= block) return ((block + group - 1) / group) * group;
  for (int64_t b = block; b >= 1; --b)
    if (group % b == 0) return b;
  return 1;
}

}  // namespace

double hessian_relative_error(const float* w, const float* q, int64_t n, int64_t k, const double* h) {
  // In chunks of rows: M = [dW; W] (dW = Q - W), then sum of (M H) * M for each half.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(n, 256));
  std::vector<double> M(static_cast<size_t>(2 * chunk * k)), MH(static_cast<size_t>(2 * chunk * k));
  double num = 0.0, den = 0.0;
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    for (int64_t i = 0; i < rows * k; ++i) {
      M[size_t(i)] = double(q[r0 * k + i]) - double(w[r0 * k + i]);
      M[size_t(rows * k + i)] = double(w[r0 * k + i]);
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(2 * rows), int(k), int(k), 1.0, M.data(), int(k), h, int(k),
                0.0, MH.data(), int(k));
    for (int64_t i = 0; i < rows * k; ++i) {
      num += MH[size_t(i)] * M[size_t(i)];
      den += MH[size_t(rows * k + i)] * M[size_t(rows * k + i)];
    }
  }
  return den > 0 ? num / den : (num == 0 ? 0.0 : INFINITY);
}

GptqResult gptq_quantize(const Format& f, const float* w, int64_t n, int64_t k, const double* h, const GptqOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  if (n <= 0 || k <= 0) fail("gptq: empty weight ({} x {})", n, k);
  check_codec_format(f, k);
  if (opt.block_size <= 0) fail("gptq: block size must be positive (got {})", opt.block_size);
  if (!(opt.percdamp >= 0)) fail("gptq: percdamp must be >= 0 (got {})", opt.percdamp);
  for (int64_t i = 0; i < n * k; ++i)
    if (!std::isfinite(w[i])) fail("gptq: the weight has a non-finite value (row {}, column {})", i / k, i % k);
  for (int64_t i = 0; i < k * k; ++i)
    if (!std::isfinite(h[i])) fail("gptq: the Hessian has a non-finite value");

  const GroupCodec codec(f, opt.scale_search, opt.mse);
  const int64_t G = f.group_for(k), groups = k / G;
  const bool statics = opt.act_order || opt.static_groups;
  GptqResult res;
  GptqStats& st = res.stats;

  // 1. Dead inputs.
  std::vector<double> H(h, h + k * k);
  std::vector<float> w0(w, w + n * k);  // the weight GPTQ starts from (dead columns zeroed)
  for (int64_t i = 0; i < k; ++i)
    if (H[size_t(i * k + i)] == 0.0) {
      H[size_t(i * k + i)] = 1.0;
      ++st.dead_columns;
      if (opt.zero_dead_columns)
        for (int64_t r = 0; r < n; ++r) w0[size_t(r * k + i)] = 0.0f;
    }

  // 2. Global scale(s) from the whole weight.
  const std::vector<float> global = global_scales_for(f, w0.data(), n, k, opt.global_scale);
  auto gscale = [&](int64_t r) { return global.empty() ? 1.0f : global.size() == 1 ? global[0] : global[size_t(r)]; };

  // 3. Static group scales, column order.
  std::vector<GroupParams> params(size_t(n * groups));
  if (statics) {
    parallel_for(n, std::max<int64_t>(1, 8192 / k), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t b = 0; b < groups; ++b) params[size_t(r * groups + b)] = codec.fit(w0.data() + r * k + b * G, int(G), gscale(r));
    });
  }
  std::vector<int64_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  if (opt.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return H[size_t(a * k + a)] > H[size_t(b * k + b)]; });

  // Permuted working copies (float64).
  std::vector<double> W(size_t(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) W[size_t(r * k + i)] = double(w0[size_t(r * k + perm[size_t(i)])]);
  std::vector<double> Hp(size_t(k * k));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) Hp[size_t(i * k + j)] = H[size_t(perm[size_t(i)] * k + perm[size_t(j)])];

  // 4. Dampening and the upper Cholesky factor of H^-1.
  H.clear();
  H.shrink_to_fit();
  const std::vector<double> U = inverse_cholesky_upper(std::move(Hp), k, opt.percdamp, &st.damp, &st.damp_retries);

  // 5. Blocked column updates.
  std::vector<uint8_t> codes(size_t(n * k));
  std::vector<float> Q(size_t(n * k));
  std::vector<double> row_loss(size_t(n), 0.0);
  const int64_t B = effective_block(opt.block_size, G);
  std::unique_ptr<Progress> progress;
  if (!opt.progress_label.empty()) progress = std::make_unique<Progress>(opt.progress_label, (k + B - 1) / B, "blocks");
  std::vector<double> E(size_t(n * B));
  for (int64_t i1 = 0; i1 < k; i1 += B) {
    const int64_t i2 = std::min(k, i1 + B), nb = i2 - i1;
    parallel_for(n, 4, [&](int64_t r0, int64_t r1) {
      std::vector<float> tmp(static_cast<size_t>(G));
      for (int64_t r = r0; r < r1; ++r) {
        double* wr = W.data() + r * k;
        const float g = gscale(r);
        double loss = 0.0;
        for (int64_t i = i1; i < i2; ++i) {
          const int64_t col = perm[size_t(i)], b = col / G;
          GroupParams& p = params[size_t(r * groups + b)];
          if (!statics && col % G == 0) {  // no act order here, so col == i: the group is [i, i + G)
            for (int64_t j = 0; j < G; ++j) tmp[size_t(j)] = float(wr[i + j]);
            p = codec.fit(tmp.data(), int(G), g);
          }
          float v;
          codes[size_t(r * k + col)] = codec.quantize(float(wr[i]), p, g, &v);
          Q[size_t(r * k + col)] = v;
          const double d = U[size_t(i * k + i)];
          const double diff = wr[i] - double(v);
          const double err = diff / d;
          loss += diff * diff / (d * d) / 2.0;
          const double* urow = U.data() + i * k;
          for (int64_t j = i + 1; j < i2; ++j) wr[j] -= err * urow[j];
          E[size_t(r * nb + (i - i1))] = err;
        }
        row_loss[size_t(r)] += loss;
      }
    });
    if (i2 < k)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(k - i2), int(nb), -1.0, E.data(), int(nb),
                  U.data() + i1 * k + i2, int(k), 1.0, W.data() + i2, int(k));
    if (progress) progress->advance();
  }
  if (progress) progress->finish();
  for (double l : row_loss) st.proxy_loss += l;

  res.q = assemble_quantized(f, n, k, codes, params, global);
  if (opt.compute_error) {
    st.rel_error = hessian_relative_error(w, Q.data(), n, k, h);
    RtnOptions ro;
    ro.scale_search = opt.scale_search;
    ro.mse = opt.mse;
    ro.global_scale = opt.global_scale;
    const auto rq = dequantize(rtn_quantize(f, w, n, k, ro));
    st.rel_error_rtn = hessian_relative_error(w, rq.data(), n, k, h);
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

GptqOptions MrGptqOptions::defaults() {
  GptqOptions o;
  o.act_order = true;
  o.static_groups = true;
  o.scale_search = ScaleSearch::Mse;
  o.mse.norm = 2.4f;
  return o;
}

BlockTransform mr_gptq_transform(const Format& f, int64_t k, const MrGptqOptions& opt) {
  int64_t block = opt.hadamard_block;
  if (block == 0) block = f.group_for(k);
  if (block < 0) block = k;
  return BlockTransform::hadamard(k, block, opt.sign_seed);
}

MrGptqResult mr_gptq_quantize(const Format& f, const float* w, int64_t n, int64_t k, const double* h,
                              const MrGptqOptions& opt) {
  MrGptqResult out;
  out.transform = mr_gptq_transform(f, k, opt);
  std::vector<float> wr(w, w + n * k);
  out.transform.fold_weight(wr.data(), n);
  std::vector<double> hr(h, h + k * k);
  out.transform.transform_hessian(hr.data());
  GptqResult g = gptq_quantize(f, wr.data(), n, k, hr.data(), opt.gptq);
  out.q = std::move(g.q);
  out.stats = g.stats;
  return out;
}

}  // namespace fpq::quant
