#include "model/gguf.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"
#include "util/parallel.h"

namespace fpq {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr int kMaxDims = 4;                  // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 8;

// Bounds-checked little-endian reader over the mapped file; every failure names the file and the field.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, std::string path) : bytes_(bytes), path_(std::move(path)) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      fail("'{}' is truncated or corrupt: {} at byte {} runs past the end of the file ({} bytes)", path_, what,
           pos_, bytes_.size());
  }

  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& what) {
    const uint64_t len = read<uint64_t>(what + " length");
    need(len, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }

  // Rejects an element count that cannot fit in the rest of the file, before anything is allocated for it.
  void check_count(uint64_t n, uint64_t min_elem_bytes, const std::string& what) const {
    if (n > remaining() / min_elem_bytes)
      fail("'{}' is truncated or corrupt: {} of {} elements at byte {} runs past the end of the file", path_, what,
           n, pos_);
  }

  [[noreturn]] void corrupt(const std::string& problem) const {
    fail("'{}' is corrupt: {} (at byte {})", path_, problem, pos_);
  }

 private:
  std::span<const uint8_t> bytes_;
  std::string path_;
  size_t pos_ = 0;
};

// Smallest encoding of one value of type t, for rejecting absurd array counts before allocating.
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: case GgufValueType::STRING: return 8;
    case GgufValueType::ARRAY: return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t t) { return t <= uint32_t(GgufValueType::F64); }

GgufValue read_value(Cursor& c, GgufValueType type, const std::string& key, int depth) {
  GgufValue v;
  v.type = type;
  const std::string what = "value of '" + key + "'";
  switch (type) {
    case GgufValueType::U8: v.value = uint64_t(c.read<uint8_t>(what)); break;
    case GgufValueType::I8: v.value = int64_t(c.read<int8_t>(what)); break;
    case GgufValueType::U16: v.value = uint64_t(c.read<uint16_t>(what)); break;
    case GgufValueType::I16: v.value = int64_t(c.read<int16_t>(what)); break;
    case GgufValueType::U32: v.value = uint64_t(c.read<uint32_t>(what)); break;
    case GgufValueType::I32: v.value = int64_t(c.read<int32_t>(what)); break;
    case GgufValueType::U64: v.value = c.read<uint64_t>(what); break;
    case GgufValueType::I64: v.value = c.read<int64_t>(what); break;
    case GgufValueType::F32: v.value = double(c.read<float>(what)); break;
    case GgufValueType::F64: v.value = c.read<double>(what); break;
    case GgufValueType::BOOL: {
      const uint8_t b = c.read<uint8_t>(what);
      if (b > 1) c.corrupt(fmt::format("bool value {} for '{}'", b, key));
      v.value = b == 1;
      break;
    }
    case GgufValueType::STRING: v.value = c.read_string(what); break;
    case GgufValueType::ARRAY: {
      if (depth >= kMaxArrayNesting) c.corrupt(fmt::format("arrays nested too deeply in '{}'", key));
      const uint32_t et = c.read<uint32_t>("array type of '" + key + "'");
      if (!valid_value_type(et)) c.corrupt(fmt::format("unknown array element type {} for '{}'", et, key));
      v.array_type = GgufValueType(et);
      const uint64_t n = c.read<uint64_t>("array length of '" + key + "'");
      c.check_count(n, min_value_bytes(v.array_type), "array '" + key + "'");
      std::vector<GgufValue> items;
      items.reserve(size_t(n));
      for (uint64_t i = 0; i < n; ++i) items.push_back(read_value(c, v.array_type, key, depth + 1));
      v.value = std::move(items);
      break;
    }
  }
  return v;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  static const char* const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) <= 12 ? names[uint32_t(t)] : "unknown";
}

bool GgufValue::is_integer() const {
  return std::holds_alternative<uint64_t>(value) || std::holds_alternative<int64_t>(value);
}
bool GgufValue::is_number() const { return is_integer() || std::holds_alternative<double>(value); }

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

