// fpq: low-bit floating-point quantization of LLMs. Every error is one line on stderr and exit code 1.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "util/blas_core.h"
#include "util/error.h"

int main(int argc, char** argv) {
  fpq::ensure_fast_blas_core(argv);
  CLI::App app{"fpq: low-bit floating-point quantization of LLMs: formats, kernels, models, evaluation"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  fpq::cli::register_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "fpq: error: %s (see fpq --help)\n", e.what());
    return 2;
  } catch (const fpq::Error& e) {
    std::fprintf(stderr, "fpq: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "fpq: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fpq: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
