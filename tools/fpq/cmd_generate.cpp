// fpq generate: text from a prompt, unquantized or quantized, greedy or sampled.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "commands.h"
#include "model/generate.h"
#include "model/checkpoint.h"
#include "model/model_source.h"
#include "model/quant_recipe.h"
#include "util/error.h"

namespace fpq::cli {

namespace {
struct GenArgs {
  std::string model, prompt, format, a_format, kernel = "auto";
  int w_bits = 0, a_bits = 16;
  int64_t max_tokens = 64;
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 0;
  bool chat = false, raw = false;
};
}  // namespace

static void register_generate(CLI::App& app) {
  auto a = std::make_shared<GenArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt (greedy, or temperature/top-p sampling)");
  cmd->add_option("--model,-m", a->model, "GGUF file or Hugging Face model folder (default: embedded SmolLM2-135M-Instruct)");
  cmd->add_option("--prompt,-p", a->prompt, "The prompt")->required();
  cmd->add_flag("--chat", a->chat, "Wrap the prompt in the ChatML template of instruct models");
  cmd->add_option("--format,-f", a->format, "Quantize weights to this format first (see `fpq formats`)");
  cmd->add_option("--w-bits", a->w_bits, "Weight bits (format families)");
  cmd->add_option("--a-bits", a->a_bits, "Activation bits (16: float)");
  cmd->add_option("--a-format", a->a_format, "Explicit activation format");
  cmd->add_option("--kernel", a->kernel, "pseudo, real, cuda or auto");
  cmd->add_option("--max-tokens,-n", a->max_tokens, "Tokens to generate");
  cmd->add_option("--temperature", a->temperature, "0 for greedy decoding");
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling threshold");
  cmd->add_option("--seed", a->seed, "Sampling seed");
  cmd->add_flag("--raw", a->raw, "Print only the generated text (no statistics)");
  cmd->callback([a] {
    GenerateOptions opt;
    opt.max_new_tokens = a->max_tokens;
    opt.sampling = {a->temperature, a->top_p, a->seed};
    check_generate_options(opt);  // before the model loads
    if (!a->format.empty()) check_kernel_runs_here(a->kernel);  // (a bad --kernel, or no GPU, before quantizing)
    else (void)kernel_backends(a->kernel);
    const std::filesystem::path path = a->model.empty() ? default_model_path() : std::filesystem::path(a->model);
    LoadedModel lm = load_model(path);
    Transformer& model = *lm.model;
    if (lm.is_checkpoint()) {
      if (!a->format.empty()) fail("'{}' is already quantized ({}); drop --format", path.string(), lm.recipe_name());
      const auto [qb, mb] = kernel_backends(a->kernel);
      set_model_backends(model, qb, mb);
    } else if (!a->format.empty()) {
      quantize_model_rtn(model, make_recipe(a->format, a->w_bits, a->a_bits, 0, 0, a->a_format));
      const auto [qb, mb] = kernel_backends(a->kernel);
      set_model_backends(model, qb, mb);
    } else if (a->a_bits != 16) {
      fail("--a-bits needs --format");
    }
    const Tokenizer& tok = lm.tokenizer();
    const std::string text = a->chat ? chatml_prompt(a->prompt) : a->prompt;
    const auto prompt = tok.encode(text, tok.add_bos_by_default());
    if (!a->raw) std::printf("%s", text.c_str());
    std::string pending;
    const auto r = generate(model, tok, prompt, opt, [&](int32_t t) {
      if (tok.is_special(t)) return;
      pending += tok.token_bytes(t);
      // Print complete UTF-8 characters only.
      size_t cut = pending.size();
      while (cut > 0 && (static_cast<unsigned char>(pending[cut - 1]) & 0xC0) == 0x80) --cut;
      if (cut > 0 && (static_cast<unsigned char>(pending[cut - 1]) & 0x80)) --cut;
      if (cut == 0 && !pending.empty() && !(static_cast<unsigned char>(pending[0]) & 0x80)) cut = pending.size();
      std::fwrite(pending.data(), 1, cut, stdout);
      std::fflush(stdout);
      pending.erase(0, cut);
    });
    std::fwrite(pending.data(), 1, pending.size(), stdout);
    std::printf("\n");
    if (!a->raw)
      std::fprintf(stderr, "\n[%zu prompt tokens in %.2f s (%.1f tok/s); %zu new tokens in %.2f s (%.1f tok/s)]\n",
                   r.prompt_tokens.size(), r.prompt_seconds, double(r.prompt_tokens.size()) / r.prompt_seconds,
                   r.new_tokens.size(), r.generate_seconds,
                   r.generate_seconds > 0 ? double(r.new_tokens.size()) / r.generate_seconds : 0.0);
  });
}

static const CommandRegistrar registrar(60, register_generate);

}  // namespace fpq::cli
