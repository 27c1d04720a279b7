// The numerics core against independent references: ml_dtypes (element decode/encode), gguf-py's quantizers
// (Q4_0, Q4_1, Q8_0, MXFP4), llama.cpp's Q8_1 definition in numpy, OCP MX and NVFP4 recomputed in numpy.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "formats/element_type.h"
#include "formats/ggml_blocks.h"
#include "formats/packing.h"
#include "formats/quantize.h"
#include "test_support.h"
#include "util/npy.h"

namespace fpq {
namespace {

using test::TempDir;

std::vector<float> load(const std::filesystem::path& p) { return read_npy(p).data; }
void save(const std::filesystem::path& p, const std::vector<float>& v, std::vector<int64_t> shape = {}) {
  if (shape.empty()) shape = {int64_t(v.size())};
  write_npy(p, shape, v.data());
}

const std::vector<std::string> kMlDtypes = {"e2m1", "e2m3", "e3m2", "e4m3", "e5m2", "e3m4_ieee", "e4m3_ieee"};

TEST(ElementTypes, EveryCodeDecodesAsMlDtypes) {
  TempDir dir;
  std::vector<std::string> args = {"decode", dir.path().string()};
  for (const auto& n : kMlDtypes) args.push_back(n);
  args.push_back("e8m0");
  test::run_python_ref("formats_ref.py", args);
  for (const auto& n : kMlDtypes) {
    const ElementType& t = element_type(n);
    const auto ref = load(dir / (n + ".npy"));
    ASSERT_EQ(ref.size(), size_t(1) << t.bits) << n;
    for (size_t c = 0; c < ref.size(); ++c) {
      const float v = t.decode(uint32_t(c));
      if (std::isnan(ref[c])) {
        EXPECT_TRUE(std::isnan(v)) << n << " code " << c;
      } else {
        EXPECT_EQ(std::memcmp(&v, &ref[c], 4), 0) << n << " code " << c << ": " << v << " vs " << ref[c];
      }
    }
  }
  const auto ref = load(dir / "e8m0.npy");
  for (int c = 0; c < 256; ++c) {
    const float v = e8m0_decode(uint8_t(c));
    if (std::isnan(ref[size_t(c)])) EXPECT_TRUE(std::isnan(v)) << c;
    else EXPECT_EQ(v, ref[size_t(c)]) << "e8m0 code " << c;
  }
}

// A million-plus float32 values per type: normal values over the type's whole range, exact ties (midpoints of
// consecutive representable values), representable values, subnormals of the type and of float32, values beyond
// the maximum, signed zeros, NaN and infinities.
std::vector<float> encoding_inputs(const ElementType& t, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> x;
  x.reserve(1 << 21);
  std::vector<float> pos;
  for (uint32_t c = 0; c < (1u << t.bits); ++c) {
    const float v = t.decode(c);
    if (std::isfinite(v) && v >= 0) pos.push_back(v);
  }
  std::sort(pos.begin(), pos.end());
  pos.erase(std::unique(pos.begin(), pos.end()), pos.end());
  std::uniform_int_distribution<size_t> pick(0, pos.size() - 2);
  std::uniform_int_distribution<int> sign(0, 1);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int lo = floor_log2(pos[1]) - 3, hi = floor_log2(t.max_value) + 3;
  std::uniform_int_distribution<int> expo(lo, hi);
  for (int i = 0; i < 1'000'000; ++i) x.push_back(normal(rng) * std::ldexp(1.0f, expo(rng)));
  for (int i = 0; i < 100'000; ++i) {
    const size_t k = pick(rng);
    const float mid = pos[k] + (pos[k + 1] - pos[k]) * 0.5f;  // exact tie
    const float s = sign(rng) ? -1.0f : 1.0f;
    x.push_back(s * mid);
    x.push_back(s * pos[k]);
    x.push_back(s * std::nextafter(mid, 0.0f));
    x.push_back(s * std::nextafter(mid, INFINITY));
    x.push_back(s * pos[k + 1] * (0.25f + 1.5f * unit(rng)));
  }
  for (int i = 0; i < 20'000; ++i) x.push_back((sign(rng) ? -1.f : 1.f) * pos[1] * unit(rng));  // subnormal range
  for (int i = 0; i < 10'000; ++i) x.push_back((sign(rng) ? -1.f : 1.f) * t.max_value * (1.0f + 10.0f * unit(rng)));
  for (int i = 0; i < 1000; ++i) x.push_back(std::ldexp(unit(rng), -140));  // float32 subnormals
  for (float v : {0.0f, -0.0f, INFINITY, -INFINITY, t.max_value, -t.max_value, 3.4e38f, -3.4e38f}) x.push_back(v);
  return x;
}

TEST(ElementTypes, RoundToNearestEvenMatchesMlDtypesOnAMillionValues) {
  const uint64_t seed = test::fresh_seed();
  for (const auto& n : kMlDtypes) {
    SCOPED_TRACE(n);
    const ElementType& t = element_type(n);
    auto x = encoding_inputs(t, seed);
    for (int i = 0; i < 1000; ++i) x.push_back(i & 1 ? NAN : -NAN);
    TempDir dir;
    save(dir / "x.npy", x);
    test::run_python_ref("formats_ref.py", {"encode", (dir / "x.npy").string(), dir.path().string(), n});
    const auto ref = load(dir / (n + ".npy"));
    ASSERT_EQ(ref.size(), x.size());
    size_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const uint32_t c = t.encode(x[i]);
      if (std::isnan(x[i])) {
        // ml_dtypes has its own NaN bit patterns; the requirement is: a NaN code where the type has NaN, else +0.
        const bool ok = t.has_nan() ? std::isnan(t.decode(c)) : c == 0;
        if (!ok && bad++ < 10) ADD_FAILURE() << "NaN encodes to code " << c;
        continue;
      }
      if (c != uint32_t(ref[i]) && bad++ < 10)
        ADD_FAILURE() << std::hexfloat << x[i] << " -> " << c << ", ml_dtypes " << ref[i];
    }
    EXPECT_EQ(bad, 0u);
  }
}

TEST(ElementTypes, E8M0EncodingMatchesMlDtypes) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  // Normal float32 in [2^-126, 2^127]. (For float32 subnormals in (2^-127, 2^-126) ml_dtypes rounds every value
  // up to 2^-126; fpq applies the same half-up rule as everywhere else: below 1.5 * 2^-127 gives 2^-127.)
  std::uniform_int_distribution<uint32_t> bits(0x00800000u, 0x7F000000u);
  std::vector<float> x;
  for (int i = 0; i < 1'000'000; ++i) {
    uint32_t b = bits(rng);
    float v;
    std::memcpy(&v, &b, 4);
    x.push_back(v);
  }
  for (int e = -126; e < 127; ++e) {  // ties: 1.5 * 2^e, and its neighbours
    const float t = std::ldexp(1.5f, e);
    x.push_back(t);
    x.push_back(std::nextafter(t, 0.0f));
    x.push_back(std::nextafter(t, INFINITY));
    x.push_back(std::ldexp(1.0f, e));
  }
  TempDir dir;
  save(dir / "x.npy", x);
  test::run_python_ref("formats_ref.py", {"encode", (dir / "x.npy").string(), dir.path().string(), "e8m0"});
  const auto ref = load(dir / "e8m0.npy");
  size_t bad = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (e8m0_encode(x[i]) != uint8_t(ref[i]) && bad++ < 10)
      ADD_FAILURE() << std::hexfloat << x[i] << " -> " << int(e8m0_encode(x[i])) << ", ml_dtypes " << ref[i];
  EXPECT_EQ(bad, 0u);
}

// Random weight-like rows: normal values with per-block magnitudes spread over decades, some zero blocks,
// some blocks with one large outlier.
std::vector<float> random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-12, 6);
  std::uniform_int_distribution<int> kind(0, 19);
  std::vector<float> x(size_t(rows * cols));
  for (int64_t b = 0; b < rows * cols / 16; ++b) {
    const int k = kind(rng);
    const float scale = std::ldexp(1.0f, expo(rng));
    for (int j = 0; j < 16; ++j) x[size_t(b * 16 + j)] = k == 0 ? 0.0f : normal(rng) * scale;
    if (k == 1) x[size_t(b * 16 + 3)] *= 40.0f;
  }
  return x;
}

