#pragma once
// Bit layouts of prepared float codes that the CUDA kernels turn into bf16 pairs with few instructions.
//
// The MMA A operand wants, per register, two codes as bf16 "images": the sign at bit 15 (31) and the magnitude
// field (exponent and mantissa bits of the code) just below bf16's mantissa top, at bits [7 - mbits, 7 - mbits +
// bits - 2] (+ 16); one multiply by 2^(127 - bias) (or the fused scale) then makes the exact value. The generic
// layout (frag.cuh) stores the codes as they come and moves the fields with two shifts and two LOP3s per register
// (E2M1) or about ten instructions (6-bit codes: the fields are split over two planes). Since the weights are
// prepared offline, the bits can instead be stored where one rotate and one mask (or a mask alone) put them:
//
//  E2M1 (4-bit, 4 words per lane and tile, word j = step j): register i of step j is
//    i = 0: w & M,  i = 1: rotl(w, 10) & M,  i = 2: rotl(w, 13) & M,  i = 3: ((w & 0x001B001B) * 0x1084) & M
//    (M = 0x81C081C0; the multiply adds three shifted copies of five bits that never carry into M).
//  6-bit floats (6 words: the 4 low-plane words, then the 2 high-plane words), with b = 7 - mbits: every word holds
//    three 5-bit magnitude slots per 16-bit half (sources starting at b, b - 5 and b + 5; rotate 0, 5, 27 puts them
//    at b) and one sign pair (b + 10, b + 26), which is where bf16 wants it when b = 5 (E3M2). Sixteen registers
//    need 16 magnitude slots and 16 sign pairs: words 4 and 5 give their third slot to ten more sign pairs.
//  5-bit floats (5 words: the 4 low-plane words, then the high-plane word), with b = 7 - mbits: word j holds the
//    4-bit magnitudes of step j's four registers, register i's pair rotated left by 4i into [b, b + 3] (+ 16) (the
//    eight 4-bit fields at b + 4k, k = 0..7, tile the word); word 4 holds the 32 signs, register q = 4j + i's pair
//    rotated left by q into bits 15 and 31. One rotate and mask each, then an OR: about half the generic decode's
//    instructions (a 5-bit code's fields are split over two planes there too).
//
// Parts (word, rotate, mask) describe a register for the packer (weights.cpp) and the tests; the decoders below
// are the same recipes written for the GPU (a test checks decode(pack(codes)) against the images for all codes).
#include <cstdint>

#if defined(__CUDACC__)
#define FPQ_LAYOUT_FN __host__ __device__ __forceinline__
#else
#define FPQ_LAYOUT_FN inline
#endif

