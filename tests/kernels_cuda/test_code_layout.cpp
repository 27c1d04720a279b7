// The prepared code layouts of the CUDA kernels (code_layout.h), checked on the CPU: the decoders (the same
// functions the kernels call) give back every register's bf16 image from the packed words, for every code, and
// an image times 2^(127 - bias) is the code's value as the element-type registry decodes it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "formats/element_type.h"
#include "kernels/cuda/code_layout.h"
#include "kernels/cuda/int8_codes.h"

namespace {

using namespace fpq::cuda::layout;

float bf16_bits_value(uint32_t h) {
  const uint32_t f = h << 16;
  float v;
  std::memcpy(&v, &f, 4);
  return v;
}

uint32_t decode_image(int kind, int b, const uint32_t (&w)[6], int j, int i) {
  const uint32_t lo[4] = {w[0], w[1], w[2], w[3]};
  const uint32_t hi[2] = {w[4], w[5]};
  const uint32_t hi5[1] = {w[4]};
  return kind == kE2M1 ? e2m1_image(lo, j, i) : kind == kFp5 ? fp5_image(b, lo, hi5, j, i) : fp6_image(b, lo, hi, j, i);
}

// Packs codes (pairs per register) and decodes every register back.
void check_roundtrip(const fpq::ElementType& e, const uint32_t (&codes)[4][4][2]) {
  const int kind = kind_of(e.bits, e.kind == fpq::NumberKind::Int, e.mbits, e.bias);
  const int b = 7 - e.mbits;
  uint32_t images[4][4], words[6];
  for (int j = 0; j < 4; ++j)
    for (int i = 0; i < 4; ++i) images[j][i] = image_of(codes[j][i][0], codes[j][i][1], e.bits, e.mbits);
  pack_words(kind, b, images, words);
  for (int j = 0; j < 4; ++j)
    for (int i = 0; i < 4; ++i)
      ASSERT_EQ(decode_image(kind, b, words, j, i), images[j][i])
          << e.name << " step " << j << " register " << i << " codes " << codes[j][i][0] << ", " << codes[j][i][1];
}

const char* kTypes[] = {"e2m1", "e3m2", "e2m3", "e4m1", "e1m4", "e5m0", "e2m2", "e3m1"};

TEST(CudaCodeLayout, KindsCoverTheFormats) {
  EXPECT_EQ(kind_of(4, 0, 1, 1), kE2M1);
  EXPECT_EQ(kind_of(6, 0, 2, 3), kFp6);
  EXPECT_EQ(kind_of(6, 0, 3, 1), kFp6);
  EXPECT_EQ(kind_of(5, 0, 2, 1), kFp5);  // e2m2
  EXPECT_EQ(kind_of(5, 0, 1, 3), kFp5);  // e3m1
  EXPECT_EQ(kind_of(4, 1, 0, 0), kGeneric);  // int4
  EXPECT_EQ(kind_of(4, 0, 0, 3), kGeneric);  // e3m0
  EXPECT_EQ(kind_of(8, 0, 3, 7), kGeneric);
}

// Every bit of the words belongs to exactly one register part: the layout is a bijection (no bits lost or
// shared), so all-ones images pack to all-ones words.
TEST(CudaCodeLayout, PartsPartitionTheWords) {
  for (const char* name : kTypes) {
    const auto& e = fpq::element_type(name);
    const int kind = kind_of(e.bits, 0, e.mbits, e.bias);
    const int b = 7 - e.mbits;
    const int nwords = words_of(kind);
    EXPECT_EQ(nwords * 32, 32 * e.bits) << name;  // 32 codes per lane and tile
    uint32_t used[6] = {0, 0, 0, 0, 0, 0};
    int bits = 0;
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 4; ++i) {
        Part p[3];
        const int n = parts_of(kind, b, j, i, p);
        uint32_t covered = 0;
        for (int q = 0; q < n; ++q) {
          EXPECT_EQ(covered & p[q].mask, 0u) << name;
          covered |= p[q].mask;
          const uint32_t src = rotl(p[q].mask, -p[q].rot & 31);  // source bits of this part
          EXPECT_EQ(used[p[q].word] & src, 0u) << name << " word " << p[q].word << " step " << j << " reg " << i;
          used[p[q].word] |= src;
          bits += __builtin_popcount(p[q].mask);
        }
        EXPECT_EQ(covered, image_of(0xFFu, 0xFFu, e.bits, e.mbits)) << name << " step " << j << " reg " << i;
      }
    EXPECT_EQ(bits, nwords * 32) << name;
    for (int k = 0; k < nwords; ++k) EXPECT_EQ(used[k], 0xFFFFFFFFu) << name << " word " << k;
  }
}

