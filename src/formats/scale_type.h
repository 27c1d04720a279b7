#pragma once
// Scale types: how a group's scale is stored. E8M0 is a power of two (OCP MX); E4M3 is the unsigned use of
// FP8 E4M3 that NVFP4 makes; F16, BF16 and F32 are IEEE-style.
#include <cstdint>
#include <string>
#include <string_view>

namespace fpq {

enum class ScaleType : uint8_t { None, E8M0, E4M3, F16, BF16, F32 };

std::string_view scale_type_name(ScaleType s);
ScaleType parse_scale_type(std::string_view name);  // error on unknown
int scale_type_bytes(ScaleType s);
float scale_type_max(ScaleType s);  // largest finite value

// Decodes the stored scale at p (little endian).
float decode_scale(ScaleType s, const uint8_t* p);
// Rounds a positive scale to the type (RNE, saturating; E8M0 as e8m0_encode) and stores it at p.
void encode_scale(ScaleType s, float v, uint8_t* p);
// The value encode_scale would store, decoded.
float round_scale(ScaleType s, float v);
// Stores the type's NaN at p (a NaN in the input poisons its block's scale).
void encode_scale_nan(ScaleType s, uint8_t* p);

}  // namespace fpq
