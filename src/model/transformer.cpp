#include "model/transformer.h"

#include <cblas.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/f32_gemm.h"
#include "util/error.h"
#include "util/parallel.h"

namespace fpq {

void rms_norm(const float* x, const float* w, int64_t n, int64_t d, double eps, float* y) {
  parallel_for(n, std::max<int64_t>(1, 16384 / d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      double ss = 0;
      for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
      const float inv = float(1.0 / std::sqrt(ss / double(d) + eps));
      for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] * inv) * w[i];
    }
  });
}

KvCache::KvCache(const ModelConfig& c, int64_t capacity) : capacity_(capacity), head_dim_(c.head_dim) {
  if (capacity <= 0) fail("KV cache capacity must be positive");
  const size_t per_layer = size_t(c.num_kv_heads * capacity * c.head_dim);
  k_.assign(size_t(c.num_layers), std::vector<float>(per_layer));
  v_.assign(size_t(c.num_layers), std::vector<float>(per_layer));
}

namespace {

std::vector<float> take(const ModelSource& src, const std::string& name, std::vector<int64_t> shape) {
  Tensor t = src.load(name);
  if (t.shape != shape) {
    std::string got, want;
    for (auto d : t.shape) got += std::to_string(d) + " ";
    for (auto d : shape) want += std::to_string(d) + " ";
    fail("'{}': tensor '{}' has shape [{}], expected [{}]", src.path().string(), name, got, want);
  }
  return std::move(t.data);
}

QuantLinear take_linear(const ModelSource& src, const std::string& name, int64_t out, int64_t in, bool bias,
                        const LinearLoader& loader) {
  if (loader) {
    if (auto l = loader(name)) {
      if (l->out_features() != out || l->in_features() != in)
        fail("'{}': layer '{}' is {}x{}, expected {}x{}", src.path().string(), name, l->out_features(), l->in_features(), out, in);
      return std::move(*l);
    }
  }
  std::vector<float> w = take(src, name + ".weight", {out, in});
  std::vector<float> b;
  if (bias) b = take(src, name + ".bias", {out});
  return QuantLinear(out, in, std::move(w), std::move(b));
}

}  // namespace

