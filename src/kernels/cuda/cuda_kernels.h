#pragma once
// fpq's CUDA kernels for NVIDIA Hopper (sm_90a): activation quantization, weight-only matrix multiply for
// decode / small batches, both-operands-quantized matrix multiply for prefill, and llama.cpp's Q4_0 x Q8_1.
// Every kernel reproduces the CPU reference (src/formats): quantization writes the same bytes as
// fpq::quantize; matrix products equal the float64 product of the dequantized operands to float32 rounding.
//
// This header needs no CUDA headers: device pointers are void*, streams are cudaStream_t (declared here the
// way the CUDA runtime declares it). All calls are asynchronous on the given stream (0 = the legacy default
// stream) unless they say otherwise; errors (bad shapes, unsupported formats, CUDA failures) throw fpq::Error.
//
// Matrix products compute Y = X * W^T with X (M x K, row-major, activations), W (N x K, row-major, the
// weight as stored by fpq::quantize) and Y (M x N, row-major).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/format.h"
#include "formats/quantize.h"

struct CUstream_st;

namespace fpq::cuda {

using cudaStream_t = ::CUstream_st*;

// True when a CUDA driver and an sm_90 (Hopper) GPU are visible; otherwise false and, if reason is given,
// one line saying why (no driver, no device, wrong architecture, ...). Never throws.
bool cuda_available(std::string* reason = nullptr);
// "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, driver 13.0" (empty when unavailable).
std::string device_description();

enum class DType : uint8_t { F32, BF16, F16 };
int dtype_bytes(DType t);

// Owning device allocation (cudaMalloc); move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  size_t size() const { return bytes_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  void reset(size_t bytes = 0);  // frees, then allocates `bytes` (0: stays empty)
  // Synchronous copies (for setup and tests).
  void upload(const void* host, size_t bytes, size_t offset = 0);
  void download(void* host, size_t bytes, size_t offset = 0) const;
  void fill_bytes(uint8_t value);  // cudaMemset, synchronous

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

DeviceBuffer to_device(const void* host, size_t bytes);
void synchronize();  // cudaDeviceSynchronize, throws on a pending error

// ---------------------------------------------------------------------------------------------------------
// Activation quantization
// ---------------------------------------------------------------------------------------------------------

// An optional block transform applied to each row before quantization: the row is cut into blocks of
// `block` values and each block x_b becomes y_b = T_b x_b, computed in float32 as
//   y[i] = (((T[i][0] * x[0]) + T[i][1] * x[1]) + ...) + T[i][G-1] * x[G-1]
// (products and sums rounded one by one, left to right; no fused multiply-add). T is float32 row-major in
// device memory: one G x G matrix shared by every block, or cols / G of them (per block). This is the
// per-block transform of the quantized linear module (x @ T^T per block); the CPU reference is
// fpq::cuda::apply_block_transform_reference below.
struct BlockTransform {
  const float* matrices = nullptr;  // device pointer; null = no transform
  int block = 0;                    // G: 16, 32, 64 or 128; cols must be a multiple
  bool per_block = false;           // false: one shared matrix; true: cols / G matrices
};

// CPU reference of the transform (same arithmetic order), on host data.
void apply_block_transform_reference(const float* matrices, int block, bool per_block, const float* x, int64_t rows,
                                     int64_t cols, float* y);

struct ActQuantOptions {
  // A fixed global scale (NVFP4-style formats; a calibrated activation scale). Without it the global scale
  // comes from the amax of the (transformed) tensor as fpq::quantize computes it (one extra pass).
  std::optional<float> global_scale;
  BlockTransform transform;
  // Also write the exact tensor-core operand for matmul_quantized_cuda (see DeviceQuantized::mma).
  bool mma_operand = false;
};

// A quantized matrix in device memory, in fpq's planar layout (byte for byte what fpq::quantize stores:
// codes rows x row_code_bytes, scales rows x groups x scale bytes, global scale as one float), or in
// llama.cpp block layout for q8_0 / q8_1 (codes only).
struct DeviceQuantized {
  Format format;
  int64_t rows = 0, cols = 0;
  DeviceBuffer codes, scales, global;  // global: one float32 (1.0 without a global scale), or one per row
  // Tensor-core operand (when requested and the format allows it): bf16, rows x round_up(cols, 64),
  // element (r, c) = decode(code) * group scale -- exact in bf16 for FP elements of up to 8 bits with E8M0 or
  // E4M3 group scales; per-row scales (group = row) stay out and go to `row_scale` (float per row); the
  // global scale goes into the matmul's alpha. Columns past cols are zero.
  DeviceBuffer mma, row_scale;
  bool has_mma = false;

