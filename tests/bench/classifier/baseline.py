"""The scikit-learn baseline for `make bench-classifier`: LinearSVC on character n-grams,
trained on the same train.tsv and scored on each dev file, for the category and (a second
LinearSVC on the same features) the priority. Prints one line per dev file:
baseline_file=<dev> baseline_macro_f1=<f1> baseline_priority_macro_f1=<f1>
baseline_urgent_recall=<r> baseline_normal_low_raised=<share> baseline_msgs_per_s=<rate>
(one core, vectorize + predict, measured on the first file only)."""

import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC


def read(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8")]
    assert rows[0] == ["id", "category", "priority", "lang", "channel", "text"], path
    rows = [r for r in rows[1:] if len(r) == 6]
    return [r[5] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def urgent_figures(gold, pred):
    urgent = [p for g, p in zip(gold, pred) if g == "urgent"]
    calm = [p for g, p in zip(gold, pred) if g in ("normal", "low")]
    recall = sum(p == "urgent" for p in urgent) / len(urgent) if urgent else 0.0
    raised = sum(p == "urgent" for p in calm) / len(calm) if calm else 0.0
    return recall, raised


def main(train_path, dev_paths):
    x_train, y_train, p_train = read(train_path)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    xt = vec.fit_transform(x_train)
    clf = LinearSVC().fit(xt, y_train)
    pri = LinearSVC().fit(xt, p_train)
    for k, dev_path in enumerate(dev_paths):
        x_dev, y_dev, p_dev = read(dev_path)
        xd = vec.transform(x_dev)
        f1 = f1_score(y_dev, clf.predict(xd), average="macro")
        pp = pri.predict(xd)
        pf1 = f1_score(p_dev, pp, average="macro")
        recall, raised = urgent_figures(p_dev, pp)
        rate = 0.0
        if k == 0:
            # Rate: messages one at a time, as a daemon sees them, for at least a second.
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < 1.0:
                for text in x_dev:
                    clf.predict(vec.transform([text]))
                done += len(x_dev)
            rate = done / (time.perf_counter() - start)
        print(f"baseline_file={dev_path} baseline_macro_f1={f1:.4f} "
              f"baseline_priority_macro_f1={pf1:.4f} baseline_urgent_recall={recall:.4f} "
              f"baseline_normal_low_raised={raised:.4f} baseline_msgs_per_s={rate:.0f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
