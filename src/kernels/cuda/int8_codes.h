#pragma once
// Twice the E2M1 value of a 4-bit code (sign in bit 3): the integer (|v| <= 12) the W4A4 int8 route multiplies,
// for the host's weight image (int8_image.cpp) and the device's activation fold (w4a4_int8.cu).
#include <cstdint>

#include "kernels/cuda/code_layout.h"  // FPQ_LAYOUT_FN: host and device

namespace fpq::cuda {

FPQ_LAYOUT_FN int twice_e2m1(uint32_t c) {
  const int m = int(c & 7u);
  const int mag = m < 2 ? m : (2 + (m & 1)) << ((m >> 1) - 1);  // 0, 1, 2, 3, 4, 6, 8, 12
  return (c & 8u) ? -mag : mag;
}

}  // namespace fpq::cuda
