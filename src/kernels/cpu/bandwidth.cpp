#include "kernels/cpu/bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "kernels/cpu/prepared.h"
#include "util/parallel.h"

namespace fpq::cpu {

struct ReadProbe::Impl {
  detail::AlignedBuffer buf;
  size_t slice = 0;
  int threads = 1;
  std::atomic<uint64_t> sink{0};
};

ReadProbe::ReadProbe(size_t bytes) : impl_(std::make_unique<Impl>()) {
  impl_->threads = num_threads();
  impl_->slice = std::max<size_t>(4096, (bytes / size_t(impl_->threads)) / 4096 * 4096);
  impl_->buf.resize(impl_->slice * size_t(impl_->threads));
  // Touch every page (the buffer is zeroed on allocation) with a non-trivial pattern.
  for (size_t i = 0; i < impl_->buf.size(); i += 64) impl_->buf.data()[i] = uint8_t(i >> 6);
}

ReadProbe::~ReadProbe() = default;

size_t ReadProbe::bytes() const { return impl_->buf.size(); }

double ReadProbe::pass() {
  using Fn = uint64_t (*)(const void*, int64_t, int32_t);
  static const Fn fns[3] = {detail::scalar::stream_read, detail::avx2::stream_read, detail::avx512::stream_read};
  const Fn fn = fns[int(active_isa())];
  Impl& p = *impl_;
  // One sequential stream per thread, then eight interleaved ones (the hardware prefetchers favour one or the
  // other from run to run); the faster read counts.
  double best = 0;
  for (int32_t streams : {1, 8}) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(p.threads, 1, [&](int64_t a, int64_t b) {
      for (int64_t t = a; t < b; ++t) p.sink += fn(p.buf.data() + size_t(t) * p.slice, int64_t(p.slice), streams);
    });
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = best == 0 ? dt : std::min(best, dt);
  }
  return best;
}

Bandwidth measure_read_bandwidth(size_t bytes, int repeats) {
  ReadProbe probe(bytes);
  probe.pass();
  std::vector<double> gbs;
  for (int r = 0; r < std::max(1, repeats); ++r) gbs.push_back(double(probe.bytes()) / probe.pass() / 1e9);
  std::sort(gbs.begin(), gbs.end());
  Bandwidth b;
  b.best_gbs = gbs.back();
  b.median_gbs = gbs[gbs.size() / 2];
  return b;
}

}  // namespace fpq::cpu
