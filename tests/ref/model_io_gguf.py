"""GGUF files and gguf-py reference values for fpq's GGUF reader tests.

  model_io_gguf.py types OUT_DIR SEED
      Writes OUT_DIR/types.gguf with gguf.GGUFWriter: random tensors of every ggml type fpq dequantizes (from
      gguf.quants.quantize where gguf-py can quantize the type, and from random block bytes with finite scales
      for every type), metadata of every value type, and a random general.alignment. Writes each tensor's
      gguf.quants.dequantize result as OUT_DIR/<tensor>.npy, the metadata as OUT_DIR/meta.json, and a file
      whose general.alignment is not a power of two as OUT_DIR/bad_alignment.gguf.
  model_io_gguf.py real GGUF OUT_DIR
      Dequantizes a few tensors of a real model with gguf.GGUFReader + gguf.quants.dequantize (at most the
      first 64 rows of each) into OUT_DIR/<tensor>.npy, and lists them in OUT_DIR/real.json.
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

# Byte offsets of the f16 scale fields in each block (ggml-common.h), set to finite values in random blocks.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_NL: [0], T.IQ4_XS: [0], T.MXFP4: [], T.NVFP4: [],
}
QUANTIZABLE = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.MXFP4]


def random_f16(rng, n):
    """Finite f16 values across the whole exponent range (subnormals and zero included)."""
    mant = rng.uniform(-2.0, 2.0, n)
    exp = rng.integers(-26, 6, n).astype(np.float64)
    v = (mant * np.exp2(exp)).astype(np.float16)
    v[rng.random(n) < 0.02] = 0
    return v


def random_blocks(rng, qtype, n_blocks):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        raw[:, off:off + 2] = random_f16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw


def types_mode(out_dir, seed):
    rng = np.random.default_rng(seed)
    alignment = int(rng.choice([8, 16, 32, 64, 128, 256]))
    w = gguf.GGUFWriter(os.path.join(out_dir, "types.gguf"), arch="llama")
    w.add_custom_alignment(alignment)
    tensors = []

    def add(name, qtype, raw, shape_hint):
        # raw: uint8 (..., row_bytes) for block types, or a float array for F32/F16.
        if qtype in (T.F32, T.F16):
            w.add_tensor(name, raw)
            ref = raw.astype(np.float32)
        else:
            w.add_tensor(name, raw, raw_dtype=qtype)
            with np.errstate(over="ignore"):  # random MXFP4 scales reach 2^127: inf, as in ggml
                ref = dequantize(raw, qtype).astype(np.float32)
        np.save(os.path.join(out_dir, name + ".npy"), np.ascontiguousarray(ref))
        tensors.append({"name": name, "type": qtype.name, "shape": list(ref.shape)})

    def random_shape(block):
        lead = [int(rng.integers(1, 5))]
        if rng.random() < 0.3:
            lead = [int(rng.integers(1, 3))] + lead
        if rng.random() < 0.2:
            lead = []
        return lead, block * int(rng.integers(1, 5))

    # Plain types: every bit pattern of F16/BF16 (NaN, inf and subnormals included).
    lead, cols = random_shape(1)
    add("F32.random", T.F32, rng.standard_normal((*lead, cols)).astype(np.float32) * 10, None)
    lead, cols = random_shape(1)
    add("F16.random", T.F16, rng.integers(0, 65536, (*lead, cols), dtype=np.uint16).view(np.float16), None)
    lead, cols = random_shape(1)
    add("BF16.random", T.BF16, rng.integers(0, 256, (*lead, cols * 2), dtype=np.uint8), None)
    lead, cols = random_shape(1)
    add("BF16.quantized", T.BF16, quantize(rng.standard_normal((*lead, cols)).astype(np.float32), T.BF16), None)

    for qtype in F16_FIELDS:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        lead, cols = random_shape(block)
        n_blocks = int(np.prod(lead, dtype=np.int64)) * (cols // block)
        add(f"{qtype.name}.random", qtype, random_blocks(rng, qtype, n_blocks).reshape(*lead, cols // block * size), None)
        if qtype in QUANTIZABLE:
            lead, cols = random_shape(block)
            x = rng.standard_normal((*lead, cols)).astype(np.float32) * np.float32(rng.uniform(0.01, 100))
            x[..., : block // 2] = 0  # an all-zero half block
            add(f"{qtype.name}.quantized", qtype, quantize(x, qtype), None)

    meta = {}

    def kv(key, value, vtype, sub=None, expect=None):
        w.add_key_value(key, value, vtype, sub)
        meta[key] = {"type": vtype.name if sub is None else f"ARRAY:{sub.name}",
                     "value": value if expect is None else expect}

    V = gguf.GGUFValueType
    kv("test.u8", int(rng.integers(0, 256)), V.UINT8)
    kv("test.i8", int(rng.integers(-128, 128)), V.INT8)
    kv("test.u16", int(rng.integers(0, 65536)), V.UINT16)
    kv("test.i16", int(rng.integers(-32768, 32768)), V.INT16)
    kv("test.u32", int(rng.integers(0, 2**32)), V.UINT32)
    kv("test.i32", int(rng.integers(-2**31, 2**31)), V.INT32)
    kv("test.u64", int(rng.integers(0, 2**63)), V.UINT64)
    kv("test.i64", int(rng.integers(-2**63, 2**63 - 1)), V.INT64)
    f = float(rng.standard_normal())
    kv("test.f32", f, V.FLOAT32, expect=float(np.float32(f)))
    kv("test.f64", float(rng.standard_normal()), V.FLOAT64)
    kv("test.bool", bool(rng.random() < 0.5), V.BOOL)
    kv("test.string", "héllo wörld ✓ " + str(seed), V.STRING)
    kv("test.empty_string", "", V.STRING)
    ints = [int(v) for v in rng.integers(-1000, 1000, int(rng.integers(1, 20)))]  # GGUFWriter refuses empty arrays
    kv("test.array_i32", ints, V.ARRAY, V.INT32)
    floats = [float(np.float32(v)) for v in rng.standard_normal(5)]
    kv("test.array_f32", floats, V.ARRAY, V.FLOAT32)
    kv("test.array_str", ["a", "", "日本", "x y"], V.ARRAY, V.STRING)
    kv("test.array_u8", [1, 2, 255], V.ARRAY, V.UINT8)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(out_dir, "meta.json"), "w") as fp:
        json.dump({"alignment": alignment, "tensors": tensors, "meta": meta}, fp)

    # general.alignment written as a plain u32 that is not a power of two.
    w = gguf.GGUFWriter(os.path.join(out_dir, "bad_alignment.gguf"), arch="llama")
    w.add_uint32("general.alignment", 48)
    w.add_tensor("x", np.ones(32, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def real_mode(path, out_dir):
    r = gguf.GGUFReader(path)
    wanted = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.29.ffn_down.weight",
              "output_norm.weight", "blk.3.attn_norm.weight"]
    out = []
    for t in r.tensors:
        if t.name not in wanted:
            continue
        data = t.data  # rows of raw bytes (block types) or values
        rows = data[:64] if data.ndim > 1 else data
        ref = dequantize(np.ascontiguousarray(rows), t.tensor_type).astype(np.float32)
        np.save(os.path.join(out_dir, t.name + ".npy"), ref)
        out.append({"name": t.name, "type": t.tensor_type.name, "shape": [int(d) for d in reversed(t.shape)]})
    with open(os.path.join(out_dir, "real.json"), "w") as fp:
        json.dump({"tensors": out}, fp)


if __name__ == "__main__":
    if sys.argv[1] == "types":
        types_mode(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "real":
        real_mode(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")
