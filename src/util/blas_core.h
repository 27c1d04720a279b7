#pragma once
// OpenBLAS picks its kernels from the CPU model at load time and falls back to its generic SSE3 ("Prescott")
// kernels for a CPU it does not know — e.g. a virtualised Sapphire Rapids under Debian's OpenBLAS 0.3.21, where
// that makes sgemm six times slower (38 vs 224 GFLOP/s on 2 cores). The core can only be chosen before the
// library initialises, through OPENBLAS_CORETYPE, so a program that wants fast BLAS re-executes itself once
// with the variable set from the instruction sets the CPU reports.
#include <string>

namespace fpq {

// When OpenBLAS runs its generic kernels on a CPU with AVX2/AVX-512 and OPENBLAS_CORETYPE is unset: sets it and
// re-executes the program (argv unchanged; returns only if that is not needed or not possible).
void ensure_fast_blas_core(char** argv);

// The OpenBLAS core in use ("SkylakeX", ...), or "" when the BLAS is not OpenBLAS.
std::string blas_core_name();

// OpenBLAS's thread count (OPENBLAS_NUM_THREADS, else the cores), or 0 when the BLAS is not OpenBLAS. With the
// core, it decides how sgemm rounds: evaluations reproduce bit for bit only where both are the same.
int blas_threads();

}  // namespace fpq
