#include "util/npy.h"

#include <cstring>
#include <string>

#include <fmt/format.h>

#include "util/error.h"
#include "util/file_io.h"

namespace fpq {

namespace {

// Finds the value text of 'key' in the header dict, e.g. "'<f4'" or "(3, 4)".
std::string header_value(const std::string& h, const std::string& key, const std::string& path) {
  const auto k = h.find("'" + key + "'");
  if (k == std::string::npos) fail("'{}' is not a valid .npy file: header has no '{}'", path, key);
  auto p = h.find(':', k);
  if (p == std::string::npos) fail("'{}' is not a valid .npy file: malformed header", path);
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  if (p >= h.size()) fail("'{}' is not a valid .npy file: malformed header", path);
  size_t e = p;
  if (h[p] == '(') {
    e = h.find(')', p);
    if (e == std::string::npos) fail("'{}' is not a valid .npy file: malformed shape", path);
    return h.substr(p, e - p + 1);
  }
  if (h[p] == '\'' || h[p] == '"') {
    e = h.find(h[p], p + 1);
    if (e == std::string::npos) fail("'{}' is not a valid .npy file: malformed header", path);
    return h.substr(p + 1, e - p - 1);
  }
  e = h.find_first_of(",}", p);
  return h.substr(p, e - p);
}

}  // namespace

NpyArray read_npy(const std::filesystem::path& path_) {
  const std::string path = path_.string();
  const auto bytes = read_file_bytes(path_);
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (bytes.size() < 10 || std::memcmp(bytes.data(), magic, 6) != 0)
    fail("'{}' is not a .npy file (bad magic)", path);
  const int major = bytes[6];
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = bytes[8] | (size_t(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("'{}' is truncated", path);
    header_len = bytes[8] | (size_t(bytes[9]) << 8) | (size_t(bytes[10]) << 16) | (size_t(bytes[11]) << 24);
    offset = 12;
  } else {
    fail("'{}': unsupported .npy version {}", path, major);
  }
  if (offset + header_len > bytes.size()) fail("'{}' is truncated (header)", path);
  const std::string h(reinterpret_cast<const char*>(bytes.data() + offset), header_len);
  const std::string descr = header_value(h, "descr", path);
  if (descr != "<f4" && descr != "|f4")
    fail("'{}' has dtype '{}', expected float32 ('<f4'); convert with x.astype(np.float32)", path, descr);
  const std::string fortran = header_value(h, "fortran_order", path);
  if (fortran.find("True") != std::string::npos) fail("'{}' is Fortran-ordered; save a C-ordered array", path);
  const std::string shp = header_value(h, "shape", path);
  NpyArray arr;
  int64_t count = 1;
  {
    std::string inner = shp.substr(1, shp.size() - 2);
    size_t p = 0;
    while (p < inner.size()) {
      while (p < inner.size() && (inner[p] == ' ' || inner[p] == ',')) ++p;
      if (p >= inner.size()) break;
      size_t q = p;
      while (q < inner.size() && inner[q] >= '0' && inner[q] <= '9') ++q;
      if (q == p) fail("'{}' is not a valid .npy file: malformed shape {}", path, shp);
      const int64_t d = std::stoll(inner.substr(p, q - p));
      arr.shape.push_back(d);
      count *= d;
      p = q;
    }
  }
  const size_t data_off = offset + header_len;
  const size_t need = size_t(count) * 4;
  if (bytes.size() - data_off < need)
    fail("'{}' is truncated: shape {} needs {} data bytes, file has {}", path, shp, need, bytes.size() - data_off);
  arr.data.resize(size_t(count));
  if (need) std::memcpy(arr.data.data(), bytes.data() + data_off, need);
  return arr;
}

void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape, const float* data) {
  std::string shp = "(";
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    shp += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) shp += ",";
    if (i + 1 < shape.size()) shp += " ";
    count *= shape[i];
  }
  shp += ")";
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", shp);
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  write_file_atomic(path, [&](std::FILE* f) {
    const uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(header.size() & 0xFF),
                             uint8_t(header.size() >> 8)};
    std::fwrite(pre, 1, 10, f);
    std::fwrite(header.data(), 1, header.size(), f);
    if (count) std::fwrite(data, 4, size_t(count), f);
  });
}

}  // namespace fpq
