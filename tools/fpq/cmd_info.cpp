// fpq info: what this build and machine offer.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "commands.h"
#include "util/blas_core.h"
#include "util/parallel.h"
#if __has_include("kernels/cpu/isa.h")
#include "kernels/cpu/isa.h"
#define FPQ_HAVE_KERNELS_CPU 1
#endif

namespace fpq::cli {

static void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show the build, threads and kernel variant in use");
  cmd->callback([] {
    std::printf("fpq %s\n", FPQ_VERSION);
    std::printf("threads: %d (FPQ_NUM_THREADS), %s (FPQ_PIN_THREADS)\n", num_threads(),
                threads_pinned() ? "pinned one per CPU" : "not pinned");
#ifdef FPQ_HAVE_KERNELS_CPU
    std::printf("cpu kernels: %s (FPQ_ISA)\n", cpu::active_isa_name());
#endif
    const std::string core = blas_core_name();
    std::printf("blas: %s (OPENBLAS_CORETYPE%s)\n", core.empty() ? "not OpenBLAS" : ("OpenBLAS, " + core + " kernels").c_str(),
                std::getenv("FPQ_BLAS_REEXEC") ? ", set by fpq for a CPU OpenBLAS did not recognise" : "");
    if (!core.empty())
      std::printf("blas threads: %d (OPENBLAS_NUM_THREADS; with the kernels, they decide how float32 GEMMs round)\n",
                  blas_threads());
  });
}

static const CommandRegistrar registrar(10, register_info);

}  // namespace fpq::cli
