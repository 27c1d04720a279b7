#include "quant/rtn.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"
#include "util/parallel.h"

namespace fpq::quant {

QuantizedTensor rtn_quantize(const Format& f, const float* w, int64_t rows, int64_t cols, const RtnOptions& opt) {
  if (opt.scale_search == ScaleSearch::Format) {
    QuantizeOptions q;
    q.global_scale = opt.global_scale;
    return quantize(f, w, rows, cols, q);
  }
  check_codec_format(f, cols);
  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(w[i])) fail("rtn: the weight has a non-finite value (row {}, column {})", i / cols, i % cols);
  const GroupCodec codec(f, opt.scale_search, opt.mse);
  const std::vector<float> global = global_scales_for(f, w, rows, cols, opt.global_scale);
  const int gsz = f.group_for(cols);
  const int64_t groups = cols / gsz;
  std::vector<uint8_t> codes(size_t(rows * cols));
  std::vector<GroupParams> params(size_t(rows * groups));
  parallel_for(rows, std::max<int64_t>(1, 8192 / cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float g = global.empty() ? 1.0f : global.size() == 1 ? global[0] : global[size_t(r)];
      for (int64_t b = 0; b < groups; ++b) {
        const float* x = w + r * cols + b * gsz;
        const GroupParams p = codec.fit(x, gsz, g);
        params[size_t(r * groups + b)] = p;
        for (int j = 0; j < gsz; ++j) {
          float v;
          codes[size_t(r * cols + b * gsz + j)] = codec.quantize(x[j], p, g, &v);
        }
      }
    }
  });
  return assemble_quantized(f, rows, cols, codes, params, global);
}

}  // namespace fpq::quant
