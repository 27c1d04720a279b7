// Calibration kernels for bench_cuda (read_probe.cu): what reading N bytes, and launching nothing, cost when timed
// the same way as fpq's kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace fpq::bench {

// Reads `bytes` (a multiple of 16, 16-byte aligned) once with streaming loads; writes nothing in practice.
void launch_read_probe(const void* data, size_t bytes, uint32_t* sink, cudaStream_t stream);
// One warp that does nothing.
void launch_empty(cudaStream_t stream);

}  // namespace fpq::bench
