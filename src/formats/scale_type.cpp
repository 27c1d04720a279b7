#include "formats/scale_type.h"

#include <cmath>
#include <cstring>

#include "formats/element_type.h"
#include "util/error.h"
#include "util/half.h"

namespace fpq {

std::string_view scale_type_name(ScaleType s) {
  switch (s) {
    case ScaleType::None: return "none";
    case ScaleType::E8M0: return "e8m0";
    case ScaleType::E4M3: return "e4m3";
    case ScaleType::F16: return "fp16";
    case ScaleType::BF16: return "bf16";
    case ScaleType::F32: return "fp32";
  }
  return "?";
}

ScaleType parse_scale_type(std::string_view n) {
  if (n == "e8m0" || n == "ue8m0") return ScaleType::E8M0;
  if (n == "e4m3" || n == "ue4m3" || n == "fp8") return ScaleType::E4M3;
  if (n == "fp16" || n == "f16" || n == "half") return ScaleType::F16;
  if (n == "bf16") return ScaleType::BF16;
  if (n == "fp32" || n == "f32" || n == "float") return ScaleType::F32;
  if (n == "none") return ScaleType::None;
  fail("unknown scale type '{}' (choose e8m0, e4m3, fp16, bf16, fp32)", std::string(n));
}

int scale_type_bytes(ScaleType s) {
  switch (s) {
    case ScaleType::None: return 0;
    case ScaleType::E8M0:
    case ScaleType::E4M3: return 1;
    case ScaleType::F16:
    case ScaleType::BF16: return 2;
    case ScaleType::F32: return 4;
  }
  return 0;
}

float scale_type_max(ScaleType s) {
  switch (s) {
    case ScaleType::E8M0: return 0x1p127f;
    case ScaleType::E4M3: return 448.0f;
    case ScaleType::F16: return 65504.0f;
    case ScaleType::BF16: return 0x1.FEp127f;
    case ScaleType::F32: return 3.4028234663852886e38f;
    case ScaleType::None: return 1.0f;
  }
  return 1.0f;
}

static const ElementType& e4m3() {
  static const ElementType& t = element_type("e4m3");
  return t;
}

float decode_scale(ScaleType s, const uint8_t* p) {
  switch (s) {
    case ScaleType::None: return 1.0f;
    case ScaleType::E8M0: return e8m0_decode(p[0]);
    case ScaleType::E4M3: return e4m3().decode(p[0]);
    case ScaleType::F16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return f16_to_f32(h);
    }
    case ScaleType::BF16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return bf16_to_f32(h);
    }
    case ScaleType::F32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
  }
  return 1.0f;
}

void encode_scale(ScaleType s, float v, uint8_t* p) {
  switch (s) {
    case ScaleType::None: return;
    case ScaleType::E8M0: p[0] = e8m0_encode(v); return;
    case ScaleType::E4M3: p[0] = uint8_t(e4m3().encode(v)); return;
    case ScaleType::F16: {
      uint16_t h = f32_to_f16(std::isnan(v) ? v : std::fmin(v, 65504.0f));
      std::memcpy(p, &h, 2);
      return;
    }
    case ScaleType::BF16: {
      uint16_t h = f32_to_bf16(v);
      if ((h & 0x7FFFu) == 0x7F80u) h = uint16_t((h & 0x8000u) | 0x7F7Fu);  // saturate
      std::memcpy(p, &h, 2);
      return;
    }
    case ScaleType::F32: std::memcpy(p, &v, 4); return;
  }
}

float round_scale(ScaleType s, float v) {
  uint8_t b[4] = {0, 0, 0, 0};
  encode_scale(s, v, b);
  return decode_scale(s, b);
}

void encode_scale_nan(ScaleType s, uint8_t* p) { encode_scale(s, NAN, p); }

}  // namespace fpq
