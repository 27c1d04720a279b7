// The GGUF reader against gguf-py (tests/ref/model_io_gguf.py): metadata of every value type, dequantization of
// every ggml type fpq reads (random blocks and gguf-py-quantized data, bit for bit), tensors of the real default
// model, and truncated / corrupted files rejected with fpq::Error rather than a crash.
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "model/model_source.h"
#include "test_support.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/npy.h"
#include "util/parallel.h"

namespace fpq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Bitwise equality, NaN equal to NaN (payloads aside); reports the first difference.
::testing::AssertionResult same_floats(const std::string& what, const float* got, const float* want, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
    if (!both_nan && std::memcmp(&got[i], &want[i], 4) != 0)
      return ::testing::AssertionFailure() << what << ": element " << i << " is " << got[i] << ", gguf-py has "
                                           << want[i];
  }
  return ::testing::AssertionSuccess();
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) { write_file_atomic(p, std::span<const uint8_t>(b)); }

struct TypesFixture {
  test::TempDir dir;
  json meta;
  explicit TypesFixture(uint64_t seed) {
    test::run_python_ref("model_io_gguf.py", {"types", dir.path().string(), std::to_string(seed % 1000000007)});
    meta = json::parse(read_file_text(dir / "meta.json"));
  }
};

TEST(ModelIoGguf, DequantizesEveryTypeLikeGgufPy) {
  TypesFixture fx(test::fresh_seed());
  const GgufFile g(fx.dir / "types.gguf");
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), fx.meta.at("alignment").get<uint64_t>());
  const auto& listed = fx.meta.at("tensors");
  ASSERT_EQ(g.tensors().size(), listed.size());
  std::set<std::string> types_seen;
  for (const auto& t : listed) {
    const std::string name = t.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const GgufTensorInfo& info = g.tensor(name);
    EXPECT_EQ(ggml_type_name(info.type), t.at("type").get<std::string>());
    EXPECT_EQ(info.shape, t.at("shape").get<std::vector<int64_t>>());
    const NpyArray want = read_npy(fx.dir / (name + ".npy"));
    ASSERT_EQ(want.shape, info.shape);
    const std::vector<float> got = g.dequantize(info);
    ASSERT_EQ(got.size(), want.data.size());
    EXPECT_TRUE(same_floats(name, got.data(), want.data.data(), got.size()));
    types_seen.insert(ggml_type_name(info.type));
  }
  for (const char* required : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K",
                               "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "MXFP4", "NVFP4"})
    EXPECT_TRUE(types_seen.count(required)) << required;
}

TEST(ModelIoGguf, DequantizationDoesNotDependOnThreadCount) {
  TypesFixture fx(test::fresh_seed());
  const GgufFile g(fx.dir / "types.gguf");
  const int saved = num_threads();
  for (const auto& t : g.tensors()) {
    set_num_threads(1);
    const auto one = g.dequantize(t);
    set_num_threads(3);
    const auto three = g.dequantize(t);
    EXPECT_TRUE(same_floats(t.name, one.data(), three.data(), one.size()));
  }
  set_num_threads(saved);
}