namespace fpq::cuda::layout {

enum Kind : int { kGeneric = 0, kE2M1 = 1, kFp6 = 2, kFp5 = 3 };

// The layout a prepared weight uses: E2M1 (bias 1) and every 6- and 5-bit float code get their own; the rest
// generic.
FPQ_LAYOUT_FN int kind_of(int bits, int is_int, int mbits, int bias) {
  if (is_int) return kGeneric;
  if (bits == 4 && mbits == 1 && bias == 1) return kE2M1;
  if (bits == 6) return kFp6;
  if (bits == 5) return kFp5;
  return kGeneric;
}

// Words a lane's tile takes in a layout (low plane, then high plane).
FPQ_LAYOUT_FN int words_of(int kind) { return kind == kE2M1 ? 4 : kind == kFp5 ? 5 : 6; }

constexpr uint32_t kSign = 0x80008000u;
constexpr uint32_t kE2M1Mask = 0x81C081C0u;  // sign and magnitude of E2M1 images, both halves

FPQ_LAYOUT_FN uint32_t rotl(uint32_t x, int r) {
#if defined(__CUDA_ARCH__)
  return __funnelshift_l(x, x, uint32_t(r));
#else
  r &= 31;
  return r == 0 ? x : (x << r) | (x >> (32 - r));
#endif
}

// The bf16 image of a pair of float codes (first in the low half), bits = code width, mbits = mantissa bits.
FPQ_LAYOUT_FN uint32_t image_of(uint32_t first, uint32_t second, int bits, int mbits) {
  const uint32_t mag = (1u << (bits - 1)) - 1u;
  const int at = 7 - mbits;
  auto one = [&](uint32_t c) { return (((c >> (bits - 1)) & 1u) << 15) | ((c & mag) << at); };
  return one(first) | (one(second) << 16);
}
// The magnitude bits of a 6-bit / 5-bit image (both halves).
FPQ_LAYOUT_FN uint32_t fp6_mag_mask(int b) { return (0x1Fu << b) | (0x1Fu << (b + 16)); }
FPQ_LAYOUT_FN uint32_t fp5_mag_mask(int b) { return (0xFu << b) | (0xFu << (b + 16)); }

struct Part {
  int word;
  int rot;        // rotate left
  uint32_t mask;  // bits of the register this part supplies
};

// Register i of step j: up to three parts; returns how many.
FPQ_LAYOUT_FN int e2m1_parts(int j, int i, Part* p) {
  switch (i) {
    case 0: p[0] = {j, 0, kE2M1Mask}; return 1;
    case 1: p[0] = {j, 10, kE2M1Mask}; return 1;
    case 2: p[0] = {j, 13, kE2M1Mask}; return 1;
    default:  // the multiply's three shifts: by 2 (bits 6, 22), 7 (7, 8, 23, 24) and 12 (15, 31)
      p[0] = {j, 2, 0x00400040u};
      p[1] = {j, 7, 0x01800180u};
      p[2] = {j, 12, kSign};
      return 3;
  }
}

// 6-bit floats. Slot rotations: 0 (sources at b), 5 (at b - 5), 27 (at b + 5). A word's own sign pair sits at
// b + 10 (rotate 5 - b); sign slot q (0..4) of words 4 and 5 at b + 5 + q (rotate 10 - b - q).
FPQ_LAYOUT_FN int fp6_parts(int b, int j, int i, Part* p) {
  const uint32_t mag = fp6_mag_mask(b);
  const int own_sign = (5 - b) & 31;
  auto slot_sign = [&](int q) { return (10 - b - q) & 31; };
  if (i == 0) {  // slot 0 of word j with its own sign pair
    p[0] = {j, 0, mag};
    p[1] = {j, own_sign, kSign};
    return 2;
  }
  if (i == 1) {  // slot 1 of word j, sign from word 4's slot j
    p[0] = {j, 5, mag};
    p[1] = {4, slot_sign(j), kSign};
    return 2;
  }
  if (i == 3) {  // slot 2 of word j, sign from word 5's slot j
    p[0] = {j, 27, mag};
    p[1] = {5, slot_sign(j), kSign};
    return 2;
  }
  // i == 2: steps 0 and 1 take slot 0 of words 4 and 5 (own sign pairs), steps 2 and 3 their slot 1 (sign slot 4)
  const int w = 4 + (j & 1);
  if (j < 2) {
    p[0] = {w, 0, mag};
    p[1] = {w, own_sign, kSign};
  } else {
    p[0] = {w, 5, mag};
    p[1] = {w, slot_sign(4), kSign};
  }
  return 2;
}

// 5-bit floats: register i of step j = word j rotated by 4i (magnitudes), word 4 rotated by 4j + i (signs).
FPQ_LAYOUT_FN int fp5_parts(int b, int j, int i, Part* p) {
  p[0] = {j, 4 * i, fp5_mag_mask(b)};
  p[1] = {4, 4 * j + i, kSign};
  return 2;
}

FPQ_LAYOUT_FN int parts_of(int kind, int b, int j, int i, Part* p) {
  return kind == kE2M1 ? e2m1_parts(j, i, p) : kind == kFp5 ? fp5_parts(b, j, i, p) : fp6_parts(b, j, i, p);
}

// Packs one lane's tile: images[j][i] -> words (words_of(kind): 4, 5 or 6), inverting the parts.
FPQ_LAYOUT_FN void pack_words(int kind, int b, const uint32_t (&images)[4][4], uint32_t (&words)[6]) {
  for (int k = 0; k < 6; ++k) words[k] = 0;
  for (int j = 0; j < 4; ++j)
    for (int i = 0; i < 4; ++i) {
      Part p[3];
      const int n = parts_of(kind, b, j, i, p);
      for (int q = 0; q < n; ++q)
        for (int t = 0; t < 32; ++t)
          if ((p[q].mask >> t) & (images[j][i] >> t) & 1u) words[p[q].word] |= 1u << ((t - p[q].rot) & 31);
    }
}

// Decoders (the kernels' hot path): the image of register i of step j.
FPQ_LAYOUT_FN uint32_t e2m1_image(const uint32_t (&lo)[4], int j, int i) {
  const uint32_t w = lo[j];
  if (i == 0) return w & kE2M1Mask;
  if (i == 1) return rotl(w, 10) & kE2M1Mask;
  if (i == 2) return rotl(w, 13) & kE2M1Mask;
  return ((w & 0x001B001Bu) * 0x1084u) & kE2M1Mask;
}

FPQ_LAYOUT_FN uint32_t fp6_image(int b, const uint32_t (&lo)[4], const uint32_t (&hi)[2], int j, int i) {
  const uint32_t mag = fp6_mag_mask(b);
  const int own_sign = (5 - b) & 31;
  if (i == 0) return (lo[j] & mag) | (rotl(lo[j], own_sign) & kSign);
  if (i == 1) return (rotl(lo[j], 5) & mag) | (rotl(hi[0], (10 - b - j) & 31) & kSign);
  if (i == 3) return (rotl(lo[j], 27) & mag) | (rotl(hi[1], (10 - b - j) & 31) & kSign);
  const uint32_t w = hi[j & 1];
  if (j < 2) return (w & mag) | (rotl(w, own_sign) & kSign);
  return (rotl(w, 5) & mag) | (rotl(w, (6 - b) & 31) & kSign);
}

FPQ_LAYOUT_FN uint32_t fp5_image(int b, const uint32_t (&lo)[4], const uint32_t (&hi)[1], int j, int i) {
  return (rotl(lo[j], 4 * i) & fp5_mag_mask(b)) | (rotl(hi[0], 4 * j + i) & kSign);
}

}  // namespace fpq::cuda::layout
