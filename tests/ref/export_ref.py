"""Independent readers of fpq's exports (tokenizers, gguf-py, safetensors + ml_dtypes, llama.cpp) for tests/export.

  export_ref.py tokenizer DIR OUT_DIR SEED
      Loads DIR/tokenizer.json with `tokenizers` and DIR/tokenizer_config.json, encodes a fresh random corpus (that of
      model_io_tokenizer.py) with and without special tokens, decodes it, and writes OUT_DIR/cases.json.
  export_ref.py make-tokenizer DIR VOCAB STYLE SEED
      Trains a byte-level BPE tokenizer of exactly VOCAB tokens (STYLE gpt2: ByteLevel's regex; smollm: Digits +
      ByteLevel; llama3: Llama 3's Split regex + ByteLevel) with `tokenizers` and writes DIR/tokenizer.json and
      DIR/tokenizer_config.json (bos/eos, a chat template).
  export_ref.py gguf-read GGUF OUT_DIR [TENSOR_PREFIX ...]
      Reads the file with gguf.GGUFReader: OUT_DIR/gguf.json holds every metadata key (value types and values) and
      every tensor's name, ggml type, ne and byte size; the tensors whose names start with a TENSOR_PREFIX (all when
      none is given) are dequantized with gguf.quants.dequantize into OUT_DIR/<name>.npy (float32, row-major).
  export_ref.py llama-logits GGUF TOKENS OUT.npy
      Loads the file with llama.cpp (llama-cpp-python), evaluates the comma-separated TOKENS and writes the logits of
      every position. Writes nothing (and says so) when llama_cpp cannot be imported.
  export_ref.py ct-check DIR EXPECTED_DIR
      Reads a compressed-tensors NVFP4 export: config.json's quantization_config, and model.safetensors with
      `safetensors` (F8_E4M3 / BF16 tensors, which its numpy backend lacks, from the header's offsets and viewed as
      ml_dtypes types). Checks names, shapes and dtypes against EXPECTED_DIR/expected.json, dequantizes every
      projection by compressed-tensors' definition (code * (weight_scale / weight_global_scale), float32) and
      compares with EXPECTED_DIR/<layer>.npy (fpq's dequantized weight) and the stored bytes with <layer>.codes.bin /
      <layer>.scales.bin (fpq's codes and scales); BF16 tensors with the RNE rounding of <name>.npy. Writes
      EXPECTED_DIR/result.json.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# ---- tokenizer ---------------------------------------------------------------------------------------------------

def tokenizer_mode(d, out_dir, seed):
    from tokenizers import Tokenizer
    from model_io_tokenizer import corpus
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    cfg = json.load(open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8"))
    cases = []
    for text in corpus(seed):
        plain = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        cases.append({"text": text, "ids": plain, "ids_special": special,
                      "decoded": tok.decode(plain, skip_special_tokens=False)})
    out = {"vocab_size": tok.get_vocab_size(with_added_tokens=True), "config": cfg, "cases": cases}
    with open(os.path.join(out_dir, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)


LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def make_tokenizer(d, vocab, style, seed):
    import random
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from model_io_tokenizer import corpus
    texts = corpus(seed)
    rnd = random.Random(seed)
    rnd.shuffle(texts)
    tok = Tokenizer(models.BPE(ignore_merges=style == "llama3"))
    if style == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif style == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False)])
    elif style == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        raise SystemExit(f"unknown style {style}")
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    i = 0
    while tok.get_vocab_size(with_added_tokens=True) < vocab:
        tok.add_tokens([f"<extra_{i}>"])
        i += 1
    if tok.get_vocab_size(with_added_tokens=True) != vocab:
        raise SystemExit(f"trained {tok.get_vocab_size()} tokens, wanted {vocab}")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    cfg = {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "add_bos_token": False,
           "chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"}
    json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)


# ---- GGUF --------------------------------------------------------------------------------------------------------

def plain(v):
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", errors="replace")
    return v


def gguf_read(path, out_dir, prefixes):
    import gguf
    from gguf.quants import dequantize
    r = gguf.GGUFReader(path)
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        meta[k] = {"types": [t.name for t in f.types], "value": plain(f.contents())}
    tensors = []
    for t in r.tensors:
        ne = [int(x) for x in t.shape]
        tensors.append({"name": t.name, "type": t.tensor_type.name, "ne": ne, "n_bytes": int(t.n_bytes)})
        if prefixes and not any(t.name.startswith(p) for p in prefixes):
            continue
        a = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(list(reversed(ne)))
        np.save(os.path.join(out_dir, t.name + ".npy"), np.ascontiguousarray(a))
    json.dump({"meta": meta, "tensors": tensors, "alignment": int(r.alignment)},
              open(os.path.join(out_dir, "gguf.json"), "w"), ensure_ascii=False)


def llama_logits(path, tokens, out):
    try:
        import llama_cpp
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"llama_cpp unavailable: {e}")
        return
    toks = [int(t) for t in tokens.split(",")]
    m = llama_cpp.Llama(model_path=path, n_ctx=max(64, len(toks)), n_batch=max(64, len(toks)), logits_all=True,
                        verbose=False, n_threads=2)
    m.eval(toks)
    np.save(out, np.array(m.scores[:len(toks)], dtype=np.float32))


# ---- compressed-tensors -----------------------------------------------------------------------------------------

E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], np.float32)


def raw_tensors(path):
    """name -> (dtype, shape, raw bytes), straight from the safetensors header."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, e_ = e["data_offsets"]
        out[name] = (e["dtype"], list(e["shape"]), data[b:e_])
    return out, header.get("__metadata__", {})


