// Re-lays a quantized weight out for the kernels (frag.cuh describes the layout) and uploads it.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/ggml_blocks.h"
#include "formats/packing.h"
#include "formats/scale_type.h"
#include "kernels/cuda/code_layout.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/internal.h"
#include "util/error.h"
#include "util/parallel.h"

namespace fpq::cuda {

bool weight_fold_exact(const PreparedWeight& w) {
  if (!(w.scale == ScaleType::E8M0 || w.scale == ScaleType::E4M3)) return false;
  const int sig = w.is_int ? w.bits - 1 : w.mbits + 1;
  return sig + (w.scale == ScaleType::E8M0 ? 1 : 4) <= 8;
}

// The fused fold's shift: from the largest and smallest finite non-zero group scale present, the element
// type's smallest non-zero magnitude and both significands.
void choose_fused_fold(PreparedWeight& p, const uint8_t* scale_codes, size_t count) {
  p.fold_ok = false;
  if (p.is_int || !weight_fold_exact(p)) return;  // float codes; element x scale within bf16's 8 bits
  if (p.group < 16 || (p.group & (p.group - 1)) != 0) return;
  bool present[256] = {};
  for (size_t i = 0; i < count; ++i) present[scale_codes[i]] = true;
  // An E8M0 NaN scale (0xFF) keeps the per-group sums: the kernel computes E8M0 multipliers arithmetically.
  if (p.scale == ScaleType::E8M0 && present[0xFF]) return;
  int e_hi = -100000, e_lo = 100000;
  for (int c = 0; c < 256; ++c) {
    if (!present[c]) continue;
    const uint8_t b = uint8_t(c);
    const float s = decode_scale(p.scale, &b);
    if (!std::isfinite(s) || s == 0.0f) continue;  // NaN / zero scales give NaN / zero either way
    const int e = std::ilogb(s);
    e_hi = std::max(e_hi, e);
    e_lo = std::min(e_lo, e);
  }
  if (e_hi < e_lo) {  // no finite non-zero scale
    p.fold_ok = true;
    p.fold_shift = 0;
    return;
  }
  // Largest multiplier s * 2^(127 - bias - shift) in [2^127, 2^128): shift = e_hi - bias.
  const int shift = e_hi - p.bias;
  const int mult_lo = e_lo + 127 - e_hi;                  // exponent of the smallest multiplier
  const int elem_lo = 1 - p.bias - p.mbits;               // exponent of the smallest non-zero element
  const int prod_lo = elem_lo + e_lo - shift;             // smallest |element x scale x 2^-shift|
  if (mult_lo < -126 || prod_lo < -126) return;
  p.fold_ok = true;
  p.fold_shift = shift;
}

std::string weight_unsupported(const Format& f) {
  if (f.layout == Layout::GgmlQ4_0 || f.layout == Layout::GgmlQ8_0) return {};
  if (f.is_ggml()) return fmt::format("format '{}': llama.cpp layout other than q4_0 / q8_0", f.name);
  if (f.asymmetric()) return fmt::format("format '{}': asymmetric (zero-point) weights are not supported on CUDA", f.name);
  const ElementType& e = *f.element;
  if (!(e.bits == 4 || e.bits == 5 || e.bits == 6 || e.bits == 8))
    return fmt::format("format '{}': {}-bit codes (CUDA kernels take 4, 5, 6 or 8 bits)", f.name, e.bits);
  if (e.kind == NumberKind::Int) {
    if (!e.is_signed || e.mbits != 0 || !(e.bits == 4 || e.bits == 8))
      return fmt::format("format '{}': integer element {} (CUDA kernels take int4 and int8)", f.name, e.name);
  } else {
    if (e.ebits > 5) return fmt::format("format '{}': element {} has more than 5 exponent bits", f.name, e.name);
    if (!e.is_signed) return fmt::format("format '{}': unsigned float elements are not supported", f.name);
  }
  if (f.group > 0 && f.group % 16 != 0)
    return fmt::format("format '{}': group size {} is not a multiple of 16", f.name, f.group);
  return {};
}

PreparedWeight prepare_weight_cuda(const QuantizedTensor& w) {
  const Format& f = w.format;
  if (const std::string why = weight_unsupported(f); !why.empty()) fail("prepare_weight_cuda: {}", why);
  const int64_t N = w.rows, K = w.cols;
  if (K % 16 != 0) fail("prepare_weight_cuda: the weight's {} columns are not a multiple of 16", K);

  PreparedWeight p;
  p.format = f;
  p.n = N;
  p.k = K;
  p.n_tiles = (N + 15) / 16;
  p.k_tiles = (K + 63) / 64;

  // Element, scale type and group after converting llama.cpp blocks.
  const ElementType* e = f.element;
  ScaleType st = f.scale;
  int group = f.group_for(K);
  if (f.layout == Layout::GgmlQ4_0) {
    e = &element_type("int4");
    st = ScaleType::F16;
    group = 32;
  } else if (f.layout == Layout::GgmlQ8_0) {
    e = &element_type("int8");
    st = ScaleType::F16;
    group = 32;
  }
  bool synth_scale = false;
  if (st == ScaleType::None) {  // plain casts: a unit E8M0 scale (code 127) per row
    st = ScaleType::E8M0;
    group = int(K);
    synth_scale = true;
  }
  p.bits = e->bits;
  p.is_int = e->kind == NumberKind::Int;
  p.ebits = e->ebits;
  p.mbits = e->mbits;
  p.bias = e->bias;
  p.scale = st;
  p.group = group;
  const int sb = scale_type_bytes(st);
  const int64_t n_groups = (p.k_tiles * 64 + group - 1) / group;
  // The decode kernel addresses tiles and scale bytes with 32-bit offsets (a 2^32-tile weight has 4.4e12 elements).
  if (p.n_tiles * p.k_tiles >= (int64_t(1) << 32) || p.n_tiles * n_groups * 16 * sb >= (int64_t(1) << 32))
    fail("prepare_weight_cuda: the {} x {} weight is too large for the CUDA kernels' 32-bit tile offsets", N, K);

  // Codes of every element (row-major N x K) and raw scale bytes (N x K/group x sb).
  std::vector<uint8_t> codes(size_t(N * K));
  std::vector<uint8_t> sraw(size_t(N * (K / group) * sb), 0);
  parallel_for(N, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t* c = codes.data() + r * K;
      uint8_t* s = sraw.data() + r * (K / group) * sb;
      const uint8_t* rc = w.row_codes(r);
      if (f.layout == Layout::GgmlQ4_0) {
        for (int64_t b = 0; b < K / 32; ++b) {
          const uint8_t* blk = rc + b * kQ4_0Bytes;
          std::memcpy(s + b * 2, blk, 2);
          for (int j = 0; j < 16; ++j) {
            c[b * 32 + j] = uint8_t((int(blk[2 + j] & 0xF) - 8) & 0xF);
            c[b * 32 + 16 + j] = uint8_t((int(blk[2 + j] >> 4) - 8) & 0xF);
          }
        }
      } else if (f.layout == Layout::GgmlQ8_0) {
        for (int64_t b = 0; b < K / 32; ++b) {
          const uint8_t* blk = rc + b * kQ8_0Bytes;
          std::memcpy(s + b * 2, blk, 2);
          std::memcpy(c + b * 32, blk + 2, 32);
        }
      } else {
        unpack_codes(rc, 0, K, e->bits, c);
        if (synth_scale) s[0] = 127;
        else std::memcpy(s, w.row_scales(r), size_t((K / group) * sb));
      }
    }
  });

  // Planes in fragment order.
  const int64_t tiles = p.n_tiles * p.k_tiles;
  const int hi_bytes = p.bits == 8 ? 16 : p.bits == 6 ? 8 : p.bits == 5 ? 4 : 0;  // per lane
  std::vector<uint8_t> plane4(size_t(tiles * 512), 0), plane_hi(size_t(tiles * 32 * hi_bytes), 0);
  const int lay = layout::kind_of(p.bits, p.is_int, p.mbits, p.bias);
  parallel_for(p.n_tiles, 4, [&](int64_t t0, int64_t t1) {
    for (int64_t rt = t0; rt < t1; ++rt)
      for (int64_t kt = 0; kt < p.k_tiles; ++kt)
        for (int lane = 0; lane < 32; ++lane) {
          const int g = lane >> 2, t = lane & 3;
          const int64_t tile = rt * p.k_tiles + kt;
          // The lane's code pairs: register i of step j holds (first, second) = columns k, k + 1 of its row.
          uint32_t pair[4][4][2];
          for (int j = 0; j < 4; ++j)
            for (int i = 0; i < 4; ++i)
              for (int h = 0; h < 2; ++h) {
                const int64_t row = rt * 16 + g + ((i & 1) ? 8 : 0);
                const int64_t k = kt * 64 + 16 * j + 2 * t + ((i & 2) ? 8 : 0) + h;
                pair[j][i][h] = (row < N && k < K) ? codes[size_t(row * K + k)] : 0u;
              }
          uint32_t lo[4] = {0, 0, 0, 0}, hi[4] = {0, 0, 0, 0};
          if (lay != layout::kGeneric) {  // E2M1 / 6- and 5-bit floats: the rotate-and-mask layouts of code_layout.h
            uint32_t images[4][4], words[6];
            for (int j = 0; j < 4; ++j)
              for (int i = 0; i < 4; ++i) images[j][i] = layout::image_of(pair[j][i][0], pair[j][i][1], p.bits, p.mbits);
            layout::pack_words(lay, 7 - p.mbits, images, words);
            std::memcpy(lo, words, 16);
            std::memcpy(hi, words + 4, 8);
          } else {
            for (int j = 0; j < 4; ++j)
              for (int i = 0; i < 4; ++i)
                for (int h = 0; h < 2; ++h) {
                  const uint32_t code = pair[j][i][h];
                  lo[j] |= (code & 0xFu) << (4 * (i + 4 * h));
                  const uint32_t up = code >> 4;
                  if (p.bits == 8) {
                    hi[j] |= (up & 0xFu) << (4 * (i + 4 * h));
                  } else if (p.bits == 6) {
                    const int fld = (j & 1) * 4 + i + 8 * h;
                    hi[j >> 1] |= (up & 0x3u) << (2 * fld);
                  } else if (p.bits == 5) {
                    const int fld = j * 4 + i + 16 * h;
                    hi[0] |= (up & 0x1u) << fld;
                  }
                }
          }
          std::memcpy(plane4.data() + (tile * 32 + lane) * 16, lo, 16);
          if (hi_bytes) std::memcpy(plane_hi.data() + (tile * 32 + lane) * hi_bytes, hi, size_t(hi_bytes));
        }
  });

  // Scales: [rt][group][16 rows as g0, g8, g1, g9, ...], padded with zeros.
  std::vector<uint8_t> scales(size_t(p.n_tiles * n_groups * 16 * sb), 0);
  const int64_t real_groups = K / group;
  for (int64_t r = 0; r < N; ++r) {
    const int64_t rt = r / 16;
    const int rr = int(r % 16);
    const int pos = 2 * (rr & 7) + (rr >> 3);
    for (int64_t gi = 0; gi < real_groups; ++gi)
      std::memcpy(scales.data() + ((rt * n_groups + gi) * 16 + pos) * sb, sraw.data() + (r * real_groups + gi) * sb,
                  size_t(sb));
  }

  if (sb == 1) choose_fused_fold(p, sraw.data(), sraw.size());
  // fp16 scales only: the sums in units of a scale stay within float32 (s >= 2^-24).
  if (p.is_int && st == ScaleType::F16 && group < K) {
    double lo = INFINITY, hi = 0.0;
    bool ok = true;
    for (int64_t r = 0; r < N && ok; ++r)
      for (int64_t gi = 0; gi < K / group && ok; ++gi) {
        const float s = decode_scale(st, sraw.data() + (r * (K / group) + gi) * sb);
        if (!std::isfinite(s)) ok = false;
        else if (s == 0) {
          const uint8_t* c = codes.data() + r * K + gi * group;
          ok = std::all_of(c, c + group, [](uint8_t v) { return v == 0; });
        } else {
          lo = std::min(lo, std::fabs(double(s)));  // llama.cpp's q4_0 scales are signed: u / s takes the sign
          hi = std::max(hi, std::fabs(double(s)));
        }
      }
    p.rescale_ok = ok && (hi == 0.0 || hi / lo <= 0x1p64);
  }
  // The largest |element| times the largest |group scale| (a bound, from the tables, not the codes).
  float emax = 0.0f, smax = synth_scale ? 1.0f : 0.0f;
  for (uint32_t c = 0; c < (1u << p.bits); ++c)
    if (const float v = std::fabs(e->decode(c)); std::isfinite(v)) emax = std::max(emax, v);
  if (!synth_scale)
    for (size_t i = 0; i + size_t(sb) <= sraw.size(); i += size_t(sb))
      if (const float s = std::fabs(decode_scale(st, sraw.data() + i)); std::isfinite(s)) smax = std::max(smax, s);
  // The kernels' sums see element x scale (folded: x 2^-fold_shift as well) or the element alone (scales applied
  // after a row's or a group's sum): the largest of the three.
  if (emax > 0) {
    p.value_log2 = std::ilogb(emax);
    if (smax > 0) {
      const int scaled = std::ilogb(double(emax) * double(smax));
      p.value_log2 = std::max({p.value_log2, scaled, p.fold_ok ? scaled - p.fold_shift : scaled});
    }
  }
  p.plane4 = to_device(plane4.data(), plane4.size());
  if (hi_bytes) p.plane_hi = to_device(plane_hi.data(), plane_hi.size());
  p.scales = to_device(scales.data(), scales.size());
  if (f.global == GlobalScale::PerTensor) {
    p.global = w.global_scale.empty() ? 1.0f : w.global_scale[0];
  } else if (f.global == GlobalScale::PerRow) {
    if (w.global_scale.size() != size_t(N)) fail("prepare_weight_cuda: per-row global scale has {} values for {} rows", w.global_scale.size(), N);
    p.row_global = to_device(w.global_scale.data(), size_t(N) * sizeof(float));
  }
  return p;
}

}  // namespace fpq::cuda
