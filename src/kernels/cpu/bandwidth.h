#pragma once
// Memory read bandwidth of this machine, measured the way the matrix-vector kernels read weights: every
// thread streams its own slice of one large buffer (as one stream, and as eight interleaved ones; the faster
// counts) with the active variant's widest loads.
#include <cstddef>
#include <memory>

namespace fpq::cpu {

struct Bandwidth {
  double best_gbs = 0;    // fastest repeat (the limit a kernel is compared with)
  double median_gbs = 0;
};

// A buffer of `bytes` (rounded to whole pages per thread), touched once; pass() reads all of it (twice, see
// above) and returns the seconds of the faster read, so a benchmark can interleave passes with the kernels it
// compares (GB = 1e9 bytes).
class ReadProbe {
 public:
  explicit ReadProbe(size_t bytes = size_t(1) << 30);
  ~ReadProbe();
  double pass();
  size_t bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `repeats` passes over a fresh ReadProbe after one warm-up pass.
Bandwidth measure_read_bandwidth(size_t bytes = size_t(1) << 30, int repeats = 7);

}  // namespace fpq::cpu
