// fpq.Model: load a Llama/Qwen-family model (GGUF file, Hugging Face folder, fpq checkpoint; default: the embedded
// SmolLM2-135M-Instruct), quantize its projections (rtn, gptq, mr-gptq, 4o6, arc), pick the kernels, and run it: logits,
// perplexity of a text, generation. The model layer's own functions; the GIL is released while they run.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eval/perplexity.h"
#include "model/calibrate.h"
#include "model/checkpoint.h"
#include "model/generate.h"
#include "model/model_source.h"
#include "model/quant_recipe.h"
#include "util/error.h"

namespace nb = nanobind;

namespace fpq::python {
namespace {

struct PyModel {
  LoadedModel lm;
  std::string path;
  std::string recipe = "unquantized";
  std::string kernel = "auto";
};

std::unique_ptr<PyModel> load(std::optional<std::string> path) {
  auto m = std::make_unique<PyModel>();
  m->path = path ? *path : default_model_path().string();
  nb::gil_scoped_release release;
  m->lm = load_model(m->path);
  if (m->lm.is_checkpoint()) m->recipe = m->lm.recipe_name();
  return m;
}

void quantize(PyModel& m, const std::string& format, int w_bits, int a_bits, std::optional<std::string> a_format,
              const std::string& kernel, bool progress, const std::string& method, std::optional<std::string> calib_text,
              int64_t num_sequences, int64_t seq_len) {
  if (m.recipe != "unquantized")
    fail("the model is already quantized ({}); load a fresh fpq.Model for another format", m.recipe);
  const QuantRecipe r = make_recipe(format, w_bits, a_bits, 0, 0, a_format.value_or(""));
  check_kernel_runs_here(kernel);  // (a bad name, or no GPU for 'cuda', before the work)
  const auto [qb, mb] = kernel_backends(kernel);
  const quant::Method qm = quant::parse_method(method);
  if (qm == quant::Method::Rtn) {
    if (calib_text) fail("method 'rtn' takes no calibration text");
    nb::gil_scoped_release release;
    quantize_model_rtn(*m.lm.model, r, progress);
    set_model_backends(*m.lm.model, qb, mb);
    m.recipe = r.name;
    m.kernel = kernel;
    return;
  }
  if (!r.weight) fail("method '{}' needs a weight format (got '{}')", method, format);
  const bool needs_calib = quant::method_needs_hessian(qm) || quant::method_needs_channel_stats(qm);
  if (needs_calib && !calib_text) fail("method '{}' needs calibration text (calib_text=...)", quant::method_name(qm));
  if (num_sequences < 1 || seq_len < 2) fail("num_sequences must be >= 1 and seq_len >= 2");
  ModelQuantOptions o;  // the method's defaults, as `fpq quantize --method` without further options
  o.recipe = r;
  o.recipe.name += " " + std::string(quant::method_name(qm));
  o.method = quant::method_defaults(qm);
  o.calibration.num_sequences = num_sequences;
  o.calibration.seq_len = seq_len;
  o.progress = progress;
  nb::gil_scoped_release release;
  const std::vector<int32_t> tokens =
      calib_text ? m.lm.tokenizer().encode(*calib_text, false) : std::vector<int32_t>{};
  if (calib_text && int64_t(tokens.size()) < seq_len)
    fail("the calibration text has {} tokens, fewer than one sequence of {}", tokens.size(), seq_len);
  quantize_model(*m.lm.model, tokens, o);
  set_model_backends(*m.lm.model, qb, mb);
  m.recipe = o.recipe.name;
  m.kernel = kernel;
}

std::vector<int32_t> checked_tokens(const PyModel& m, const std::vector<int32_t>& tokens) {
  if (tokens.empty()) fail("no tokens");
  const int64_t vocab = m.lm.model->config().vocab_size;
  for (int32_t t : tokens)
    if (t < 0 || t >= vocab) fail("token id {} is outside the vocabulary (0..{})", t, vocab - 1);
  return tokens;
}

}  // namespace

void register_model(nb::module_& mod) {
  nb::class_<PyModel>(mod, "Model",
                      "A Llama/Qwen-family model: Model() loads the embedded SmolLM2-135M-Instruct, Model(path) a GGUF "
                      "file, a Hugging Face folder or an fpq checkpoint.")
      .def(nb::new_(&load), nb::arg("path") = nb::none())
      .def_prop_ro("path", [](const PyModel& m) { return m.path; })
      .def_prop_ro("recipe", [](const PyModel& m) { return m.recipe; }, "'unquantized' or e.g. 'nvfp4 W4A4'.")
      .def_prop_ro(
          "config",
          [](const PyModel& m) {
            return nb::module_::import_("json").attr("loads")(hf_config_json(m.lm.model->config()).dump());
          },
          "The model's configuration as a Hugging Face config.json dict.")
      .def_prop_ro("weight_bytes", [](const PyModel& m) { return m.lm.model->weight_bytes(); },
                   "Bytes of all weights as stored (embeddings and norms in float32; projections as packed codes and scales "
                   "once quantized).")
      .def("quantize", &quantize, nb::arg("format"), nb::arg("w_bits") = 0, nb::arg("a_bits") = 16,
           nb::arg("a_format") = nb::none(), nb::arg("kernel") = "auto", nb::arg("progress") = true,
           nb::arg("method") = "rtn", nb::arg("calib_text") = nb::none(), nb::arg("num_sequences") = 32,
           nb::arg("seq_len") = 512,
           "Quantize every decoder projection: format a registry name or ELEMENT/SCALE/GROUP (or a family "
           "nvfp|mxfp|fp|int with w_bits); a_bits 16 keeps activations float, 4/6/8 quantize them to the format's "
           "natural partner (or a_format). method: rtn, gptq, mr-gptq, 4o6 or arc with its defaults (gptq, mr-gptq "
           "and arc calibrate on calib_text: num_sequences windows of seq_len tokens). kernel: real, pseudo, "
           "real-fast, cuda or auto. progress: a bar with ETA on stderr.")
      .def("encode", [](const PyModel& m, const std::string& text, std::optional<bool> add_bos) {
        const Tokenizer& tok = m.lm.tokenizer();
        return tok.encode(text, add_bos.value_or(tok.add_bos_by_default()));
      }, nb::arg("text"), nb::arg("add_bos") = nb::none(), "Token ids (add_bos None: as the model's tokenizer config asks).")
      .def("decode", [](const PyModel& m, const std::vector<int32_t>& ids) {
        return m.lm.tokenizer().decode(checked_tokens(m, ids));
      }, nb::arg("ids"))
      .def(
          "logits",
          [](const PyModel& m, const std::vector<int32_t>& tokens) {
            const std::vector<int32_t> t = checked_tokens(m, tokens);
            const int64_t vocab = m.lm.model->config().vocab_size, n = int64_t(t.size());
            auto* out = new std::vector<float>(size_t(n * vocab));
            {
              nb::gil_scoped_release release;
              KvCache cache(m.lm.model->config(), n);
              m.lm.model->forward(t.data(), n, cache, out->data(), false);
            }
            nb::capsule del(out, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
            const size_t shape[2] = {size_t(n), size_t(vocab)};
            return nb::ndarray<nb::numpy, float>(out->data(), 2, shape, del);
          },
          nb::arg("tokens"), "Logits of every position (tokens x vocab), float32.")
      .def(
          "perplexity",
          [](const PyModel& m, const std::string& text, int64_t ctx, int64_t limit_tokens, bool progress) {
            if (ctx < 2) fail("ctx must be at least 2 (got {})", ctx);
            if (limit_tokens < 0) fail("limit_tokens must be >= 0 (got {})", limit_tokens);
            PerplexityResult r;
            {
              nb::gil_scoped_release release;
              const std::vector<int32_t> tokens = tokenize_for_perplexity(m.lm.tokenizer(), text);
              PerplexityOptions opt;
              opt.ctx = ctx;
              opt.limit_tokens = limit_tokens;
              opt.progress = progress;
              r = evaluate_perplexity(*m.lm.model, tokens, opt);
            }
            nb::dict d;
            d["ppl"] = r.ppl;
            d["nll"] = r.nll;
            d["ppl_stderr"] = r.ppl_stderr;
            d["tokens_scored"] = r.tokens_scored;
            d["windows"] = r.windows;
            return d;
          },
          nb::arg("text"), nb::arg("ctx") = 2048, nb::arg("limit_tokens") = 0, nb::arg("progress") = true,
          "Perplexity of a text, WikiText-2 protocol: tokenized once, non-overlapping windows of ctx tokens "
          "(the incomplete tail dropped), exp(mean NLL) over the predicted tokens. progress: a bar with ETA on stderr.")
      .def(
          "generate",
          [](const PyModel& m, const std::string& prompt, int64_t max_tokens, float temperature, float top_p,
             uint64_t seed) {
            GenerateOptions opt;
            opt.max_new_tokens = max_tokens;
            opt.sampling = {temperature, top_p, seed};
            check_generate_options(opt);
            const Tokenizer& tok = m.lm.tokenizer();
            const std::vector<int32_t> p = tok.encode(prompt, tok.add_bos_by_default());
            GenerateResult r;
            {
              nb::gil_scoped_release release;
              r = generate(*m.lm.model, tok, p, opt, nullptr);
            }
            return tok.decode(r.new_tokens, true);
          },
          nb::arg("prompt"), nb::arg("max_tokens") = 64, nb::arg("temperature") = 0.0f, nb::arg("top_p") = 1.0f,
          nb::arg("seed") = 0, "Continue a prompt (greedy with temperature 0); returns the new text.")
      .def("__repr__", [](const PyModel& m) {
        return "Model('" + m.path + "', " + m.lm.model->config().model_type + ", " + m.recipe + ")";
      });
}

}  // namespace fpq::python
