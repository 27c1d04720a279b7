#include "kernels/cpu/bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "kernels/cpu/prepared.h"
#include "util/parallel.h"

namespace fpq::cpu {

Bandwidth measure_read_bandwidth(size_t bytes, int repeats) {
  using Fn = uint64_t (*)(const void*, int64_t);
  static const Fn fns[3] = {detail::scalar::stream_read, detail::avx2::stream_read, detail::avx512::stream_read};
  const Fn fn = fns[int(active_isa())];
  const int threads = num_threads();
  const size_t slice = std::max<size_t>(4096, (bytes / size_t(threads)) / 4096 * 4096);
  detail::AlignedBuffer buf(slice * size_t(threads));
  // Touch every page (the buffer is zeroed on allocation) with a non-trivial pattern.
  for (size_t i = 0; i < buf.size(); i += 64) buf.data()[i] = uint8_t(i >> 6);
  std::atomic<uint64_t> sink{0};
  auto pass = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, 1, [&](int64_t a, int64_t b) {
      for (int64_t t = a; t < b; ++t) sink += fn(buf.data() + size_t(t) * slice, int64_t(slice));
    });
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  pass();
  std::vector<double> gbs;
  for (int r = 0; r < std::max(1, repeats); ++r) gbs.push_back(double(buf.size()) / pass() / 1e9);
  std::sort(gbs.begin(), gbs.end());
  Bandwidth b;
  b.best_gbs = gbs.back();
  b.median_gbs = gbs[gbs.size() / 2];
  return b;
}

}  // namespace fpq::cpu
