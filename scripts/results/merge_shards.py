"""Merges `fpq eval --windows A:B --json` shard files into one result file, as if one run had covered every window.

  merge_shards.py OUT.json SHARD.json [SHARD.json ...]
Rows are matched by (format, kernel). The shards of a row must cover windows 0 .. windows_total exactly once;
otherwise the row is left out and the script says which windows are missing (exit 1 when nothing is complete).
Mean NLL and its standard error combine exactly (Chan et al.'s pairwise update of mean and sum of squared
deviations, from each shard's token count, mean NLL and standard error); times add up.
"""
import json
import math
import os
import statistics
import sys


def merge_ppl(parts):
    n = sum(p["tokens"] for p in parts)
    mean = sum(p["tokens"] * p["nll"] for p in parts) / n
    m2 = 0.0
    for p in parts:
        var = p["nll_stderr"] ** 2 * p["tokens"]  # per-token sample variance of the shard
        m2 += var * (p["tokens"] - 1) + p["tokens"] * (p["nll"] - mean) ** 2
    stderr = math.sqrt(m2 / (n - 1) / n) if n > 1 else 0.0
    ppl = math.exp(mean)
    return {"ppl": ppl, "ppl_stderr": ppl * stderr, "nll": mean, "nll_stderr": stderr, "tokens": n,
            "windows": sum(p["windows"] for p in parts), "first_window": 0, "windows_total": parts[0]["windows_total"],
            "seconds": sum(p["seconds"] for p in parts), "shards": len(parts)}


def main(out, files):
    if not files:
        sys.exit("usage: merge_shards.py OUT.json SHARD.json [SHARD.json ...]")
    meta, groups = None, {}
    for f in files:
        try:
            with open(f) as fh:
                j = json.load(fh)
            j["rows"], j["ctx"], j["model"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit(f"merge_shards.py: {f} is not an `fpq eval --json` result ({type(e).__name__}: {e})")
        if meta is None:
            meta = j
        # (the model by file name: shards of one row may run on machines that keep the file at other paths)
        elif j["ctx"] != meta["ctx"] or os.path.basename(str(j["model"])) != os.path.basename(str(meta["model"])):
            sys.exit(f"merge_shards.py: {f} has another model or ctx than {files[0]}")
        for r in j["rows"]:
            if "wikitext2" not in r or "first_window" not in r["wikitext2"]:
                sys.exit(f"merge_shards.py: {f}: row {r['format']} / {r['kernel']} has no WikiText-2 window range")
            groups.setdefault((r["format"], r["kernel"]), []).append(r)
    rows, missing_any = [], False
    for (fmt, kernel), parts in groups.items():
        parts.sort(key=lambda r: r["wikitext2"]["first_window"])
        total = parts[0]["wikitext2"]["windows_total"]
        covered, next_w, ok = [], 0, True
        for r in parts:
            w = r["wikitext2"]
            if w["windows_total"] != total or w["first_window"] != next_w:
                ok = False
                break
            next_w += w["windows"]
        if not ok or next_w != total:
            have = ", ".join(f'{r["wikitext2"]["first_window"]}:{r["wikitext2"]["first_window"] + r["wikitext2"]["windows"]}' for r in parts)
            print(f"incomplete: {fmt} / {kernel}: windows {have} of 0:{total}", file=sys.stderr)
            missing_any = True
            continue
        row = dict(parts[0])
        row["wikitext2"] = merge_ppl([r["wikitext2"] for r in parts])
        row["eval_seconds"] = sum(r["eval_seconds"] for r in parts)
        row["quantize_seconds"] = statistics.median(r["quantize_seconds"] for r in parts)
        rows.append(row)
    if not rows:
        sys.exit("merge_shards.py: no row covers every window")
    result = dict(meta)
    result["rows"] = rows
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out)
    print(f"{out}: {len(rows)} complete row(s)" + (" (some rows incomplete)" if missing_any else ""))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