TEST(GgmlBlocks, ByteIdenticalToGgufPy) {
  const uint64_t seed = test::fresh_seed();
  const int64_t rows = 37, cols = 256;
  const auto x = random_matrix(rows, cols, seed);
  TempDir dir;
  save(dir / "x.npy", x, {rows, cols});
  for (const char* name : {"Q4_0", "Q4_1", "Q8_0", "Q8_1"}) {
    SCOPED_TRACE(name);
    std::string fmt = name;
    for (auto& c : fmt) c = char(std::tolower(c));
    test::run_python_ref("formats_ref.py", {"ggml", (dir / "x.npy").string(), (dir / "ref.npy").string(), name});
    const auto ref = load(dir / "ref.npy");
    const QuantizedTensor q = quantize(parse_format(fmt), x.data(), rows, cols);
    ASSERT_EQ(ref.size(), q.codes.size());
    size_t bad = 0;
    for (size_t i = 0; i < ref.size(); ++i)
      if (q.codes[i] != uint8_t(ref[i]) && bad++ < 10)
        ADD_FAILURE() << "byte " << i << " (block " << i / (q.codes.size() / size_t(rows * cols / 32)) << "): " << int(q.codes[i])
                      << " vs gguf " << ref[i];
    EXPECT_EQ(bad, 0u);
  }
}

