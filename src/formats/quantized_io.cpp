#include "formats/quantized_io.h"

#include <cstring>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace fpq {

std::string scale_safetensors_dtype(ScaleType s) {
  switch (s) {
    case ScaleType::E8M0: return "U8";
    case ScaleType::E4M3: return "F8_E4M3";
    case ScaleType::F16: return "F16";
    case ScaleType::BF16: return "BF16";
    case ScaleType::F32: return "F32";
    case ScaleType::None: return "U8";
  }
  return "U8";
}

std::vector<SafetensorsTensorOut> quantized_tensors(const QuantizedTensor& q, const std::string& prefix) {
  std::vector<SafetensorsTensorOut> t;
  t.push_back({prefix + "codes", "U8", {q.rows, q.row_code_bytes()}, q.codes});
  if (!q.scales.empty())
    t.push_back({prefix + "scales", scale_safetensors_dtype(q.format.scale), {q.rows, q.groups_per_row()}, q.scales});
  if (!q.zeros.empty()) t.push_back({prefix + "zeros", "U8", {q.rows, q.groups_per_row()}, q.zeros});
  if (!q.global_scale.empty())
    t.push_back({prefix + "global_scale", "F32", {int64_t(q.global_scale.size())}, to_bytes(q.global_scale)});
  return t;
}

QuantizedTensor quantized_from_file(const SafetensorsFile& file, const Format& format, int64_t rows, int64_t cols,
                                    const std::string& prefix) {
  check_format_cols(format, cols);
  QuantizedTensor q;
  q.format = format;
  q.rows = rows;
  q.cols = cols;
  auto take = [&](const std::string& name, const std::string& dtype, std::vector<int64_t> shape, std::vector<uint8_t>& dst) {
    const auto& e = file.get(prefix + name);
    if (e.dtype != dtype || e.shape != shape)
      fail("'{}': tensor '{}{}' has dtype {} and shape [{}], expected {} and [{}]", file.path().string(), prefix, name,
           e.dtype, fmt::join(e.shape, ", "), dtype, fmt::join(shape, ", "));
    dst.assign(e.data.begin(), e.data.end());
  };
  take("codes", "U8", {rows, q.row_code_bytes()}, q.codes);
  if (!format.is_ggml() && format.scale != ScaleType::None)
    take("scales", scale_safetensors_dtype(format.scale), {rows, q.groups_per_row()}, q.scales);
  if (!format.is_ggml() && format.rule == ScaleRule::MinMax) take("zeros", "U8", {rows, q.groups_per_row()}, q.zeros);
  if (format.global != GlobalScale::None) {
    const auto& e = file.get(prefix + "global_scale");
    const int64_t want = format.global == GlobalScale::PerRow ? rows : 1;
    if (e.dtype != "F32" || e.numel() != want)
      fail("'{}': tensor '{}global_scale' must be F32 with {} values", file.path().string(), prefix, want);
    q.global_scale.resize(size_t(want));
    std::memcpy(q.global_scale.data(), e.data.data(), size_t(want) * 4);
  }
  return q;
}

void save_quantized(const std::filesystem::path& path, const QuantizedTensor& q, const std::vector<int64_t>& shape) {
  std::map<std::string, std::string> meta;
  meta["fpq.format"] = q.format.spec();
  meta["fpq.shape"] = nlohmann::json(shape).dump();
  meta["fpq.rows"] = std::to_string(q.rows);
  meta["fpq.cols"] = std::to_string(q.cols);
  write_safetensors(path, quantized_tensors(q), meta);
}

QuantizedTensor load_quantized(const std::filesystem::path& path, std::vector<int64_t>* shape) {
  SafetensorsFile file(path);
  const auto& m = file.metadata();
  auto get = [&](const char* k) -> const std::string& {
    auto it = m.find(k);
    if (it == m.end()) fail("'{}' is not an fpq quantized tensor file (no '{}' in its metadata)", path.string(), k);
    return it->second;
  };
  const Format f = parse_format(get("fpq.format"));
  int64_t rows = 0, cols = 0;
  try {
    rows = std::stoll(get("fpq.rows"));
    cols = std::stoll(get("fpq.cols"));
    if (shape) *shape = nlohmann::json::parse(get("fpq.shape")).get<std::vector<int64_t>>();
  } catch (const std::exception&) {
    fail("'{}' has corrupt fpq metadata", path.string());
  }
  if (shape) {
    int64_t n = 1;
    for (auto d : *shape) n *= d;
    if (n != rows * cols || shape->empty() || shape->back() != cols)
      fail("'{}' has corrupt fpq metadata (shape does not match rows x cols)", path.string());
  }
  return quantized_from_file(file, f, rows, cols);
}

}  // namespace fpq
