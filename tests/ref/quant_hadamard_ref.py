"""Reference Hadamard matrices for fpq's quant tests, built in numpy from the published constructions.

Usage (float32 .npy files):
  quant_hadamard_ref.py apply N IN.npy OUT.npy   OUT = IN @ H_N^T (each row x -> H_N x), H_N orthonormal
  quant_hadamard_ref.py matrix N OUT.npy         H_N itself (N x N, orthonormal)
  quant_hadamard_ref.py batch DIR N...           for each N: DIR/y_N.npy from DIR/x_N.npy (as apply) and, for
                                                 N <= 600, DIR/h_N.npy (as matrix)

H_N = kron(H_h, H_p) / sqrt(N) with N = h * p, p a power of two (Sylvester: H_2m = kron([[1,1],[1,-1]], H_m)) and
h the smallest multiple of 4 (times a power of two) of N's odd part with a Paley matrix: Paley I for h = q + 1
(q prime, q = 3 mod 4): H = I + [[0, 1^T], [-1, Q]]; Paley II for h = 2 (q + 1) (q prime, q = 1 mod 4): the
conference matrix C = [[0, 1^T], [1, Q]] with 0 -> [[1,-1],[-1,-1]] and +-1 -> +-[[1,1],[1,-1]]; Q[i][j] = chi(j - i)
with chi the quadratic character mod q.
"""
import sys

import numpy as np


def is_prime(q):
    return q >= 2 and all(q % d for d in range(2, int(q ** 0.5) + 1))


def chi_table(q):
    chi = -np.ones(q, dtype=np.int64)
    chi[0] = 0
    chi[(np.arange(1, q) ** 2) % q] = 1
    return chi


def jacobsthal(q):
    chi = chi_table(q)
    i = np.arange(q)
    return chi[(i[None, :] - i[:, None]) % q]


def paley(h):
    if h % 4 == 0 and is_prime(h - 1) and (h - 1) % 4 == 3:
        q = h - 1
        S = np.zeros((h, h), dtype=np.int64)
        S[0, 1:] = 1
        S[1:, 0] = -1
        S[1:, 1:] = jacobsthal(q)
        return np.eye(h, dtype=np.int64) + S
    if h % 4 == 0 and is_prime(h // 2 - 1) and (h // 2 - 1) % 4 == 1:
        q = h // 2 - 1
        C = np.zeros((q + 1, q + 1), dtype=np.int64)
        C[0, 1:] = 1
        C[1:, 0] = 1
        C[1:, 1:] = jacobsthal(q)
        zero_blk = np.array([[1, -1], [-1, -1]])
        one_blk = np.array([[1, 1], [1, -1]])
        return np.kron(C, one_blk) + np.kron((C == 0).astype(np.int64), zero_blk)
    return None


def sylvester(p):
    H = np.ones((1, 1), dtype=np.int64)
    while H.shape[0] < p:
        H = np.kron(np.array([[1, 1], [1, -1]]), H)
    return H


def hadamard(n):
    m, p = n, 1
    while m % 2 == 0:
        m //= 2
        p *= 2
    if m == 1:
        base = np.ones((1, 1), dtype=np.int64)
    else:
        base = None
        h = m
        while p >= 1 and base is None and h <= 256:  # fpq caps the dense factor at 256
            base = paley(h)
            if base is None:
                if p == 1:
                    break
                h *= 2
                p //= 2
        if base is None:
            raise SystemExit(f"no Hadamard matrix of size {n}")
    H = np.kron(base.astype(np.float64), sylvester(p).astype(np.float64))
    assert np.array_equal(H @ H.T, n * np.eye(n)), "not a Hadamard matrix"  # exact: integers in float64
    return H / np.sqrt(n)


def main():
    cmd = sys.argv[1]
    if cmd == "batch":
        d = sys.argv[2]
        for n in map(int, sys.argv[3:]):
            H = hadamard(n)
            x = np.load(f"{d}/x_{n}.npy").astype(np.float64)
            np.save(f"{d}/y_{n}.npy", (x.reshape(-1, n) @ H.T).reshape(x.shape).astype(np.float32))
            if n <= 600:
                np.save(f"{d}/h_{n}.npy", H.astype(np.float32))
        return
    n = int(sys.argv[2])
    H = hadamard(n)
    if cmd == "apply":
        x = np.load(sys.argv[3]).astype(np.float64)
        y = (x.reshape(-1, n) @ H.T).reshape(x.shape)
        np.save(sys.argv[4], y.astype(np.float32))
    elif cmd == "matrix":
        np.save(sys.argv[3], H.astype(np.float32))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
