"""Float64 numpy reference of the Llama / Qwen2 / Qwen3 forward pass, independent of fpq.

  model_forward_ref.py gguf MODEL.gguf TOKENS.npy LOGITS.npy
      reads the GGUF with gguf-py, keeps llama.cpp's Q/K row order and applies llama.cpp's own RoPE (adjacent
      pairs), which equals Hugging Face's rotate-half RoPE on un-permuted weights
  model_forward_ref.py hf DIR TOKENS.npy LOGITS.npy
      reads config.json + model.safetensors, rotate-half RoPE
  model_forward_ref.py make-hf DIR ARCH SEED
      writes a tiny random model (ARCH: llama, llama3, qwen2, qwen3) as config.json + model.safetensors
Tokens and logits are float32 .npy files (logits computed in float64).
"""
import json
import sys

import numpy as np


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def inv_freq(cfg, hd):
    theta = cfg["rope_theta"]
    f = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * np.pi / f
        smooth = (old / wl - lo) / (hi - lo)
        scaled = np.where(wl > lo_wl, f / factor, f)
        mid = (wl <= lo_wl) & (wl >= hi_wl)
        f = np.where(mid, (1 - smooth) * f / factor + smooth * f, scaled)
    return f


def rope_rotate_half(x, pos, f):  # x: (T, H, hd)
    hd = x.shape[-1]
    ang = pos[:, None] * f[None, :]  # (T, hd/2)
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., : hd // 2], x[..., hd // 2:]
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)


def rope_adjacent(x, pos, f):  # llama.cpp NORM mode: pairs (2i, 2i+1)
    ang = pos[:, None] * f[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = b * c + a * s
    return out


def forward(W, cfg, tokens, rope):
    T = len(tokens)
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]
    f = inv_freq(cfg, hd)
    pos = np.arange(T, dtype=np.float64)
    x = W["model.embed_tokens.weight"][tokens]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        lin = lambda name, v: v @ W[p + name + ".weight"].T + W.get(p + name + ".bias", 0.0)
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", h).reshape(T, nh, hd)
        k = lin("self_attn.k_proj", h).reshape(T, nkv, hd)
        v = lin("self_attn.v_proj", h).reshape(T, nkv, hd)
        if p + "self_attn.q_norm.weight" in W:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, pos, f), rope(k, pos, f)
        rep = nh // nkv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", s, v).reshape(T, nh * hd)
        x = x + lin("self_attn.o_proj", o)
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g, u = lin("mlp.gate_proj", h), lin("mlp.up_proj", h)
        x = x + lin("mlp.down_proj", g / (1 + np.exp(-g)) * u)
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ head.T


GGUF_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
}


def load_gguf(path):
    import gguf
    from gguf import quants
    r = gguf.GGUFReader(path)
    field = lambda k: r.fields[k].contents()
    arch = field("general.architecture")
    cfg = {
        "hidden_size": field(f"{arch}.embedding_length"),
        "num_attention_heads": field(f"{arch}.attention.head_count"),
        "num_key_value_heads": field(f"{arch}.attention.head_count_kv"),
        "num_hidden_layers": field(f"{arch}.block_count"),
        "rms_norm_eps": field(f"{arch}.attention.layer_norm_rms_epsilon"),
        "rope_theta": field(f"{arch}.rope.freq_base") if f"{arch}.rope.freq_base" in r.fields else 10000.0,
    }
    W = {}
    for t in r.tensors:
        a = quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        a = a.reshape([int(d) for d in reversed(t.shape.tolist())])
        n = t.name
        if n == "token_embd.weight":
            W["model.embed_tokens.weight"] = a
        elif n == "output_norm.weight":
            W["model.norm.weight"] = a
        elif n == "output.weight":
            W["lm_head.weight"] = a
        elif n.startswith("blk."):
            _, i, base, kind = n.split(".")
            W[f"model.layers.{i}.{GGUF_NAMES[base]}.{kind}"] = a
    return W, cfg


def load_hf(d):
    from safetensors.numpy import load_file
    cfg = json.load(open(f"{d}/config.json"))
    W = {k: v.astype(np.float64) for k, v in load_file(f"{d}/model.safetensors").items()}
    if cfg.get("tie_word_embeddings") and "lm_head.weight" in W:
        del W["lm_head.weight"]
    return W, cfg


def make_hf(d, arch, seed):
    import os
    from safetensors.numpy import save_file
    rng = np.random.default_rng(seed)
    H, nh, nkv, hd, ff, L, V = 64, 4, 2, 16, 96, 2, 300
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": ff,
           "num_attention_heads": nh, "num_key_value_heads": nkv, "num_hidden_layers": L, "vocab_size": V,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
           "tie_word_embeddings": arch != "llama3", "head_dim": hd, "hidden_act": "silu", "torch_dtype": "float32"}
    if arch == "llama3":
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
        cfg["rope_theta"] = 500000.0
    if arch == "qwen2":
        cfg.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2")
    if arch == "qwen3":
        cfg.update(architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=24)
    hd = cfg["head_dim"]
    W = {"model.embed_tokens.weight": rng.normal(0, 0.5, (V, H)), "model.norm.weight": 1 + 0.1 * rng.normal(size=H)}
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = rng.normal(0, 0.3, (V, H))
    for i in range(L):
        p = f"model.layers.{i}."
        shapes = {"self_attn.q_proj": (nh * hd, H), "self_attn.k_proj": (nkv * hd, H), "self_attn.v_proj": (nkv * hd, H),
                  "self_attn.o_proj": (H, nh * hd), "mlp.gate_proj": (ff, H), "mlp.up_proj": (ff, H),
                  "mlp.down_proj": (H, ff)}
        for n, s in shapes.items():
            W[p + n + ".weight"] = rng.normal(0, 1 / np.sqrt(s[1]), s)
        if arch == "qwen2":
            for n in ("q_proj", "k_proj", "v_proj"):
                W[p + f"self_attn.{n}.bias"] = rng.normal(0, 0.2, shapes["self_attn." + n][0])
        if arch == "qwen3":
            W[p + "self_attn.q_norm.weight"] = 1 + 0.1 * rng.normal(size=hd)
            W[p + "self_attn.k_norm.weight"] = 1 + 0.1 * rng.normal(size=hd)
        W[p + "input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=H)
        W[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.normal(size=H)
    os.makedirs(d, exist_ok=True)
    save_file({k: v.astype(np.float32) for k, v in W.items()}, f"{d}/model.safetensors")
    json.dump(cfg, open(f"{d}/config.json", "w"), indent=1)


def main(argv):
    if argv[1] == "make-hf":
        make_hf(argv[2], argv[3], int(argv[4]))
        return
    W, cfg = load_gguf(argv[2]) if argv[1] == "gguf" else load_hf(argv[2])
    tokens = np.load(argv[3]).astype(np.int64)
    logits = forward(W, cfg, tokens, rope_adjacent if argv[1] == "gguf" else rope_rotate_half)
    np.save(argv[4], logits.astype(np.float32))


if __name__ == "__main__":
    main(sys.argv)
