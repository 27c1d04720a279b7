#include "model/input_transform.h"

#include <map>
#include <mutex>

#include "util/error.h"

namespace fpq {
namespace {
std::mutex& loaders_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, InputTransformLoader>& loaders() {
  static std::map<std::string, InputTransformLoader> m;
  return m;
}
}  // namespace

void register_input_transform_loader(const std::string& kind, InputTransformLoader loader) {
  std::lock_guard<std::mutex> lk(loaders_mutex());
  loaders()[kind] = loader;
}

std::shared_ptr<const InputTransform> load_input_transform(const nlohmann::json& config, const SafetensorsFile& file,
                                                           const std::string& prefix) {
  std::string kind;
  try {
    kind = config.at("kind").get<std::string>();
  } catch (const nlohmann::json::exception&) {
    fail("'{}': a transform config has no 'kind'", file.path().string());
  }
  InputTransformLoader loader = nullptr;
  {
    std::lock_guard<std::mutex> lk(loaders_mutex());
    auto it = loaders().find(kind);
    if (it != loaders().end()) loader = it->second;
  }
  if (!loader) fail("'{}': unknown input transform '{}'", file.path().string(), kind);
  return loader(config, file, prefix);
}

}  // namespace fpq
