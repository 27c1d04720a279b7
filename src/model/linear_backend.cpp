#include "model/linear_backend.h"

#include <algorithm>
#include <mutex>

#include "util/error.h"

namespace fpq {
namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::vector<std::shared_ptr<const ActivationQuantizer>>& quantizers() {
  static std::vector<std::shared_ptr<const ActivationQuantizer>> v;
  return v;
}
std::vector<std::shared_ptr<const MatmulBackend>>& matmuls() {
  static std::vector<std::shared_ptr<const MatmulBackend>> v;
  return v;
}

template <typename T>
std::shared_ptr<const T> resolve(const std::vector<std::shared_ptr<const T>>& all, const std::string& requested,
                                 const LinearSpec& spec, const char* role) {
  if (requested.empty() || requested == "auto") {
    std::shared_ptr<const T> best;
    for (const auto& b : all)
      if (b->unavailable_reason(spec).empty() && (!best || b->priority() > best->priority())) best = b;
    if (!best) fail("no {} backend can run a {}x{} layer", role, spec.out_features, spec.in_features);
    return best;
  }
  std::string names;
  for (const auto& b : all) {
    if (b->name() == requested) {
      const std::string why = b->unavailable_reason(spec);
      if (!why.empty()) fail("{} backend '{}' cannot run this layer: {}", role, requested, why);
      return b;
    }
    names += (names.empty() ? "" : ", ") + b->name();
  }
  fail("unknown {} backend '{}' (available: {})", role, requested, names);
}

}  // namespace

void register_activation_quantizer(std::shared_ptr<const ActivationQuantizer> q) {
  std::lock_guard<std::mutex> lk(registry_mutex());
  for (const auto& e : quantizers())
    if (e->name() == q->name()) return;
  quantizers().push_back(std::move(q));
}

void register_matmul_backend(std::shared_ptr<const MatmulBackend> b) {
  std::lock_guard<std::mutex> lk(registry_mutex());
  for (const auto& e : matmuls())
    if (e->name() == b->name()) return;
  matmuls().push_back(std::move(b));
}

const std::vector<std::shared_ptr<const ActivationQuantizer>>& activation_quantizers() {
  ensure_builtin_backends();
  return quantizers();
}
const std::vector<std::shared_ptr<const MatmulBackend>>& matmul_backends() {
  ensure_builtin_backends();
  return matmuls();
}

std::shared_ptr<const ActivationQuantizer> resolve_activation_quantizer(const std::string& requested,
                                                                        const LinearSpec& spec) {
  return resolve(activation_quantizers(), requested, spec, "activation-quantization");
}

std::shared_ptr<const MatmulBackend> resolve_matmul_backend(const std::string& requested, const LinearSpec& spec) {
  return resolve(matmul_backends(), requested, spec, "matmul");
}

}  // namespace fpq
