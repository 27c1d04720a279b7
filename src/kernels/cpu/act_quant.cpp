// quantize_activations: the fused activation quantizer of a linear layer. Produces exactly the bytes of
// fpq::quantize (same scale rule arithmetic, element encoding by SIMD code that reproduces
// ElementType::encode bit for bit); the rules it does not speed up go through fpq::quantize.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/ggml_blocks.h"
#include "formats/packing.h"
#include "kernels/cpu/prepared.h"
#include "util/error.h"
#include "util/half.h"
#include "util/parallel.h"

namespace fpq::cpu {
namespace {

struct MiscFns {
  void (*row_amax)(const float*, int64_t, int32_t, float*, uint8_t*);
  void (*encode_row)(const float*, int64_t, int32_t, const float*, const detail::EncodeParams&, uint8_t*);
  void (*encode_q8_row)(const float*, int64_t, const float*, int8_t*);
};

const MiscFns& misc(Isa isa) {
  static const MiscFns f[3] = {
      {detail::scalar::row_amax, detail::scalar::encode_row, detail::scalar::encode_q8_row},
      {detail::avx2::row_amax, detail::avx2::encode_row, detail::avx2::encode_q8_row},
      {detail::avx512::row_amax, detail::avx512::encode_row, detail::avx512::encode_q8_row},
  };
  return f[int(isa)];
}

detail::EncodeParams encode_params(const ElementType& e) {
  detail::EncodeParams p;
  if (e.kind == NumberKind::Int) {
    p.is_float = 0;
    p.frac_bits = e.mbits;
    p.qmin = e.qmin;
    p.qmax = e.qmax;
    p.mask = e.code_mask();
  } else {
    p.is_float = 1;
    p.ebits = e.ebits;
    p.mbits = e.mbits;
    p.bias = e.bias;
    p.is_signed = e.is_signed ? 1 : 0;
    p.max_mag = e.max_magnitude;
    p.max_mag_f32 = e.max_magnitude_f32;
    p.nan_pos = e.nan_code(false);
    p.nan_neg = e.nan_code(true);
  }
  return p;
}

bool fast_planar(const Format& f, int64_t k, const QuantizeOptions& opt) {
  if (f.is_ggml() || opt.rounding != Rounding::Nearest) return false;
  if (f.scale == ScaleType::None) return false;
  if (f.rule != ScaleRule::Mx && f.rule != ScaleRule::Absmax) return false;
  const int64_t g = f.group_for(k);
  if (g % 8 != 0 || k % g != 0) return false;
  if ((k * f.element->bits) % 8 != 0) return false;
  if (f.element->kind == NumberKind::Float && f.element->mbits > 22) return false;
  return true;
}

QuantizedTensor quantize_planar(const Format& f, const float* x, int64_t m, int64_t k, const QuantizeOptions& opt,
                                const MiscFns& fn) {
  const ElementType& e = *f.element;
  QuantizedTensor q;
  q.format = f;
  q.rows = m;
  q.cols = k;
  const int64_t rcb = q.row_code_bytes();
  const int gsz = int(f.group_for(k));
  const int64_t groups = k / gsz;
  const int sb = scale_type_bytes(f.scale);
  q.codes.assign(size_t(m * rcb), 0);
  q.scales.assign(size_t(m * groups * sb), 0);
  const detail::EncodeParams ep = encode_params(e);
  const uint8_t zero_code = uint8_t(e.kind == NumberKind::Int ? 0 : e.encode(0.0f));
  const int64_t grain = std::max<int64_t>(1, 32768 / k);

  // Group absmax of every row first (the per-tensor global scale needs all of them).
  std::vector<float> amax(static_cast<size_t>(m * groups));
  std::vector<uint8_t> finite(static_cast<size_t>(m * groups));
  parallel_for(m, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      fn.row_amax(x + r * k, k, gsz, amax.data() + r * groups, finite.data() + r * groups);
  });
  auto row_amax = [&](int64_t r) {
    float a = 0.0f;
    for (int64_t g = 0; g < groups; ++g) a = std::max(a, amax[size_t(r * groups + g)]);
    return a;
  };
  if (f.global == GlobalScale::PerTensor) {
    if (opt.global_scale) {
      q.global_scale = {*opt.global_scale};
    } else {
      float a = 0.0f;
      for (int64_t r = 0; r < m; ++r) a = std::max(a, row_amax(r));
      q.global_scale = {global_scale_from_amax(f, a)};
    }
  } else if (f.global == GlobalScale::PerRow) {
    q.global_scale.assign(size_t(m), 1.0f);
    for (int64_t r = 0; r < m; ++r)
      q.global_scale[size_t(r)] = opt.global_scale ? *opt.global_scale : global_scale_from_amax(f, row_amax(r));
  }