Transformer::Transformer(const ModelSource& src, const LinearLoader& loader) : config_(src.config()) {
  const ModelConfig& c = config_;
  if (c.head_dim % 2 != 0) fail("head_dim {} must be even for RoPE", c.head_dim);
  if (c.num_heads % c.num_kv_heads != 0) fail("{} heads are not a multiple of {} kv heads", c.num_heads, c.num_kv_heads);
  const int64_t h = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  embed_ = take(src, "model.embed_tokens.weight", {c.vocab_size, h});
  if (!c.tie_word_embeddings && src.has("lm_head.weight")) lm_head_ = take(src, "lm_head.weight", {c.vocab_size, h});
  final_norm_ = take(src, "model.norm.weight", {h});
  layers_.resize(size_t(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    DecoderLayer& L = layers_[size_t(i)];
    L.input_norm = take(src, p + "input_layernorm.weight", {h});
    L.post_attention_norm = take(src, p + "post_attention_layernorm.weight", {h});
    L.q_proj = take_linear(src, p + "self_attn.q_proj", qd, h, c.qkv_bias, loader);
    L.k_proj = take_linear(src, p + "self_attn.k_proj", kvd, h, c.qkv_bias, loader);
    L.v_proj = take_linear(src, p + "self_attn.v_proj", kvd, h, c.qkv_bias, loader);
    L.o_proj = take_linear(src, p + "self_attn.o_proj", h, qd, c.o_bias, loader);
    L.gate_proj = take_linear(src, p + "mlp.gate_proj", c.intermediate_size, h, c.mlp_bias, loader);
    L.up_proj = take_linear(src, p + "mlp.up_proj", c.intermediate_size, h, c.mlp_bias, loader);
    L.down_proj = take_linear(src, p + "mlp.down_proj", h, c.intermediate_size, c.mlp_bias, loader);
    if (c.qk_norm) {
      L.q_norm = take(src, p + "self_attn.q_norm.weight", {c.head_dim});
      L.k_norm = take(src, p + "self_attn.k_norm.weight", {c.head_dim});
    }
  }
  const auto f = c.rope_inverse_frequencies();
  inv_freq_.assign(f.begin(), f.end());
}

std::vector<std::pair<std::string, QuantLinear*>> Transformer::linears() {
  std::vector<std::pair<std::string, QuantLinear*>> v;
  for (int64_t i = 0; i < num_layers(); ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    DecoderLayer& L = layers_[size_t(i)];
    v.emplace_back(p + "self_attn.q_proj", &L.q_proj);
    v.emplace_back(p + "self_attn.k_proj", &L.k_proj);
    v.emplace_back(p + "self_attn.v_proj", &L.v_proj);
    v.emplace_back(p + "self_attn.o_proj", &L.o_proj);
    v.emplace_back(p + "mlp.gate_proj", &L.gate_proj);
    v.emplace_back(p + "mlp.up_proj", &L.up_proj);
    v.emplace_back(p + "mlp.down_proj", &L.down_proj);
  }
  return v;
}

std::vector<std::pair<std::string, const QuantLinear*>> Transformer::linears() const {
  std::vector<std::pair<std::string, const QuantLinear*>> v;
  for (auto& [n, l] : const_cast<Transformer*>(this)->linears()) v.emplace_back(n, l);
  return v;
}

void Transformer::embed(const int32_t* tokens, int64_t n, float* hidden) const {
  const int64_t h = config_.hidden_size;
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size)
      fail("token id {} is outside the vocabulary (0..{})", tokens[i], config_.vocab_size - 1);
    std::memcpy(hidden + i * h, embed_.data() + int64_t(tokens[i]) * h, size_t(h) * sizeof(float));
  }
}

void Transformer::rope(float* x, int64_t n, int64_t heads, int64_t pos0) const {
  const int64_t hd = config_.head_dim, half = hd / 2;
  std::vector<float> cs(size_t(n * half)), sn(size_t(n * half));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double a = double(pos0 + t) * double(inv_freq_[size_t(i)]);
      cs[size_t(t * half + i)] = float(std::cos(a));
      sn[size_t(t * half + i)] = float(std::sin(a));
    }
  parallel_for(n, 8, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (t * heads + h) * hd;
        const float* c = cs.data() + t * half;
        const float* s = sn.data() + t * half;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * c[i] - b * s[i];
          v[i + half] = b * c[i] + a * s[i];
        }
      }
  });
}

// One query (generation): one head per task on fpq's threads, float32 products of fpq's own (OpenBLAS's would
// run on its own threads, which then spin beside fpq's pinned ones). The same softmax as attention().
void Transformer::attention_one(int64_t layer, const float* q, KvCache& cache, float* out) const {
  const ModelConfig& c = config_;
  const int64_t hd = c.head_dim, nh = c.num_heads, group = c.num_heads / c.num_kv_heads;
  const int64_t len = cache.length() + 1;  // the new token's key and value are in the cache already
  const int64_t first_key = c.sliding_window > 0 ? std::max<int64_t>(0, len - c.sliding_window) : 0;
  const int64_t keys = len - first_key;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  std::vector<float> scores(size_t(nh * keys));
  parallel_for(nh, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t kh = h / group;
      float* s = scores.data() + h * keys;
      cpu::f32_dot_rows(keys, hd, cache.keys(layer, kh) + first_key * hd, hd, q + h * hd, s);
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < keys; ++j) {
        s[j] *= scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < keys; ++j) {
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
      }
      const float inv = float(1.0 / sum);
      for (int64_t j = 0; j < keys; ++j) s[j] *= inv;
      cpu::f32_gemv_t(keys, hd, cache.values(layer, kh) + first_key * hd, hd, s, out + h * hd);
    }
  });
}

