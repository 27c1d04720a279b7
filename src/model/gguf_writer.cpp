#include "model/gguf_writer.h"

#include <cstring>
#include <set>

#include "util/error.h"
#include "util/file_io.h"

namespace fpq {
namespace {

template <typename T>
void put(std::vector<uint8_t>& b, T v) {
  const size_t o = b.size();
  b.resize(o + sizeof(T));
  std::memcpy(b.data() + o, &v, sizeof(T));
}
void put_string(std::vector<uint8_t>& b, const std::string& s) {
  put<uint64_t>(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}

// Encodes a scalar of `type` from a GgufValue's variant.
void put_scalar(std::vector<uint8_t>& b, GgufValueType type, const GgufValue& v) {
  auto as_u = [&]() -> uint64_t {
    if (auto p = std::get_if<uint64_t>(&v.value)) return *p;
    if (auto p = std::get_if<int64_t>(&v.value)) return uint64_t(*p);
    if (auto p = std::get_if<bool>(&v.value)) return *p ? 1 : 0;
    fail("GGUF writer: value is not an integer");
  };
  auto as_d = [&]() -> double {
    if (auto p = std::get_if<double>(&v.value)) return *p;
    return double(int64_t(as_u()));
  };
  switch (type) {
    case GgufValueType::U8: put<uint8_t>(b, uint8_t(as_u())); break;
    case GgufValueType::I8: put<int8_t>(b, int8_t(as_u())); break;
    case GgufValueType::U16: put<uint16_t>(b, uint16_t(as_u())); break;
    case GgufValueType::I16: put<int16_t>(b, int16_t(as_u())); break;
    case GgufValueType::U32: put<uint32_t>(b, uint32_t(as_u())); break;
    case GgufValueType::I32: put<int32_t>(b, int32_t(as_u())); break;
    case GgufValueType::U64: put<uint64_t>(b, as_u()); break;
    case GgufValueType::I64: put<int64_t>(b, int64_t(as_u())); break;
    case GgufValueType::F32: put<float>(b, float(as_d())); break;
    case GgufValueType::F64: put<double>(b, as_d()); break;
    case GgufValueType::BOOL: put<uint8_t>(b, uint8_t(as_u() ? 1 : 0)); break;
    case GgufValueType::STRING: put_string(b, std::get<std::string>(v.value)); break;
    case GgufValueType::ARRAY: fail("GGUF writer: nested arrays are not supported");
  }
}

}  // namespace

void GgufWriter::add_value(const std::string& key, const GgufValue& v) {
  Kv kv{key, v.type, v.array_type, {}};
  if (v.type == GgufValueType::ARRAY) {
    const auto& elems = std::get<std::vector<GgufValue>>(v.value);
    put<uint64_t>(kv.payload, elems.size());
    for (const auto& e : elems) put_scalar(kv.payload, v.array_type, e);
  } else {
    put_scalar(kv.payload, v.type, v);
  }
  kvs_.push_back(std::move(kv));
}

void GgufWriter::add_string(const std::string& key, const std::string& v) {
  Kv kv{key, GgufValueType::STRING, GgufValueType::U8, {}};
  put_string(kv.payload, v);
  kvs_.push_back(std::move(kv));
}
void GgufWriter::add_u32(const std::string& key, uint32_t v) {
  Kv kv{key, GgufValueType::U32, GgufValueType::U8, {}};
  put(kv.payload, v);
  kvs_.push_back(std::move(kv));
}
void GgufWriter::add_i32(const std::string& key, int32_t v) {
  Kv kv{key, GgufValueType::I32, GgufValueType::U8, {}};
  put(kv.payload, v);
  kvs_.push_back(std::move(kv));
}
void GgufWriter::add_f32(const std::string& key, float v) {
  Kv kv{key, GgufValueType::F32, GgufValueType::U8, {}};
  put(kv.payload, v);
  kvs_.push_back(std::move(kv));
}
void GgufWriter::add_bool(const std::string& key, bool v) {
  Kv kv{key, GgufValueType::BOOL, GgufValueType::U8, {}};
  put<uint8_t>(kv.payload, v ? 1 : 0);
  kvs_.push_back(std::move(kv));
}
void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& v) {
  Kv kv{key, GgufValueType::ARRAY, GgufValueType::STRING, {}};
  put<uint64_t>(kv.payload, v.size());
  for (const auto& s : v) put_string(kv.payload, s);
  kvs_.push_back(std::move(kv));
}
void GgufWriter::add_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  Kv kv{key, GgufValueType::ARRAY, GgufValueType::I32, {}};
  put<uint64_t>(kv.payload, v.size());
  for (auto x : v) put(kv.payload, x);
  kvs_.push_back(std::move(kv));
}
void GgufWriter::add_f32_array(const std::string& key, const std::vector<float>& v) {
  Kv kv{key, GgufValueType::ARRAY, GgufValueType::F32, {}};
  put<uint64_t>(kv.payload, v.size());
  for (auto x : v) put(kv.payload, x);
  kvs_.push_back(std::move(kv));
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne, std::vector<uint8_t> bytes) {
  const auto info = ggml_type_info(uint32_t(type));
  if (!info) fail("GGUF writer: unknown ggml type {}", uint32_t(type));
  int64_t n = 1;
  for (auto d : ne) n *= d;
  if (ne.empty() || ne[0] % info->block_size != 0 || n / info->block_size * info->block_bytes != int64_t(bytes.size()))
    fail("GGUF writer: tensor '{}' has {} bytes, which does not match its {} shape", name, bytes.size(), info->name);
  tensors_.push_back({name, type, std::move(ne), std::move(bytes)});
}

