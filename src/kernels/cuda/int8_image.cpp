// The int8 image of an mxfp4-style weight (cuda_kernels.h, "W4A4 prefill on the int8 tensor cores"), built on
// the host from the quantized tensor: a value is 2 x E2M1 (an integer, |i| <= 12) times 2^(s - 128) for the
// E8M0 scale code s. A row's non-zero groups are banded by exponent from the largest one down, 4 exponents per
// band; each band is one virtual row holding i << (e - base) (|v| <= 96) and the scale 2^base. Virtual row r < n
// is weight row r's top band, so the first n rows are an n x k matrix of their own (the fused GEMM's operand);
// the other bands follow.
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
  im.rows = N;
  im.codes.assign(size_t(N * K), 0);
  im.scale.assign(size_t(N), 1.0);
  im.extra_first.assign(size_t(N + 1), 0);
  std::vector<int8_t> extra_codes;  // the rows' other bands, appended after the N top bands at the end
  std::vector<double> extra_scale;
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
    // Bands present in this row (band b: exponents top - 4b - 3 .. top - 4b). Band 0 (it holds the top group;
    // an all-zero row keeps it, empty) is row r; the others get rows of their own after the N top bands.
    std::map<int, int8_t*> band_dst;
    band_dst[0] = im.codes.data() + r * K;
    im.scale[size_t(r)] = std::ldexp(1.0, top == -100000 ? 0 : top - 3);
    im.extra_first[size_t(r)] = int32_t(N + int64_t(extra_scale.size()));
    std::map<int, size_t> extra_index;  // band -> its row among the other bands, in band order
    for (int64_t g = 0; g < G; ++g)
      if (nonzero[size_t(g)] && top - exp_of[size_t(g)] >= 4) extra_index.emplace((top - exp_of[size_t(g)]) / 4, 0);
    for (auto& [b, at] : extra_index) {
      at = extra_scale.size();
      extra_scale.push_back(std::ldexp(1.0, top - 4 * b - 3));
    }
    extra_codes.resize(extra_scale.size() * size_t(K), 0);
    for (const auto& [b, at] : extra_index) band_dst[b] = extra_codes.data() + at * size_t(K);
    for (int64_t g = 0; g < G; ++g) {
      if (!nonzero[size_t(g)]) continue;
      const int b = (top - exp_of[size_t(g)]) / 4;
      const int shift = exp_of[size_t(g)] - (top - 4 * b - 3);
      int8_t* dst = band_dst[b];
      for (int64_t c = g * gs; c < (g + 1) * gs; c += 2) {
        const uint8_t byte = rc[c / 2];
        dst[c] = int8_t(twice[byte & 15u] * (1 << shift));
        dst[c + 1] = int8_t(twice[byte >> 4] * (1 << shift));
      }
    }
  }
  im.extra_first[size_t(N)] = int32_t(N + int64_t(extra_scale.size()));
  im.rows = N + int64_t(extra_scale.size());
  im.codes.insert(im.codes.end(), extra_codes.begin(), extra_codes.end());
  im.scale.insert(im.scale.end(), extra_scale.begin(), extra_scale.end());
  return im;
}

Int8Image banded_rows(const Int8Image& im, std::vector<int32_t>& rows) {
  rows.clear();
  for (int64_t r = 0; r < im.n; ++r)
    if (im.extra_first[size_t(r + 1)] > im.extra_first[size_t(r)]) rows.push_back(int32_t(r));
  Int8Image b;
  b.n = int64_t(rows.size());
  b.k = im.k;
  const size_t K = size_t(im.k);
  for (int32_t r : rows) {  // top bands first, as in any image
    b.codes.insert(b.codes.end(), im.codes.begin() + ptrdiff_t(size_t(r) * K), im.codes.begin() + ptrdiff_t(size_t(r + 1) * K));
    b.scale.push_back(im.scale[size_t(r)]);
  }
  b.extra_first.push_back(int32_t(b.n));
  for (int32_t r : rows) {
    for (int32_t v = im.extra_first[size_t(r)]; v < im.extra_first[size_t(r + 1)]; ++v) {
      b.codes.insert(b.codes.end(), im.codes.begin() + ptrdiff_t(size_t(v) * K), im.codes.begin() + ptrdiff_t(size_t(v + 1) * K));
      b.scale.push_back(im.scale[size_t(v)]);
    }
    b.extra_first.push_back(int32_t(b.scale.size()));
  }
  b.rows = int64_t(b.scale.size());
  return b;
}

namespace {

// A host image's codes, scales and band ranges on the device.
void upload_image(const Int8Image& im, DeviceBuffer& codes, DeviceBuffer& scale, DeviceBuffer& extra_first) {
  codes = to_device(im.codes.data(), im.codes.size());
  scale = to_device(im.scale.data(), im.scale.size() * sizeof(double));
  extra_first = to_device(im.extra_first.data(), im.extra_first.size() * sizeof(int32_t));
}

}  // namespace

void prepare_int8_prefill(PreparedWeight& p, const QuantizedTensor& w) {
  if (p.n != w.rows || p.k != w.cols || p.format.name != w.format.name)
    fail("prepare_int8_prefill: the prepared weight ({} x {}, {}) is not this tensor ({} x {}, {})", p.n, p.k,
         p.format.name, w.rows, w.cols, w.format.name);
  const Int8Image im = build_int8_image(w);
  if (im.rows > int64_t(INT32_MAX)) fail("prepare_int8_prefill: {} virtual rows", im.rows);
  upload_image(im, p.i8_codes, p.i8_scale, p.i8_extra_first);
  p.i8_rows = im.rows;
  // The fused GEMM's column scales: the top band's 2^base x the row's global scale, exact in float64.
  std::vector<double> col(size_t(im.n));
  const bool per_row = w.format.global == GlobalScale::PerRow;
  for (int64_t r = 0; r < im.n; ++r)
    col[size_t(r)] = im.scale[size_t(r)] * double(per_row ? w.global_scale[size_t(r)] : p.global);
  p.i8_col_scale = to_device(col.data(), col.size() * sizeof(double));
  // Rows with several bands: their own image, which the fused route multiplies apart to redo their columns.
  std::vector<int32_t> rows;
  const Int8Image banded = banded_rows(im, rows);
  p.i8_band_n = banded.n;
  p.i8_band_rows = banded.rows;
  for (DeviceBuffer* b : {&p.i8_band_codes, &p.i8_band_scale, &p.i8_band_extra_first, &p.i8_band_cols}) *b = DeviceBuffer();
  if (banded.n) {
    upload_image(banded, p.i8_band_codes, p.i8_band_scale, p.i8_band_extra_first);
    p.i8_band_cols = to_device(rows.data(), rows.size() * sizeof(int32_t));
  }
}

}  // namespace fpq::cuda