  const float ss = f.effective_scale_scale();
  parallel_for(m, grain, [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(k));
    std::vector<float> s_eff(static_cast<size_t>(groups));
    std::vector<uint8_t> dead(static_cast<size_t>(groups));  // groups encoded as all-zero codes
    for (int64_t r = r0; r < r1; ++r) {
      const float g = q.global(r);
      for (int64_t gi = 0; gi < groups; ++gi) {
        uint8_t* sbytes = q.scales.data() + (r * groups + gi) * sb;
        const float a = amax[size_t(r * groups + gi)];
        dead[size_t(gi)] = 0;
        if (!finite[size_t(r * groups + gi)]) {
          encode_scale_nan(f.scale, sbytes);
          s_eff[size_t(gi)] = 1.0f;
          dead[size_t(gi)] = 1;
          continue;
        }
        float s, gg;
        if (f.rule == ScaleRule::Mx) {
          int code = 0;
          if (a > 0) code = std::clamp(floor_log2(a) - e.emax, -127, 127) + 127;
          sbytes[0] = uint8_t(code);
          s = e8m0_decode(uint8_t(code));
          gg = 1.0f;
        } else {
          encode_scale(f.scale, a / ss / g, sbytes);
          s = decode_scale(f.scale, sbytes);
          gg = g;
        }
        const float se = s * gg;
        if (!(se > 0) || !std::isfinite(se)) {
          s_eff[size_t(gi)] = 1.0f;
          dead[size_t(gi)] = 1;
        } else {
          s_eff[size_t(gi)] = se;
        }
      }
      fn.encode_row(x + r * k, k, gsz, s_eff.data(), ep, codes.data());
      for (int64_t gi = 0; gi < groups; ++gi)
        if (dead[size_t(gi)]) std::memset(codes.data() + gi * gsz, zero_code, size_t(gsz));
      pack_codes(codes.data(), k, e.bits, q.codes.data() + r * rcb);
    }
  });
  return q;
}

QuantizedTensor quantize_q8(const Format& f, const float* x, int64_t m, int64_t k, const MiscFns& fn) {
  const bool q81 = f.layout == Layout::GgmlQ8_1;
  const int bb = q81 ? kQ8_1Bytes : kQ8_0Bytes, qo = q81 ? 4 : 2;
  const int64_t nb = k / kGgmlBlock;
  QuantizedTensor q;
  q.format = f;
  q.rows = m;
  q.cols = k;
  q.codes.assign(size_t(m * nb * bb), 0);
  parallel_for(m, std::max<int64_t>(1, 32768 / k), [&](int64_t r0, int64_t r1) {
    std::vector<float> amax(static_cast<size_t>(nb)), id(static_cast<size_t>(nb));
    std::vector<uint8_t> finite(static_cast<size_t>(nb));
    std::vector<int8_t> qs(static_cast<size_t>(k));
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * k;
      uint8_t* out = q.codes.data() + r * nb * bb;
      fn.row_amax(xr, k, kGgmlBlock, amax.data(), finite.data());
      for (int64_t b = 0; b < nb; ++b) {
        const float d = amax[size_t(b)] / 127.0f;
        id[size_t(b)] = d != 0.0f ? 1.0f / d : 0.0f;
      }
      fn.encode_q8_row(xr, k, id.data(), qs.data());
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t* blk = out + b * bb;
        if (!finite[size_t(b)]) {  // llama.cpp leaves this undefined; fpq's reference writes a NaN block
          if (q81) quantize_row_q8_1(xr + b * kGgmlBlock, kGgmlBlock, blk);
          else quantize_row_q8_0(xr + b * kGgmlBlock, kGgmlBlock, blk);
          continue;
        }
        const float d = amax[size_t(b)] / 127.0f;
        const uint16_t hd = f32_to_f16(d);
        std::memcpy(blk, &hd, 2);
        std::memcpy(blk + qo, qs.data() + b * kGgmlBlock, kGgmlBlock);
        if (q81) {
          int sum = 0;
          for (int j = 0; j < kGgmlBlock; ++j) sum += qs[size_t(b * kGgmlBlock + j)];
          const uint16_t hs = f32_to_f16(float(sum) * d);
          std::memcpy(blk + 2, &hs, 2);
        }
      }
    }
  });
  return q;
}

}  // namespace

QuantizedTensor quantize_activations(const Format& f, const float* x, int64_t m, int64_t k,
                                     const QuantizeOptions& opt) {
  if (m < 0) fail("quantize_activations: negative row count {}", m);
  const MiscFns& fn = misc(active_isa());
  if ((f.layout == Layout::GgmlQ8_0 || f.layout == Layout::GgmlQ8_1) && opt.rounding == Rounding::Nearest && k > 0 &&
      k % kGgmlBlock == 0)
    return quantize_q8(f, x, m, k, fn);
  if (k > 0 && fast_planar(f, k, opt) &&
      (!opt.global_scale || (*opt.global_scale > 0 && std::isfinite(*opt.global_scale))))
    return quantize_planar(f, x, m, k, opt, fn);
  return quantize(f, x, m, k, opt);
}

}  // namespace fpq::cpu
