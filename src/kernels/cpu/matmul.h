#pragma once
// Low-bit matrix multiplication on the CPU:  Y[M, N] = X[M, K] . W[N, K]^T  (times both operands' global
// scales), W a QuantizedTensor in any format of the registry (src/formats), X float32 / bf16 ("weight-only")
// or itself quantized per row and group (W4A4, W4A8, W8A8, ...).
//
// Two paths compute the same product:
//   pseudo  matmul_pseudo(): dequantize both operands exactly as fpq::dequantize does, then OpenBLAS sgemm.
//           It is the reference.
//   real    prepare_weight() once, then matmul_weight_only() / matmul_quantized(): the kernels read packed
//           codes and scales and never build a dequantized weight matrix. Where both operands are integer
//           multiples of a power of two (E2M1 x 2, E2M3 x 8, E3M2 x 16, INT4/INT8, MXINT8, llama.cpp
//           blocks), each group's dot product is an exact integer (int8 dot products: AVX-512 VNNI vpdpbusd,
//           AVX2 vpmaddubsw; int16: vpdpwssd) and the scales apply per group, summed in float64 (exact, the
//           default) or float32 (Sums). Otherwise (FP8 activations, asymmetric ones) the weight codes are
//           decoded in registers to their dequantized float32 values and multiplied with the dequantized
//           activations: in float64 with Sums::Exact (every product and sum exact: the pseudo path's bits),
//           in float32 with Sums::Float32 — on AVX-512 with both codes exact in bfloat16 (FP8 x FP8 and the
//           like) as bfloat16 pairs (vdpbf16ps). Weight-only products decode the same way, summed in float32.
// The real path agrees with the pseudo path to rounding (relative L2 < 1e-6); its result does not depend on
// the thread count (each output element is summed by one thread, in a fixed order), nor on the instruction-set
// variant (isa.h) or on the other rows of the batch wherever the same kernel kind runs (kernel_kind()).
//
// Shapes: any M >= 1 and N >= 1; K any multiple of both operands' group sizes. Row-major everywhere: x is M x K,
// y is M x N.
#include <cstdint>
#include <memory>

#include "formats/format.h"
#include "formats/quantize.h"
#include "kernels/cpu/isa.h"

namespace fpq::cpu {

// A weight repacked for the kernels (16-row tiles, codes at their own width, scales as stored). Immutable;
// share it between threads freely.
struct PreparedWeight;

std::shared_ptr<const PreparedWeight> prepare_weight(const QuantizedTensor& w);

int64_t weight_rows(const PreparedWeight& w);          // N
int64_t weight_cols(const PreparedWeight& w);          // K
const Format& weight_format(const PreparedWeight& w);
// Bytes of codes and scales (zero points, ggml extras) of the source tensor: what a matrix-vector product
// must read.
size_t weight_bytes(const PreparedWeight& w);

// Weight-only product: y[m x N] = x[m x K] . W^T (x float32 or bf16, row-major).
void matmul_weight_only(const PreparedWeight& w, const float* x, int64_t m, float* y);
void matmul_weight_only_bf16(const PreparedWeight& w, const uint16_t* x, int64_t m, float* y);

// How products with quantized activations are summed. Exact: in float64, where every term and sum of
// realistic scales is exact, so y has the bits of the model's pseudo path (float64 product of the dequantized
// operands, rounded once): the integer kernels sum their exact group dot products in float64, other pairs
// run the float64 kernel. Float32: each group's term and the running sum rounded to float32 (relative error
// ~1e-7, like any float32 GEMM); faster: up to ~1.5x for the integer kernels with many rows and short groups,
// and FP8 x FP8 runs the bf16 (AVX-512 BF16) or float kernel. Weight-only products always sum in float32.
enum class Sums { Exact, Float32 };

// Both operands quantized: y[x.rows x N] = dequant(x) . dequant(W)^T, computed from the codes. x.cols == K.
void matmul_quantized(const PreparedWeight& w, const QuantizedTensor& x, float* y, Sums sums = Sums::Exact);

// Rows of x quantized to format f: the same bytes (codes, scales, zero points, global scale) as
// fpq::quantize(f, x, m, k, opt), produced faster (SIMD encoders for the MX, absmax and llama.cpp Q8 rules;
// other rules and stochastic rounding go through fpq::quantize).
QuantizedTensor quantize_activations(const Format& f, const float* x, int64_t m, int64_t k,
                                     const QuantizeOptions& opt = {});

// A quantized linear layer's product: with act == nullptr the weight-only product; otherwise x is quantized
// to *act (quantize_activations) and multiplied with matmul_quantized.
void linear(const PreparedWeight& w, const Format* act, const float* x, int64_t m, float* y,
            const QuantizeOptions& act_opt = {}, Sums sums = Sums::Exact);

// The reference: dequantize W (and x_q when given; else x_float is used) and multiply with OpenBLAS sgemm.
void matmul_pseudo(const QuantizedTensor* x_q, const float* x_float, int64_t m, const QuantizedTensor& w, float* y);

// Which kernel computes a (weight, activation) pair with the given instruction-set variant.
enum class KernelKind {
  Int8Dot,   // exact int8 dot products per group (VNNI vpdpbusd / AVX2 vpmaddubsw / scalar)
  Int16Dot,  // exact int16 dot products per group (VNNI vpdpwssd / AVX2 vpmaddwd / scalar)
  Bf16Dot,   // AVX-512 only, M >= 8: codes exact in bfloat16 (FP8, FP6, FP4 values), vdpbf16ps per <= 64 columns
  Float,     // weight codes decoded to float32 in registers, FMA with float activations
  Float64,   // Sums::Exact, quantized activations no integer kernel serves: dequantized values, float64 FMA
  Pseudo,    // the weight's groups do not fit the tile layout (group not a multiple of 8): dequantize + sgemm
};
// m: the number of activation rows (the bf16 kernel serves 8 or more; 0 = many).
KernelKind kernel_kind(const PreparedWeight& w, const Format* act, Isa isa = active_isa(), int64_t m = 0,
                       Sums sums = Sums::Exact);
const char* kernel_kind_name(KernelKind k);
// True when the pair runs a real kernel (anything but Pseudo) with the active variant.
bool has_real_kernel(const Format& w, const Format* act);

}  // namespace fpq::cpu
