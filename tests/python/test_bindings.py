"""fpq's Python module against independent references (fresh random inputs each run; the seed is printed)."""
import os
import unittest

import gguf
import ml_dtypes
import numpy as np
from gguf import quants

import fpq
from kernels_cpu_ref import q8_1 as q8_1_ref  # llama.cpp's quantize_row_q8_1 in numpy (tests/ref)

SEED = int(os.environ.get("FPQ_TEST_SEED", np.random.SeedSequence().entropy % (1 << 63)))
print(f"[seed] {SEED} (replay with FPQ_TEST_SEED={SEED})")


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def mxfp4_ref(x):
    """OCP MX: shared scale 2^(floor(log2 amax) - 2) per 32, elements rounded to E2M1 (nearest even, saturating)."""
    blocks = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        e = np.where(amax > 0, np.floor(np.log2(amax)) - 2, 0)
    scale = np.exp2(e).astype(np.float32)
    codes = (blocks / scale).astype(ml_dtypes.float4_e2m1fn)
    return (codes.astype(np.float32) * scale).reshape(x.shape)


class Bindings(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(SEED)

    def randn(self, *shape):
        x = self.rng.standard_normal(shape).astype(np.float32) * np.float32(np.exp2(self.rng.uniform(-4, 4)))
        x[self.rng.random(shape) < 1 / 64] *= 8  # outliers
        return x

    def test_formats_listed(self):
        names = {f["name"] for f in fpq.formats()}
        self.assertTrue({"mxfp4", "nvfp4", "q4_0", "fp6_e3m2", "mxfp8_e4m3"} <= names)
        mx = next(f for f in fpq.formats() if f["name"] == "mxfp4")
        self.assertEqual((mx["element_bits"], mx["group"], mx["bits_per_value"]), (4, 32, 4.25))

    def test_q4_0_matches_gguf_py(self):
        k = 32 * int(self.rng.integers(1, 9))
        w = self.randn(int(self.rng.integers(1, 20)), k)
        w[0, :32] = 0  # an all-zero block
        q = fpq.quantize_q4_0(w)
        self.assertEqual(q.shape, (w.shape[0], k // 32, 18))
        ref = quants.quantize(w, gguf.GGMLQuantizationType.Q4_0).reshape(q.shape)
        np.testing.assert_array_equal(q, ref)
        np.testing.assert_array_equal(fpq.dequantize_q4_0(q, k),
                                      quants.dequantize(ref.reshape(w.shape[0], -1), gguf.GGMLQuantizationType.Q4_0))

    def test_q8_1_matches_llama_cpp_rule(self):
        k = 32 * int(self.rng.integers(1, 9))
        a = self.randn(3, k)
        ref, _ = q8_1_ref(a)
        np.testing.assert_array_equal(fpq.quantize_q8_1(a).reshape(3, -1), ref)
        # leading axes are kept
        self.assertEqual(fpq.quantize_q8_1(self.randn(2, 3, k)).shape, (2, 3, k // 32, 36))

    def test_gemm_q4_0_q8_1_matches_float64(self):
        m, n, k = int(self.rng.integers(1, 40)), int(self.rng.integers(1, 6)), 32 * int(self.rng.integers(1, 12))
        w, a = self.randn(m, k), self.randn(n, k)
        wq, aq = fpq.quantize_q4_0(w), fpq.quantize_q8_1(a)
        wd = quants.dequantize(wq.reshape(m, -1), gguf.GGMLQuantizationType.Q4_0).astype(np.float64)
        _, ad = q8_1_ref(a)
        c = fpq.gemm_q4_0_q8_1(wq, aq, m, n, k)
        self.assertEqual(c.shape, (m, n))
        self.assertLess(rel_l2(c, wd @ ad.reshape(n, k).T), 1e-6)

    def test_mxfp4_matches_ml_dtypes(self):
        x = self.randn(5, 128)
        np.testing.assert_array_equal(fpq.qdq(x, "mxfp4"), mxfp4_ref(x))
        q = fpq.quantize(x, "mxfp4")
        self.assertEqual((q.format, q.shape, q.codes.size, q.scales.size), ("mxfp4", [5, 128], 5 * 64, 5 * 4))
        np.testing.assert_array_equal(fpq.dequantize(q), mxfp4_ref(x))

    def test_real_matmul_matches_float64_and_pseudo(self):
        for wname, aname in [("mxfp4", None), ("nvfp4", None), ("fp6_e3m2", None), ("nvfp4", "nvfp4"),
                             ("mxfp4", "mxfp4"), ("q4_0", "q8_1"), ("mxfp6_e3m2", "mxfp6_e3m2")]:
            with self.subTest(w=wname, a=aname):
                m, n, k = int(self.rng.integers(1, 18)), int(self.rng.integers(17, 71)), 256
                w, x = self.randn(n, k), self.randn(m, k)
                W = fpq.prepare(fpq.quantize(w, wname))
                self.assertEqual(W.shape, (n, k))
                y = fpq.matmul(x, W, act_format=aname)
                self.assertEqual(y.shape, (m, n))
                pseudo = fpq.matmul(x, W, act_format=aname, kernel="pseudo")
                self.assertLess(rel_l2(y, pseudo), 1e-6)
                if aname is None:  # weight-only: against float64 numpy
                    wd = fpq.dequantize(fpq.quantize(w, wname)).astype(np.float64)
                    self.assertLess(rel_l2(y, x.astype(np.float64) @ wd.T), 1e-6)
                if aname != "nvfp4":  # (NVFP4 activations: one global scale from the whole batch)
                    self.assertLess(rel_l2(fpq.matmul(x[0], W, act_format=aname), y[0]), 1e-6)

    def test_bad_input_raises_value_error(self):
        x = self.randn(2, 64)
        W = fpq.prepare(fpq.quantize(x, "mxfp4"))
        for call, needle in [(lambda: fpq.quantize(x, "nvfp5"), "unknown format"),
                             (lambda: fpq.quantize(x[:, :33], "mxfp4"), "not a multiple"),
                             (lambda: fpq.quantize(x, "mxfp4", rounding="up"), "rounding"),
                             (lambda: fpq.matmul(x[:, :32], W), "columns"),
                             (lambda: fpq.matmul(x, W, kernel="fast"), "kernel"),
                             (lambda: fpq.matmul(x, W, sums="float16"), "sums"),
                             (lambda: fpq.dequantize_q4_0(fpq.quantize_q4_0(x), 96), "shape"),
                             (lambda: fpq.gemm_q4_0_q8_1(fpq.quantize_q4_0(x), fpq.quantize_q8_1(x), 3, 2, 64), "rows"),
                             (lambda: fpq.prepare(fpq.quantize(self.randn(2, 2, 64), "mxfp4")), "matrix")]:
            with self.subTest(needle=needle):
                with self.assertRaises(ValueError) as cm:
                    call()
                self.assertIn(needle, str(cm.exception))


class ModelApi(unittest.TestCase):
    """fpq.Model on the embedded default model, checked against numpy computations on its own logits."""

    @classmethod
    def setUpClass(cls):
        cls.model = fpq.Model()
        cls.text = ("The quick brown fox jumps over the lazy dog. A second sentence follows the first one, and a "
                    "third one after it, so that the text is long enough for two windows of thirty-two tokens.")

    def test_config_and_tokenizer(self):
        c = self.model.config
        self.assertEqual((c["vocab_size"], c["num_hidden_layers"], c["hidden_size"]), (49152, 30, 576))
        ids = self.model.encode("Hello world")
        self.assertEqual(self.model.decode(ids), "Hello world")

    def test_perplexity_is_exp_mean_nll_of_the_logits(self):
        ctx = 32
        r = self.model.perplexity(self.text, ctx=ctx, progress=False)
        tokens = self.model.encode(self.text)  # tokenized once, as the WikiText-2 protocol does
        nll = []
        for w in range(len(tokens) // ctx):
            window = tokens[w * ctx:(w + 1) * ctx]
            logits = self.model.logits(window).astype(np.float64)
            logp = logits - logits.max(axis=1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
            nll += [-logp[i, window[i + 1]] for i in range(ctx - 1)]
        self.assertEqual((r["windows"], r["tokens_scored"]), (len(tokens) // ctx, len(nll)))
        self.assertAlmostEqual(r["ppl"], float(np.exp(np.mean(nll))), delta=1e-6 * r["ppl"])

    def test_greedy_generation_follows_the_argmax(self):
        prompt = "The capital of France is"
        ids = self.model.encode(prompt)  # as generate() encodes it
        n = len(ids)
        for _ in range(4):  # greedy continuation from the full-sequence logits (no KV cache)
            ids.append(int(np.argmax(self.model.logits(ids)[-1])))
        self.assertEqual(self.model.generate(prompt, max_tokens=4), self.model.decode(ids[n:]))

    def test_quantized_real_and_pseudo_agree(self):
        ppl = {}
        for kernel in ("real", "pseudo"):
            m = fpq.Model()
            m.quantize("mxfp4", a_bits=4, kernel=kernel, progress=False)
            self.assertEqual(m.recipe, "mxfp4 W4A4")
            ppl[kernel] = m.perplexity(self.text, ctx=32, progress=False)["ppl"]
            with self.assertRaises(ValueError):
                m.quantize("nvfp4")
        self.assertAlmostEqual(ppl["real"], ppl["pseudo"], delta=1e-3 * ppl["pseudo"])

    def test_methods(self):
        ppl = {}
        for method, kernel, calib in [("rtn", "real", None), ("4o6", "real", None), ("4o6", "pseudo", None),
                                      ("arc", "real", self.text * 4)]:
            m = fpq.Model()
            m.quantize("nvfp4", a_bits=4, kernel=kernel, method=method, calib_text=calib, num_sequences=2, seq_len=32,
                       progress=False)
            self.assertEqual(m.recipe, "nvfp4 W4A4" + ("" if method == "rtn" else " " + method))
            ppl[method, kernel] = m.perplexity(self.text, ctx=32, progress=False)["ppl"]
        self.assertTrue(all(np.isfinite(v) for v in ppl.values()))
        # the methods change the weights (other perplexities than RTN's); real and pseudo agree on them
        self.assertNotEqual(ppl["4o6", "real"], ppl["rtn", "real"])
        self.assertNotEqual(ppl["arc", "real"], ppl["rtn", "real"])
        self.assertAlmostEqual(ppl["4o6", "real"], ppl["4o6", "pseudo"], delta=1e-3 * ppl["4o6", "pseudo"])
        for kwargs, needle in [(dict(method="gptq"), "needs calibration text"),
                               (dict(calib_text="some text"), "takes no calibration text"),
                               (dict(method="bogus"), "unknown quantization method"),
                               (dict(method="arc", calib_text="too short", seq_len=64), "fewer than one sequence")]:
            with self.subTest(needle=needle):
                with self.assertRaises(ValueError) as cm:
                    fpq.Model().quantize("nvfp4", a_bits=4, progress=False, **kwargs)
                self.assertIn(needle, str(cm.exception))

    def test_bad_arguments(self):
        for call, needle in [(lambda: self.model.decode([10 ** 9]), "vocabulary"),
                             (lambda: self.model.perplexity(self.text, ctx=1), "ctx"),
                             (lambda: self.model.generate("x", top_p=3), "top-p"),
                             (lambda: fpq.Model("/nonexistent/model.gguf"), "not found"),
                             (lambda: self.model.quantize("mxfp4", kernel="bogus"), "unknown kernel")]:
            with self.subTest(needle=needle):
                with self.assertRaises(ValueError) as cm:
                    call()
                self.assertIn(needle, str(cm.exception))

if __name__ == "__main__":
    unittest.main()