GgufFile::GgufFile(const std::filesystem::path& path) : file_(path) {
  const std::string p = path.string();
  Cursor c(file_.bytes(), p);
  if (file_.size() < 4) fail("'{}' is not a GGUF file (shorter than 4 bytes)", p);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kGgufMagic) fail("'{}' is not a GGUF file (bad magic bytes)", p);
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) fail("'{}' is GGUF version 1, which fpq does not read (re-convert it with llama.cpp)", p);
  if ((version_ & 0xFFFF) == 0 && version_ != 0)
    fail("'{}' is a big-endian GGUF file, which fpq does not read", p);
  if (version_ != 2 && version_ != 3) fail("'{}' has unsupported GGUF version {}", p, version_);
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  c.check_count(n_kv, 12, "the metadata table");
  c.check_count(n_tensors, 24, "the tensor table");

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string(fmt::format("metadata key #{}", i));
    const uint32_t t = c.read<uint32_t>("type of '" + key + "'");
    if (!valid_value_type(t)) c.corrupt(fmt::format("unknown value type {} for key '{}'", t, key));
    GgufValue v = read_value(c, GgufValueType(t), key, 0);
    if (!metadata_.emplace(key, std::move(v)).second) c.corrupt(fmt::format("duplicate key '{}'", key));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer()) fail("'{}' is corrupt: general.alignment is not an integer", p);
    const int64_t al = get_int("general.alignment");
    if (al <= 0 || (al & (al - 1)) != 0) fail("'{}' is corrupt: general.alignment {} is not a power of two", p, al);
    alignment_ = uint64_t(al);
  }

  struct Pending {
    GgufTensorInfo info;
    uint64_t nbytes;
  };
  std::vector<Pending> pending;
  pending.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    Pending pt;
    GgufTensorInfo& t = pt.info;
    t.name = c.read_string(fmt::format("tensor name #{}", i));
    const uint32_t n_dims = c.read<uint32_t>("dimension count of tensor '" + t.name + "'");
    if (n_dims == 0 || n_dims > kMaxDims)
      c.corrupt(fmt::format("tensor '{}' has {} dimensions (1 to {} allowed)", t.name, n_dims, kMaxDims));
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("shape of tensor '" + t.name + "'");
      if (ne > uint64_t(INT64_MAX) || (ne != 0 && numel > INT64_MAX / int64_t(ne)))
        c.corrupt(fmt::format("tensor '{}' has an impossible shape", t.name));
      numel *= int64_t(ne);
      t.ne.push_back(int64_t(ne));
    }
    t.shape.assign(t.ne.rbegin(), t.ne.rend());
    const uint32_t type_id = c.read<uint32_t>("type of tensor '" + t.name + "'");
    const auto info = ggml_type_info(type_id);
    if (!info) fail("'{}': tensor '{}' has unknown ggml type {}", p, t.name, type_id);
    t.type = GgmlType(type_id);
    if (t.ne[0] % info->block_size != 0)
      c.corrupt(fmt::format("tensor '{}' row length {} is not a multiple of the {} block size {}", t.name, t.ne[0],
                            info->name, info->block_size));
    const int64_t n_blocks = numel / info->block_size;
    if (n_blocks > INT64_MAX / info->block_bytes) c.corrupt(fmt::format("tensor '{}' is impossibly large", t.name));
    pt.nbytes = uint64_t(n_blocks * info->block_bytes);
    t.offset = c.read<uint64_t>("data offset of tensor '" + t.name + "'");
    if (t.offset % alignment_ != 0)
      c.corrupt(fmt::format("tensor '{}' data offset {} is not a multiple of the alignment {}", t.name, t.offset,
                            alignment_));
    if (tensor_index_.count(t.name)) c.corrupt(fmt::format("duplicate tensor '{}'", t.name));
    tensor_index_[t.name] = pending.size();
    pending.push_back(std::move(pt));
  }

  const uint64_t header_end = c.pos();
  const uint64_t data_start = (header_end + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t file_size = file_.size();
  if (n_tensors > 0 && data_start > file_size)
    fail("'{}' is truncated: the tensor data section (from byte {}) is missing", p, data_start);
  const uint64_t data_size = n_tensors > 0 ? file_size - data_start : 0;
  tensors_.reserve(pending.size());
  for (auto& pt : pending) {
    GgufTensorInfo& t = pt.info;
    if (t.offset > data_size || pt.nbytes > data_size - t.offset)
      fail("'{}' is truncated or corrupt: tensor '{}' ({} bytes at data offset {}) lies past the end of the file", p,
           t.name, pt.nbytes, t.offset);
    t.data = file_.bytes().subspan(size_t(data_start + t.offset), size_t(pt.nbytes));
    tensors_.push_back(std::move(t));
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

namespace {
[[noreturn]] void wrong_type(const std::filesystem::path& p, const std::string& key, const GgufValue& v,
                             const char* wanted) {
  fail("'{}': metadata '{}' is {} ({} expected)", p.string(), key, gguf_value_type_name(v.type), wanted);
}
}  // namespace

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("'{}' lacks metadata '{}'", path().string(), key);
  if (const auto* u = std::get_if<uint64_t>(&v->value)) {
    if (*u > uint64_t(INT64_MAX)) fail("'{}': metadata '{}' is out of range", path().string(), key);
    return int64_t(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&v->value)) return *i;
  wrong_type(path(), key, *v, "an integer");
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("'{}' lacks metadata '{}'", path().string(), key);
  if (const auto* d = std::get_if<double>(&v->value)) return *d;
  if (v->is_integer()) return double(get_int(key));
  wrong_type(path(), key, *v, "a number");
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (const auto* b = std::get_if<bool>(&v->value)) return *b;
  wrong_type(path(), key, *v, "a bool");
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("'{}' lacks metadata '{}'", path().string(), key);
  if (const auto* s = std::get_if<std::string>(&v->value)) return *s;
  wrong_type(path(), key, *v, "a string");
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("'{}' lacks metadata '{}'", path().string(), key);
  const auto* a = std::get_if<std::vector<GgufValue>>(&v->value);
  if (!a || v->array_type != GgufValueType::STRING) wrong_type(path(), key, *v, "an array of strings");
  std::vector<std::string> out;
  out.reserve(a->size());
  for (const auto& e : *a) out.push_back(std::get<std::string>(e.value));
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("'{}' lacks metadata '{}'", path().string(), key);
  const auto* a = std::get_if<std::vector<GgufValue>>(&v->value);
  if (!a || (!a->empty() && !(*a)[0].is_integer())) wrong_type(path(), key, *v, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(a->size());
  for (const auto& e : *a) {
    if (const auto* u = std::get_if<uint64_t>(&e.value)) out.push_back(int64_t(*u));
    else out.push_back(std::get<int64_t>(e.value));
  }
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("'{}' lacks metadata '{}'", path().string(), key);
  const auto* a = std::get_if<std::vector<GgufValue>>(&v->value);
  if (!a || (!a->empty() && !(*a)[0].is_number())) wrong_type(path(), key, *v, "an array of numbers");
  std::vector<double> out;
  out.reserve(a->size());
  for (const auto& e : *a) {
    if (const auto* d = std::get_if<double>(&e.value)) out.push_back(*d);
    else if (const auto* u = std::get_if<uint64_t>(&e.value)) out.push_back(double(*u));
    else out.push_back(double(std::get<int64_t>(e.value)));
  }
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const auto* t = find_tensor(name);
  if (!t) fail("'{}' has no tensor named '{}'", path().string(), name);
  return *t;
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& t) const {
  std::vector<float> out(size_t(t.numel()));
  dequantize_into(t, out.data());
  return out;
}

void GgufFile::dequantize_into(const GgufTensorInfo& t, float* out) const {
  const auto info = *ggml_type_info(uint32_t(t.type));
  if (!info.can_dequantize)
    fail("'{}': tensor '{}' has type {}, which fpq cannot dequantize yet", path().string(), t.name, info.name);
  const int64_t n_blocks = t.numel() / info.block_size;
  // Chunks of ~64K elements: fixed by the tensor, not the thread count.
  const int64_t grain = std::max<int64_t>(1, 65536 / info.block_size);
  parallel_for(n_blocks, grain, [&](int64_t b0, int64_t b1) {
    ggml_dequantize(t.type, t.data.data() + b0 * info.block_bytes, (b1 - b0) * info.block_size,
                    out + b0 * info.block_size);
  });
}

}  // namespace fpq
