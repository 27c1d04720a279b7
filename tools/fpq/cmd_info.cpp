// fpq info: what this build and machine offer.
#include <cstdio>

#include "commands.h"
#include "util/parallel.h"

namespace fpq::cli {

static void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show the build, threads and kernel variant in use");
  cmd->callback([] {
    std::printf("fpq %s\n", FPQ_VERSION);
    std::printf("threads: %d (FPQ_NUM_THREADS)\n", num_threads());
  });
}

static const CommandRegistrar registrar(10, register_info);

}  // namespace fpq::cli
