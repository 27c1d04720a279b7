// prepare_weight: repacks a QuantizedTensor into 16-row tiles (kernel_abi.h describes the layout) and derives
// the tables the kernels decode codes with.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <cstring>

#include "formats/ggml_blocks.h"
#include "formats/packing.h"
#include "kernels/cpu/operand_range.h"
#include "kernels/cpu/prepared.h"
#include "util/error.h"
#include "util/half.h"
#include "util/parallel.h"

namespace fpq::cpu {
namespace detail {

int64_t group_len(const Format& f, int64_t k) { return f.is_ggml() ? kGgmlBlock : f.group_for(k); }

CodeInfo code_info(const Format& f) {
  CodeInfo ci;
  switch (f.layout) {
    case Layout::GgmlQ4_0:
      ci.bits = 4;
      ci.is_int_type = true;
      for (int c = 0; c < 16; ++c) ci.values[c] = float(c - 8);
      break;
    case Layout::GgmlQ4_1:
      ci.bits = 4;
      ci.is_int_type = true;
      ci.is_signed_int = false;
      ci.has_mins = true;
      for (int c = 0; c < 16; ++c) ci.values[c] = float(c);
      break;
    case Layout::GgmlQ8_0:
    case Layout::GgmlQ8_1:
      ci.bits = 8;
      ci.is_int_type = true;
      for (int c = 0; c < 256; ++c) ci.values[c] = float(int8_t(uint8_t(c)));
      break;
    case Layout::Planar: {
      const ElementType& e = *f.element;
      ci.bits = e.bits;
      ci.is_int_type = e.kind == NumberKind::Int;
      ci.is_signed_int = e.is_signed;
      // Asymmetric ints: the kernels see the raw code q; the zero point comes separately.
      ci.has_zero_points = f.rule == ScaleRule::MinMax;
      for (int c = 0; c < (1 << e.bits); ++c)
        ci.values[c] = ci.has_zero_points ? float(c) : e.decode(uint32_t(c));
      break;
    }
  }
  const int ncodes = 1 << ci.bits;
  for (int c = 0; c < ncodes; ++c)
    if (!std::isfinite(ci.values[c])) ci.all_finite = false;
  // Integer view: the smallest shift making every value an integer.
  if (ci.all_finite) {
    for (int s = 0; s <= 24 && !ci.int_ok; ++s) {
      bool ok = true;
      int32_t mn = 0, mx = 0;
      for (int c = 0; c < ncodes && ok; ++c) {
        const double v = std::ldexp(double(ci.values[c]), s);
        if (v != std::floor(v) || std::fabs(v) > 32767) ok = false;
        else {
          ci.ints[c] = int32_t(v);
          mn = std::min(mn, ci.ints[c]);
          mx = std::max(mx, ci.ints[c]);
        }
      }
      if (ok) {
        ci.int_ok = true;
        ci.shift = s;
        ci.int_min = mn;
        ci.int_max = mx;
      }
    }
  }
  return ci;
}

int ggml_bytes(Layout l) {
  switch (l) {
    case Layout::GgmlQ4_0: return kQ4_0Bytes;
    case Layout::GgmlQ4_1: return kQ4_1Bytes;
    case Layout::GgmlQ8_0: return kQ8_0Bytes;
    case Layout::GgmlQ8_1: return kQ8_1Bytes;
    default: return 0;
  }
}

}  // namespace detail

namespace {

using detail::kTileRows;
using detail::kChunkCols;

int scale_code(const Format& f) {
  if (f.is_ggml()) return detail::kScaleF16;
  switch (f.scale) {
    case ScaleType::None: return detail::kScaleOne;
    case ScaleType::E8M0: return detail::kScaleE8M0;
    case ScaleType::E4M3: return detail::kScaleE4M3;
    case ScaleType::F16: return detail::kScaleF16;
    case ScaleType::BF16: return detail::kScaleBF16;
    case ScaleType::F32: return detail::kScaleF32;
  }
  return detail::kScaleOne;
}

// Unpacks row r of w into one code per byte; for ggml blocks also returns the f16 scale (and min) per block.
void unpack_row(const QuantizedTensor& w, int64_t r, uint8_t* codes, uint16_t* d, uint16_t* m) {
  const int64_t k = w.cols;
  const uint8_t* src = w.row_codes(r);
  switch (w.format.layout) {
    case Layout::Planar: unpack_codes(src, 0, k, w.format.element->bits, codes); return;
    case Layout::GgmlQ4_0:
    case Layout::GgmlQ4_1: {
      const int bb = detail::ggml_bytes(w.format.layout), qo = w.format.layout == Layout::GgmlQ4_0 ? 2 : 4;
      for (int64_t b = 0; b < k / kGgmlBlock; ++b) {
        const uint8_t* blk = src + b * bb;
        std::memcpy(&d[b], blk, 2);
        if (m) std::memcpy(&m[b], blk + 2, 2);
        for (int j = 0; j < 16; ++j) {
          codes[b * 32 + j] = blk[qo + j] & 0x0F;
          codes[b * 32 + 16 + j] = blk[qo + j] >> 4;
        }
      }
      return;
    }
    case Layout::GgmlQ8_0:
    case Layout::GgmlQ8_1: {
      const int bb = detail::ggml_bytes(w.format.layout), qo = w.format.layout == Layout::GgmlQ8_0 ? 2 : 4;
      for (int64_t b = 0; b < k / kGgmlBlock; ++b) {
        const uint8_t* blk = src + b * bb;
        std::memcpy(&d[b], blk, 2);
        std::memcpy(codes + b * 32, blk + qo, 32);
      }
      return;
    }
  }
}

void check_tensor(const QuantizedTensor& q, const char* what) {
  if (q.rows < 0 || q.cols <= 0) fail("{}: bad shape {} x {}", what, q.rows, q.cols);
  if (!q.format.element) fail("{}: tensor has no format", what);
  if (q.format.is_ggml() && q.cols % kGgmlBlock != 0) fail("{}: {} columns is not a multiple of 32", what, q.cols);
  if (int64_t(q.codes.size()) != q.rows * q.row_code_bytes())
    fail("{}: {} code bytes for a {} x {} '{}' tensor (expected {})", what, q.codes.size(), q.rows, q.cols,
         q.format.name, q.rows * q.row_code_bytes());
  if (!q.format.is_ggml()) {
    if (q.format.group > 0 && q.cols % q.format.group != 0)
      fail("{}: {} columns is not a multiple of the group size {}", what, q.cols, q.format.group);
    const size_t sb = size_t(q.rows * q.groups_per_row() * q.scale_bytes());
    if (q.scales.size() != sb) fail("{}: {} scale bytes (expected {})", what, q.scales.size(), sb);
    if (q.format.rule == ScaleRule::MinMax && q.zeros.size() != size_t(q.rows * q.groups_per_row()))
      fail("{}: {} zero points (expected {})", what, q.zeros.size(), q.rows * q.groups_per_row());
    const size_t gs = q.global_scale.size();
    if (!(gs == 0 || gs == 1 || gs == size_t(q.rows)))
      fail("{}: {} global scales for {} rows", what, gs, q.rows);
  }
}

}  // namespace

std::shared_ptr<const PreparedWeight> prepare_weight(const QuantizedTensor& w) {
  check_tensor(w, "prepare_weight");
  auto pw = std::make_shared<PreparedWeight>();
  PreparedWeight& p = *pw;
  const Format& f = w.format;
  p.format = f;
  p.n = w.rows;
  p.k = w.cols;
  p.format_bytes = w.codes.size() + w.scales.size() + w.zeros.size();
  p.info = detail::code_info(f);
  const detail::CodeInfo& ci = p.info;

  const int64_t k = w.cols, n = w.rows;
  const int64_t kp = (k + kChunkCols - 1) / kChunkCols * kChunkCols;
  const int64_t glen = detail::group_len(f, k);
  const bool per_row = glen == k;
  if (!per_row && glen % kChunkCols != 0) {
    p.tiled = false;
    p.fallback = w;
    return pw;
  }
  p.tiled = true;
  p.range = detail::operand_range(w, ci);
  p.gw = per_row ? kp : glen;
  const int64_t ngroups = per_row ? 1 : k / glen;
  const int64_t nt = (n + kTileRows - 1) / kTileRows;
  const int64_t nt_alloc = (nt + detail::kTileGroup - 1) / detail::kTileGroup * detail::kTileGroup;
  const int64_t nchunks = kp / kChunkCols;
  const bool nib = ci.bits <= 4;
  const int chunk_bytes = nib ? 64 : 128;
  const int sc = scale_code(f);
  const int sb = f.is_ggml() ? 2 : (sc == detail::kScaleOne ? 0 : scale_type_bytes(f.scale));

  p.codes.resize(size_t(nt_alloc * nchunks * chunk_bytes));
  p.scales.resize(size_t(nt_alloc * ngroups * kTileRows * std::max(sb, 1)));
  if (ci.has_zero_points) p.zeros.resize(size_t(nt_alloc * ngroups * kTileRows));
  if (ci.has_mins) p.mins.resize(size_t(nt_alloc * ngroups * kTileRows * 2));
  if (!f.is_ggml() && !w.global_scale.empty()) {
    p.row_global.resize(size_t(nt * kTileRows * 4));
    float* rg = p.row_global.as<float>();
    for (int64_t r = 0; r < nt * kTileRows; ++r) rg[r] = r < n ? w.global(r) : 1.0f;
  }

  // Codes that decode to zero fill the padding columns (any finite code would do: the activations are zero).
  uint8_t pad_code = 0;
  for (int c = 0; c < (1 << ci.bits); ++c)
    if (ci.values[c] == 0.0f) {
      pad_code = uint8_t(c);
      break;
    }

  std::atomic<bool> specials{false};
  parallel_for(nt, 4, [&](int64_t t0, int64_t t1) {
    std::vector<uint8_t> codes(static_cast<size_t>(kp));
    std::vector<uint16_t> d(static_cast<size_t>(k / kGgmlBlock + 1)), m(static_cast<size_t>(k / kGgmlBlock + 1));
    bool sp = false;
    for (int64_t t = t0; t < t1; ++t) {
      for (int lane = 0; lane < kTileRows; ++lane) {
        const int64_t r = t * kTileRows + lane;
        if (r >= n) {
          std::fill(codes.begin(), codes.end(), pad_code);
        } else {
          unpack_row(w, r, codes.data(), d.data(), ci.has_mins ? m.data() : nullptr);
          std::fill(codes.begin() + k, codes.end(), pad_code);
          if (!ci.all_finite)
            for (int64_t c = 0; c < k; ++c)
              if (!std::isfinite(ci.values[codes[size_t(c)]])) sp = true;
        }
        for (int64_t c = 0; c < nchunks; ++c) {
          uint8_t* ch = p.codes.data() + detail::tile_offset(t, c, nchunks) * chunk_bytes;
          const uint8_t* src = codes.data() + c * kChunkCols;
          for (int j = 0; j < 4; ++j) {
            if (nib) {
              ch[4 * lane + j] = uint8_t((src[j] & 0x0F) | (src[4 + j] << 4));
            } else {
              ch[4 * lane + j] = src[j];
              ch[64 + 4 * lane + j] = src[4 + j];
            }
          }
        }
        // Scales, zero points, mins of this row: [tile][group][lane].
        for (int64_t g = 0; g < ngroups; ++g) {
          const int64_t idx = detail::tile_offset(t, g, ngroups) * kTileRows + lane;
          if (r >= n) continue;
          if (f.is_ggml()) {
            std::memcpy(p.scales.data() + idx * 2, &d[size_t(g)], 2);
            if (ci.has_mins) std::memcpy(p.mins.data() + idx * 2, &m[size_t(g)], 2);
          } else if (sb > 0) {
            std::memcpy(p.scales.data() + idx * sb, w.row_scales(r) + g * sb, size_t(sb));
          }
          if (ci.has_zero_points) p.zeros.data()[idx] = w.zeros[size_t(r * ngroups + g)];
        }
      }
    }
    if (sp) specials = true;
  });
  p.specials_present = specials;

  // Decoding tables: lut_f[256] floats, lut_u8[64] bytes, lut_i16[64] int16.
  p.luts.resize(256 * 4 + 64 + 64 * 2 + 64 + 64 + 16);
  float* lut_f = p.luts.as<float>();
  uint8_t* lut_u8 = p.luts.data() + 1024;
  int16_t* lut_i16 = reinterpret_cast<int16_t*>(p.luts.data() + 1024 + 64);
  uint8_t* lut_hb = p.luts.data() + 1024 + 64 + 128;
  uint8_t* lut_lb = lut_hb + 64;
  int8_t* lut_s8 = reinterpret_cast<int8_t*>(lut_lb + 64);
  for (int c = 0; c < 256; ++c) lut_f[c] = c < (1 << ci.bits) ? ci.values[c] : 0.0f;
  const int32_t offset = ci.int_ok ? -ci.int_min : 0;
  p.u8_max = ci.int_ok ? ci.int_max + offset : 0;
  for (int c = 0; c < 64; ++c) {
    const bool valid = c < (1 << ci.bits) && ci.int_ok;
    lut_u8[c] = valid ? uint8_t(std::clamp(ci.ints[c] + offset, 0, 255)) : 0;
    lut_i16[c] = valid ? int16_t(ci.ints[c]) : 0;
  }

  // Scales without special bytes decode with a shift.
  int scode = sc;
  int max_byte = 0;  // E8M0: the largest scale byte (its exponent bounds every scale)
  if (sc == detail::kScaleE8M0 || sc == detail::kScaleE4M3) {
    bool special = false;
    const uint8_t* s = p.scales.data();
    for (int64_t t = 0; t < nt; ++t)
      for (int lane = 0; lane < kTileRows && t * kTileRows + lane < n; ++lane)
        for (int64_t g = 0; g < ngroups; ++g) {
          const uint8_t b = s[detail::tile_offset(t, g, ngroups) * kTileRows + lane];
          if (sc == detail::kScaleE8M0 ? (b == 0 || b == 0xFF) : (b & 0x80) || b == 0x7F) special = true;
          max_byte = std::max<int>(max_byte, b);
        }
    if (!special) scode = sc == detail::kScaleE8M0 ? detail::kScaleE8M0Fast : detail::kScaleE4M3Fast;
  }

  detail::WeightView& v = p.view;
  v.codes = p.codes.data();
  v.chunk_bytes = chunk_bytes;
  v.storage = nib ? detail::kNibble : detail::kByte;
  v.bits = ci.bits;
  v.n = n;
  v.nt = nt;
  v.kp = kp;
  v.nchunks = nchunks;
  v.scales = p.scales.data();
  v.scale_code = scode;
  v.scale_bytes = sb;
  // (E8M0 0xFF is NaN, which any product keeps; E4M3 magnitudes are below 448 < 2^9)
  if (sc == detail::kScaleE8M0) v.scale_sig_bits = 1, v.scale_exp_max = max_byte - 127 + 1;
  else if (sc == detail::kScaleE4M3) v.scale_sig_bits = 4, v.scale_exp_max = 9;
  else if (sc == detail::kScaleOne) v.scale_sig_bits = 1, v.scale_exp_max = 1;
  v.ngroups = ngroups;
  v.group_chunks = p.gw / kChunkCols;
  v.zeros = ci.has_zero_points ? p.zeros.data() : nullptr;
  v.mins = ci.has_mins ? p.mins.as<uint16_t>() : nullptr;
  v.row_global = p.row_global.empty() ? nullptr : p.row_global.as<float>();
  v.lut_f = lut_f;
  v.lut_u8 = lut_u8;
  v.lut_i16 = lut_i16;
  v.offset = offset;
  v.int_shift = ci.shift;

  // Smallest nonzero and largest finite |scale| over the planar weight's groups (the decoders that fold a power
  // of two into the scales check them against float32's range).
  struct ScaleRange {
    float lo = std::numeric_limits<float>::infinity(), hi = 0.0f;
  };
  std::optional<ScaleRange> scale_range_memo;  // computed once, on first use
  auto scale_range = [&]() -> ScaleRange {
    if (scale_range_memo) return *scale_range_memo;
    ScaleRange& sr = scale_range_memo.emplace();
    for (int64_t t = 0; t < nt; ++t)
      for (int lane = 0; lane < kTileRows && t * kTileRows + lane < n; ++lane)
        for (int64_t g = 0; g < ngroups; ++g) {
          const uint8_t* sp = p.scales.data() + (detail::tile_offset(t, g, ngroups) * kTileRows + lane) * sb;
          uint16_t h = 0;
          if (f.is_ggml()) std::memcpy(&h, sp, 2);
          const float sv = std::fabs(sc == detail::kScaleOne ? 1.0f
                                     : f.is_ggml()           ? f16_to_f32(h)
                                                             : decode_scale(f.scale, sp));
          if (!std::isfinite(sv)) continue;
          sr.hi = std::max(sr.hi, sv);
          if (sv != 0.0f) sr.lo = std::min(sr.lo, sv);
        }
    return sr;
  };
  // Whether the int8 values may decode as int8 * 2^24 (kernels_float.cpp FNibI8<true>, FSIntTop;
  // WeightView::s8_top): per-group scales only (multiplying each weight or its group sum), each staying normal
  // times fix * 2^-24.
  auto s8_top_ok = [&](float fix) {
    return !ci.has_zero_points && !ci.has_mins && ngroups > 1 &&
           !(scale_range().lo * fix * 0x1p-24f < std::numeric_limits<float>::min());
  };

  // Float decoding.
  if (nib) {
    v.float_decode = detail::kDecLut16;
    // The int8 view of the 16 values (AVX2 decodes through it): the group scales take the 2^-shift, so the
    // products are those of the values (exact as long as no scale becomes subnormal). Zero points and mins
    // (added unscaled) allow no shift, nor does one scale per row (applied to the sum, which would then be
    // 2^shift times as large and could round differently below FLT_MIN).
    bool s8 = ci.int_ok && ci.int_min >= -128 && ci.int_max <= 127 &&
              (ci.shift == 0 || (!ci.has_zero_points && !ci.has_mins && ngroups > 1));
    const float fix = std::ldexp(1.0f, -ci.shift);
    if (s8 && ci.shift > 0) s8 = !(scale_range().lo * fix < std::numeric_limits<float>::min());
    if (s8) {
      for (int c = 0; c < 16; ++c) lut_s8[c] = int8_t(c < (1 << ci.bits) ? ci.ints[c] : 0);
      v.lut_s8 = lut_s8;
      v.half_fix = fix;
      v.s8_top = s8_top_ok(fix);
    }
  } else if (ci.is_int_type && ci.bits == 8) {
    v.float_decode = ci.is_signed_int ? detail::kDecSInt8 : detail::kDecUInt8;
    // value = int * 2^-mbits (mxint8: 2^-6); ggml Q8 and int8/uint8: 1.
    const int frac = f.is_ggml() ? 0 : f.element->mbits;
    v.float_mul = std::ldexp(1.0f, -frac);
    if (ci.is_signed_int) v.s8_top = s8_top_ok(v.float_mul);
  } else if (!ci.is_int_type && !p.specials_present) {
    v.float_decode = detail::kDecFloat;
    const ElementType& e = *f.element;
    v.ebits = e.ebits;
    v.mbits = e.mbits;
    v.float_mul = std::ldexp(1.0f, 127 - e.bias);
    // Half-precision patterns (AVX-512 FHalfT, AVX2 FHalfAvx2 for mbits >= 2): sign << 15 | magnitude <<
    // (10 - mbits) = value * 2^(bias - 15), for exponent fields of up to 5 bits; the scales carry 2^(15 - bias),
    // which must not overflow.
    const int half_mode = e.ebits > 5 ? 0 : e.bits <= 6 ? 1 : (e.ebits == 4 && e.mbits == 3) ? 2 : (e.ebits == 5 && e.mbits == 2) ? 3 : 0;
    const float max_scale = scale_range().hi;
    const float fix = std::ldexp(1.0f, 15 - e.bias);
    if (half_mode && std::isfinite(max_scale * fix)) {
      v.half_mode = half_mode;
      v.half_fix = fix;
      if (half_mode == 1) {
        bool any_lb = false;
        uint8_t* hb = lut_hb;
        uint8_t* lb = lut_lb;
        for (int c = 0; c < 64; ++c) {
          const uint32_t sign = (uint32_t(c) >> (e.bits - 1)) & 1u, mag = uint32_t(c) & ((1u << (e.bits - 1)) - 1u);
          const uint32_t half = c < (1 << e.bits) ? (sign << 15) | (mag << (10 - e.mbits)) : 0u;
          hb[c] = uint8_t(half >> 8);
          lb[c] = uint8_t(half & 0xFF);
          any_lb = any_lb || lb[c] != 0;
        }
        v.lut_hb = hb;
        v.lut_lb = any_lb ? lb : nullptr;
      }
    }
  } else {
    v.float_decode = detail::kDecTable;
  }
  // Integer decoding (int8 kernel); the int16 kernel picks its decoder from storage and int_decode too.
  bool int_layout = false;
  if (nib) {
    bool identity = true;
    for (int c = 0; c < 16; ++c) identity = identity && lut_u8[c] == c;
    v.int_decode = identity ? detail::kIntNibId : detail::kIntNib;
    int_layout = true;
  } else if (ci.bits <= 6) {
    v.int_decode = detail::kIntLut64;
    int_layout = true;
  } else if (ci.is_int_type && ci.bits == 8) {
    v.int_decode = ci.is_signed_int ? detail::kIntXor80 : detail::kIntIdentity;
    int_layout = ci.is_signed_int ? offset == 128 : offset == 0;
  }
  p.int16_capable = ci.int_ok && int_layout;
  p.int8_capable = p.int16_capable && p.u8_max <= 255;
  return pw;
}

int64_t weight_rows(const PreparedWeight& w) { return w.n; }
int64_t weight_cols(const PreparedWeight& w) { return w.k; }
const Format& weight_format(const PreparedWeight& w) { return w.format; }
size_t weight_bytes(const PreparedWeight& w) { return w.format_bytes; }

}  // namespace fpq::cpu
