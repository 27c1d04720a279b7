// The main job's claim, end to end on the default model: perplexity with the real CPU kernels equals perplexity
// with the pseudo (fake-quantization) path on the same quantized weights. Every pair with quantized activations
// gives the same mean NLL to the last bit (exact float64 sums: the integer kernels' group sums, the float64
// kernel for FP8 activations; docs/ARCHITECTURE.md). Weight-only layers use float32 GEMMs on both paths and agree
// to 1e-3 relative, as issue 4 asks. The `real-fast` backend sums in float32, and a last-bit difference that flips
// an activation code grows through the remaining layers: on this 189-token text it moved the perplexity by 1.3%
// (NVFP4 W4A4), 0.5% (Q4_0 x Q8_1) and 0.1% (MXFP8 W8A8) — the real-vs-pseudo gap of other tools, and why `real`
// (exact) is the default. Checked here only to 3e-2 (the run is deterministic: same text, thread-count
// independent kernels).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "eval/perplexity.h"
#include "model/model_source.h"
#include "model/quant_recipe.h"
#include "model/transformer.h"

namespace fpq {
namespace {

// A few paragraphs of ordinary English (the test's own text; CI never depends on a data set).
const char* kText =
    "The river rises in the hills to the north of the town and flows south through a wide valley of farms and "
    "orchards. In the nineteenth century a mill was built at the narrowest point of the valley, and the town grew "
    "around it. The mill produced flour for the surrounding villages until 1921, when a fire destroyed most of the "
    "building. It was rebuilt in brick two years later and converted into a museum in 1978.\n\n"
    "The museum holds a collection of farm tools, photographs and letters written by the families who worked at "
    "the mill. Visitors can climb to the top floor, where the original grinding stones are displayed next to a "
    "model of the water wheel. Each summer the town holds a festival on the river bank with music, food stalls and "
    "a boat race between the local schools.\n\n"
    "Scientists have studied the river for many years because its water temperature changes quickly after heavy "
    "rain. A study published in 2014 measured the temperature every ten minutes for three years and found that "
    "the fish population moved upstream during the warmest weeks. The researchers suggested planting more trees "
    "along the banks to provide shade, and the town council approved the plan the following spring. Today the "
    "path along the river is one of the most popular walks in the region, and the trees planted then are already "
    "taller than the old mill.\n";

struct Case {
  const char* format;
  int a_bits;
  bool bit_identical;  // served by an integer kernel on every variant
  double tolerance;    // relative perplexity difference otherwise
  // real-fast (float32 group sums) against pseudo: chaotic through 30 layers of requantized activations, more so
  // with 8-bit float activations (fine rounding steps): MXFP8 measured +2.2% with the float kernel (AVX2) and
  // +3.4% with vdpbf16ps on a Zen 4 (2026-12-06); NVFP4 -1.2%, Q4_0 -0.7%.
  double fast_tolerance = 3e-2;
};

TEST(RealVsPseudo, DefaultModelPerplexityAgrees) {
  ModelSource src(default_model_path());
  const std::vector<int32_t> tokens = src.tokenizer().encode(kText);
  ASSERT_GE(tokens.size(), 3u * 64u);
  PerplexityOptions opt;
  opt.ctx = 64;
  opt.limit_tokens = 3 * 64;
  opt.progress = false;
  const Case cases[] = {{"nvfp4", 4, true, 0},      {"mxfp4", 4, true, 0},         {"mxfp6_e2m3", 6, true, 0},
                        {"q4_0", 8, true, 0},       {"fp6_e3m2", 16, false, 1e-3}, {"mxfp8_e4m3", 8, true, 0, 6e-2}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.format) + " a" + std::to_string(c.a_bits));
    Transformer model(src);
    quantize_model_rtn(model, make_recipe(c.format, 0, c.a_bits), false);
    double nll[3];
    const char* kernels[3] = {"real", "pseudo", "real-fast"};
    for (int k = 0; k < 3; ++k) {
      const auto [qb, mb] = kernel_backends(kernels[k]);
      set_model_backends(model, qb, mb);
      ASSERT_EQ(model.linears().front().second->resolved_backends().second, kernels[k]);
      nll[k] = evaluate_perplexity(model, tokens, opt).nll;
    }
    std::fprintf(stderr, "%s a%d: perplexity real %.6f, pseudo %.6f, real-fast %.6f\n", c.format, c.a_bits,
                 std::exp(nll[0]), std::exp(nll[1]), std::exp(nll[2]));
    const double rel_fast = std::abs(std::exp(nll[2]) - std::exp(nll[1])) / std::exp(nll[1]);
    EXPECT_LT(rel_fast, c.fast_tolerance) << "perplexity real-fast " << std::exp(nll[2]) << " vs pseudo " << std::exp(nll[1]);
    EXPECT_TRUE(std::isfinite(nll[0]));
    const double rel = std::abs(std::exp(nll[0]) - std::exp(nll[1])) / std::exp(nll[1]);
    if (c.bit_identical) {
      EXPECT_EQ(nll[0], nll[1]) << "real vs pseudo mean NLL (perplexity " << std::exp(nll[0]) << " vs "
                                << std::exp(nll[1]) << ")";
    } else {
      EXPECT_LT(rel, c.tolerance) << "perplexity real " << std::exp(nll[0]) << " vs pseudo " << std::exp(nll[1]);
    }
  }
}

}  // namespace
}  // namespace fpq
