// fpq export end to end: from a float model quantized on the fly and from an fpq checkpoint, to GGUF and to
// compressed-tensors; bad input is one line on stderr ("fpq: error: ...") with exit status 1 and no output left.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "export_test_util.h"
#include "model/gguf.h"
#include "test_support.h"
#include "util/file_io.h"

namespace fpq {
namespace {

namespace fs = std::filesystem;

test::CommandResult fpq(const std::string& args) { return test::run_command((test::binary_dir() / "fpq").string() + " " + args); }

void expect_error(const test::CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("fpq: error: ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  const size_t nl = r.output.find('\n');
  EXPECT_TRUE(nl == std::string::npos || nl + 1 == r.output.size()) << "not one line: " << r.output;
}

class CliExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    exporttest::make_tiny_model(*dir_ / "hf", "llama", 3, "gpt2");
    std::string text;
    for (int i = 0; i < 200; ++i) text += "The quick brown fox jumps over the lazy dog " + std::to_string(i * 37) + ". ";
    write_file_atomic(*dir_ / "calib.txt", std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string p(const std::string& name) { return (*dir_ / name).string(); }
  static void expect_no_output(const std::string& name) {
    EXPECT_FALSE(fs::exists(*dir_ / name)) << name;
    for (const auto& e : fs::directory_iterator(dir_->path()))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
  static test::TempDir* dir_;
};
test::TempDir* CliExport::dir_ = nullptr;

TEST_F(CliExport, FloatModelToGguf) {
  const auto r = fpq("export --model " + p("hf") + " --format q4_0 --to gguf --out " + p("q4.gguf") + " --name tiny");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("GGUF Q4_0"), std::string::npos) << r.output;
  const GgufFile g(*dir_ / "q4.gguf");
  EXPECT_EQ(g.get_string("general.name"), "tiny");
  EXPECT_EQ(g.tensor("blk.0.ffn_up.weight").type, GgmlType::Q4_0);
  const auto r16 = fpq("export --model " + p("hf") + " --format mxfp4 --to gguf --f16 --out " + p("mx.gguf"));
  ASSERT_EQ(r16.exit_code, 0) << r16.output;
  EXPECT_EQ(GgufFile(*dir_ / "mx.gguf").tensor("token_embd.weight").type, GgmlType::F16);
  EXPECT_EQ(GgufFile(*dir_ / "mx.gguf").tensor("output_norm.weight").type, GgmlType::F32);
}

TEST_F(CliExport, CheckpointToCompressedTensors) {
  ASSERT_EQ(fpq("quantize --model " + p("hf") + " --format nvfp4 --method rtn --out " + p("ckpt")).exit_code, 0);
  const auto r = fpq("export --model " + p("ckpt") + " --to compressed-tensors --out " + p("ct16"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("NVFP4A16"), std::string::npos) << r.output;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(*dir_ / "ct16" / f)) << f;
  // W4A4 calibrates its static input scales on --calib-data.
  const auto r4 = fpq("export --model " + p("hf") + " --format nvfp4 --a-bits 4 --to compressed-tensors --out " + p("ct4") +
                      " --calib-data " + p("calib.txt") + " --num-sequences 4 --seq-len 32");
  ASSERT_EQ(r4.exit_code, 0) << r4.output;
  EXPECT_NE(r4.output.find("compressed-tensors NVFP4,"), std::string::npos) << r4.output;
  const auto cfg = nlohmann::json::parse(read_file_text(*dir_ / "ct4" / "config.json"));
  EXPECT_EQ(cfg["quantization_config"]["config_groups"]["group_0"]["input_activations"]["dynamic"], "local");
}

TEST_F(CliExport, BadInputIsOneLineAndLeavesNothing) {
  expect_error(fpq("export --model " + p("hf") + " --format q4_0 --to onnx --out " + p("x")), "unknown --to 'onnx'");
  expect_no_output("x");
  expect_error(fpq("export --model " + p("hf") + " --to gguf --out " + p("x.gguf")), "is not quantized");
  expect_error(fpq("export --model " + p("hf") + " --format nvfp4 --to gguf --out " + p("x.gguf")), "cannot be stored in GGUF");
  expect_error(fpq("export --model " + p("hf") + " --format mxfp4 --method mr-gptq --to gguf --out " + p("x.gguf")),
               "input transform");
  expect_error(fpq("export --model " + p("hf") + " --format mxfp4 --to compressed-tensors --out " + p("x")), "is not NVFP4");
  expect_error(fpq("export --model " + p("hf") + " --format nvfp4 --a-bits 4 --to compressed-tensors --out " + p("x")),
               "needs --calib-data");
  expect_error(fpq("export --model " + p("nope") + " --format q4_0 --to gguf --out " + p("x.gguf")), "not found");
  expect_error(fpq("export --model " + p("hf") + " --format q4_0 --to gguf --out " + p("no/such/dir/x.gguf")), "cannot write");
  expect_error(fpq("export --model " + p("hf") + " --format q4_0 --to compressed-tensors --f16 --out " + p("x")), "GGUF options");
  expect_no_output("x");
  expect_no_output("x.gguf");
  ASSERT_EQ(fpq("quantize --model " + p("hf") + " --format q8_0 --method rtn --out " + p("ck8")).exit_code, 0);
  expect_error(fpq("export --model " + p("ck8") + " --format q4_0 --to gguf --out " + p("x.gguf")), "already quantized");
  expect_no_output("x.gguf");
}

}  // namespace
}  // namespace fpq
