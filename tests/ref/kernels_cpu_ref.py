"""Reference values for fpq's CPU kernel tests, from gguf-py and numpy (float64).

Usage (arrays are float32 .npy; bytes are stored as float32 values 0..255):
  kernels_cpu_ref.py q4_0_q8_1 W.npy A.npy WQ.npy AQ.npy C.npy
      W (M x K) -> Q4_0 bytes with gguf.quants; A (N x K) -> Q8_1 bytes (llama.cpp's quantize_row_q8_1);
      C = dequant(W) . dequant(A)^T in float64 (M x N), dequantized with gguf.quants / numpy.
"""
import sys

import numpy as np
import gguf
from gguf import quants


def save(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def q8_1(x):
    # llama.cpp's Q8_1: d = amax / 127 (float32), qs = round-half-away(x / d), s = f16(sum(qs) * d).
    blocks = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    v = (blocks * idv).astype(np.float32)
    qs = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int8)
    s = (qs.astype(np.int32).sum(axis=1, keepdims=True).astype(np.float32) * d).astype(np.float16)
    out = np.concatenate([d.astype(np.float16).view(np.uint8), s.view(np.uint8), qs.view(np.uint8)], axis=1)
    return out.reshape(x.shape[0], -1), qs.astype(np.float64) * d.astype(np.float16).astype(np.float64)


def cmd_q4_0_q8_1(w_path, a_path, wq_out, aq_out, c_out):
    w = np.load(w_path).astype(np.float32)
    a = np.load(a_path).astype(np.float32)
    wq = quants.quantize(w, gguf.GGMLQuantizationType.Q4_0)
    wd = quants.dequantize(wq, gguf.GGMLQuantizationType.Q4_0).astype(np.float64)
    aq, ad = q8_1(a)
    ad = ad.reshape(a.shape)
    c = wd @ ad.T
    save(wq_out, wq.reshape(w.shape[0], -1))
    save(aq_out, aq)
    save(c_out, c)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "q4_0_q8_1":
        cmd_q4_0_q8_1(*sys.argv[2:7])
    else:
        sys.exit(f"unknown command {cmd}")
