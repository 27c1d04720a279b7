"""Four-Over-Six NVFP4 (Cook et al., "Four Over Six: More Accurate NVFP4 Quantization with Adaptive Block
Scaling"), re-implemented in numpy from the paper's definition as its reference code states it:
  global decode scale  g = amax(x) / (6 * 256)         (E4M3 block scales are capped at 256, so that the
  scale_6 = e4m3(block_amax * 256 / amax)                "map to 4" scale, 1.5x larger, stays <= 384 < 448)
  scale_4 = e4m3(block_amax * 256 / amax * 1.5)
  candidate = e2m1(x * 6 * 256 / (amax * scale)),  dequantized = candidate * scale * amax / (6 * 256)
  per block of 16, the candidate with the lower squared error wins (ties: scale_6).

Usage: quant_4o6_ref.py IN.npy SCALES.npy DEQ.npy   (IN: rows x cols float32; SCALES: e4m3 values per block)
"""
import sys

import ml_dtypes
import numpy as np

F32 = np.float32


def e2m1(v):
    v = np.clip(v.astype(F32), F32(-6), F32(6))
    return v.astype(ml_dtypes.float4_e2m1fn).astype(F32)


def e4m3(v):
    return np.minimum(v.astype(F32), F32(448)).astype(ml_dtypes.float8_e4m3fn).astype(F32)


def main():
    x = np.load(sys.argv[1]).astype(F32)
    rows, cols = x.shape
    blocks = x.reshape(-1, 16)
    amax = F32(np.max(np.abs(x)))
    bamax = np.max(np.abs(blocks), axis=1)
    s6 = e4m3(bamax * F32(256) / amax)
    s4 = e4m3(bamax * F32(256) / amax * F32(1.5))

    def candidate(s):
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s[:, None] != 0, e2m1(blocks * F32(6) * F32(256) / (amax * s[:, None])), F32(0))
        return (q * s[:, None] * amax / (F32(6) * F32(256))).astype(F32)

    d6, d4 = candidate(s6), candidate(s4)
    e6 = np.sum((d6.astype(np.float64) - blocks) ** 2, axis=1)
    e4 = np.sum((d4.astype(np.float64) - blocks) ** 2, axis=1)
    pick4 = e4 < e6
    scales = np.where(pick4, s4, s6)
    deq = np.where(pick4[:, None], d4, d6)
    np.save(sys.argv[2], scales.reshape(rows, cols // 16).astype(F32))
    np.save(sys.argv[3], deq.reshape(rows, cols).astype(F32))


if __name__ == "__main__":
    main()
