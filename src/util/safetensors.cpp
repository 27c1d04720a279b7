#include "util/safetensors.h"

#include <cstring>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace fpq {

using json = nlohmann::json;

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

size_t safetensors_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "U8" || d == "I8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2" || d == "F8_E8M0") return 1;
  fail("unsupported safetensors dtype '{}'", d);
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  const std::string p = path.string();
  const auto bytes = file_.bytes();
  if (bytes.size() < 8) fail("'{}' is not a safetensors file (shorter than 8 bytes)", p);
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  if (hlen > bytes.size() - 8) fail("'{}' is truncated or corrupt: header length {} exceeds file size", p, hlen);
  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + int64_t(hlen));
  } catch (const json::exception&) {
    fail("'{}' is corrupt: the safetensors header is not valid JSON", p);
  }
  if (!header.is_object()) fail("'{}' is corrupt: the safetensors header is not a JSON object", p);
  const size_t base = 8 + hlen;
  const size_t data_size = bytes.size() - base;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it->is_object())
        for (auto m = it->begin(); m != it->end(); ++m)
          if (m->is_string()) metadata_[m.key()] = m->get<std::string>();
      continue;
    }
    try {
      SafetensorsEntry e;
      e.name = it.key();
      e.dtype = it->at("dtype").get<std::string>();
      e.shape = it->at("shape").get<std::vector<int64_t>>();
      const auto off = it->at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] > data_size)
        fail("'{}' is truncated or corrupt: tensor '{}' lies outside the file", p, e.name);
      for (auto d : e.shape)
        if (d < 0) fail("'{}' is corrupt: tensor '{}' has a negative dimension", p, e.name);
      if (uint64_t(e.numel()) * safetensors_dtype_size(e.dtype) != off[1] - off[0])
        fail("'{}' is corrupt: tensor '{}' size does not match its shape and dtype", p, e.name);
      e.data = bytes.subspan(base + off[0], off[1] - off[0]);
      entries_.push_back(std::move(e));
    } catch (const json::exception&) {
      fail("'{}' is corrupt: malformed entry for tensor '{}'", p, it.key());
    }
  }
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

const SafetensorsEntry& SafetensorsFile::get(const std::string& name) const {
  const auto* e = find(name);
  if (!e) fail("'{}' has no tensor named '{}'", path().string(), name);
  return *e;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsTensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    int64_t n = 1;
    for (auto d : t.shape) n *= d;
    if (uint64_t(n) * safetensors_dtype_size(t.dtype) != t.bytes.size())
      fail("internal: tensor '{}' byte size does not match its shape", t.name);
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  write_file_atomic(path, [&](std::FILE* f) {
    const uint64_t hl = h.size();
    std::fwrite(&hl, 8, 1, f);
    std::fwrite(h.data(), 1, h.size(), f);
    for (const auto& t : tensors)
      if (!t.bytes.empty()) std::fwrite(t.bytes.data(), 1, t.bytes.size(), f);
  });
}

}  // namespace fpq