void Transformer::attention(int64_t layer, const float* q, int64_t n, KvCache& cache, float* out) const {
  const ModelConfig& c = config_;
  const int64_t hd = c.head_dim, nh = c.num_heads, group = c.num_heads / c.num_kv_heads;
  const int64_t pos0 = cache.length();
  const float scale = float(1.0 / std::sqrt(double(hd)));
  if (n == 1) {
    attention_one(layer, q, cache, out);
    return;
  }
  // Queries in blocks: block [t0, t1) only needs keys 0 .. pos0 + t1 - 1 (causal), which skips the masked
  // upper triangle of the score matrix for long prompts.
  constexpr int64_t kBlock = 256;
  std::vector<float> scores(size_t(std::min(n, kBlock) * (pos0 + n)));
  for (int64_t h = 0; h < nh; ++h) {
    const int64_t kh = h / group;
    const float* K = cache.keys(layer, kh);
    const float* V = cache.values(layer, kh);
    for (int64_t t0 = 0; t0 < n; t0 += kBlock) {
      const int64_t rows = std::min(kBlock, n - t0), len = pos0 + t0 + rows;
      const int64_t first_key = c.sliding_window > 0 ? std::max<int64_t>(0, pos0 + t0 - c.sliding_window + 1) : 0;
      const int64_t keys = len - first_key;
      // scores (rows x keys) = scale * Q_h · K_hᵀ over the keys this block can see
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(keys), int(hd), scale, q + (t0 * nh + h) * hd,
                  int(nh * hd), K + first_key * hd, int(hd), 0.0f, scores.data(), int(keys));
      parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          float* s = scores.data() + r * keys;
          const int64_t last = pos0 + t0 + r;  // causal: keys first .. last
          const int64_t first = c.sliding_window > 0 ? std::max<int64_t>(0, last - c.sliding_window + 1) : 0;
          const int64_t lo = first - first_key, hi = last - first_key;  // inclusive, in block coordinates
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t j = lo; j <= hi; ++j) mx = std::max(mx, s[j]);
          double sum = 0;
          for (int64_t j = 0; j < lo; ++j) s[j] = 0.0f;
          for (int64_t j = lo; j <= hi; ++j) {
            s[j] = std::exp(s[j] - mx);
            sum += s[j];
          }
          for (int64_t j = hi + 1; j < keys; ++j) s[j] = 0.0f;
          const float inv = float(1.0 / sum);
          for (int64_t j = lo; j <= hi; ++j) s[j] *= inv;
        }
      });
      // out_h (rows x hd) = P · V_h
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(hd), int(keys), 1.0f, scores.data(), int(keys),
                  V + first_key * hd, int(hd), 0.0f, out + (t0 * nh + h) * hd, int(nh * hd));
    }
  }
}

