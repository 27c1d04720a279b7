#include "formats/element_type.h"

#include <bit>
#include <cmath>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "util/error.h"
#include "util/half.h"

namespace fpq {
namespace {

ElementType make_float(const std::string& name, int ebits, int mbits, Specials sp, bool is_signed = true) {
  ElementType t;
  t.name = name;
  t.kind = NumberKind::Float;
  t.ebits = ebits;
  t.mbits = mbits;
  t.bits = (is_signed ? 1 : 0) + ebits + mbits;
  t.bias = (1 << (ebits - 1)) - 1;
  t.is_signed = is_signed;
  t.specials = sp;
  const uint32_t all_ones = (1u << (ebits + mbits)) - 1u;
  switch (sp) {
    case Specials::Finite: t.max_magnitude = all_ones; break;
    case Specials::Fn: t.max_magnitude = all_ones - 1u; break;
    case Specials::Ieee: t.max_magnitude = (((1u << ebits) - 2u) << mbits) | ((1u << mbits) - 1u); break;
  }
  const int emin = 1 - t.bias;
  const uint32_t ncodes = 1u << t.bits;
  for (uint32_t c = 0; c < ncodes; ++c) {
    const bool neg = is_signed && (c >> (ebits + mbits)) & 1u;
    const uint32_t mag = c & all_ones;
    const uint32_t e = mag >> mbits, m = mag & ((1u << mbits) - 1u);
    double v;
    if (sp == Specials::Ieee && e == (1u << ebits) - 1u)
      v = m == 0 ? INFINITY : NAN;
    else if (sp == Specials::Fn && mag == all_ones)
      v = NAN;
    else if (e == 0)
      v = std::ldexp(double(m), emin - mbits);
    else
      v = std::ldexp(1.0 + std::ldexp(double(m), -mbits), int(e) - t.bias);
    t.table[c] = float(neg ? -v : v);
  }
  t.max_value = t.table[t.max_magnitude];
  t.max_magnitude_f32 = f32_bits(t.max_value);
  t.emax = floor_log2(t.max_value);
  t.subnormal_scale = std::ldexp(1.0f, mbits - emin);
  return t;
}

ElementType make_int(const std::string& name, int bits, bool is_signed, int frac_bits = 0, bool symmetric = false) {
  ElementType t;
  t.name = name;
  t.kind = NumberKind::Int;
  t.bits = bits;
  t.mbits = frac_bits;
  t.is_signed = is_signed;
  t.qmin = is_signed ? (symmetric ? -((1 << (bits - 1)) - 1) : -(1 << (bits - 1))) : 0;
  t.qmax = is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  const uint32_t ncodes = 1u << bits;
  for (uint32_t c = 0; c < ncodes; ++c) t.table[c] = std::ldexp(float(t.int_value(c)), -frac_bits);
  t.max_value = std::ldexp(float(t.qmax), -frac_bits);
  t.max_magnitude_f32 = f32_bits(t.max_value);
  t.emax = floor_log2(t.max_value);
  return t;
}

struct Registry {
  std::mutex m;
  std::deque<ElementType> types;  // deque: stable addresses
  std::unordered_map<std::string, const ElementType*> by_name;
  std::vector<const ElementType*> named;

  const ElementType* add(ElementType t, std::initializer_list<const char*> aliases = {}) {
    types.push_back(std::move(t));
    const ElementType* p = &types.back();
    by_name[p->name] = p;
    for (const char* a : aliases) by_name[a] = p;
    return p;
  }

