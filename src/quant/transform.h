#pragma once
// Block transforms of a linear layer's input dimension (the "transform slot" of the quantized linear module).
//
// A transform T of the input dimension K is block diagonal: K / G blocks of G x G matrices T_c (G = K for a
// full transform). Conventions, with activations and weight rows as row vectors:
//
//   activations   x  ->  x T^T          (per block: x_c -> x_c T_c^T, i.e. the column vector T_c x_c)
//   weights       W  ->  W T^-1         (per block of columns: W_c -> W_c T_c^-1)
//   so that       (x T^T) (W T^-1)^T = x T^T T^-T W^T = x W^T.
//
// For orthogonal T (Hadamard, with or without random signs) T^-1 = T^T, so a weight row w is transformed
// exactly like an activation row (w -> w T^T): forward() and fold_weight() do the same thing.
//
// The matrices are what the seed's QuantLinear stores in its `transform` buffer ((G, G) shared, or
// (K / G, G, G) per block) and applies as x @ transform.T; matrices() returns them in that layout.
//
// Hessians: for H = X^T X of untransformed inputs, the transformed inputs X T^T have T H T^T (per block pair:
// T_c H_cd T_d^T); transform_hessian() computes it in place.
//
// Kinds: identity; Walsh-Hadamard (orthonormal, block G in {16, 32, 64, 128, ...} or the full K; see hadamard.h
// for non-power-of-two sizes) with optional random +-1 signs D (T_c = H_G D_c, signs drawn per input channel from
// a seed); dense (any invertible G x G matrices, shared or per block; inverses computed once in float64 with
// LAPACK). All row-wise operations run rows in parallel (fpq::parallel_for), bit-identical for any thread count.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fpq::quant {

enum class TransformKind : uint8_t { Identity, Hadamard, Dense };

class BlockTransform {
 public:
  BlockTransform() = default;
  static BlockTransform identity(int64_t dim);
  // block = 0 means the full dimension. sign_seed: random +-1 signs per channel (T = H D).
  static BlockTransform hadamard(int64_t dim, int64_t block = 0, std::optional<uint64_t> sign_seed = std::nullopt);
  // matrices: G*G values (one matrix shared by every block) or (dim/G)*G*G (one per block), row-major T_c.
  static BlockTransform dense(int64_t dim, int64_t block, std::vector<float> matrices);

  TransformKind kind() const { return kind_; }
  int64_t dim() const { return dim_; }
  int64_t block() const { return block_; }
  int64_t blocks() const { return block_ > 0 ? dim_ / block_ : 0; }
  bool shared() const;      // one G x G matrix for every block (no per-channel signs, or a shared dense matrix)
  bool orthogonal() const;  // identity and Hadamard: T^-1 = T^T
  bool is_identity() const { return kind_ == TransformKind::Identity; }
  const std::vector<float>& signs() const { return signs_; }  // empty, or +-1 per channel
  std::optional<uint64_t> sign_seed() const { return sign_seed_; }
  std::string describe() const;  // "identity", "hadamard(g=32)", "hadamard(full=576, signs)", "dense(g=32, per-block)"

  // Activations, in place, `rows` rows of dim() values: x -> x T^T.
  void forward(float* x, int64_t rows) const;
  void forward(double* x, int64_t rows) const;
  // The inverse of forward: y -> y T^-T.
  void inverse(float* y, int64_t rows) const;
  void inverse(double* y, int64_t rows) const;
  // Weights, in place, `rows` rows of dim() values: w -> w T^-1.
  void fold_weight(float* w, int64_t rows) const;
  void fold_weight(double* w, int64_t rows) const;
  // H (dim x dim, row-major, symmetric) -> T H T^T, in place (symmetrised).
  void transform_hessian(double* H) const;

  // T_c (G x G, row-major) of block c, and all of them in QuantLinear's layout: (G, G) when shared(), else
  // (dim/G, G, G). Identity: the identity matrix.
  std::vector<float> block_matrix(int64_t c) const;
  std::vector<float> matrices() const;

 private:
  enum class Op { Forward, Inverse, Fold };
  template <typename T>
  void apply(T* x, int64_t rows, Op op) const;
  template <typename T>
  void apply_row(T* x, Op op, T* scratch) const;

  TransformKind kind_ = TransformKind::Identity;
  int64_t dim_ = 0, block_ = 0;
  std::vector<float> signs_;
  std::optional<uint64_t> sign_seed_;
  bool shared_dense_ = false;
  std::vector<double> mat_, inv_;  // dense: T_c and T_c^-1 per block (or one when shared), float64
};

}  // namespace fpq::quant
