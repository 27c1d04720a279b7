#!/usr/bin/env python3
"""Instructions per iteration of a CUDA kernel's innermost tensor-core loop, read from its SASS.

    scripts/sass-loops.py build/src/kernels/cuda/CMakeFiles/fpq_kernels_cuda.dir/gemv.cu.o \\
        'gemv_kernelILi4ELi1ELb0ELi2ELi8ELi2ELi2ELi2ELi1ELb1E'

FILE is an object file, a binary or a cubin holding sm_90a code; PATTERN a regular expression searched in the
kernels' mangled names. For every matching kernel it prints the smallest loop (a backward branch and its target)
that holds an MMA instruction (HMMA, IMMA, HGMMA, ...): its instruction and MMA counts. A static count, not a
timing: it says where a change removed work from the hot loop, not what that buys on a GPU.

Needs `cuobjdump` (CUDA toolkit, or PyPI's nvidia-cuda-cuobjdump wheel: its bin/ on PATH, or CUOBJDUMP=path).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

INS = re.compile(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
BRA = re.compile(r"\bBRA(?:\.\S+)?\s+(0x[0-9a-f]+)")
MMA = re.compile(r"\b(HMMA|IMMA|HGMMA|IGMMA|QGMMA|DMMA)\b")


def fail(msg):
    print(f"sass-loops: {msg}", file=sys.stderr)
    sys.exit(2)


def tool():
    path = os.environ.get("CUOBJDUMP") or shutil.which("cuobjdump")
    if not path:
        fail("cuobjdump not found (CUDA toolkit, or `pip download --no-deps nvidia-cuda-cuobjdump` and put its "
             "bin/ on PATH, or set CUOBJDUMP)")
    return path


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{' '.join(args[:2])} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    return r.stdout


def innermost_mma_loop(lines):
    ins = [(int(m.group(1), 16), m.group(2)) for m in map(INS.match, lines) if m]
    index = {a: i for i, (a, _) in enumerate(ins)}
    best = None
    for i, (addr, text) in enumerate(ins):
        b = BRA.search(text)
        if not b:
            continue
        target = int(b.group(1), 16)
        if target >= addr or target not in index:
            continue
        body = ins[index[target]:i + 1]
        mma = sum(1 for _, t in body if MMA.search(t))
        if mma and (best is None or len(body) < best[0]):
            best = (len(body), mma, target, addr)
    return best


def main():
    if len(sys.argv) != 3:
        fail("usage: scripts/sass-loops.py FILE PATTERN")
    path = sys.argv[1]
    try:
        pattern = re.compile(sys.argv[2])
    except re.error as e:
        fail(f"bad PATTERN {sys.argv[2]!r}: {e}")
    if not os.path.isfile(path):
        fail(f"no such file: {path}")
    cuobjdump = tool()
    found = 0
    with tempfile.TemporaryDirectory() as tmp:
        if path.endswith(".cubin"):
            cubins = [os.path.abspath(path)]
        else:
            listing = run([cuobjdump, "-lelf", os.path.abspath(path)])
            names = re.findall(r"ELF file\s+\d+:\s+(\S+\.cubin)", listing)
            if not names:
                fail(f"{path} holds no device code (cubin)")
            subprocess.run([cuobjdump, "-xelf", "all", os.path.abspath(path)], cwd=tmp, capture_output=True, check=False)
            cubins = [os.path.join(tmp, c) for c in names if os.path.exists(os.path.join(tmp, c))]
            if not cubins:
                fail(f"cuobjdump -xelf extracted none of {path}'s cubins")
        for cubin in cubins:
            # Kernel names from the ELF's section headers, then the SASS of the matching ones only.
            kernels = sorted({k for k in re.findall(r"\.text\.(\S+)", run([cuobjdump, "-elf", cubin])) if pattern.search(k)})
            for name in kernels:
                found += 1
                loop = innermost_mma_loop(run([cuobjdump, "-sass", "-fun", name, cubin]).splitlines())
                if loop:
                    print(f"{loop[0]:6d} instructions, {loop[1]:3d} MMA  (loop {loop[2]:#x}..{loop[3]:#x})  {name}")
                else:
                    print(f"     - no loop with an MMA instruction  {name}")
    if not found:
        fail(f"no kernel matches {sys.argv[2]!r}")


if __name__ == "__main__":
    main()