def as_array(dtype, shape, raw):
    import ml_dtypes
    types = {"BF16": ml_dtypes.bfloat16, "F8_E4M3": ml_dtypes.float8_e4m3fn, "F32": np.float32, "U8": np.uint8}
    return np.frombuffer(raw, dtype=types[dtype]).reshape(shape)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def ct_check(d, exp_dir):
    import ml_dtypes
    from safetensors import safe_open
    exp = json.load(open(os.path.join(exp_dir, "expected.json")))
    cfg = json.load(open(os.path.join(d, "config.json")))
    qc = cfg["quantization_config"]
    w4a4 = exp["scheme"] == "NVFP4"
    # quantization_config as compressed-tensors / llm-compressor write it for NVFP4.
    check(qc["quant_method"] == "compressed-tensors", qc)
    check(qc["format"] == "nvfp4-pack-quantized", qc)
    check(qc["quantization_status"] == "compressed", qc)
    check("lm_head" in qc["ignore"], qc["ignore"])
    check(sorted(qc["ignore"]) == sorted(["lm_head"] + exp["ignored"]), (qc["ignore"], exp["ignored"]))
    groups = qc["config_groups"]
    check(list(groups) == ["group_0"], groups)
    g = groups["group_0"]
    check(g["targets"] == ["Linear"] and g["format"] == "nvfp4-pack-quantized", g)
    w = g["weights"]
    check((w["num_bits"], w["type"], w["strategy"], w["group_size"], w["symmetric"], w["dynamic"]) ==
          (4, "float", "tensor_group", 16, True, False), w)
    a = g["input_activations"]
    if w4a4:
        check((a["num_bits"], a["type"], a["strategy"], a["group_size"], a["symmetric"], a["dynamic"]) ==
              (4, "float", "tensor_group", 16, True, "local"), a)
    else:
        check(a is None, a)
    check(cfg["torch_dtype"] == "bfloat16", cfg.get("torch_dtype"))

    raw, _ = raw_tensors(os.path.join(d, "model.safetensors"))
    result = {"layers": {}, "float": {}}
    with safe_open(os.path.join(d, "model.safetensors"), framework="np") as f:
        keys = set(f.keys())
        check(keys == set(raw), "safetensors and the header disagree on names")
        for k in keys:  # the package's own view of every header entry
            s = f.get_slice(k)
            check(s.get_dtype() == raw[k][0] and list(s.get_shape()) == raw[k][1], k)
        want = set()
        for name, L in exp["layers"].items():
            out_f, in_f = L["shape"]
            names = {"weight_packed": ("U8", [out_f, in_f // 2]), "weight_scale": ("F8_E4M3", [out_f, in_f // 16]),
                     "weight_global_scale": ("F32", [1])}
            if w4a4:
                names["input_global_scale"] = ("F32", [1])
            for suffix, (dt, shape) in names.items():
                k = f"{name}.{suffix}"
                want.add(k)
                check(k in keys, f"missing {k}")
                check(raw[k][0] == dt and raw[k][1] == shape, f"{k}: {raw[k][0]} {raw[k][1]}, want {dt} {shape}")
            packed = f.get_tensor(f"{name}.weight_packed")
            # The stored bytes are fpq's own codes and E4M3 scales, untouched.
            codes_fpq = np.fromfile(os.path.join(exp_dir, name + ".codes.bin"), dtype=np.uint8)
            scales_fpq = np.fromfile(os.path.join(exp_dir, name + ".scales.bin"), dtype=np.uint8)
            bytes_equal = (np.array_equal(packed.reshape(-1), codes_fpq) and
                           np.frombuffer(raw[f"{name}.weight_scale"][2], np.uint8).tobytes() == scales_fpq.tobytes())
            codes = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(out_f, in_f)
            _, scale_shape, scale_raw = raw[f"{name}.weight_scale"]
            scale = as_array("F8_E4M3", scale_shape, scale_raw).astype(np.float32)
            gs = f.get_tensor(f"{name}.weight_global_scale").astype(np.float32)
            # compressed-tensors' dequantize: scale = scale / global_scale; x = x_q * scale (float32).
            s32 = (scale / gs[0]).astype(np.float32)
            deq = (E2M1[codes] * np.repeat(s32, 16, axis=1)).astype(np.float32)
            ref = np.load(os.path.join(exp_dir, name + ".npy"))
            check(ref.shape == deq.shape, f"{name}: shape {deq.shape} vs {ref.shape}")
            # Distance in float32 ulps of the reference (exact values differ only by the reciprocal's rounding).
            ulp = np.spacing(np.abs(ref).astype(np.float32))
            diff = np.abs(deq.astype(np.float64) - ref.astype(np.float64))
            ulps = np.where(diff == 0, 0.0, diff / np.maximum(ulp, np.finfo(np.float32).tiny))
            exact64 = (E2M1[codes].astype(np.float64) * scale.astype(np.float64).repeat(16, axis=1)
                       / np.float64(gs[0]))
            rel64 = np.max(np.abs(exact64 - ref) / np.maximum(np.abs(ref), 1e-30)) if ref.size else 0.0
            entry = {"bytes_equal": bool(bytes_equal),
                     "global_ok": bool(gs[0] == np.float32(1) / np.float32(L["global"])),
                     "weight_global_scale": float(gs[0]), "max_ulps": float(ulps.max()) if ulps.size else 0.0,
                     "exact": int((deq == ref).sum()), "count": int(ref.size), "max_rel64": float(rel64)}
            if w4a4:
                igs = float(f.get_tensor(f"{name}.input_global_scale")[0])
                entry["input_global_scale"] = igs
                if L.get("act_static") is not None:
                    entry["input_ok"] = igs == float(np.float32(1) / np.float32(L["act_static"]))
                else:
                    entry["input_ok"] = igs == float(np.float32(448.0 * 6.0) / np.float32(L["act_amax"]))
            result["layers"][name] = entry
        for name, shape in exp["float"].items():  # embeddings, norms, lm_head, unquantized layers: BF16
            want.add(name)
            check(name in keys, f"missing {name}")
            check(raw[name][0] == "BF16" and raw[name][1] == shape, f"{name}: {raw[name][0]} {raw[name][1]}")
            got = as_array("BF16", raw[name][1], raw[name][2])
            ref = np.load(os.path.join(exp_dir, name + ".npy")).astype(ml_dtypes.bfloat16)  # RNE
            result["float"][name] = bool(np.array_equal(got.view(np.uint16), ref.view(np.uint16)))
        check(keys == want, f"unexpected tensors {sorted(keys - want)}, missing {sorted(want - keys)}")
    json.dump(result, open(os.path.join(exp_dir, "result.json"), "w"), indent=1)


def main(argv):
    mode = argv[1]
    if mode == "tokenizer":
        tokenizer_mode(argv[2], argv[3], int(argv[4]))
    elif mode == "make-tokenizer":
        make_tokenizer(argv[2], int(argv[3]), argv[4], int(argv[5]))
    elif mode == "gguf-read":
        gguf_read(argv[2], argv[3], argv[4:])
    elif mode == "llama-logits":
        llama_logits(argv[2], argv[3], argv[4])
    elif mode == "ct-check":
        ct_check(argv[2], argv[3])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
