#pragma once
// Instruction-set variants of the CPU kernels. The binary holds three copies of every kernel (scalar C++,
// AVX2+FMA+F16C, AVX-512 F/BW/VL/DQ/VNNI/BF16/VBMI) and runs the best one the CPU and OS support. The
// environment variable FPQ_ISA=scalar|avx2|avx512 (read once, at the first kernel call) or set_isa() choose a
// lower one, so every variant can be tested on one machine; asking for more than the machine has gives the
// best it has.
#include <string_view>

namespace fpq::cpu {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// The best variant this CPU and OS support (CPUID and XGETBV).
Isa detected_isa();
// The variant kernels run with now.
Isa active_isa();
// Forces a variant; one above detected_isa() is lowered to it. Returns the variant now active. Not safe
// while kernels run on other threads.
Isa set_isa(Isa isa);
const char* isa_name(Isa isa);  // "scalar", "avx2", "avx512"
// Name of the active variant with its instruction-set extensions, e.g. "avx512 (f bw vl dq vnni bf16 vbmi)".
const char* active_isa_name();
// Parses "scalar", "avx2", "avx512" (error on anything else).
Isa parse_isa(std::string_view name);

}  // namespace fpq::cpu