TEST(Mxfp4, AgreesWithGgufPyExceptAtTies) {
  const uint64_t seed = test::fresh_seed();
  const int64_t rows = 64, cols = 512;
  auto x = random_matrix(rows, cols, seed);
  // Plant exact ties: values at midpoints of the E2M1 grid times the block's scale.
  std::mt19937_64 rng(seed + 1);
  for (int i = 0; i < 200; ++i) {
    const size_t blk = rng() % size_t(rows * cols / 32);
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[blk * 32 + j]));
    if (amax == 0) continue;
    const float s = std::ldexp(1.0f, floor_log2(amax) - 2);
    const float mids[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
    x[blk * 32 + 1 + rng() % 31] = mids[rng() % 7] * s * ((rng() & 1) ? 1.0f : -1.0f);
  }
  TempDir dir;
  save(dir / "x.npy", x, {rows, cols});
  test::run_python_ref("formats_ref.py", {"mxfp4", (dir / "x.npy").string(), (dir / "codes.npy").string(),
                                          (dir / "exps.npy").string(), (dir / "ties.npy").string()});
  const auto rc = load(dir / "codes.npy"), re = load(dir / "exps.npy"), ties = load(dir / "ties.npy");
  const QuantizedTensor q = quantize(parse_format("mxfp4"), x.data(), rows, cols);
  size_t bad = 0, tie_diffs = 0, ntie = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < cols / 32; ++g)
      if (q.scales[size_t(r * (cols / 32) + g)] != uint8_t(re[size_t(r * (cols / 32) + g)]) && bad++ < 10)
        ADD_FAILURE() << "shared exponent of row " << r << " block " << g;
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = size_t(r * cols + c);
      const uint32_t ours = q.code(r, c);
      if (ties[i] != 0) {
        ++ntie;
        if (ours != uint32_t(rc[i])) {
          ++tie_diffs;
          // At a tie the spec rounds to the even code (mantissa bit 0 clear): check we did.
          EXPECT_EQ(ours & 1u, 0u) << "tie not rounded to even at " << r << "," << c;
        }
        continue;
      }
      // -0 and +0 are the same value; llama.cpp's search may pick either.
      if (ours != uint32_t(rc[i]) && !((ours & 7u) == 0 && (uint32_t(rc[i]) & 7u) == 0) && bad++ < 10)
        ADD_FAILURE() << "code at " << r << "," << c << ": " << ours << " vs gguf " << rc[i];
    }
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_GT(ntie, 50u);
  std::printf("MXFP4: %zu ties, %zu resolved differently from llama.cpp's nearest search (fpq: to even)\n", ntie,
              tie_diffs);
}

