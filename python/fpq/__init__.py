"""fpq: low-bit floating-point quantization of LLMs (the C++ library's Python module).

    import numpy as np, fpq
    w = np.random.randn(256, 512).astype(np.float32)
    wq = fpq.quantize(w, "nvfp4")                # packed codes + E4M3 scales + global scale
    W = fpq.prepare(wq)                          # tiled for the real kernels
    y = fpq.matmul(x, W, act_format="nvfp4")     # W4A4 on packed codes; act_format=None: weight-only
    fpq.formats()                                # every named format

    m = fpq.Model()                              # the embedded SmolLM2-135M-Instruct (or a GGUF / HF folder path)
    m.quantize("nvfp4", a_bits=4)                # RTN, every decoder projection; kernel "auto" (real CPU kernels)
    m.perplexity(text, ctx=512)["ppl"]; m.generate("The capital of France is", max_tokens=16)

llama.cpp's Q4_0 x Q8_1 GEMM with the quant_gemm bindings' API: quantize_q4_0, quantize_q8_1,
dequantize_q4_0, gemm_q4_0_q8_1. Errors in the inputs raise ValueError with fpq's one-line message.
"""
from ._fpq import (Model, QuantizedTensor, Weight, dequantize, dequantize_q4_0, formats, gemm_q4_0_q8_1, info,
                   matmul, prepare, qdq, quantize, quantize_q4_0, quantize_q8_1, set_isa)

__all__ = ["Model", "QuantizedTensor", "Weight", "dequantize", "dequantize_q4_0", "formats", "gemm_q4_0_q8_1",
           "info", "matmul", "prepare", "qdq", "quantize", "quantize_q4_0", "quantize_q8_1", "set_isa"]
