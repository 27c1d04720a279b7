// The int8 image of an mxfp4-style weight (cuda_kernels.h, "W4A4 prefill on the int8 tensor cores"), built on
// the host from the quantized tensor: a value is 2 x E2M1 (an integer, |i| <= 12) times 2^(s - 128) for the
// E8M0 scale code s. A row's non-zero groups are banded by exponent from the largest one down, 4 exponents per
// band; each band is one virtual row holding i << (e - base) (|v| <= 96) and the scale 2^base.
#include <algorithm>
#include <climits>
#include <cmath>
#include <map>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/int8_codes.h"
#include "util/error.h"

namespace fpq::cuda {

std::string int8_image_unsupported(const QuantizedTensor& w) {
  const Format& f = w.format;
  if (f.is_ggml()) return fmt::format("format '{}' is a llama.cpp block layout", f.name);
  const ElementType& e = *f.element;
  if (!(e.kind == NumberKind::Float && e.bits == 4 && e.ebits == 2 && e.mbits == 1 && e.bias == 1))
    return fmt::format("format '{}': elements are {}, not e2m1", f.name, e.name);
  if (f.scale != ScaleType::E8M0) return fmt::format("format '{}': group scales are not E8M0", f.name);
  if (f.asymmetric()) return fmt::format("format '{}' is asymmetric", f.name);
  if (w.cols % 32 != 0) return fmt::format("{} columns are not a multiple of 32", w.cols);
  if (w.group() % 32 != 0) return fmt::format("groups of {} values are not a multiple of 32", w.group());
  for (uint8_t s : w.scales)
    if (s == 0xFF) return "the weight has a NaN group scale";
  return {};
}

std::string int8_route_unsupported(const Format& f) {
  const ElementType& e = *f.element;
  if (f.is_ggml() || f.asymmetric() || !(e.kind == NumberKind::Float && e.bits == 4 && e.ebits == 2 && e.mbits == 1 && e.bias == 1))
    return fmt::format("activation format '{}' does not have E2M1 elements in a symmetric planar layout", f.name);
  if (f.scale != ScaleType::E8M0 || f.group != 32) return fmt::format("activation format '{}' does not have E8M0 scales per 32", f.name);
  if (f.global != GlobalScale::None) return fmt::format("activation format '{}' has a global scale", f.name);
  return {};
}

Int8Image build_int8_image(const QuantizedTensor& w) {
  if (const std::string why = int8_image_unsupported(w); !why.empty()) fail("build_int8_image: {}", why);
  const int64_t N = w.rows, K = w.cols, G = w.groups_per_row(), gs = w.group();
  Int8Image im;
  im.n = N;
  im.k = K;
  im.first.assign(size_t(N + 1), 0);
  int twice[16];
  for (uint32_t c = 0; c < 16; ++c) twice[c] = twice_e2m1(c);
  std::vector<int> exp_of(static_cast<size_t>(G));
  std::vector<bool> nonzero(static_cast<size_t>(G));
  for (int64_t r = 0; r < N; ++r) {
    const uint8_t* sc = w.row_scales(r);
    const uint8_t* rc = w.row_codes(r);  // two codes per byte, the first in the low nibble; gs is even
    int top = -100000;
    for (int64_t g = 0; g < G; ++g) {
      bool nz = false;
      for (int64_t b = g * gs / 2; b < (g + 1) * gs / 2 && !nz; ++b) nz = (rc[b] & 0x77u) != 0;
      nonzero[size_t(g)] = nz;
      exp_of[size_t(g)] = int(sc[g]) - 128;
      if (nz) top = std::max(top, exp_of[size_t(g)]);
    }
    // Bands present in this row (band b: exponents top - 4b - 3 .. top - 4b); an all-zero row keeps one.
    std::map<int, int64_t> band_row;  // band -> virtual row
    for (int64_t g = 0; g < G; ++g)
      if (nonzero[size_t(g)]) band_row[(top - exp_of[size_t(g)]) / 4] = 0;
    if (band_row.empty()) band_row[0] = 0;
    for (auto& [b, v] : band_row) {
      v = im.rows++;
      const int base = top == -100000 ? 0 : top - 4 * b - 3;
      im.scale.push_back(std::ldexp(1.0, base));
    }
    im.codes.resize(size_t(im.rows * K), 0);
    for (int64_t g = 0; g < G; ++g) {
      if (!nonzero[size_t(g)]) continue;
      const int b = (top - exp_of[size_t(g)]) / 4;
      const int shift = exp_of[size_t(g)] - (top - 4 * b - 3);
      int8_t* dst = im.codes.data() + band_row[b] * K;
      for (int64_t c = g * gs; c < (g + 1) * gs; c += 2) {
        const uint8_t byte = rc[c / 2];
        dst[c] = int8_t(twice[byte & 15u] * (1 << shift));
        dst[c + 1] = int8_t(twice[byte >> 4] * (1 << shift));
      }
    }
    im.first[size_t(r + 1)] = int32_t(im.rows);
  }
  return im;
}

void prepare_int8_prefill(PreparedWeight& p, const QuantizedTensor& w) {
  if (p.n != w.rows || p.k != w.cols || p.format.name != w.format.name)
    fail("prepare_int8_prefill: the prepared weight ({} x {}, {}) is not this tensor ({} x {}, {})", p.n, p.k,
         p.format.name, w.rows, w.cols, w.format.name);
  const Int8Image im = build_int8_image(w);
  if (im.rows > int64_t(INT32_MAX)) fail("prepare_int8_prefill: {} virtual rows", im.rows);
  p.i8_codes = to_device(im.codes.data(), im.codes.size());
  p.i8_scale = to_device(im.scale.data(), im.scale.size() * sizeof(double));
  p.i8_first = to_device(im.first.data(), im.first.size() * sizeof(int32_t));
  p.i8_rows = im.rows;
  // One virtual row per weight row: the column scales of the fused GEMM (int8_gemm_scaled), 2^base x the row's
  // global scale, exact in float64.
  p.i8_col_scale = DeviceBuffer();
  if (im.rows == im.n) {
    std::vector<double> col(size_t(im.n));
    const bool per_row = w.format.global == GlobalScale::PerRow;
    for (int64_t r = 0; r < im.n; ++r)
      col[size_t(r)] = im.scale[size_t(r)] * double(per_row ? w.global_scale[size_t(r)] : p.global);
    p.i8_col_scale = to_device(col.data(), col.size() * sizeof(double));
  }
}

}  // namespace fpq::cuda
