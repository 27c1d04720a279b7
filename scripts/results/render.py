"""Renders `fpq eval --json` result files into the markdown tables of docs/RESULTS.md.

  render.py OUT.md TITLE [--baseline-from FILE.json] FILE.json [FILE.json ...]
Rows keep the order of the files and of their rows; a baseline row appears once (--baseline-from takes only
the unquantized row of that file).
"""
import json
import sys


def main(out, title, files):
    rows, tasks, meta = [], [], None
    seen_baseline = False
    baseline_only = set()
    if files and files[0] == "--baseline-from":
        baseline_only.add(files[1])
    for f in [x for x in files if x != "--baseline-from"]:
        j = json.load(open(f))
        meta = meta or j
        for r in j["rows"]:
            if f in baseline_only and r["kernel"] != "-":
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
    open(out, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
