"""Tiny random models written both as a Hugging Face folder and as a GGUF, for fpq's ModelSource tests.

  model_io_models.py tiny OUT_DIR SEED ARCH        (ARCH: llama, qwen2 or qwen3)
      OUT_DIR/hf/    config.json + safetensors shards (BF16 weights, one F16 weight, F32 norms), saved with
                     the `safetensors` package; llama gets model.safetensors.index.json, the others do not.
      OUT_DIR/model.gguf  the same weights through gguf.GGUFWriter, named and laid out as llama.cpp's
                     convert_hf_to_gguf.py writes them: for llama the Q/K rows permuted (LlamaModel.permute),
                     Llama 3 rope scaling as a rope_freqs tensor (LlamaModel.generate_extra_tensors).
      OUT_DIR/ref/<hf name>.npy  every weight in float32, HF layout.
      OUT_DIR/expected.json  the config values and HF's inverse RoPE frequencies (float64).
"""
import json
import math
import os
import sys

import ml_dtypes
import numpy as np
import gguf
from safetensors.numpy import save_file


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def hf_inv_freq(theta, dim, rope_scaling):
    """transformers' default and llama3 inverse frequencies, in float64."""
    inv = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    if rope_scaling and rope_scaling["rope_type"] == "llama3":
        factor, lo, hi = rope_scaling["factor"], rope_scaling["low_freq_factor"], rope_scaling["high_freq_factor"]
        old = rope_scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = np.where(medium, smoothed, scaled)
    return inv


