// fpq dequantize IN.safetensors OUT.npy (the inverse of the tensor mode of fpq quantize)
#include <memory>

#include "commands.h"
#include "formats/quantized_io.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/npy.h"

namespace fpq::cli {

namespace {
struct TensorArgs {
  std::string in, out;
};
}  // namespace

static void register_tensor_io(CLI::App& app) {
  auto d = std::make_shared<TensorArgs>();
  auto* dc = app.add_subcommand("dequantize", "Dequantize a safetensors file written by `fpq quantize` into a float32 .npy");
  dc->add_option("input", d->in, "Input .safetensors")->required();
  dc->add_option("output", d->out, "Output .npy")->required();
  dc->callback([d] {
    check_output_path(d->out, "output");
    std::vector<int64_t> shape;
    const QuantizedTensor qt = load_quantized(d->in, &shape);
    const std::vector<float> x = dequantize(qt);
    write_npy(d->out, shape, x.data());
  });
}

static const CommandRegistrar registrar(40, register_tensor_io);

}  // namespace fpq::cli
