#pragma once
// Twice the E2M1 value of a 4-bit code (sign in bit 3): the integer (|v| <= 12) the W4A4 int8 route multiplies,
// for the host's weight image (int8_image.cpp) and the device's activation fold (w4a4_int8.cu), and the fold's
// table form of it.
#include <cstdint>

#include "kernels/cuda/code_layout.h"  // FPQ_LAYOUT_FN: host and device

namespace fpq::cuda {

FPQ_LAYOUT_FN int twice_e2m1(uint32_t c) {
  const int m = int(c & 7u);
  const int mag = m < 2 ? m : (2 + (m & 1)) << ((m >> 1) - 1);  // 0, 1, 2, 3, 4, 6, 8, 12
  return (c & 8u) ? -mag : mag;
}

// PTX prmt.b32 (default mode): byte q of the result is byte s[4q+2:4q] of the 8 bytes {hi:lo}, or, when bit
// 4q+3 of s is set, that byte's sign bit replicated. (The host form lets the CPU tests check the recipes below.)
// Inline PTX, not __byte_perm: that intrinsic is defined on the selectors' low three bits only, and with it the
// sign-replicating selectors gave wrong bytes on an H100.
FPQ_LAYOUT_FN uint32_t byte_perm(uint32_t lo, uint32_t hi, uint32_t s) {
#if defined(__CUDA_ARCH__)
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(lo), "r"(hi), "r"(s));
  return r;
#else
  const uint64_t v = uint64_t(lo) | (uint64_t(hi) << 32);
  uint32_t r = 0;
  for (int q = 0; q < 4; ++q) {
    const uint32_t sel = (s >> (4 * q)) & 0xFu;
    uint32_t b = uint32_t(v >> (8 * (sel & 7u))) & 0xFFu;
    if (sel & 8u) b = (b & 0x80u) ? 0xFFu : 0u;
    r |= b << (8 * q);
  }
  return r;
#endif
}

// The int8 values 2 x E2M1 x 2^shift (shift 0..3, so |v| <= 96) of eight codes as lookups: the table of the
// eight magnitudes (0, 1, 2, 3, 4, 6, 8, 12) << shift fits two words, so one byte_perm maps four codes'
// magnitudes; a second maps them through the negated table, and the codes' sign bits, replicated into byte masks
// by a third, pick per byte. About 7 instructions per four codes where the arithmetic took about 12 per code.
struct TwiceE2M1Table {
  uint32_t pos_lo, pos_hi, neg_lo, neg_hi;
};
FPQ_LAYOUT_FN TwiceE2M1Table twice_e2m1_table(int shift) {
  const uint32_t lo = 0x03020100u << shift, hi = 0x0C080604u << shift;  // no byte carries: 12 << 3 = 96
  // Each byte b <= 0x80 negated: 0x80 - b borrows from no other byte, and ^ 0x80 adds 0x80 (mod 256).
  auto neg = [](uint32_t x) { return (0x80808080u - x) ^ 0x80808080u; };
  return {lo, hi, neg(lo), neg(hi)};
}
// Codes 0..3 (c4 = 0) or 4..7 (c4 = 16) of word w (code i in nibble i) -> four int8 values, code 4q.. in byte q.
FPQ_LAYOUT_FN uint32_t twice_e2m1_x4(const TwiceE2M1Table& t, uint32_t w, int c4) {
  const uint32_t h = w >> c4;
  const uint32_t sel = h & 0x7777u;
  const uint32_t pos = byte_perm(t.pos_lo, t.pos_hi, sel), neg = byte_perm(t.neg_lo, t.neg_hi, sel);
  // Sign bits 3, 7, 11, 15 of h: bytes 0 and 1 of (h << 4) have codes 0 and 2's at their tops, bytes 0 and 1 of
  // h codes 1 and 3's; sign-replicating selectors 8, C, 9, D pick them in code order.
  const uint32_t mask = byte_perm(h << 4, h, 0xD9C8u);
  return (pos & ~mask) | (neg & mask);
}

}  // namespace fpq::cuda