TEST(Mx, Fp6Fp8ElementsAndExponentsMatchNumpyReference) {
  const uint64_t seed = test::fresh_seed();
  const int64_t rows = 33, cols = 256;
  const auto x = random_matrix(rows, cols, seed);
  TempDir dir;
  save(dir / "x.npy", x, {rows, cols});
  for (const auto& [fmt, elem] : std::vector<std::pair<std::string, std::string>>{
           {"mxfp4", "e2m1"}, {"mxfp6_e2m3", "e2m3"}, {"mxfp6_e3m2", "e3m2"}, {"mxfp8_e4m3", "e4m3"}, {"mxfp8_e5m2", "e5m2"}}) {
    SCOPED_TRACE(fmt);
    test::run_python_ref("formats_ref.py", {"mx", (dir / "x.npy").string(), (dir / "c.npy").string(),
                                            (dir / "s.npy").string(), elem});
    const auto rc = load(dir / "c.npy"), rs = load(dir / "s.npy");
    const QuantizedTensor q = quantize(parse_format(fmt), x.data(), rows, cols);
    size_t bad = 0;
    for (size_t i = 0; i < rs.size(); ++i)
      if (q.scales[i] != uint8_t(rs[i]) && bad++ < 10) ADD_FAILURE() << "scale " << i << ": " << int(q.scales[i]) << " vs " << rs[i];
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        if (q.code(r, c) != uint32_t(rc[size_t(r * cols + c)]) && bad++ < 10)
          ADD_FAILURE() << "code " << r << "," << c << ": " << q.code(r, c) << " vs " << rc[size_t(r * cols + c)];
    EXPECT_EQ(bad, 0u);
  }
}

TEST(Nvfp4, MatchesThePublishedDefinition) {
  const uint64_t seed = test::fresh_seed();
  const int64_t rows = 41, cols = 128;
  const auto x = random_matrix(rows, cols, seed);
  TempDir dir;
  save(dir / "x.npy", x, {rows, cols});
  test::run_python_ref("formats_ref.py", {"nvfp4", (dir / "x.npy").string(), (dir / "c.npy").string(),
                                          (dir / "s.npy").string(), (dir / "g.npy").string()});
  const auto rc = load(dir / "c.npy"), rs = load(dir / "s.npy"), rg = load(dir / "g.npy");
  const QuantizedTensor q = quantize(parse_format("nvfp4"), x.data(), rows, cols);
  ASSERT_EQ(q.global_scale.size(), 1u);
  EXPECT_EQ(q.global_scale[0], rg[0]);
  size_t bad = 0;
  for (size_t i = 0; i < rs.size(); ++i)
    if (q.scales[i] != uint8_t(rs[i]) && bad++ < 10) ADD_FAILURE() << "scale " << i;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      if (q.code(r, c) != uint32_t(rc[size_t(r * cols + c)]) && bad++ < 10)
        ADD_FAILURE() << "code " << r << "," << c << ": " << q.code(r, c) << " vs " << rc[size_t(r * cols + c)];
  EXPECT_EQ(bad, 0u);
}

TEST(Packing, LsbFirstBitStreamMatchesNumpyPackbits) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  for (int bits : {3, 4, 5, 6, 8}) {
    SCOPED_TRACE(bits);
    const int64_t n = 8 * (1 + int64_t(rng() % 40));
    std::vector<uint8_t> codes(static_cast<size_t>(n));
    std::vector<float> codes_f(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) codes_f[size_t(i)] = codes[size_t(i)] = uint8_t(rng() & ((1u << bits) - 1));
    TempDir dir;
    save(dir / "c.npy", codes_f);
    test::run_python_ref("formats_ref.py", {"pack", (dir / "c.npy").string(), (dir / "p.npy").string(), std::to_string(bits)});
    const auto ref = load(dir / "p.npy");
    std::vector<uint8_t> packed(static_cast<size_t>(packed_bytes(n, bits)));
    pack_codes(codes.data(), n, bits, packed.data());
    ASSERT_EQ(ref.size(), packed.size());
    for (size_t i = 0; i < packed.size(); ++i) EXPECT_EQ(packed[i], uint8_t(ref[i])) << "byte " << i;
    std::vector<uint8_t> back(static_cast<size_t>(n));
    unpack_codes(packed.data(), 0, n, bits, back.data());
    EXPECT_EQ(back, codes);
  }
}

}  // namespace
}  // namespace fpq
