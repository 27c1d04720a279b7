#pragma once
// NumPy .npy files (format versions 1-3): float32 arrays of any shape, C order.
#include <cstdint>
#include <filesystem>
#include <vector>

namespace fpq {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Reads a little-endian float32 ('<f4') C-order array. Any other dtype, Fortran order, or a truncated or
// malformed file is an error naming the problem.
NpyArray read_npy(const std::filesystem::path& path);
// Writes a float32 array atomically (temporary file, then rename).
void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape, const float* data);

}  // namespace fpq
