"""Reference values for fpq's numerics tests, computed with independent packages (ml_dtypes, gguf-py, numpy).

Usage (every array is a float32 .npy; codes and bytes are stored as float32 values 0..255):
  formats_ref.py decode OUT_DIR TYPE...        every code of each ml_dtypes type -> OUT_DIR/TYPE.npy
  formats_ref.py encode IN.npy OUT_DIR TYPE... ml_dtypes codes of IN (saturated to +-max first) -> OUT_DIR/TYPE.npy
  formats_ref.py ggml IN.npy OUT.npy TYPE      gguf.quants bytes of IN (rows x cols) for TYPE in Q4_0 Q4_1 Q8_0 Q8_1
  formats_ref.py mxfp4 IN.npy CODES.npy EXPS.npy TIES.npy   gguf MXFP4 codes/exponents in element order + tie mask
  formats_ref.py mx IN.npy CODES.npy SCALES.npy TYPE        OCP MX (float elements) from numpy + ml_dtypes
  formats_ref.py nvfp4 IN.npy CODES.npy SCALES.npy GLOBAL.npy  NVFP4 per the published definition
  formats_ref.py pack IN.npy OUT.npy BITS      LSB-first bit packing of codes via np.packbits
"""
import sys

import numpy as np
import ml_dtypes
import gguf
from gguf import quants

TYPES = {
    "e2m1": ml_dtypes.float4_e2m1fn,
    "e2m3": ml_dtypes.float6_e2m3fn,
    "e3m2": ml_dtypes.float6_e3m2fn,
    "e4m3": ml_dtypes.float8_e4m3fn,
    "e5m2": ml_dtypes.float8_e5m2,
    "e8m0": ml_dtypes.float8_e8m0fnu,
    "e3m4_ieee": ml_dtypes.float8_e3m4,
    "e4m3_ieee": ml_dtypes.float8_e4m3,
}
BITS = {"e2m1": 4, "e2m3": 6, "e3m2": 6}


def codes_of(arr):
    """uint8 codes of an ml_dtypes array (sub-byte types are stored one per byte)."""
    return arr.view(np.uint8)


def save(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def cmd_decode(out_dir, names):
    for n in names:
        dt = TYPES[n]
        ncodes = 1 << BITS.get(n, 8)
        vals = np.arange(ncodes, dtype=np.uint8).view(dt).astype(np.float32)
        save(f"{out_dir}/{n}.npy", vals)


def cmd_encode(inp, out_dir, names):
    x = np.load(inp).astype(np.float32)
    for n in names:
        dt = TYPES[n]
        mx = np.float32(ml_dtypes.finfo(dt).max)
        if n == "e8m0":
            # e8m0 has no zero or sign: references only for positive values in its range.
            y = np.clip(x, np.float32(2.0**-127), mx)
        else:
            y = np.clip(x, -mx, mx)  # saturation semantics; NaN passes through
        with np.errstate(all="ignore"):
            save(f"{out_dir}/{n}.npy", codes_of(y.astype(dt)).astype(np.float32))


def cmd_ggml(inp, out, name):
    x = np.load(inp).astype(np.float32)
    if name == "Q8_1":
        # llama.cpp's Q8_1: Q8_0's d and qs, plus s = f16(sum(qs) * d) with d the float32 amax / 127.
        blocks = x.reshape(-1, 32)
        d = np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)
        q80 = quants.quantize(x, gguf.GGMLQuantizationType.Q8_0).reshape(-1, 34)
        qs = q80[:, 2:].view(np.int8)
        s = (qs.astype(np.int32).sum(axis=1, keepdims=True).astype(np.float32) * d).astype(np.float16)
        out_bytes = np.concatenate([q80[:, :2], s.view(np.uint8), q80[:, 2:]], axis=1).reshape(x.shape[0], -1)
    else:
        qt = getattr(gguf.GGMLQuantizationType, name)
        out_bytes = quants.quantize(x, qt)
    save(out, out_bytes.astype(np.float32))


