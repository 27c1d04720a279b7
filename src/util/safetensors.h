#pragma once
// The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the raw data.
#include <cstdint>
#include <filesystem>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "util/file_io.h"

namespace fpq {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "U8", "I8", "F8_E4M3", ...
  std::vector<int64_t> shape;
  std::span<const uint8_t> data;
  int64_t numel() const;
};

// Bytes per element of a safetensors dtype string; an unknown dtype is an error.
size_t safetensors_dtype_size(const std::string& dtype);

// A memory-mapped safetensors file. Every offset is validated on open: a truncated or corrupt file is an
// error naming the file and the problem.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const;
  const SafetensorsEntry& get(const std::string& name) const;  // error if missing
  const std::filesystem::path& path() const { return file_.path(); }

 private:
  MappedFile file_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

struct SafetensorsTensorOut {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Writes tensors (in the given order) and string metadata atomically.
void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

template <typename T>
std::vector<uint8_t> to_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace fpq