def llama3_rope_factors(theta, dim, rs):
    """convert_hf_to_gguf.py LlamaModel.generate_extra_tensors (rope_freqs.weight)."""
    freqs = 1.0 / (np.float32(theta) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < old / hi:
            out.append(1.0)
        elif wavelen > old / lo:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def tiny(out_dir, seed, arch):
    rng = np.random.default_rng(seed)
    n_head = int(rng.choice([4, 6]))
    n_kv = int(rng.choice([d for d in (1, 2, 3, n_head) if n_head % d == 0]))
    head_dim = int(rng.choice([8, 16]))
    hidden = n_head * head_dim if arch != "qwen3" else n_head * head_dim - 16  # qwen3: explicit head_dim
    layers, inter, vocab = 2, int(rng.choice([40, 64])), int(rng.integers(300, 400))
    theta = {"llama": 500000.0, "qwen2": 1000000.0, "qwen3": 1000000.0}[arch]
    eps = float(rng.choice([1e-5, 1e-6]))
    tie = arch != "llama"
    cfg = {"model_type": arch, "architectures": [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                                                 "qwen3": "Qwen3ForCausalLM"}[arch]],
           "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
           "num_attention_heads": n_head, "num_key_value_heads": n_kv, "rms_norm_eps": eps, "rope_theta": theta,
           "max_position_embeddings": 4096, "tie_word_embeddings": tie, "bos_token_id": 1,
           "eos_token_id": [2, 3] if arch == "llama" else 2, "torch_dtype": "bfloat16"}
    rope_scaling = None
    if arch == "llama":
        rope_scaling = {"rope_type": "llama3", "factor": float(rng.choice([8.0, 32.0])), "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        cfg["rope_scaling"] = rope_scaling
    if arch == "qwen3":
        cfg["head_dim"] = head_dim
        cfg["attention_bias"] = False

    def bf16(shape, scale=0.1):
        return (rng.standard_normal(shape) * scale).astype(ml_dtypes.bfloat16)

    hf = {}  # name -> array in its stored dtype
    hf["model.embed_tokens.weight"] = bf16((vocab, hidden))
    for i in range(layers):
        p = f"model.layers.{i}."
        hf[p + "input_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32)
        hf[p + "post_attention_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32)
        hf[p + "self_attn.q_proj.weight"] = bf16((n_head * head_dim, hidden))
        hf[p + "self_attn.k_proj.weight"] = bf16((n_kv * head_dim, hidden))
        hf[p + "self_attn.v_proj.weight"] = bf16((n_kv * head_dim, hidden))
        if i == 1:  # one F16 weight
            hf[p + "self_attn.v_proj.weight"] = (rng.standard_normal((n_kv * head_dim, hidden)) * 0.1).astype(np.float16)
        hf[p + "self_attn.o_proj.weight"] = bf16((hidden, n_head * head_dim))
        if arch == "qwen2":
            hf[p + "self_attn.q_proj.bias"] = bf16(n_head * head_dim)
            hf[p + "self_attn.k_proj.bias"] = bf16(n_kv * head_dim)
            hf[p + "self_attn.v_proj.bias"] = bf16(n_kv * head_dim)
        if arch == "qwen3":
            hf[p + "self_attn.q_norm.weight"] = (1 + 0.1 * rng.standard_normal(head_dim)).astype(np.float32)
            hf[p + "self_attn.k_norm.weight"] = (1 + 0.1 * rng.standard_normal(head_dim)).astype(np.float32)
        hf[p + "mlp.gate_proj.weight"] = bf16((inter, hidden))
        hf[p + "mlp.up_proj.weight"] = bf16((inter, hidden))
        hf[p + "mlp.down_proj.weight"] = bf16((hidden, inter))
    hf["model.norm.weight"] = (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32)
    if not tie:
        hf["lm_head.weight"] = bf16((vocab, hidden))

    # The HF folder: two shards.
    hf_dir = os.path.join(out_dir, "hf")
    ref_dir = os.path.join(out_dir, "ref")
    os.makedirs(hf_dir)
    os.makedirs(ref_dir)
    names = list(hf)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for fname, ns in shards.items():
        save_file({n: hf[n] for n in ns}, os.path.join(hf_dir, fname), metadata={"format": "pt"})
    if arch == "llama":
        with open(os.path.join(hf_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": {n: fname for fname, ns in shards.items() for n in ns}}, f)
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for n, a in hf.items():
        np.save(os.path.join(ref_dir, n + ".npy"), a.astype(np.float32))

    # The GGUF, as convert_hf_to_gguf.py names and lays it out.
    w = gguf.GGUFWriter(os.path.join(out_dir, "model.gguf"), arch=arch)
    w.add_block_count(layers)
    w.add_context_length(4096)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(eps)
    w.add_vocab_size(vocab)
    w.add_rope_dimension_count(head_dim)
    if arch == "qwen3":
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_uint32("tokenizer.ggml.bos_token_id", 1)
    w.add_uint32("tokenizer.ggml.eos_token_id", 2)
    gname = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    layer_map = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                 "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                 "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                 "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
                 "self_attn.v_proj.bias": "attn_v.bias", "self_attn.q_norm.weight": "attn_q_norm.weight",
                 "self_attn.k_norm.weight": "attn_k_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
                 "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
    stored = {}
    for n, a in hf.items():
        if n.startswith("model.layers."):
            i, rest = n[len("model.layers."):].split(".", 1)
            g = f"blk.{i}.{layer_map[rest]}"
        else:
            g = gname[n]
        x = a.astype(np.float32)
        if arch == "llama" and ("q_proj" in n or "k_proj" in n):
            x = permute(x, n_head, n_head if "q_proj" in n else n_kv)
        if a.dtype == ml_dtypes.bfloat16 and x.shape[-1] % 2 == 0 and rng.random() < 0.5:
            w.add_tensor(g, gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16),
                         raw_dtype=gguf.GGMLQuantizationType.BF16)
            stored[n] = "BF16"
        else:
            w.add_tensor(g, x)
            stored[n] = "F32"
    if rope_scaling:
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(theta, head_dim, rope_scaling))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    expected = {"arch": arch, "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inter,
                "num_layers": layers, "num_heads": n_head, "num_kv_heads": n_kv, "head_dim": head_dim,
                "rope_theta": theta, "rms_norm_eps": eps, "tie_word_embeddings": tie,
                "qkv_bias": arch == "qwen2", "qk_norm": arch == "qwen3",
                "inv_freq": hf_inv_freq(theta, head_dim, rope_scaling).tolist(),
                "hf_names": names, "gguf_stored": stored,
                "hf_stored": {n: {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}[str(a.dtype)]
                              for n, a in hf.items()}}
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    if sys.argv[1] == "tiny":
        tiny(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")
