#include "model/linear.h"

#include <fmt/format.h>

#include "formats/quantized_io.h"
#include "util/error.h"

namespace fpq {

QuantLinear::QuantLinear(int64_t out_features, int64_t in_features, std::vector<float> weight, std::vector<float> bias)
    : out_(out_features), in_(in_features), wf_(std::move(weight)), bias_(std::move(bias)) {
  if (int64_t(wf_.size()) != out_ * in_) fail("linear layer: weight has {} values, expected {}x{}", wf_.size(), out_, in_);
  if (!bias_.empty() && int64_t(bias_.size()) != out_) fail("linear layer: bias has {} values, expected {}", bias_.size(), out_);
}

LinearSpec QuantLinear::spec() const {
  LinearSpec s;
  s.in_features = weight_in_features();
  s.out_features = out_;
  s.weight_format = wq_ ? &wq_->format : nullptr;
  s.activation_format = act_ ? &act_->format : nullptr;
  return s;
}

void QuantLinear::invalidate() {
  quantizer_.reset();
  matmul_.reset();
  prepared_.reset();
}

void QuantLinear::set_quantized_weight(QuantizedTensor w) {
  if (w.rows != out_ || w.cols != weight_in_features())
    fail("linear layer: quantized weight is {}x{}, expected {}x{}", w.rows, w.cols, out_, weight_in_features());
  wq_ = std::move(w);
  wf_.clear();
  wf_.shrink_to_fit();
  invalidate();
}

void QuantLinear::set_float_weight(std::vector<float> w) {
  if (int64_t(w.size()) != out_ * weight_in_features())
    fail("linear layer: weight has {} values, expected {}x{}", w.size(), out_, weight_in_features());
  wf_ = std::move(w);
  wq_.reset();
  invalidate();
}

void QuantLinear::set_activation_quant(std::optional<ActivationQuant> a) {
  if (a) check_format_cols(a->format, weight_in_features());
  act_ = std::move(a);
  invalidate();
}

void QuantLinear::set_transform(std::shared_ptr<const InputTransform> t) {
  transform_ = std::move(t);
  invalidate();
}

void QuantLinear::set_backends(const std::string& quant_backend, const std::string& matmul_backend) {
  quant_backend_name_ = quant_backend;
  matmul_backend_name_ = matmul_backend;
  invalidate();
}

std::vector<float> QuantLinear::weight_as_float() const { return wq_ ? dequantize(*wq_) : wf_; }

void QuantLinear::resolve() const {
  if (matmul_) return;
  const LinearSpec s = spec();
  if (act_) quantizer_ = resolve_activation_quantizer(quant_backend_name_, s);
  matmul_ = resolve_matmul_backend(matmul_backend_name_, s);
  prepared_ = matmul_->prepare(wq_ ? &*wq_ : nullptr, wq_ ? nullptr : wf_.data(), s);
}

std::pair<std::string, std::string> QuantLinear::resolved_backends() const {
  resolve();
  return {quantizer_ ? quantizer_->name() : "-", matmul_->name()};
}

void QuantLinear::forward(const float* x, int64_t m, float* y) const {
  resolve();
  const int64_t k = weight_in_features();
  std::vector<float> xt;
  if (transform_) {
    xt.resize(size_t(m * k));
    transform_->apply(x, m, in_, xt.data());
    x = xt.data();
  }
  const LinearSpec s = spec();
  if (act_) {
    const QuantizedTensor xq = quantizer_->quantize(act_->format, x, m, k, act_->options());
    matmul_->matmul(*prepared_, &xq, x, m, y, s);
  } else {
    matmul_->matmul(*prepared_, nullptr, x, m, y, s);
  }
  if (!bias_.empty())
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < out_; ++j) y[i * out_ + j] += bias_[size_t(j)];
}

std::string QuantLinear::describe() const {
  std::string w = wq_ ? wq_->format.spec() : "f32";
  std::string a = act_ ? act_->format.spec() : "f32";
  return fmt::format("{}x{} W={} A={}{}", out_, in_, w, a, transform_ ? " T=" + transform_->kind() : "");
}

std::vector<SafetensorsTensorOut> QuantLinear::state_tensors(const std::string& prefix) const {
  std::vector<SafetensorsTensorOut> t;
  if (wq_) {
    for (auto& e : quantized_tensors(*wq_, prefix + "weight.")) t.push_back(std::move(e));
  } else {
    t.push_back({prefix + "weight", "F32", {out_, weight_in_features()}, to_bytes(wf_)});
  }
  if (!bias_.empty()) t.push_back({prefix + "bias", "F32", {out_}, to_bytes(bias_)});
  if (transform_)
    for (auto& e : transform_->tensors(prefix + "transform.")) t.push_back(std::move(e));
  return t;
}

nlohmann::json QuantLinear::state_config() const {
  nlohmann::json j;
  j["in_features"] = in_;
  j["out_features"] = out_;
  j["weight_format"] = wq_ ? nlohmann::json(wq_->format.spec()) : nlohmann::json(nullptr);
  if (act_) {
    j["activation_format"] = act_->format.spec();
    j["activation_global_scale"] = act_->global_scale ? nlohmann::json(*act_->global_scale) : nlohmann::json(nullptr);
  } else {
    j["activation_format"] = nullptr;
  }
  j["bias"] = !bias_.empty();
  j["transform"] = transform_ ? transform_->config() : nlohmann::json(nullptr);
  return j;
}

static std::vector<float> read_f32(const SafetensorsFile& file, const std::string& name, int64_t expect) {
  const auto& e = file.get(name);
  if (e.dtype != "F32" || e.numel() != expect)
    fail("'{}': tensor '{}' must be F32 with {} values", file.path().string(), name, expect);
  std::vector<float> v(static_cast<size_t>(expect));
  std::memcpy(v.data(), e.data.data(), size_t(expect) * 4);
  return v;
}

QuantLinear QuantLinear::from_state(const nlohmann::json& c, const SafetensorsFile& file, const std::string& prefix) {
  try {
    QuantLinear l;
    l.in_ = c.at("in_features").get<int64_t>();
    l.out_ = c.at("out_features").get<int64_t>();
    if (!c.at("transform").is_null()) l.transform_ = load_input_transform(c.at("transform"), file, prefix + "transform.");
    const int64_t k = l.weight_in_features();
    if (c.at("weight_format").is_null()) {
      l.wf_ = read_f32(file, prefix + "weight", l.out_ * k);
    } else {
      const Format f = parse_format(c.at("weight_format").get<std::string>());
      l.wq_ = quantized_from_file(file, f, l.out_, k, prefix + "weight.");
    }
    if (c.at("bias").get<bool>()) l.bias_ = read_f32(file, prefix + "bias", l.out_);
    if (!c.at("activation_format").is_null()) {
      ActivationQuant a{parse_format(c.at("activation_format").get<std::string>()), std::nullopt};
      if (c.contains("activation_global_scale") && !c.at("activation_global_scale").is_null())
        a.global_scale = c.at("activation_global_scale").get<float>();
      l.act_ = a;
    }
    return l;
  } catch (const nlohmann::json::exception& e) {
    fail("'{}': malformed config for layer '{}': {}", file.path().string(), prefix, e.what());
  }
}

}  // namespace fpq
