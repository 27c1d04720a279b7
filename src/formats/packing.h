#pragma once
// Packing of b-bit codes (b = 1..8) into bytes: one LSB-first bit stream per row. For 4-bit codes this is
// two per byte with the first element in the low nibble (PyTorch's float4_e2m1fn_x2); for 6-bit codes it
// is four per three bytes (code0 = byte0[5:0], code1 = byte0[7:6] | byte1[3:0] << 2, ...).
#include <cstdint>

namespace fpq {

// Packs n codes (each in the low `bits` bits of a byte) into ceil(n * bits / 8) bytes.
void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out);
// Unpacks n codes starting at code index `first` of the packed stream.
void unpack_codes(const uint8_t* packed, int64_t first, int64_t n, int bits, uint8_t* codes);
inline int64_t packed_bytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

}  // namespace fpq
