// fpq qdq: fake-quantize a float32 .npy along its last axis.
#include <memory>

#include "commands.h"
#include "format_options.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/npy.h"

namespace fpq::cli {

namespace {
struct QdqArgs {
  FormatOptions fmt;
  std::string in, out;
};
}  // namespace

static void register_qdq(CLI::App& app) {
  auto a = std::make_shared<QdqArgs>();
  auto* cmd = app.add_subcommand("qdq", "Quantize then dequantize a float32 .npy (any shape; the last axis is the "
                                        "quantization axis) into a float32 .npy");
  a->fmt.add(cmd);
  cmd->add_option("input", a->in, "Input .npy (float32)")->required();
  cmd->add_option("output", a->out, "Output .npy (float32)")->required();
  cmd->callback([a] {
    check_output_path(a->out, "output");
    const Format f = a->fmt.resolve_format();
    const QuantizeOptions opt = a->fmt.resolve_options();
    NpyArray arr = read_npy(a->in);
    if (arr.shape.empty()) fail("'{}' is a scalar; need at least one axis", a->in);
    const int64_t cols = arr.shape.back();
    const int64_t rows = cols ? int64_t(arr.data.size()) / cols : 0;
    check_format_cols(f, cols);
    fake_quantize(f, arr.data.data(), rows, cols, arr.data.data(), opt);
    write_npy(a->out, arr.shape, arr.data.data());
  });
}

static const CommandRegistrar registrar(30, register_qdq);

}  // namespace fpq::cli
