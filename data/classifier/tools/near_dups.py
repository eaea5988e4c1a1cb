#!/usr/bin/env python3
"""Near-duplicate check for the classifier's TSV files.

Two texts are near-duplicates when the Jaccard similarity of their character 5-gram sets,
computed on normalized text, is >= THRESHOLD (0.8). Normalization follows
common/wasl_normalize in spirit: NFKC + casefold, Arabic-Indic digits to ASCII, tashkeel and
tatweel removed, alef forms to ا, ى to ي, ة to ه, ؤ/ئ to ء, anything not a letter or digit to
one space, letters repeated more than twice cut to two.

Usage:
  near_dups.py NEW.tsv [OLD.tsv ...]   pairs among NEW's rows and between NEW and each OLD
  near_dups.py --prefix v TRAIN.tsv    NEW = rows whose id starts with v, OLD = the others
Prints each pair (ids, similarity) and a final line `near_duplicates=N`; exits 1 when N > 0.
"""
import re
import sys
import unicodedata
from collections import defaultdict

THRESHOLD = 0.8
N = 5

_TASHKEEL = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_TRANS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ی": "ي", "ک": "ك",
                        "ة": "ه", "ؤ": "ء", "ئ": "ء"})


def normalize(text):
    t = unicodedata.normalize("NFKC", text).casefold()
    t = "".join(str(unicodedata.digit(c)) if unicodedata.category(c) == "Nd" else c for c in t)
    t = _TASHKEEL.sub("", t).translate(_TRANS)
    t = "".join(c if (c.isalpha() or c.isdigit()) else " " for c in t)
    t = re.sub(r"(.)\1\1+", r"\1\1", t)
    return " ".join(t.split())


def grams(text):
    t = normalize(text)
    if len(t) < N:
        return {t}
    return {t[i:i + N] for i in range(len(t) - N + 1)}


def read(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        ti = header.index("text")
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == len(header):
                rows.append((parts[0], parts[ti]))
    return rows


def pairs(new, old):
    """Yields (id_a, id_b, jaccard) for near-duplicate pairs: within new, and new x old."""
    index = defaultdict(list)  # gram -> row numbers (in `all`)
    all_rows = [(i, g) for i, g in ((r[0], grams(r[1])) for r in old)]
    n_old = len(all_rows)
    all_rows += [(i, g) for i, g in ((r[0], grams(r[1])) for r in new)]
    for k, (_, g) in enumerate(all_rows):
        if k >= n_old:
            # candidates: rows sharing grams, counted; only check plausible ones
            counts = defaultdict(int)
            for x in g:
                for j in index.get(x, ()):
                    counts[j] += 1
            for j, inter in counts.items():
                gj = all_rows[j][1]
                # |A∩B| / |A∪B| >= T requires inter >= T * max(|A|,|B|)
                if inter < THRESHOLD * max(len(g), len(gj)):
                    continue
                jac = inter / (len(g) + len(gj) - inter)
                if jac >= THRESHOLD:
                    yield all_rows[j][0], all_rows[k][0], jac
        for x in g:
            index[x].append(k)


def main(argv):
    if len(argv) >= 3 and argv[0] == "--prefix":
        rows = read(argv[2])
        new = [r for r in rows if r[0].startswith(argv[1])]
        old = [r for r in rows if not r[0].startswith(argv[1])]
    elif argv:
        new = read(argv[0])
        old = [r for p in argv[1:] for r in read(p)]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    n = 0
    for a, b, j in pairs(new, old):
        n += 1
        print(f"{a}\t{b}\t{j:.3f}")
    print(f"near_duplicates={n} (new rows {len(new)}, other rows {len(old)}, "
          f"char {N}-gram Jaccard >= {THRESHOLD})")
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
