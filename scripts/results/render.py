"""Renders `fpq eval --json` result files into the markdown tables of docs/RESULTS.md.

  render.py OUT.md TITLE [--baseline-from FILE.json] FILE.json [FILE.json ...]
Rows keep the order of the files and of their rows; a baseline row appears once (--baseline-from takes only
the unquantized row of that file).
"""
import json
import math
import sys


def main(out, title, files):
    rows, tasks, meta = [], [], None
    seen_baseline = False
    # (file, baseline row only?): the --baseline-from file first, then every listed file in full.
    todo = []
    if files and files[0] == "--baseline-from":
        todo.append((files[1], True))
        files = files[2:]
    todo += [(f, False) for f in files]
    for f, baseline_only in todo:
        j = json.load(open(f))
        meta = meta or j
        for r in j["rows"]:
            if baseline_only and r["kernel"] != "-":
                continue
            if r["kernel"] == "-":
                if seen_baseline:
                    continue
                seen_baseline = True
            rows.append(r)
            for k in r:
                if isinstance(r[k], dict) and k not in tasks:
                    tasks.append(k)
    head = ["format", "kernel", "bits/weight"]
    for t in tasks:
        if t == "wikitext2":
            head += ["WikiText-2 ppl"]
        else:
            head += [f"{t} acc", f"{t} acc_norm"]
    head += ["quantize s", "eval s"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in rows:
        cells = [r["format"], r["kernel"], f'{r["bits_per_weight"]:.2f}']
        for t in tasks:
            v = r.get(t)
            if t == "wikitext2":
                cells.append(f'{v["ppl"]:.3f} ± {v["ppl_stderr"]:.3f}' if v else "-")
            else:
                cells.append(f'{100 * v["acc"]:.2f}' if v else "-")
                cells.append(f'{100 * v["acc_norm"]:.2f}' if v and "acc_norm" in v else "-")
        cells += [f'{r["quantize_seconds"]:.1f}', f'{r["eval_seconds"]:.1f}']
        lines.append("| " + " | ".join(cells) + " |")
    w = next((r["wikitext2"] for r in rows if "wikitext2" in r), None)
    if w:
        lines += ["", f'WikiText-2: {w["tokens"]} predicted tokens in windows of {meta["ctx"]}.']
    # Real vs pseudo of the same quantized weights: relative perplexity difference per format.
    by_format = {}
    for r in rows:
        if "wikitext2" in r and r["kernel"] in ("real", "pseudo", "cuda"):
            by_format.setdefault(r["format"], {})[r["kernel"]] = r["wikitext2"]["nll"]
    agree = []
    for f, k in by_format.items():
        if "pseudo" in k and len(k) > 1:
            other = "real" if "real" in k else "cuda"
            d = abs(math.exp(k[other]) - math.exp(k["pseudo"])) / math.exp(k["pseudo"])
            agree.append(f"{f}: " + ("identical" if k[other] == k["pseudo"] else f"{d:.1e}"))
    if agree:
        lines += ["", "Real vs pseudo (relative perplexity difference; identical = same mean NLL to the last bit): " + "; ".join(agree) + "."]
    open(out, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
