#pragma once
// GGUF files (llama.cpp's model format, versions 2 and 3), memory-mapped. Layout: magic "GGUF", version,
// tensor count, metadata count, the metadata key/values, the tensor infos, padding to `general.alignment`
// (default 32), then the tensor data. Every length and offset is checked on open, so a truncated or corrupt
// file is one clear fpq::Error naming the file and the problem.
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "model/ggml_types.h"
#include "util/file_io.h"

namespace fpq {

// GGUF metadata value types (gguf.h gguf_type).
enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// One metadata value. Integers keep their sign in the variant (unsigned as uint64_t, signed as int64_t),
// floats widen to double; arrays hold their elements (of one type, `array_type`).
struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  GgufValueType array_type = GgufValueType::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> value;

  bool is_integer() const;
  bool is_number() const;  // integer or float
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;     // GGUF/ggml order: ne[0] is the contiguous (innermost) dimension
  std::vector<int64_t> shape;  // row-major order (reversed ne), as numpy / safetensors write it
  uint64_t offset = 0;         // from the start of the data section
  std::span<const uint8_t> data;
  int64_t numel() const;
};

class GgufFile {
 public:
  explicit GgufFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters; a missing key or a value of the wrong type is an error naming the file and key.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;  // any numeric type
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  const std::string& get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const GgufTensorInfo& tensor(const std::string& name) const;  // error if missing

  // The tensor as float32 (multithreaded); its type must have a dequantizer (see ggml_types.h).
  std::vector<float> dequantize(const GgufTensorInfo& t) const;
  void dequantize_into(const GgufTensorInfo& t, float* out) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace fpq
