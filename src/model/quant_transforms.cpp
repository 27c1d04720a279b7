#include "model/quant_transforms.h"

#include <cstring>
#include <mutex>

#include "util/error.h"

namespace fpq {
namespace {

template <typename T>
std::vector<T> read_tensor(const SafetensorsFile& f, const std::string& name, const char* dtype, int64_t n) {
  const auto& e = f.get(name);
  if (e.dtype != dtype || e.numel() != n)
    fail("'{}': tensor '{}' must be {} with {} values", f.path().string(), name, dtype, n);
  std::vector<T> v(static_cast<size_t>(n));
  std::memcpy(v.data(), e.data.data(), size_t(n) * sizeof(T));
  return v;
}

class BlockInputTransform final : public InputTransform {
 public:
  explicit BlockInputTransform(quant::BlockTransform t) : t_(std::move(t)) {}
  std::string kind() const override { return "block"; }
  void apply(const float* x, int64_t m, int64_t in, float* out) const override {
    if (in != t_.dim()) fail("transform of width {} applied to rows of {}", t_.dim(), in);
    std::memcpy(out, x, size_t(m * in) * sizeof(float));
    t_.forward(out, m);
  }
  nlohmann::json config() const override {
    nlohmann::json j = {{"kind", "block"}, {"dim", t_.dim()}, {"block", t_.block()}, {"describe", t_.describe()}};
    switch (t_.kind()) {
      case quant::TransformKind::Identity: j["transform"] = "identity"; break;
      case quant::TransformKind::Hadamard:
        j["transform"] = "hadamard";
        j["signs"] = !t_.signs().empty();
        if (t_.sign_seed()) j["sign_seed"] = *t_.sign_seed();
        break;
      case quant::TransformKind::Dense: j["transform"] = "dense"; j["shared"] = t_.shared(); break;
    }
    return j;
  }
  std::vector<SafetensorsTensorOut> tensors(const std::string& prefix) const override {
    std::vector<SafetensorsTensorOut> v;
    if (t_.kind() == quant::TransformKind::Dense) {
      const auto m = t_.matrices();
      v.push_back({prefix + "matrices", "F32", {int64_t(m.size())}, to_bytes(m)});
    }
    if (!t_.signs().empty()) v.push_back({prefix + "signs", "F32", {int64_t(t_.signs().size())}, to_bytes(t_.signs())});
    return v;
  }
  static std::shared_ptr<const InputTransform> load(const nlohmann::json& c, const SafetensorsFile& f, const std::string& p) {
    const std::string kind = c.at("transform").get<std::string>();
    const int64_t dim = c.at("dim").get<int64_t>(), block = c.at("block").get<int64_t>();
    quant::BlockTransform t;
    if (kind == "identity") {
      t = quant::BlockTransform::identity(dim);
    } else if (kind == "hadamard") {
      std::optional<uint64_t> seed;
      if (c.contains("sign_seed")) seed = c.at("sign_seed").get<uint64_t>();
      t = quant::BlockTransform::hadamard(dim, block == dim ? 0 : block, seed);
      if (c.value("signs", false)) {  // the stored signs must be the ones the seed regenerates
        const auto s = read_tensor<float>(f, p + "signs", "F32", dim);
        if (s != t.signs()) fail("'{}': stored Hadamard signs of '{}' do not match their seed", f.path().string(), p);
      }
    } else if (kind == "dense") {
      const auto& e = f.get(p + "matrices");
      t = quant::BlockTransform::dense(dim, block, read_tensor<float>(f, p + "matrices", "F32", e.numel()));
    } else {
      fail("'{}': unknown block transform '{}'", f.path().string(), kind);
    }
    return std::make_shared<BlockInputTransform>(std::move(t));
  }

 private:
  quant::BlockTransform t_;
};

class ArcInputTransform final : public InputTransform {
 public:
  ArcInputTransform(quant::ArcPlan plan, std::optional<Format> act, std::optional<float> gs)
      : plan_(std::move(plan)), act_(std::move(act)), gs_(gs) {}
  std::string kind() const override { return "arc"; }
  int64_t out_features(int64_t) const override { return plan_.k_aug(); }
  void apply(const float* x, int64_t m, int64_t in, float* out) const override {
    if (in != plan_.k) fail("ARC transform for {} channels applied to rows of {}", plan_.k, in);
    QuantizeOptions o;
    o.global_scale = gs_;
    // Without an activation format only weight residual channels exist; the format is then unused.
    quant::arc_augment_activations(plan_, act_ ? *act_ : parse_format("nvfp4"), x, m, out, o);
  }
  nlohmann::json config() const override {
    nlohmann::json j = {{"kind", "arc"}, {"k", plan_.k}, {"residual", plan_.residual},
                        {"activation_residual", plan_.activation_residual}, {"weight_residual", plan_.weight_residual}};
    j["activation_format"] = act_ ? nlohmann::json(act_->spec()) : nlohmann::json(nullptr);
    j["activation_global_scale"] = gs_ ? nlohmann::json(*gs_) : nlohmann::json(nullptr);
    return j;
  }
  std::vector<SafetensorsTensorOut> tensors(const std::string& prefix) const override {
    return {{prefix + "perm", "I32", {int64_t(plan_.perm.size())}, to_bytes(plan_.perm)},
            {prefix + "residual_channels", "I32", {int64_t(plan_.residual_channels.size())}, to_bytes(plan_.residual_channels)}};
  }
  static std::shared_ptr<const InputTransform> load(const nlohmann::json& c, const SafetensorsFile& f, const std::string& p) {
    quant::ArcPlan plan;
    plan.k = c.at("k").get<int64_t>();
    plan.residual = c.at("residual").get<int64_t>();
    plan.activation_residual = c.at("activation_residual").get<bool>();
    plan.weight_residual = c.at("weight_residual").get<bool>();
    plan.perm = read_tensor<int32_t>(f, p + "perm", "I32", plan.k);
    plan.residual_channels = read_tensor<int32_t>(f, p + "residual_channels", "I32", plan.residual);
    for (int32_t v : plan.perm)
      if (v < 0 || v >= plan.k) fail("'{}': ARC permutation of '{}' is out of range", f.path().string(), p);
    std::optional<Format> act;
    if (!c.at("activation_format").is_null()) act = parse_format(c.at("activation_format").get<std::string>());
    std::optional<float> gs;
    if (!c.at("activation_global_scale").is_null()) gs = c.at("activation_global_scale").get<float>();
    return std::make_shared<ArcInputTransform>(std::move(plan), act, gs);
  }

 private:
  quant::ArcPlan plan_;
  std::optional<Format> act_;
  std::optional<float> gs_;
};

}  // namespace

std::shared_ptr<const InputTransform> make_block_input_transform(quant::BlockTransform t) {
  return std::make_shared<BlockInputTransform>(std::move(t));
}

std::shared_ptr<const InputTransform> make_arc_input_transform(quant::ArcPlan plan, std::optional<Format> act,
                                                               std::optional<float> gs) {
  return std::make_shared<ArcInputTransform>(std::move(plan), std::move(act), gs);
}

void register_quant_transform_loaders() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_input_transform_loader("block", &BlockInputTransform::load);
    register_input_transform_loader("arc", &ArcInputTransform::load);
  });
}

}  // namespace fpq