  Registry() {
    auto named_float = [&](const char* n, int e, int m, Specials s, std::initializer_list<const char*> al) {
      named.push_back(add(make_float(n, e, m, s), al));
    };
    named_float("e2m1", 2, 1, Specials::Finite, {"fp4", "fp4_e2m1", "float4_e2m1fn", "e2m1_fin"});
    named_float("e3m0", 3, 0, Specials::Finite, {"fp4_e3m0", "e3m0_fin"});
    named_float("e2m0", 2, 0, Specials::Finite, {"fp3", "fp3_e2m0", "e2m0_fin"});
    named_float("e2m2", 2, 2, Specials::Finite, {"fp5_e2m2", "e2m2_fin"});
    named_float("e3m1", 3, 1, Specials::Finite, {"fp5_e3m1", "e3m1_fin"});
    named_float("e2m3", 2, 3, Specials::Finite, {"fp6_e2m3", "float6_e2m3fn", "e2m3_fin"});
    named_float("e3m2", 3, 2, Specials::Finite, {"fp6", "fp6_e3m2", "float6_e3m2fn", "e3m2_fin"});
    named_float("e4m3", 4, 3, Specials::Fn, {"fp8", "fp8_e4m3", "e4m3fn", "e4m3_fn", "float8_e4m3fn"});
    named_float("e5m2", 5, 2, Specials::Ieee, {"fp8_e5m2", "e5m2_ieee", "float8_e5m2"});
    named.push_back(add(make_int("int4", 4, true), {"i4"}));
    named.push_back(add(make_int("uint4", 4, false), {"u4"}));
    named.push_back(add(make_int("int8", 8, true), {"i8"}));
    named.push_back(add(make_int("uint8", 8, false), {"u8"}));
    // OCP MXINT8: two's complement with an implicit scale of 2^-6, used symmetric (-127..127).
    named.push_back(add(make_int("mxint8", 8, true, 6, true), {}));
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

int floor_log2(float x) {
  const uint32_t a = f32_bits(x) & 0x7FFFFFFFu;
  if (a >= 0x00800000u) return int(a >> 23) - 127;
  return (31 - std::countl_zero(a)) - 149;  // subnormal: a * 2^-149
}

int ElementType::int_value(uint32_t code) const {
  code &= code_mask();
  if (is_signed && (code >> (bits - 1)) & 1u) return int(code) - (1 << bits);
  return int(code);
}

uint32_t ElementType::nan_code(bool negative) const {
  if (kind != NumberKind::Float || specials == Specials::Finite) return 0;
  const uint32_t sign = negative ? 1u << (ebits + mbits) : 0u;
  if (specials == Specials::Fn) return sign | ((1u << (ebits + mbits)) - 1u);
  return sign | (((1u << ebits) - 1u) << mbits) | (1u << (mbits - 1));  // quiet NaN
}

namespace {

// Shared body of both roundings. `up_bits(dropped_width)` gives the value added below the kept bits.
template <typename AddBelow>
inline uint32_t encode_float(const ElementType& t, float x, AddBelow add_below, float sub_up_threshold_unused) {
  (void)sub_up_threshold_unused;
  const uint32_t u = f32_bits(x);
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t sign = (t.is_signed && (u >> 31)) ? 1u << (t.ebits + t.mbits) : 0u;
  if (a > 0x7F800000u) return t.nan_code(u >> 31);
  uint32_t mag;
  if (a >= t.max_magnitude_f32) {
    mag = t.max_magnitude;
  } else {
    const int emin = 1 - t.bias;
    const int e = int(a >> 23) - 127;
    if (e < emin) {
      // Target subnormal: count quanta of 2^(emin - mbits). The scaling by a power of two is exact.
      const float v = f32_from_bits(a) * t.subnormal_scale;
      mag = add_below.subnormal(v);
    } else {
      const int shift = 23 - t.mbits;
      const uint32_t r = a + add_below.normal(a, shift);
      mag = (r >> shift) - (uint32_t(127 - t.bias) << t.mbits);
    }
    if (mag > t.max_magnitude) mag = t.max_magnitude;
  }
  return sign | mag;
}

struct NearestEven {
  static uint32_t normal(uint32_t a, int shift) { return ((1u << (shift - 1)) - 1u) + ((a >> shift) & 1u); }
  static uint32_t subnormal(float v) { return uint32_t(std::nearbyint(v)); }
};

struct Stochastic {
  uint32_t random;
  uint32_t normal(uint32_t, int shift) const { return random >> (32 - shift); }
  uint32_t subnormal(float v) const {
    const float f = std::floor(v);
    const float frac = v - f;  // exact
    // P(up) = frac, resolved with 24 random bits (frac has at most 24 significant bits here).
    const float u = float(random >> 8) * 0x1p-24f;
    return uint32_t(f) + (u < frac ? 1u : 0u);
  }
};

uint32_t encode_int(const ElementType& t, float x, bool stochastic, uint32_t random) {
  if (std::isnan(x)) return 0;
  float v = std::ldexp(x, t.mbits);
  float q;
  if (!stochastic) {
    q = std::nearbyint(v);
  } else {
    const float f = std::floor(v);
    const float u = float(random >> 8) * 0x1p-24f;
    q = f + ((u < v - f) ? 1.0f : 0.0f);
  }
  if (!(q >= float(t.qmin))) q = float(t.qmin);
  if (q > float(t.qmax)) q = float(t.qmax);
  return uint32_t(int(q)) & t.code_mask();
}

}  // namespace

uint32_t ElementType::encode(float x) const {
  if (kind == NumberKind::Int) return encode_int(*this, x, false, 0);
  return encode_float(*this, x, NearestEven{}, 0.f);
}

uint32_t ElementType::encode_stochastic(float x, uint32_t random) const {
  if (kind == NumberKind::Int) return encode_int(*this, x, true, random);
  return encode_float(*this, x, Stochastic{random}, 0.f);
}

const ElementType& element_type(std::string_view name_in) {
  auto& r = registry();
  std::lock_guard<std::mutex> lk(r.m);
  std::string name(name_in);
  for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (auto it = r.by_name.find(name); it != r.by_name.end()) return *it->second;
  // Generic eYmZ[_fn|_ieee|_fin]
  int y = -1, z = -1;
  std::string suffix;
  {
    size_t p = 0;
    if (name.size() >= 4 && name[0] == 'e') {
      p = 1;
      size_t q = p;
      while (q < name.size() && std::isdigit(static_cast<unsigned char>(name[q]))) ++q;
      if (q > p && q < name.size() && name[q] == 'm') {
        y = std::stoi(name.substr(p, q - p));
        size_t s = q + 1, t = s;
        while (t < name.size() && std::isdigit(static_cast<unsigned char>(name[t]))) ++t;
        if (t > s) {
          z = std::stoi(name.substr(s, t - s));
          suffix = name.substr(t);
        }
      }
    }
  }
  if (y < 0 || z < 0 || !(suffix.empty() || suffix == "_fn" || suffix == "fn" || suffix == "_ieee" || suffix == "_fin"))
    fail("unknown element type '{}' (try e2m1, e4m3, int4, or a generic eYmZ such as e3m2)", std::string(name_in));
  if (y < 1 || 1 + y + z > 8) fail("element type '{}': need at least 1 exponent bit and 1+y+z <= 8", name);
  Specials sp;
  if (suffix == "_fn" || suffix == "fn") sp = Specials::Fn;
  else if (suffix == "_ieee") sp = Specials::Ieee;
  else if (suffix == "_fin") sp = Specials::Finite;
  else if (1 + y + z < 8 || y < 2 || z < 1) sp = Specials::Finite;
  else sp = (y == 4 && z == 3) ? Specials::Fn : Specials::Ieee;
  if (sp != Specials::Finite && z < 1) fail("element type '{}': NaN encodings need at least 1 mantissa bit", name);
  if (sp == Specials::Ieee && y < 2) fail("element type '{}': IEEE specials need at least 2 exponent bits", name);
  const char* sfx = sp == Specials::Finite ? "_fin" : sp == Specials::Fn ? "_fn" : "_ieee";
  const std::string canonical = "e" + std::to_string(y) + "m" + std::to_string(z) + sfx;
  if (auto it = r.by_name.find(canonical); it != r.by_name.end()) {
    r.by_name[name] = it->second;
    return *it->second;
  }
  const ElementType* p = r.add(make_float(canonical, y, z, sp), {});
  r.by_name[name] = p;
  return *p;
}

const std::vector<const ElementType*>& named_element_types() { return registry().named; }

float e8m0_decode(uint8_t code) {
  if (code == 0xFF) return NAN;
  if (code == 0) return 0x1p-127f;
  return f32_from_bits(uint32_t(code) << 23);
}

uint8_t e8m0_encode(float x) {
  const uint32_t u = f32_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0xFF;
  if (!(x > 0)) return 0;
  if (u >= 0x7F000000u) return 254;  // >= 2^127 (Inf included): saturate
  const uint32_t e = u >> 23;
  if (e == 0) return u >= 0x00600000u ? 1 : 0;  // subnormal float32: 1.5 * 2^-127 rounds up to 2^-126
  return uint8_t(e + ((u & 0x00400000u) ? 1u : 0u));
}

}  // namespace fpq
