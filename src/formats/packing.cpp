#include "formats/packing.h"

namespace fpq {

void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out) {
  if (bits == 8) {
    for (int64_t i = 0; i < n; ++i) out[i] = codes[i];
    return;
  }
  if (bits == 4) {
    for (int64_t i = 0; i + 1 < n; i += 2) out[i / 2] = uint8_t((codes[i] & 0xF) | (codes[i + 1] << 4));
    if (n & 1) out[n / 2] = codes[n - 1] & 0xF;
    return;
  }
  const uint32_t mask = (1u << bits) - 1u;
  uint64_t acc = 0;
  int nbits = 0;
  int64_t o = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc |= uint64_t(codes[i] & mask) << nbits;
    nbits += bits;
    while (nbits >= 8) {
      out[o++] = uint8_t(acc & 0xFF);
      acc >>= 8;
      nbits -= 8;
    }
  }
  if (nbits > 0) out[o] = uint8_t(acc & 0xFF);
}

void unpack_codes(const uint8_t* packed, int64_t first, int64_t n, int bits, uint8_t* codes) {
  if (bits == 8) {
    for (int64_t i = 0; i < n; ++i) codes[i] = packed[first + i];
    return;
  }
  if (bits == 4) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t j = first + i;
      codes[i] = uint8_t((packed[j >> 1] >> ((j & 1) * 4)) & 0xF);
    }
    return;
  }
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t bit = (first + i) * bits;
    const int64_t byte = bit >> 3;
    const int shift = int(bit & 7);
    uint32_t v = packed[byte] >> shift;
    if (shift + bits > 8) v |= uint32_t(packed[byte + 1]) << (8 - shift);
    codes[i] = uint8_t(v & mask);
  }
}

}  // namespace fpq
