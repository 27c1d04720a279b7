#pragma once
// Counter-based random numbers: the value for (seed, index) does not depend on order or thread count,
// which makes stochastic rounding reproducible across thread counts and devices.
#include <cstdint>

namespace fpq {

// SplitMix64 finalizer over (seed, index): a well-mixed 64-bit value.
inline uint64_t hash_u64(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint32_t random_u32(uint64_t seed, uint64_t index) { return uint32_t(hash_u64(seed, index) >> 32); }

}  // namespace fpq
