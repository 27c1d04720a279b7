#pragma once
// Element types: the per-value number formats of low-bit quantization (FP3..FP8 EyMz, INT4/INT8, the MXINT8
// fixed-point element), with exact decoding and saturating round-to-nearest-even or stochastic encoding.
//
// Float types follow one rule: sign bit (if any), y exponent bits with bias 2^(y-1)-1, z mantissa bits,
// subnormals at exponent 0. What the all-ones exponent means is the type's Specials:
//   Finite  every code is a number (OCP FP4 E2M1 and FP6, FP6-LLM's FPx): no Inf, no NaN
//   Fn      no Inf; S.1111.111 (all ones) is NaN (OCP FP8 E4M3, "float8_e4m3fn")
//   Ieee    all-ones exponent is Inf (mantissa 0) or NaN (IEEE 754 style: FP8 E5M2)
// Encoding saturates: |x| beyond the largest finite value (Inf included) becomes +-max, as PTX's
// cvt.satfinite does. NaN encodes as the type's NaN; a type without NaN encodes NaN as +0 (block formats turn
// a NaN into a NaN scale instead, see quantize.h).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fpq {

enum class NumberKind : uint8_t { Float, Int };
enum class Specials : uint8_t { Finite, Fn, Ieee };
enum class Rounding : uint8_t { Nearest, Stochastic };

struct ElementType {
  std::string name;  // canonical: "e2m1", "e4m3", "e5m2", "e3m4_ieee", "int4", "uint4", "int8", "mxint8"
  NumberKind kind = NumberKind::Float;
  int bits = 0;        // storage bits per code
  int ebits = 0;       // float: exponent bits
  int mbits = 0;       // float: mantissa bits; int: fractional bits (mxint8: 6)
  int bias = 0;        // float: exponent bias
  bool is_signed = true;
  Specials specials = Specials::Finite;
  int qmin = 0, qmax = 0;  // int: integer code range (signed value of the code)

  // Derived on construction.
  float max_value = 0;          // largest finite value
  int emax = 0;                 // floor(log2(max_value)): the OCP MX "emax_elem"
  uint32_t max_magnitude = 0;   // float: code (without sign) of max_value
  uint32_t max_magnitude_f32 = 0;  // float32 bits of max_value
  float subnormal_scale = 1;       // float: 2^(mbits - emin), the count of subnormal quanta per unit
  std::array<float, 256> table{};  // value of every code (bits <= 8)

  uint32_t code_mask() const { return (1u << bits) - 1u; }
  bool has_nan() const { return kind == NumberKind::Float && specials != Specials::Finite; }

  float decode(uint32_t code) const { return table[code & 0xFFu]; }
  // Saturating round-to-nearest-even.
  uint32_t encode(float x) const;
  // Saturating stochastic rounding: rounds up with probability equal to the distance from the lower
  // neighbour over the gap; `random` is a uniform 32-bit value.
  uint32_t encode_stochastic(float x, uint32_t random) const;
  uint32_t encode(float x, Rounding r, uint32_t random) const {
    return r == Rounding::Nearest ? encode(x) : encode_stochastic(x, random);
  }
  // The NaN code (sign bit set for negative), or 0 when the type has no NaN.
  uint32_t nan_code(bool negative) const;
  // Integer value of the code (int kinds): sign-extended.
  int int_value(uint32_t code) const;
};

// Looks up an element type by name: the named ones (e2m1, e3m0, e2m0, e2m2, e3m1, e2m3, e3m2, e4m3, e5m2,
// int4, uint4, int8, uint8, mxint8, with aliases fp4, fp6_e3m2, fp8_e4m3, ...) or any generic "eYmZ" with
// 1+Y+Z <= 8 and an optional "_fn", "_ieee" or "_fin" suffix choosing the specials (default: Finite below 8
// bits, Fn for e4m3, Ieee for other 8-bit types with at least 2 exponent and 1 mantissa bits, else Finite). Returns a pointer that stays valid for the program's life;
// an unknown name is an error.
const ElementType& element_type(std::string_view name);

// The element types with names of their own, in display order.
const std::vector<const ElementType*>& named_element_types();

// The E8M0 scale type (unsigned power of two 2^(c-127), c = 0..254; 0xFF is NaN): decode and encode. The
// encoding rounds the mantissa half up (as ml_dtypes' float8_e8m0fnu does) and saturates to 2^-127 .. 2^127;
// zero and negative inputs give code 0, NaN gives 0xFF.
float e8m0_decode(uint8_t code);
uint8_t e8m0_encode(float x);

// floor(log2(|x|)) for finite nonzero x, exact for normal and subnormal float32.
int floor_log2(float x);

}  // namespace fpq