// Every code pair in every register position (the other registers random, fresh each run).
TEST(CudaCodeLayout, DecodeInvertsPackForEveryCode) {
  std::mt19937 rng(std::random_device{}());
  for (const char* name : kTypes) {
    const auto& e = fpq::element_type(name);
    const uint32_t n = 1u << e.bits;
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 4; ++i)
        for (uint32_t c0 = 0; c0 < n; ++c0)
          for (uint32_t c1 = 0; c1 < n; c1 += (e.bits == 6 ? 3 : 1)) {
            uint32_t codes[4][4][2];
            for (auto& s : codes)
              for (auto& r : s) r[0] = rng() % n, r[1] = rng() % n;
            codes[j][i][0] = c0;
            codes[j][i][1] = c1;
            check_roundtrip(e, codes);
          }
  }
}

// The image means the code's value: image x 2^(127 - bias) in bf16 arithmetic (exact: a power of two).
TEST(CudaCodeLayout, ImagesAreTheValues) {
  for (const char* name : kTypes) {
    const auto& e = fpq::element_type(name);
    for (uint32_t c = 0; c < (1u << e.bits); ++c) {
      const uint32_t img = image_of(c, c, e.bits, e.mbits);
      const double v = double(bf16_bits_value(img & 0xFFFFu)) * std::ldexp(1.0, 127 - e.bias);
      const double v2 = double(bf16_bits_value(img >> 16)) * std::ldexp(1.0, 127 - e.bias);
      EXPECT_EQ(v, double(e.decode(c))) << name << " code " << c;
      EXPECT_EQ(v2, double(e.decode(c))) << name << " code " << c;
    }
  }
}

// The W4A4 int8 fold's table form: every code at every position of a word, at every shift, is 2 x its E2M1 value
// (the element-type registry's decode) x 2^shift as a signed byte; the host's byte_perm follows PTX prmt.b32.
TEST(CudaCodeLayout, TwiceE2M1TableIsTheScaledValue) {
  const auto& e = fpq::element_type("e2m1");
  std::mt19937 rng(std::random_device{}());
  for (int shift = 0; shift <= 3; ++shift) {
    const fpq::cuda::TwiceE2M1Table t = fpq::cuda::twice_e2m1_table(shift);
    for (int pos = 0; pos < 8; ++pos)
      for (uint32_t c = 0; c < 16; ++c)
        for (int rep = 0; rep < 8; ++rep) {
          uint32_t w = uint32_t(rng());
          w = (w & ~(0xFu << (4 * pos))) | (c << (4 * pos));
          for (int half = 0; half < 2; ++half) {
            const uint32_t v = fpq::cuda::twice_e2m1_x4(t, w, 16 * half);
            for (int q = 0; q < 4; ++q) {
              const uint32_t code = (w >> (16 * half + 4 * q)) & 0xFu;
              const double want = 2.0 * double(e.decode(code)) * std::ldexp(1.0, shift);
              ASSERT_EQ(double(int8_t(uint8_t(v >> (8 * q)))), want) << "code " << code << " shift " << shift;
            }
          }
        }
  }
  // prmt's sign-replicate mode on the host form: selector nibble 8 + i gives byte i's top bit in every bit.
  EXPECT_EQ(fpq::cuda::byte_perm(0x80017F00u, 0xFF000080u, 0xBA98u), 0xFF000000u);
  EXPECT_EQ(fpq::cuda::byte_perm(0x80017F00u, 0xFF000080u, 0xFC40u), 0xFFFF8000u);
}

}  // namespace
