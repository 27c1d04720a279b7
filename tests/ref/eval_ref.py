"""Independent references for fpq's evaluation code.

  eval_ref.py ppl MODEL_DIR TOKENS.npy CTX OUT.json
      perplexity protocol in float64 numpy: non-overlapping windows of CTX tokens (tail dropped), mean NLL over
      the CTX-1 predicted tokens of every window
  eval_ref.py prompts TASK IN.jsonl OUT.json
      the (contexts, continuations, gold) lm-evaluation-harness builds for each example, re-implemented from its
      task definitions (ARC, BoolQ, HellaSwag, PIQA, WinoGrande, LAMBADA)
"""
import json
import re
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import model_forward_ref as mf  # noqa: E402


def ppl(model_dir, tokens_path, ctx, out):
    W, cfg = mf.load_hf(model_dir)
    toks = np.load(tokens_path).astype(np.int64)
    nll = []
    for w in range(len(toks) // ctx):
        win = toks[w * ctx:(w + 1) * ctx]
        logits = mf.forward(W, cfg, win, mf.rope_rotate_half)
        logits = logits - logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        nll.extend(-logp[np.arange(ctx - 1), win[1:]])
    nll = np.array(nll)
    json.dump({"nll": float(nll.mean()), "ppl": float(np.exp(nll.mean())), "n": int(len(nll))}, open(out, "w"))


def hellaswag_preprocess(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def build(task, d):
    if task in ("arc_easy", "arc_challenge"):
        ctx = "Question: " + d["question"] + "\nAnswer:"
        return [ctx], [" " + c for c in d["choices"]["text"]], d["choices"]["label"].index(d["answerKey"])
    if task == "boolq":
        return [d["passage"] + "\nQuestion: " + d["question"] + "?\nAnswer:"], [" no", " yes"], int(d["label"])
    if task == "hellaswag":
        ctx = d["ctx_a"] + " " + d["ctx_b"].capitalize()
        return ([hellaswag_preprocess(d["activity_label"] + ": " + ctx)],
                [" " + hellaswag_preprocess(e) for e in d["endings"]], int(d["label"]))
    if task == "piqa":
        return ["Question: " + d["goal"] + "\nAnswer:"], [" " + d["sol1"], " " + d["sol2"]], int(d["label"])
    if task == "winogrande":
        idx = d["sentence"].index("_")
        return ([d["sentence"][:idx] + o for o in (d["option1"], d["option2"])],
                [" " + d["sentence"][idx + 1:].strip()], {"1": 0, "2": 1}[d["answer"]])
    if task == "lambada":
        words = d["text"].split(" ")
        return [" ".join(words[:-1])], [" " + words[-1]], 0
    raise SystemExit(f"unknown task {task}")


def prompts(task, inp, out):
    res = []
    for line in open(inp):
        if line.strip():
            c, k, g = build(task, json.loads(line))
            res.append({"contexts": c, "continuations": k, "gold": g})
    json.dump(res, open(out, "w"))


if __name__ == "__main__":
    if sys.argv[1] == "ppl":
        ppl(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        prompts(sys.argv[2], sys.argv[3], sys.argv[4])
