"""Independent numpy GPTQ for fpq's quant tests (Frantar et al., 2022, Algorithm 1, with blocks, groups and
act order as in the authors' code), for formats numpy + ml_dtypes can express exactly.

Usage:
  quant_gptq_ref.py FORMAT W.npy H.npy OUT.npy BLOCK PERCDAMP ACT_ORDER STATIC_GROUPS
    FORMAT: int4_g32 (int4, fp16 absmax scale / 7 per 32), mxfp4 (OCP MX: e2m1, e8m0 2^(floor(log2 amax) - 2)
            per 32), nvfp4 (e2m1, e4m3 scale of block amax / 6 / g per 16, g = amax(W) / (6 * 448))
    W: N x K float32 weight; H: K x K float32 Hessian (2/n X^T X); OUT: the dequantized GPTQ weight (float32).

The algorithm (float64 except the quantization, which is float32 as fpq's formats define it):
  dead = diag(H) == 0: H[dead, dead] = 1, W[:, dead] = 0
  act order: perm = stable argsort of -diag(H); groups are the original contiguous groups and every group's
  scale is fitted before any update ("static groups"; also used when STATIC_GROUPS=1 without act order).
  Otherwise a group's scale is fitted when its first column is reached, from the group's current values.
  H += percdamp * mean(diag(H)) * I;  U = upper Cholesky factor of H^-1 (H^-1 = U^T U)
  for each block of BLOCK columns: quantize column i, err = (w - q) / U[i, i], W1[:, i:] -= err U[i, i:];
  after the block W[:, rest] -= Err @ U[block, rest].
BLOCK is first made a multiple of the group (or a divisor of it when the group is larger), as fpq does.
"""
import sys

import ml_dtypes
import numpy as np

F32 = np.float32


def e2m1_round(v):
    """float32 -> nearest E2M1 value (ties to even, saturating at +-6), as float32."""
    v = np.clip(v.astype(F32), F32(-6), F32(6))
    return v.astype(ml_dtypes.float4_e2m1fn).astype(F32)


class Int4G32:
    group = 32

    def global_scale(self, W):
        return F32(1)

    def fit(self, x, g):  # x: rows x group float32 -> scale per row (float32)
        amax = np.max(np.abs(x), axis=1)
        return (amax / F32(7)).astype(np.float16).astype(F32)

    def quant(self, x, s, g):
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s > 0, np.rint(x / s), F32(0))
        q = np.clip(q, -8, 7).astype(F32)
        return q * s


class Mxfp4:
    group = 32

    def global_scale(self, W):
        return F32(1)

    def fit(self, x, g):
        amax = np.max(np.abs(x), axis=1).astype(np.float64)
        e = np.zeros(amax.shape, dtype=np.int64)
        nz = amax > 0
        e[nz] = np.frexp(amax[nz])[1] - 1 - 2  # floor(log2(amax)) - emax(E2M1) = - 2
        e = np.clip(e, -127, 127)
        return np.ldexp(np.float64(1), e).astype(F32)

    def quant(self, x, s, g):
        return e2m1_round(x / s) * s


class Nvfp4:
    group = 16

    def global_scale(self, W):
        amax = F32(np.max(np.abs(W)))
        return amax / (F32(6) * F32(448)) if amax > 0 else F32(1)

    def fit(self, x, g):
        amax = np.max(np.abs(x), axis=1).astype(F32)
        t = np.minimum(amax / F32(6) / g, F32(448))
        return t.astype(ml_dtypes.float8_e4m3fn).astype(F32)

    def quant(self, x, s, g):
        s_eff = (s * g).astype(F32)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s_eff > 0, e2m1_round(x / s_eff), F32(0))
        return ((q * s).astype(F32) * g).astype(F32)


FORMATS = {"int4_g32": Int4G32, "mxfp4": Mxfp4, "nvfp4": Nvfp4}


def effective_block(block, group):
    if group <= block:
        return -(-block // group) * group
    for b in range(block, 0, -1):
        if group % b == 0:
            return b
    return 1


def gptq(fmt, W, H, block, percdamp, act_order, static_groups):
    W = W.astype(np.float64).copy()
    H = H.astype(np.float64).copy()
    n, k = W.shape
    G = fmt.group
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    g = fmt.global_scale(W.astype(F32))
    static = act_order or static_groups
    scales = np.zeros((n, k // G), dtype=F32)
    if static:
        W32 = W.astype(F32)
        for b in range(k // G):
            scales[:, b] = fmt.fit(W32[:, b * G:(b + 1) * G], g)
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(k)
    W = W[:, perm]
    H = H[perm][:, perm]
    H[np.diag_indices(k)] += percdamp * np.mean(np.diag(H))
    Hinv = np.linalg.inv(H)
    U = np.linalg.cholesky((Hinv + Hinv.T) / 2).T
    Q = np.zeros((n, k), dtype=F32)
    B = effective_block(block, G)
    for i1 in range(0, k, B):
        i2 = min(i1 + B, k)
        W1 = W[:, i1:i2].copy()
        Err = np.zeros_like(W1)
        for i in range(i2 - i1):
            col = perm[i1 + i]
            if not static and col % G == 0:
                vals = np.concatenate([W1[:, i:], W[:, i2:]], axis=1)[:, :G]
                scales[:, col // G] = fmt.fit(vals.astype(F32), g)
            w = W1[:, i]
            q = fmt.quant(w.astype(F32), scales[:, col // G], g)
            Q[:, col] = q
            err = (w - q.astype(np.float64)) / U[i1 + i, i1 + i]
            W1[:, i:] -= np.outer(err, U[i1 + i, i1:i2][i:])
            Err[:, i] = err
        W[:, i2:] -= Err @ U[i1:i2, i2:]
    return Q


def main():
    name, wp, hp, out, block, percdamp, act_order, static_groups = sys.argv[1:9]
    W = np.load(wp).astype(F32)
    H = np.load(hp).astype(F32)
    Q = gptq(FORMATS[name](), W, H, int(block), float(percdamp), act_order == "1", static_groups == "1")
    np.save(out, Q.astype(F32))


if __name__ == "__main__":
    main()
