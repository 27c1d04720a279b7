#pragma once
// Internal: the prepared (tiled) weight, the integer view of an element type, and the activation staging
// buffers of one call. Baseline-compiled code only.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "formats/quantize.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/kernel_abi.h"
#include "kernels/cpu/matmul.h"

namespace fpq::cpu {
namespace detail {

// 64-byte aligned, zero-initialised byte buffer.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) { resize(bytes); }
  void resize(size_t bytes) {
    size_ = bytes;
    // Large buffers (prepared weights) in transparent huge pages where the kernel allows it: a matrix-vector
    // product streams them once, and 4 KB pages would cost a TLB miss every 4 KB.
    const bool huge = bytes >= (size_t(4) << 20);
    const size_t align = huge ? size_t(2) << 20 : 64;
    const size_t alloc = (bytes + 64 + align - 1) / align * align;
    p_.reset(static_cast<uint8_t*>(std::aligned_alloc(align, alloc)));
    if (!p_) throw std::bad_alloc();
    if (huge) (void)::madvise(p_.get(), alloc, MADV_HUGEPAGE);
    std::fill(p_.get(), p_.get() + alloc, uint8_t(0));
  }
  uint8_t* data() { return p_.get(); }
  const uint8_t* data() const { return p_.get(); }
  template <typename T>
  T* as() { return reinterpret_cast<T*>(p_.get()); }
  template <typename T>
  const T* as() const { return reinterpret_cast<const T*>(p_.get()); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> p_;
  size_t size_ = 0;
};

// How the codes of a tensor map to numbers, for both kernel families.
struct CodeInfo {
  int bits = 4;
  bool is_int_type = false;   // integer element (int4, uint8, mxint8, ggml blocks)
  bool is_signed_int = true;
  float values[256] = {};     // value of each code (before scales; asymmetric: the raw code q)
  bool all_finite = true;     // every code (not only those present) has a finite value
  // Integer view: value = int * 2^-shift exactly for every code, |int| <= 32767.
  bool int_ok = false;
  int shift = 0;
  int32_t ints[256] = {};
  int32_t int_min = 0, int_max = 0;
  bool has_zero_points = false;  // value = (q - z) * s: zero points per group
  bool has_mins = false;         // value = q * d + m (llama.cpp Q4_1)
};

CodeInfo code_info(const Format& f);
// Bytes of one llama.cpp block of a ggml layout (0 for planar).
int ggml_bytes(Layout l);

// The magnitudes an operand brings into a real kernel (operand_range.h).
// Kernels multiply a code's value by its group scale before or after summing (per-row scales: after), so
// both count: lo and hi bound |value| and |value x scale| over the nonzero values, before the global scale.
struct OperandRange {
  double lo = 0;      // smallest nonzero |value| or |value x scale| (ggml Q4_1 mins count as terms); 0: none
  double hi = 0;      // largest |value| or |value x scale| (+ |min|)
  double glo = 1, ghi = 1;  // smallest and largest nonzero |global scale| (1 without)
};

// The (scale) group length a tensor applies along its rows of `k` values (ggml blocks: 32; per row: k).
int64_t group_len(const Format& f, int64_t k);

}  // namespace detail

struct PreparedWeight {
  Format format;
  int64_t n = 0, k = 0;
  detail::CodeInfo info;
  bool tiled = false;            // false: the format's groups do not fit the tile layout; pseudo path
  QuantizedTensor fallback;      // only when !tiled
  int64_t gw = 0;                // group length along K (kp for one scale per row)
  int32_t u8_max = 0;            // largest unsigned byte of the int8 kernel's codes
  bool int8_capable = false, int16_capable = false;
  bool specials_present = false;
  detail::AlignedBuffer codes, scales, zeros, mins, row_global, luts;
  detail::WeightView view;
  size_t format_bytes = 0;       // codes + scales (+ zero points, ggml extras) of the source tensor
  detail::OperandRange range;    // of the source tensor (the driver's float32-range check)
};

}  // namespace fpq::cpu
