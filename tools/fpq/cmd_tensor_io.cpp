// fpq quantize IN.npy OUT.safetensors / fpq dequantize IN.safetensors OUT.npy
#include <memory>

#include "commands.h"
#include "format_options.h"
#include "formats/quantized_io.h"
#include "util/error.h"
#include "util/npy.h"

namespace fpq::cli {

namespace {
struct TensorArgs {
  FormatOptions fmt;
  std::string in, out;
};
}  // namespace

static void register_tensor_io(CLI::App& app) {
  auto q = std::make_shared<TensorArgs>();
  auto* qc = app.add_subcommand("quantize", "Quantize a float32 .npy into a safetensors file of packed codes, scales "
                                            "and global scale (the format is recorded in its metadata)");
  q->fmt.add(qc);
  qc->add_option("input", q->in, "Input .npy (float32; the last axis is the quantization axis)")->required();
  qc->add_option("output", q->out, "Output .safetensors")->required();
  qc->callback([q] {
    const Format f = q->fmt.resolve_format();
    const QuantizeOptions opt = q->fmt.resolve_options();
    const NpyArray arr = read_npy(q->in);
    if (arr.shape.empty()) fail("'{}' is a scalar; need at least one axis", q->in);
    const int64_t cols = arr.shape.back();
    const int64_t rows = cols ? int64_t(arr.data.size()) / cols : 0;
    check_format_cols(f, cols);
    const QuantizedTensor qt = quantize(f, arr.data.data(), rows, cols, opt);
    save_quantized(q->out, qt, arr.shape);
  });

  auto d = std::make_shared<TensorArgs>();
  auto* dc = app.add_subcommand("dequantize", "Dequantize a safetensors file written by `fpq quantize` into a float32 .npy");
  dc->add_option("input", d->in, "Input .safetensors")->required();
  dc->add_option("output", d->out, "Output .npy")->required();
  dc->callback([d] {
    std::vector<int64_t> shape;
    const QuantizedTensor qt = load_quantized(d->in, &shape);
    const std::vector<float> x = dequantize(qt);
    write_npy(d->out, shape, x.data());
  });
}

static const CommandRegistrar registrar(40, register_tensor_io);

}  // namespace fpq::cli