def cmd_mxfp4(inp, codes_out, exps_out, ties_out):
    x = np.load(inp).astype(np.float32)
    rows, cols = x.shape
    blocks = quants.quantize(x, gguf.GGMLQuantizationType.MXFP4).reshape(-1, 17)
    e = blocks[:, 0]
    qs = blocks[:, 1:]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=1)  # element order: j and j + 16
    # Values exactly halfway between two E2M1 magnitudes (after scaling) are ties: the spec rounds them to
    # even, llama.cpp's nearest search picks the first candidate.
    scale = np.where(e == 0, np.float32(2.0**-127), (e.astype(np.uint32) << 23).view(np.float32))
    v = np.abs(x.reshape(-1, 32) / scale[:, None])
    grid = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float32)
    mids = (grid[1:] + grid[:-1]) / 2
    ties = np.isin(v, mids)
    save(codes_out, codes.reshape(rows, cols).astype(np.float32))
    save(exps_out, e.reshape(rows, cols // 32).astype(np.float32))
    save(ties_out, ties.reshape(rows, cols).astype(np.float32))


def cmd_mx(inp, codes_out, scales_out, name):
    """OCP MX v1.0 with a float element type: shared exponent floor(log2(amax)) - emax_elem (clamped to the
    E8M0 range; 2^-127 for an all-zero block), elements = x / 2^e rounded by ml_dtypes (saturating)."""
    x = np.load(inp).astype(np.float64)
    dt = TYPES[name]
    mx = float(ml_dtypes.finfo(dt).max)
    emax = int(np.floor(np.log2(mx)))
    rows, cols = x.shape
    b = x.reshape(-1, 32)
    amax = np.abs(b).max(axis=1)
    _, ex = np.frexp(amax)  # amax = m * 2^ex, m in [0.5, 1): floor(log2(amax)) = ex - 1 exactly
    shared = np.where(amax > 0, np.clip(ex - 1 - emax, -127, 127), -127)
    scaled = b / np.exp2(shared)[:, None]
    codes = codes_of(np.clip(scaled, -mx, mx).astype(np.float32).astype(dt))
    save(codes_out, codes.reshape(rows, cols).astype(np.float32))
    save(scales_out, (shared + 127).reshape(rows, cols // 32).astype(np.float32))


def cmd_nvfp4(inp, codes_out, scales_out, global_out):
    """NVFP4 as NVIDIA defines it (TensorRT Model Optimizer's NVFP4 recipe): global = amax / (6 * 448), block
    scale = e4m3(block_amax / 6 / global), element = e2m1(x / (scale * global)); float32 arithmetic."""
    x = np.load(inp).astype(np.float32)
    rows, cols = x.shape
    g = np.float32(np.abs(x).max()) / np.float32(6.0 * 448.0)
    if g == 0:
        g = np.float32(1.0)
    b = x.reshape(-1, 16)
    s = (np.abs(b).max(axis=1) / np.float32(6.0) / g).astype(np.float32)
    s8 = np.clip(s, 0, 448).astype(ml_dtypes.float8_e4m3fn)
    seff = (s8.astype(np.float32) * g).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(seff[:, None] > 0, b / seff[:, None], np.float32(0)).astype(np.float32)
    codes = codes_of(np.clip(q, -6, 6).astype(ml_dtypes.float4_e2m1fn))
    save(codes_out, codes.reshape(rows, cols).astype(np.float32))
    save(scales_out, s8.view(np.uint8).reshape(rows, cols // 16).astype(np.float32))
    save(global_out, np.array([g], dtype=np.float32))


def cmd_pack(inp, out, bits):
    codes = np.load(inp).astype(np.uint8)
    bitarr = ((codes[:, None] >> np.arange(bits, dtype=np.uint8)) & 1).reshape(-1)
    save(out, np.packbits(bitarr, bitorder="little").astype(np.float32))


def main(argv):
    cmd = argv[1]
    if cmd == "decode":
        cmd_decode(argv[2], argv[3:])
    elif cmd == "encode":
        cmd_encode(argv[2], argv[3], argv[4:])
    elif cmd == "ggml":
        cmd_ggml(argv[2], argv[3], argv[4])
    elif cmd == "mxfp4":
        cmd_mxfp4(*argv[2:6])
    elif cmd == "mx":
        cmd_mx(*argv[2:6])
    elif cmd == "nvfp4":
        cmd_nvfp4(*argv[2:6])
    elif cmd == "pack":
        cmd_pack(argv[2], argv[3], int(argv[4]))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