void GgufWriter::write(const std::filesystem::path& path, uint32_t alignment) const {
  // llama.cpp refuses files with a repeated key or tensor name, and needs a power-of-two alignment.
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) fail("GGUF writer: alignment {} is not a power of two", alignment);
  std::set<std::string> seen;
  for (const auto& kv : kvs_)
    if (!seen.insert(kv.key).second || (kv.key == "general.alignment" && alignment != 32))
      fail("GGUF writer: metadata key '{}' is given twice", kv.key);
  seen.clear();
  for (const auto& t : tensors_)
    if (!seen.insert(t.name).second) fail("GGUF writer: tensor '{}' is given twice", t.name);
  std::vector<uint8_t> head;
  put<uint32_t>(head, 0x46554747u);  // "GGUF"
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  const bool has_alignment = alignment != 32;
  put<uint64_t>(head, kvs_.size() + (has_alignment ? 1 : 0));
  for (const auto& kv : kvs_) {
    put_string(head, kv.key);
    put<uint32_t>(head, uint32_t(kv.type));
    if (kv.type == GgufValueType::ARRAY) put<uint32_t>(head, uint32_t(kv.array_type));
    head.insert(head.end(), kv.payload.begin(), kv.payload.end());
  }
  if (has_alignment) {
    put_string(head, "general.alignment");
    put<uint32_t>(head, uint32_t(GgufValueType::U32));
    put<uint32_t>(head, alignment);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, uint32_t(t.ne.size()));
    for (auto d : t.ne) put<uint64_t>(head, uint64_t(d));
    put<uint32_t>(head, uint32_t(t.type));
    put<uint64_t>(head, offset);
    offset += t.bytes.size();
    offset = (offset + alignment - 1) / alignment * alignment;
  }
  head.resize((head.size() + alignment - 1) / alignment * alignment, 0);
  write_file_atomic(path, [&](std::FILE* f) {
    std::fwrite(head.data(), 1, head.size(), f);
    const std::vector<uint8_t> zeros(alignment, 0);
    for (const auto& t : tensors_) {
      std::fwrite(t.bytes.data(), 1, t.bytes.size(), f);
      const size_t pad = (alignment - t.bytes.size() % alignment) % alignment;
      std::fwrite(zeros.data(), 1, pad, f);
    }
  });
}

}  // namespace fpq
