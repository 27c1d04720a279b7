// The fpq CLI's tensor commands end to end, and its handling of bad input: one line on stderr, a non-zero
// exit, and no output file left behind.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "formats/quantize.h"
#include "test_support.h"
#include "util/npy.h"

namespace fpq {
namespace {

std::string fpq_bin() { return (test::binary_dir() / "fpq").string(); }

test::CommandResult fpq(const std::string& args) { return test::run_command(fpq_bin() + " " + args); }

void expect_clean_failure(const test::CommandResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("fpq: error: ", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "not one line: " << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "message should mention '" << needle << "': " << r.output;
}

TEST(Cli, FormatsListsTheRegistry) {
  const auto r = fpq("formats");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto& info : format_table()) EXPECT_NE(r.output.find("| " + info.name + " "), std::string::npos) << info.name;
  const auto j = fpq("formats --json");
  ASSERT_EQ(j.exit_code, 0);
  EXPECT_NE(j.output.find("\"bits_per_value\""), std::string::npos);
}

TEST(Cli, QdqAndQuantizeDequantizeAgreeWithTheLibrary) {
  const uint64_t seed = test::fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(3 * 5 * 64));
  for (auto& v : x) v = normal(rng);
  test::TempDir dir;
  const auto in = dir / "x.npy";
  write_npy(in, {3, 5, 64}, x.data());
  for (const char* f : {"nvfp4", "mxfp6_e3m2", "q4_0", "e3m2/fp16/row", "int4_asym --group-size 32"}) {
    SCOPED_TRACE(f);
    const auto r1 = fpq(std::string("qdq --format ") + f + " " + in.string() + " " + (dir / "y.npy").string());
    ASSERT_EQ(r1.exit_code, 0) << r1.output;
    const auto r2 = fpq(std::string("quantize --format ") + f + " " + in.string() + " " + (dir / "q.safetensors").string());
    ASSERT_EQ(r2.exit_code, 0) << r2.output;
    const auto r3 = fpq("dequantize " + (dir / "q.safetensors").string() + " " + (dir / "z.npy").string());
    ASSERT_EQ(r3.exit_code, 0) << r3.output;
    const NpyArray y = read_npy(dir / "y.npy"), z = read_npy(dir / "z.npy");
    EXPECT_EQ(y.shape, (std::vector<int64_t>{3, 5, 64}));
    EXPECT_EQ(z.shape, y.shape);
    EXPECT_EQ(y.data, z.data);
    std::string spec = f;
    Format fmt = parse_format(spec.substr(0, spec.find(' ')));
    if (spec.find("--group-size") != std::string::npos) fmt = with_options(fmt, 32, std::nullopt, std::nullopt);
    std::vector<float> ref(x.size());
    fake_quantize(fmt, x.data(), 15, 64, ref.data());
    EXPECT_EQ(y.data, ref);
  }
}

TEST(Cli, BadInputGivesOneLineErrorAndNoOutputFile) {
  test::TempDir dir;
  std::vector<float> x(3 * 48, 1.0f);
  write_npy(dir / "x48.npy", {3, 48}, x.data());
  const auto out = dir / "out.npy";
  expect_clean_failure(fpq("qdq --format nvfp5 " + (dir / "x48.npy").string() + " " + out.string()), "unknown format");
  expect_clean_failure(fpq("qdq --format mxfp4 " + (dir / "x48.npy").string() + " " + out.string()), "not a multiple of the group size");
  expect_clean_failure(fpq("qdq --format mxfp4 --rounding banana " + (dir / "x48.npy").string() + " " + out.string()), "rounding");
  expect_clean_failure(fpq("qdq --format mxfp4 " + (dir / "missing.npy").string() + " " + out.string()), "missing.npy");
  {  // float64 array
    std::ofstream f(dir / "f8.npy", std::ios::binary);
    std::string h = "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }";
    h.append(128 - 10 - h.size() - 1, ' ');
    h += '\n';
    f.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {char(h.size() & 0xFF), char(h.size() >> 8)};
    f.write(len, 2);
    f << h;
    const double d[4] = {1, 2, 3, 4};
    f.write(reinterpret_cast<const char*>(d), sizeof d);
  }
  expect_clean_failure(fpq("qdq --format mxfp4 " + (dir / "f8.npy").string() + " " + out.string()), "float32");
  {  // truncated float32 array
    std::vector<float> big(1024, 2.0f);
    write_npy(dir / "big.npy", {32, 32}, big.data());
    std::filesystem::resize_file(dir / "big.npy", 1000);
  }
  expect_clean_failure(fpq("qdq --format mxfp4 " + (dir / "big.npy").string() + " " + out.string()), "truncated");
  {  // corrupt safetensors
    std::ofstream f(dir / "bad.safetensors", std::ios::binary);
    const uint64_t n = 1000;
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << "{\"codes\": ";
  }
  expect_clean_failure(fpq("dequantize " + (dir / "bad.safetensors").string() + " " + out.string()), "bad.safetensors");
  EXPECT_FALSE(std::filesystem::exists(out));
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << "left a temporary: " << e.path();
  const auto unknown = fpq("qdq --format mxfp4 --bogus 1 a b");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_EQ(unknown.output.rfind("fpq: error: ", 0), 0u) << unknown.output;
}

// The benchmarks' NxK shapes: whole positive numbers on both sides, or one clean error before any work.
TEST(Cli, BenchRejectsBadShapes) {
  for (const char* shape : {"64x64x2", "100ax64", "64x", "x64", "0x64", "64x-64", "99999999999x64", "4kx64"}) {
    SCOPED_TRACE(shape);
    expect_clean_failure(fpq(std::string("bench matvec mxfp4 --calls 1 --shape ") + shape), "bad shape");
    expect_clean_failure(fpq(std::string("bench gemm --m 1 --no-sgemm --repeats 1 --min-time 0 --formats mxfp4:f32 --shapes ") + shape),
                         "bad shape");
  }
  const auto ok = fpq("bench matvec mxfp4 --calls 1 --shape 64X64");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

// Options that cannot work fail at once, with one line, before any model loads or any work runs: output paths
// in missing folders (found only at the end of an evaluation before), negative counts (read as "all"), and
// sampling settings that greedy decoding used to ignore.
TEST(Cli, BadOptionsFailBeforeAnyWork) {
  test::TempDir dir;
  std::vector<float> x(2 * 32, 1.0f);
  write_npy(dir / "x.npy", {2, 32}, x.data());
  const std::string in = (dir / "x.npy").string(), missing = (dir / "no" / "such").string();
  expect_clean_failure(fpq("qdq --format mxfp4 " + in + " " + missing + "/y.npy"), "does not exist");
  expect_clean_failure(fpq("qdq --format mxfp4 " + in + " " + dir.path().string()), "is a folder");
  expect_clean_failure(fpq("quantize --format mxfp4 " + in + " " + missing + "/y.safetensors"), "does not exist");
  expect_clean_failure(fpq("quantize --format mxfp4 --out " + in), "is a file");
  // (each run kept small, so that a build without the checks fails the test quickly instead of working for hours)
  const std::string small_eval = "eval -f mxfp4 --tasks wikitext2 --ctx 32 --windows 0:1 --no-baseline --kernels pseudo ";
  expect_clean_failure(fpq(small_eval + "--json " + missing + "/r.json"), "does not exist");
  expect_clean_failure(fpq("bench gemm --m 1 --shapes 64x64 --formats mxfp4:f32 --repeats 1 --min-time 0 --no-sgemm "
                           "--bandwidth-mb 1 --probe-mb 1 --json " + missing + "/r.json"),
                       "does not exist");
  expect_clean_failure(fpq("demo --json " + missing + "/r.json"), "does not exist");
  for (const char* opt : {"--limit-tokens -3", "--limit -1", "--w-group-size -16", "--a-group-size 1.5"})
    expect_clean_failure(fpq(small_eval + opt), "whole number >= 0");
  const std::string small_bench = "bench gemm --m 1 --shapes 64x64 --formats mxfp4:f32 --no-sgemm --bandwidth-mb 1 --probe-mb 1 ";
  expect_clean_failure(fpq(small_bench + "--repeats 0"), "whole number >= 1");  // (timed nothing: "0 us")
  expect_clean_failure(fpq(small_bench + "--min-time nan"), "number >= 0");
  expect_clean_failure(fpq(small_bench + "--rotate-mb -5"), "number > 0");
  expect_clean_failure(fpq("demo --rows 0"), "whole number >= 1");
  expect_clean_failure(fpq("generate --prompt hi --top-p 2"), "--top-p");
  expect_clean_failure(fpq("generate --prompt hi --top-p nan"), "--top-p");
  expect_clean_failure(fpq("generate --prompt hi --temperature -1"), "--temperature");
  expect_clean_failure(fpq("generate --prompt hi -f mxfp4 --kernel bogus"), "unknown kernel");  // (not after quantizing)
  EXPECT_FALSE(std::filesystem::exists(dir / "no"));
}

}  // namespace
}  // namespace fpq
