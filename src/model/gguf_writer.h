#pragma once
// Writes GGUF v3 files (the format llama.cpp loads): metadata key/values, tensor infos and aligned tensor data,
// atomically (temporary name, then rename).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/gguf.h"

namespace fpq {

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);
  // Any value read from another GGUF file (copies metadata such as the tokenizer's).
  void add_value(const std::string& key, const GgufValue& v);
  // `ne` in ggml order (ne[0] innermost); bytes must match the type's block geometry.
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne, std::vector<uint8_t> bytes);
  void write(const std::filesystem::path& path, uint32_t alignment = 32) const;

 private:
  struct Kv {
    std::string key;
    GgufValueType type;
    GgufValueType array_type = GgufValueType::U8;
    std::vector<uint8_t> payload;  // encoded value (for arrays: count + elements)
  };
  struct TensorOut {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> bytes;
  };
  std::vector<Kv> kvs_;
  std::vector<TensorOut> tensors_;
};

}  // namespace fpq