void Transformer::layer_forward(int64_t li, float* hidden, int64_t n, KvCache& cache, const LinearInputHook& hook) const {
  const ModelConfig& c = config_;
  const DecoderLayer& L = layers_[size_t(li)];
  const int64_t h = c.hidden_size, hd = c.head_dim, nh = c.num_heads, nkv = c.num_kv_heads;
  const int64_t qd = nh * hd, kvd = nkv * hd, ff = c.intermediate_size;
  const int64_t pos0 = cache.length();
  if (pos0 + n > cache.capacity()) fail("KV cache full: {} + {} tokens exceed its capacity {}", pos0, n, cache.capacity());

  std::vector<float> xn(size_t(n * h)), q(size_t(n * qd)), k(size_t(n * kvd)), v(size_t(n * kvd));
  rms_norm(hidden, L.input_norm.data(), n, h, c.rms_norm_eps, xn.data());
  if (hook) {
    hook(li, "self_attn.q_proj", xn.data(), n, h);
    hook(li, "self_attn.k_proj", xn.data(), n, h);
    hook(li, "self_attn.v_proj", xn.data(), n, h);
  }
  L.q_proj.forward(xn.data(), n, q.data());
  L.k_proj.forward(xn.data(), n, k.data());
  L.v_proj.forward(xn.data(), n, v.data());
  if (c.qk_norm) {
    rms_norm(q.data(), L.q_norm.data(), n * nh, hd, c.rms_norm_eps, q.data());
    rms_norm(k.data(), L.k_norm.data(), n * nkv, hd, c.rms_norm_eps, k.data());
  }
  rope(q.data(), n, nh, pos0);
  rope(k.data(), n, nkv, pos0);
  for (int64_t kh = 0; kh < nkv; ++kh) {
    float* K = cache.keys(li, kh);
    float* V = cache.values(li, kh);
    for (int64_t t = 0; t < n; ++t) {
      std::memcpy(K + (pos0 + t) * hd, k.data() + t * kvd + kh * hd, size_t(hd) * sizeof(float));
      std::memcpy(V + (pos0 + t) * hd, v.data() + t * kvd + kh * hd, size_t(hd) * sizeof(float));
    }
  }
  std::vector<float> att(size_t(n * qd)), o(size_t(n * h));
  attention(li, q.data(), n, cache, att.data());
  if (hook) hook(li, "self_attn.o_proj", att.data(), n, qd);
  L.o_proj.forward(att.data(), n, o.data());
  for (int64_t i = 0; i < n * h; ++i) hidden[i] += o[size_t(i)];

  rms_norm(hidden, L.post_attention_norm.data(), n, h, c.rms_norm_eps, xn.data());
  if (hook) {
    hook(li, "mlp.gate_proj", xn.data(), n, h);
    hook(li, "mlp.up_proj", xn.data(), n, h);
  }
  std::vector<float> g(size_t(n * ff)), u(size_t(n * ff));
  L.gate_proj.forward(xn.data(), n, g.data());
  L.up_proj.forward(xn.data(), n, u.data());
  parallel_for(n * ff, 1 << 14, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) {
      const float x = g[size_t(i)];
      g[size_t(i)] = (x / (1.0f + std::exp(-x))) * u[size_t(i)];
    }
  });
  if (hook) hook(li, "mlp.down_proj", g.data(), n, ff);
  L.down_proj.forward(g.data(), n, o.data());
  for (int64_t i = 0; i < n * h; ++i) hidden[i] += o[size_t(i)];
}

void Transformer::head(const float* hidden, int64_t n, float* logits) const {
  const int64_t h = config_.hidden_size, vocab = config_.vocab_size;
  std::vector<float> xn(size_t(n * h));
  rms_norm(hidden, final_norm_.data(), n, h, config_.rms_norm_eps, xn.data());
  const float* w = lm_head_.empty() ? embed_.data() : lm_head_.data();
  cpu::f32_gemm_nt(n, vocab, h, xn.data(), w, logits);
}

void Transformer::forward(const int32_t* tokens, int64_t n, KvCache& cache, float* logits, bool last_only) const {
  if (n <= 0) fail("forward needs at least one token");
  const int64_t h = config_.hidden_size;
  std::vector<float> hidden(size_t(n * h));
  embed(tokens, n, hidden.data());
  for (int64_t l = 0; l < num_layers(); ++l) layer_forward(l, hidden.data(), n, cache);
  cache.advance(n);
  if (last_only) head(hidden.data() + (n - 1) * h, 1, logits);
  else head(hidden.data(), n, logits);
}

size_t Transformer::weight_bytes() const {
  size_t b = (embed_.size() + lm_head_.size() + final_norm_.size()) * sizeof(float);
  for (const auto& L : layers_) {
    b += (L.input_norm.size() + L.post_attention_norm.size() + L.q_norm.size() + L.k_norm.size()) * sizeof(float);
    for (const QuantLinear* l : {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj}) {
      b += l->quantized_weight() ? l->quantized_weight()->storage_bytes() : l->float_weight().size() * sizeof(float);
      b += l->bias().size() * sizeof(float);
    }
  }
  return b;
}

}  // namespace fpq
