#include "kernels/cpu/isa.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "util/error.h"

namespace fpq::cpu {
namespace {

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

Isa detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::Scalar;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
  if (!osxsave || !avx) return Isa::Scalar;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = (xcr0 & 0xE6) == 0xE6;
  if (!os_ymm) return Isa::Scalar;
  if (__get_cpuid_max(0, nullptr) < 7) return Isa::Scalar;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), bmi1 = b & (1u << 3), bmi2 = b & (1u << 8);
  const bool f = b & (1u << 16), dq = b & (1u << 17), cd = b & (1u << 28), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool vbmi = c & (1u << 1), vnni = c & (1u << 11);
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  const bool bf16 = a1 & (1u << 5);
  if (!(avx2 && fma && f16c && bmi1 && bmi2)) return Isa::Scalar;
  if (os_zmm && f && dq && cd && bw && vl && vbmi && vnni && bf16) return Isa::Avx512;
  return Isa::Avx2;
}

std::atomic<int> g_active{-1};

Isa initial() {
  const Isa best = detected_isa();
  if (const char* env = std::getenv("FPQ_ISA"); env && *env) {
    const Isa want = parse_isa(env);
    return int(want) < int(best) ? want : best;
  }
  return best;
}

}  // namespace

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_relaxed);
  if (v < 0) {
    v = int(initial());
    g_active.store(v, std::memory_order_relaxed);
  }
  return Isa(v);
}

Isa set_isa(Isa isa) {
  const Isa best = detected_isa();
  const Isa v = int(isa) < int(best) ? isa : best;
  g_active.store(int(v), std::memory_order_relaxed);
  return v;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

const char* active_isa_name() {
  switch (active_isa()) {
    case Isa::Scalar: return "scalar (portable C++)";
    case Isa::Avx2: return "avx2 (avx2 fma f16c)";
    case Isa::Avx512: return "avx512 (f bw vl dq vnni bf16 vbmi)";
  }
  return "?";
}

Isa parse_isa(std::string_view name) {
  if (name == "scalar" || name == "none" || name == "generic") return Isa::Scalar;
  if (name == "avx2") return Isa::Avx2;
  if (name == "avx512" || name == "avx-512") return Isa::Avx512;
  fail("unknown instruction set '{}' (FPQ_ISA: scalar, avx2 or avx512)", std::string(name));
}

}  // namespace fpq::cpu