  int64_t row_code_bytes() const;
  int64_t groups_per_row() const;
  // Copies everything back into a host QuantizedTensor (synchronous).
  QuantizedTensor download() const;
};

// Which formats quantize_activations_cuda supports: planar formats with the mx, absmax or 4o6 scale rule
// (symmetric; float or int elements of 2..8 bits; E8M0/E4M3/F16/BF16/F32 scales; groups of 8..256 values
// or one per row; no global, a per-tensor or a per-row global (per-row: no transform, no mma operand)), and
// llama.cpp's q8_0 and q8_1 blocks. Round to nearest
// even only. Returns an empty string when supported, else the reason.
std::string act_quant_unsupported(const Format& f);

// Quantizes x (rows x cols, row-major, device memory, F32/BF16/F16) into `out` (buffers are (re)allocated
// as needed). Output bytes equal fpq::quantize(f, float(x) transformed, rows, cols) exactly.
void quantize_activations_cuda(const Format& f, const void* x, DType xtype, int64_t rows, int64_t cols,
                               DeviceQuantized& out, const ActQuantOptions& opt = {}, cudaStream_t stream = nullptr);

// ---------------------------------------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------------------------------------

// A weight re-laid out once for the kernels: codes split into a 4-bit plane and a high plane (none, 1, 2 or
// 4 bits) in tensor-core fragment order, 16-row x 64-column tiles, raw scale bytes per (row, group), the
// global scale. Supported: planar symmetric formats with FP elements of 4, 5, 6 or 8 bits (e2m1, e3m2, e2m3,
// e2m2, e3m1, e4m3, e5m2, ...), int4 / int8, any scale type, groups that are multiples of 16 or one per row,
// a per-tensor or per-row global scale; and llama.cpp q4_0 / q8_0 blocks (converted exactly to int4 / int8
// with an fp16 scale per 32).
struct PreparedWeight {
  Format format;          // as given
  int64_t n = 0, k = 0;   // rows (output features), columns (input features)
  int64_t n_tiles = 0, k_tiles = 0;
  int bits = 0;           // 4, 5, 6, 8
  bool is_int = false;
  int ebits = 0, mbits = 0, bias = 0;
  ScaleType scale = ScaleType::None;
  int group = 0;          // values per scale (k for one per row)
  float global = 1.0f;    // per-tensor global scale
  // floor(log2) of the largest |element x group scale| (before the global scales), for the float32 entry point's
  // range guard (matmul_weight_only_f32_cuda); 0 for an all-zero weight.
  int value_log2 = 0;
  // Fused fold (decode kernel): every 1-byte group scale s of this weight times 2^(127 - bias - fold_shift) is a
  // normal bf16 and every element x scale x 2^-fold_shift is exact in bf16, so one multiply per code pair both
  // decodes and scales it; the sums are multiplied by 2^fold_shift at the end. fold_ok = false: not exact.
  bool fold_ok = false;
  int fold_shift = 0;
  // The prefill kernel may keep its sums in units of the current group's scale (rescaling them by s_old / s_new
  // at each group, GemmParams::promote with one accumulator set): integer codes, finite fp16 scales
  // (either sign) within 2^64 of each other in magnitude, and groups whose scale is 0 hold only zero codes (their
  // products must vanish).
  bool rescale_ok = false;
  DeviceBuffer plane4, plane_hi, scales, row_global;  // row_global: float per row (per-row global) or empty
  // The int8 image for W4A4 prefill (prepare_int8_prefill; empty otherwise; Int8Image): i8_rows "virtual rows"
  // of k int8 values, row-major (i8_codes), the first n weight row n's top band; a virtual row's value is int8 x
  // i8_scale[v] (float64, a power of two); weight row n's other bands are virtual rows i8_extra_first[n] ..
  // i8_extra_first[n + 1] - 1 (int32, n + 1 entries). i8_col_scale: float64 per weight row, its top band's scale x
  // its global scale (the fused GEMM's column scales). The i8_band_* image holds the i8_band_n weight rows with
  // several bands (weight rows i8_band_cols[j]; i8_band_rows virtual rows): the fused route redoes their columns.
  int64_t i8_rows = 0, i8_band_n = 0, i8_band_rows = 0;
  DeviceBuffer i8_codes, i8_scale, i8_extra_first, i8_col_scale;
  DeviceBuffer i8_band_codes, i8_band_scale, i8_band_extra_first, i8_band_cols;
  size_t device_bytes() const { return plane4.size() + plane_hi.size() + scales.size() + row_global.size(); }
  size_t int8_image_bytes() const {
    return i8_codes.size() + i8_scale.size() + i8_extra_first.size() + i8_col_scale.size() + i8_band_codes.size() +
           i8_band_scale.size() + i8_band_extra_first.size() + i8_band_cols.size();
  }
};

// Why a weight format cannot be prepared (empty string when it can).
std::string weight_unsupported(const Format& f);
PreparedWeight prepare_weight_cuda(const QuantizedTensor& w);
// Whether every element x group scale of the weight has at most bf16's 8 significant bits (1-byte E8M0 / E4M3
// scales), so scales can be multiplied into its bf16 tensor-core operand exactly.
bool weight_fold_exact(const PreparedWeight& w);
// ---- W4A4 prefill on the int8 tensor cores (E2M1 elements with E8M0 group scales on both operands: mxfp4).
// Twice an E2M1 value is an integer of magnitude <= 12 and E8M0 scales are powers of two, so the elements of a
// row whose (non-zero) groups' exponents lie within 4 of each other are int8 values (|v| <= 96) times one power
// of two, and int8 x int8 products summed in int32 (cuBLASLt, int8 tensor cores) are exact; the epilogue scales
// the sums in float64, so the result is float(S x global) with S the exact sum: what the float64 product of
// the dequantized operands gives, bit for bit. A weight row with a wider span becomes several virtual rows, one
// per band of 4 exponents, added in the epilogue. Activations are folded per row at run time; rows with a
// wider span (or NaN scales) are recomputed by the exact float64 kernel (matmul_exact_cuda's), on the device,
// without a host round trip.
struct Int8Image {
  int64_t n = 0, k = 0, rows = 0;    // rows: virtual rows, >= n
  std::vector<int8_t> codes;         // rows x k: row r < n is weight row r's top band; then the other bands
  std::vector<double> scale;         // per virtual row: 2^e
  std::vector<int32_t> extra_first;  // n + 1: weight row r's other bands are rows extra_first[r] .. [r + 1] - 1
};
// Why a weight cannot have an int8 image (empty when it can): E2M1 elements, E8M0 scales (no NaN scale code),
// groups of a multiple of 32 columns, K a multiple of 32, planar layout.
std::string int8_image_unsupported(const QuantizedTensor& w);
Int8Image build_int8_image(const QuantizedTensor& w);
// The weight rows of `im` with more than one band (their numbers in `rows`), as an image of their own.
Int8Image banded_rows(const Int8Image& im, std::vector<int32_t>& rows);
// Why activations of this format cannot take the int8 route (empty when they can): mxfp4 (E2M1, E8M0 groups of
// 32, no global scale).
std::string int8_route_unsupported(const Format& act);
// Builds the image of `w` (the tensor `p` was prepared from) into p.i8_*: matmul_quantized_cuda then runs
// W4A4 mxfp4 products with M >= 256 on the int8 tensor cores (docs/ARCHITECTURE.md). It costs k bytes per
// virtual row of device memory besides the prepared weight.
void prepare_int8_prefill(PreparedWeight& p, const QuantizedTensor& w);

// Sets p.fold_ok / p.fold_shift for a weight holding these 1-byte group scale codes (prepare_weight_cuda calls
// it; code that fills a PreparedWeight itself calls it with the codes it wrote).
void choose_fused_fold(PreparedWeight& p, const uint8_t* scale_codes, size_t count);

// ---------------------------------------------------------------------------------------------------------
// Matrix products
// ---------------------------------------------------------------------------------------------------------

// Weight-only: Y (M x N, ytype) = X (M x K, BF16 or F16, device, row stride ldx elements; ldx = 0 means K)
// times dequant(W)^T, float32 accumulation. M <= 32 runs the decode kernel (tensor-core mma.sync on codes,
// group scales applied in float32); larger M with BF16 activations and exactly-foldable scales (E8M0/E4M3
// groups, or one scale per row) runs the wgmma kernel, other cases loop the decode kernel over M.
void matmul_weight_only_cuda(const PreparedWeight& w, const void* x, DType xtype, int64_t m, void* y, DType ytype,
                             cudaStream_t stream = nullptr, int64_t ldx = 0);

// Batch-1 decode: the weight-only product of one activation row with the work around it in a model step fused
// into the same kernel, so a transformer layer needs fewer launches.
struct DecodeFusion {
  // Prologue: RMSNorm of the float32 residual stream rms_x (K values, 16-byte aligned) with weight rms_w, as
  // y = rsqrt(mean(rms_x^2) + rms_eps) * (W . bf16(rms_x * rms_w)): the activation row is bf16(rms_x * rms_w),
  // computed by every CTA, and the norm's factor scales the float32 outputs; the x argument is then unused.
  const float* rms_x = nullptr;
  const float* rms_w = nullptr;
  float rms_eps = 1e-5f;
  // Epilogue: weight rows (2i, 2i + 1) are (gate_i, up_i); y[i] = silu(gate_i) * up_i (N / 2 outputs).
  bool swiglu = false;
  // Epilogue: y is float32 and the product is added to it (a residual connection).
  bool accumulate = false;
  // Launch with programmatic dependent launch: the kernel starts while the previous kernel of the stream
  // finishes and streams its first weight tiles meanwhile; it waits for that kernel before reading
  // activations or writing y. The next kernel may likewise start early if launched so.
  bool programmatic = false;
};
// Why a fusion cannot run for this weight (empty when it can).
std::string decode_fusion_unsupported(const PreparedWeight& w, const DecodeFusion& f, DType ytype);
// Y (1 x N, or 1 x N/2 with swiglu) as matmul_weight_only_cuda with M = 1 and BF16 activations x, plus `f`.
void matmul_decode_fused_cuda(const PreparedWeight& w, const void* x, void* y, DType ytype, const DecodeFusion& f,
                              cudaStream_t stream = nullptr);

// Both operands quantized: Y = dequant(A) * dequant(W)^T where A comes from quantize_activations_cuda with
// opt.mma_operand (e.g. W4A4 mxfp4 x mxfp4, nvfp4 x nvfp4, W8A8 mxfp8 / fp8_e4m3). Tensor cores (wgmma,
// bf16 operands, float32 accumulation) on exactly dequantized tiles; or, for mxfp4 x mxfp4 with the weight's
// int8 image (prepare_int8_prefill), int8 tensor cores with exact int32 sums (no mma operand needed).
void matmul_quantized_cuda(const DeviceQuantized& a, const PreparedWeight& w, void* y, DType ytype,
                           cudaStream_t stream = nullptr);
// Why a (weight, activation format) pair cannot run on matmul_quantized_cuda (empty when it can).
std::string quantized_matmul_unsupported(const Format& act, const PreparedWeight& w);
// Whether matmul_quantized_cuda needs the activation's bf16 tensor-core operand (ActQuantOptions::mma_operand)
// for this product: not where it takes the int8 route (a weight with an int8 image, mxfp4 activations, M >= 256;
// FPQ_CUDA_W4A4=bf16 turns that route off, =int8 takes it at every M).
bool quantized_matmul_needs_mma_operand(const Format& act, const PreparedWeight& w, int64_t m);

// ---------------------------------------------------------------------------------------------------------
// Exact products for the model runtime (the linear module's "cuda" matmul backend)
// ---------------------------------------------------------------------------------------------------------

// Copies a host quantized tensor (planar layout) into device memory: codes, scales and the global scale(s)
// (one float, or one per row for per-row tensor scales; 1.0 when the format has none).
void upload_quantized(const QuantizedTensor& q, DeviceQuantized& out);

// Y (M x N float32) = float(S * (g_x * g_w)) where S = sum_k xs[k] * ws[k] in float64 over both operands
// dequantized without their tensor scales (code x group scale) and g_x, g_w the tensor scales of the
// activation row and weight row: the pseudo matmul's definition (src/model/builtin_backends.cpp). Group
// partial sums of code products run on the tensor cores and are exact when they fit float32 (FP4, INT4, FP6
// codes; INT8 and FP8 groups may round); scales and the sum over groups are float64, so for those formats the
// result equals the CPU's bit for bit. `a` is planar, symmetric, its codes exactly representable in bf16.
void matmul_exact_cuda(const DeviceQuantized& a, const PreparedWeight& w, float* y, cudaStream_t stream = nullptr);
// Why matmul_exact_cuda cannot take this activation format with this weight (empty when it can).
std::string exact_matmul_unsupported(const Format& act, const PreparedWeight& w);
// Whether the group partial sums of this pair are exact in float32 (then the result is bit-identical to the
// CPU's float64 product).
bool exact_matmul_bit_exact(const Format& act, const PreparedWeight& w);

// Weight-only product with float32 activations (device, M x K): x is split exactly into three bf16 parts,
// the three products run on the bf16 weight-only kernels and are added in float32, so the result is as
// close to a float32 GEMM as one float32 GEMM is to another. y: M x N float32 (device).
void matmul_weight_only_f32_cuda(const PreparedWeight& w, const float* x, int64_t m, float* y,
                                 cudaStream_t stream = nullptr);

// llama.cpp Q4_0 weight blocks (N x K/32 blocks of 18 bytes, as fpq::quantize stores q4_0) times Q8_1
// activation blocks (M x K/32 blocks of 36 bytes): Y (M x N, float32) with exact integer dot products per
// block, scaled by d_w * d_a in float32 (the stored s = d * sum is not used). M <= 16: dp4a; larger M: both
// operands converted exactly (int4 planes, bf16 codes) for the tensor-core prefill kernel.
void matmul_q4_0_q8_1_cuda(const void* w_blocks, const void* a_blocks, int64_t n, int64_t m, int64_t k, float* y,
                           cudaStream_t stream = nullptr);

}  // namespace fpq::cuda
