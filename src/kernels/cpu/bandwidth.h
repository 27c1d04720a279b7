#pragma once
// Memory read bandwidth of this machine, measured the way the matrix-vector kernels read weights: every
// thread streams its own slice of one large buffer with the active variant's widest loads.
#include <cstddef>

namespace fpq::cpu {

struct Bandwidth {
  double best_gbs = 0;    // fastest repeat (the limit a kernel is compared with)
  double median_gbs = 0;
};

// Reads `bytes` (rounded to whole pages) `repeats` times after one warm-up pass; GB = 1e9 bytes.
Bandwidth measure_read_bandwidth(size_t bytes = size_t(1) << 30, int repeats = 7);

}  // namespace fpq::cpu
