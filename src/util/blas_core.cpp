#include "util/blas_core.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace fpq {

std::string blas_core_name() {
  using Fn = char* (*)();
  const auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = fn ? fn() : nullptr;
  return name ? std::string(name) : std::string();
}

int blas_threads() {
  using Fn = int (*)();
  const auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return fn ? fn() : 0;
}

namespace {

// OpenBLAS's name for the best kernel family this CPU runs, or null for none better than the generic ones.
const char* wanted_core() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (avx512 && __builtin_cpu_supports("avx512bf16")) return "Cooperlake";
  if (avx512) return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

}  // namespace

void ensure_fast_blas_core(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("FPQ_BLAS_REEXEC")) return;
  const std::string core = blas_core_name();
  // Only the generic fallbacks are overridden; a core OpenBLAS recognised is left alone.
  if (core != "Prescott" && core != "Core2" && core != "Nehalem") return;
  const char* want = wanted_core();
  if (!want || !argv || !argv[0]) return;
  setenv("OPENBLAS_CORETYPE", want, 1);
  setenv("FPQ_BLAS_REEXEC", "1", 1);  // never loop
  execv("/proc/self/exe", argv);
  // exec failed: carry on with the generic kernels (slower, and sgemm rounds differently: see blas_threads())
  unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace fpq