TEST(ModelIoGguf, ReadsMetadataOfEveryType) {
  TypesFixture fx(test::fresh_seed());
  const GgufFile g(fx.dir / "types.gguf");
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  for (const auto& [key, e] : fx.meta.at("meta").items()) {
    SCOPED_TRACE(key);
    const std::string type = e.at("type").get<std::string>();
    const json& v = e.at("value");
    const GgufValue* val = g.find(key);
    ASSERT_NE(val, nullptr);
    if (type == "UINT64") {
      EXPECT_EQ(std::get<uint64_t>(val->value), v.get<uint64_t>());
    } else if (type == "INT64" || type == "INT32" || type == "INT16" || type == "INT8") {
      EXPECT_EQ(std::get<int64_t>(val->value), v.get<int64_t>());
      EXPECT_EQ(g.get_int(key), v.get<int64_t>());
    } else if (type == "UINT32" || type == "UINT16" || type == "UINT8") {
      EXPECT_EQ(std::get<uint64_t>(val->value), v.get<uint64_t>());
      EXPECT_EQ(g.get_int(key), v.get<int64_t>());
    } else if (type == "FLOAT32" || type == "FLOAT64") {
      EXPECT_EQ(g.get_float(key), v.get<double>());
    } else if (type == "BOOL") {
      EXPECT_EQ(g.get_bool(key, !v.get<bool>()), v.get<bool>());
    } else if (type == "STRING") {
      EXPECT_EQ(g.get_string(key), v.get<std::string>());
    } else if (type == "ARRAY:STRING") {
      EXPECT_EQ(g.get_string_array(key), v.get<std::vector<std::string>>());
    } else if (type == "ARRAY:FLOAT32") {
      EXPECT_EQ(g.get_float_array(key), v.get<std::vector<double>>());
    } else if (type.rfind("ARRAY:", 0) == 0) {
      EXPECT_EQ(g.get_int_array(key), v.get<std::vector<int64_t>>());
    } else {
      ADD_FAILURE() << "unexpected type " << type;
    }
  }
  // Wrong-type and missing-key access are errors naming the key.
  try {
    g.get_string("test.u8");
    ADD_FAILURE() << "a u8 read as a string";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.u8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(g.get_int("no.such.key"), Error);
  EXPECT_EQ(g.get_int("no.such.key", 7), 7);
  EXPECT_THROW(g.tensor("no.such.tensor"), Error);
}

TEST(ModelIoGguf, RealModelTensorsMatchGgufPy) {
  test::TempDir dir;
  const char* saved = std::getenv("FPQ_MODEL");
  const std::string keep = saved ? saved : "";
  ::unsetenv("FPQ_MODEL");
  const fs::path model = default_model_path();
  if (saved) ::setenv("FPQ_MODEL", keep.c_str(), 1);
  test::run_python_ref("model_io_gguf.py", {"real", model.string(), dir.path().string()});
  const json listed = json::parse(read_file_text(dir / "real.json")).at("tensors");
  ASSERT_GE(listed.size(), 5u);
  const GgufFile g(model);
  for (const auto& t : listed) {
    const std::string name = t.at("name").get<std::string>();
    const GgufTensorInfo& info = g.tensor(name);
    EXPECT_EQ(info.shape, t.at("shape").get<std::vector<int64_t>>());
    const NpyArray want = read_npy(dir / (name + ".npy"));  // the first rows
    const std::vector<float> got = g.dequantize(info);
    ASSERT_LE(want.data.size(), got.size());
    EXPECT_TRUE(same_floats(name, got.data(), want.data.data(), want.data.size()));
  }
}

// Opening must either succeed with every tensor inside the file, or throw fpq::Error.
void open_and_touch(const fs::path& p) {
  try {
    const GgufFile g(p);
    for (const auto& t : g.tensors()) {
      const auto info = ggml_type_info(uint32_t(t.type));
      if (info && info->can_dequantize) (void)g.dequantize(t);
    }
  } catch (const Error&) {
  }
}

TEST(ModelIoGguf, TruncatedFilesAreErrors) {
  TypesFixture fx(test::fresh_seed());
  const fs::path full = fx.dir / "types.gguf";
  const auto bytes = read_file_bytes(full);
  const uint64_t alignment = fx.meta.at("alignment").get<uint64_t>();
  const fs::path cut = fx.dir / "cut.gguf";
  std::filesystem::copy_file(full, cut);
  // Shrink the copy step by step: every length in the first 2 KiB, then strided; anything shorter than the
  // file less its final padding lacks data that the header promises.
  std::vector<size_t> lengths;
  for (size_t n = bytes.size() - alignment; n > 2048; n -= std::max<size_t>(1, (bytes.size() - 2048) / 300))
    lengths.push_back(n);
  for (size_t n = 2048; n-- > 0;) lengths.push_back(n);
  for (size_t n : lengths) {
    std::filesystem::resize_file(cut, n);
    try {
      GgufFile g(cut);
      ADD_FAILURE() << "a GGUF truncated to " << n << " of " << bytes.size() << " bytes was accepted";
      break;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("cut.gguf"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST(ModelIoGguf, CorruptFilesAreErrorsNotCrashes) {
  const uint64_t seed = test::fresh_seed();
  TypesFixture fx(seed);
  const auto bytes = read_file_bytes(fx.dir / "types.gguf");
  const fs::path p = fx.dir / "bad.gguf";
  auto expect_error = [&](const std::vector<uint8_t>& b, const std::string& needle) {
    write_bytes(p, b);
    try {
      GgufFile g(p);
      ADD_FAILURE() << "accepted a file that should fail with '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto patched = [&](size_t off, std::vector<uint8_t> v) {
    auto b = bytes;
    std::memcpy(b.data() + off, v.data(), v.size());
    return b;
  };
  // Version 2 has the same layout as version 3.
  write_bytes(p, patched(4, {2, 0, 0, 0}));
  EXPECT_EQ(GgufFile(p).version(), 2u);
  expect_error(patched(0, {'G', 'G', 'U', 'X'}), "not a GGUF file");
  expect_error(patched(4, {1, 0, 0, 0}), "version 1");
  expect_error(patched(4, {0, 0, 0, 3}), "big-endian");
  expect_error(patched(4, {9, 0, 0, 0}), "unsupported GGUF version 9");
  expect_error(patched(8, {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}), "tensor table");
  expect_error(patched(16, {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}), "metadata table");
  expect_error({}, "not a GGUF file");
  try {
    GgufFile g(fx.dir / "bad_alignment.gguf");
    ADD_FAILURE() << "accepted general.alignment 48";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("power of two"), std::string::npos) << e.what();
  }
  EXPECT_THROW(GgufFile(fx.dir / "does-not-exist.gguf"), std::exception);

  // Random byte changes in the header (counts, lengths, types, shapes, offsets): an error or a consistent file.
  std::mt19937_64 rng(seed);
  const size_t header_bytes = std::min<size_t>(bytes.size(), 4096);
  for (int trial = 0; trial < 300; ++trial) {
    auto b = bytes;
    const int flips = 1 + int(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      const size_t off = 8 + rng() % (header_bytes - 8);
      b[off] = uint8_t(rng() % 4 == 0 ? 0xFF : rng());
    }
    write_bytes(p, b);
    open_and_touch(p);
  }
}

}  // namespace
}  // namespace fpq
