#!/usr/bin/env python3
"""K-fold cross-validation of the shipped classifier on a TSV, through waslctl only
(`classifier train` on K-1 folds, `classifier eval` on the held-out fold): no model code or
setting is touched. Rows are assigned to folds by a stable hash of their id, so the split does
not depend on row order.

Usage: cv.py [TRAIN.tsv] [--folds 5] [--waslctl build/bin/waslctl]
Prints per fold and mean: category macro-F1 and accuracy, priority macro-F1, urgent recall,
and category macro-F1 per language.
"""
import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile


def fold_of(row_id, k):
    return int(hashlib.sha1(row_id.encode()).hexdigest(), 16) % k


def section(out, title):
    m = re.search(r"== " + title + r".*?(?=\n== |\ntriage|\Z)", out, re.S)
    return m.group(0) if m else ""


def parse(out):
    res = {}
    for name in ("category", "priority"):
        sec = section(out, name)
        m = re.search(r"macro_f1 ([0-9.]+) accuracy ([0-9.]+)", sec)
        if m:
            res[name] = (float(m.group(1)), float(m.group(2)))
    m = re.search(r"^urgent\s+(\d\.\d+)\s+(\d\.\d+)\s+(\d\.\d+)\s+(\d+)$", section(out, "priority"), re.M)
    if m:
        res["urgent_recall"] = float(m.group(2))
    m = re.search(r"normal_low_raised=([0-9.]+)", out)
    if m:
        res["raised"] = float(m.group(1))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train", nargs="?", default="data/classifier/train.tsv")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--waslctl", default="build/bin/waslctl")
    ap.add_argument("--train-arg", action="append", default=[],
                    help="passed to `waslctl classifier train` (repeat: --train-arg=--lr --train-arg=0.3)")
    a = ap.parse_args()
    with open(a.train, encoding="utf-8") as f:
        header = f.readline()
        rows = [l for l in f if l.strip()]
    folds = [[] for _ in range(a.folds)]
    for l in rows:
        folds[fold_of(l.split("\t", 1)[0], a.folds)].append(l)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.folds):
            tr, te, model = (os.path.join(tmp, n) for n in (f"tr{k}.tsv", f"te{k}.tsv", f"m{k}.bin"))
            with open(tr, "w", encoding="utf-8") as f:
                f.write(header)
                for j in range(a.folds):
                    if j != k:
                        f.writelines(folds[j])
            with open(te, "w", encoding="utf-8") as f:
                f.write(header)
                f.writelines(folds[k])
            subprocess.run([a.waslctl, "classifier", "train", tr, "-o", model, "--version", f"cv{k}"] + a.train_arg,
                           check=True, capture_output=True)
            out = subprocess.run([a.waslctl, "classifier", "eval", te, "--model", model],
                                 check=True, capture_output=True, text=True).stdout
            # per-language category macro-F1: evaluate each language's rows separately
            per_lang = {}
            for lang in ("ar", "en", "mixed"):
                sub = [l for l in folds[k] if l.split("\t")[3] == lang]
                if not sub:
                    continue
                p = os.path.join(tmp, f"te{k}_{lang}.tsv")
                with open(p, "w", encoding="utf-8") as f:
                    f.write(header)
                    f.writelines(sub)
                o = subprocess.run([a.waslctl, "classifier", "eval", p, "--model", model],
                                   check=True, capture_output=True, text=True).stdout
                per_lang[lang] = parse(o).get("category", (0, 0))[0]
            r = parse(out)
            r["lang"] = per_lang
            r["n"] = len(folds[k])
            results.append(r)
            print(f"fold {k}: n={r['n']} category macro_f1={r['category'][0]:.4f} "
                  f"acc={r['category'][1]:.4f} priority macro_f1={r['priority'][0]:.4f} "
                  f"urgent_recall={r.get('urgent_recall', float('nan')):.3f} "
                  f"raised={r.get('raised', float('nan')):.3f} "
                  + " ".join(f"{l}={v:.4f}" for l, v in per_lang.items()), flush=True)
    mean = lambda xs: sum(xs) / len(xs)
    print(f"mean: category macro_f1={mean([r['category'][0] for r in results]):.4f} "
          f"acc={mean([r['category'][1] for r in results]):.4f} "
          f"priority macro_f1={mean([r['priority'][0] for r in results]):.4f} "
          f"urgent_recall={mean([r.get('urgent_recall', 0) for r in results]):.3f} "
          f"raised={mean([r.get('raised', 0) for r in results]):.3f} "
          + " ".join(f"{l}={mean([r['lang'][l] for r in results if l in r['lang']]):.4f}"
                     for l in ("ar", "en", "mixed")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
