"""The scikit-learn baseline for `make bench-classifier`: LinearSVC on character n-grams,
trained on the same train.tsv and scored on dev.tsv. Prints one line:
baseline_macro_f1=<f1> baseline_msgs_per_s=<rate> (one core, vectorize + predict)."""

import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC


def read(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8")]
    assert rows[0] == ["id", "category", "priority", "lang", "channel", "text"], path
    return [r[5] for r in rows[1:] if len(r) == 6], [r[1] for r in rows[1:] if len(r) == 6]


def main(train_path, dev_path):
    x_train, y_train = read(train_path)
    x_dev, y_dev = read(dev_path)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    clf = LinearSVC()
    clf.fit(vec.fit_transform(x_train), y_train)
    pred = clf.predict(vec.transform(x_dev))
    f1 = f1_score(y_dev, pred, average="macro")
    # Rate: messages one at a time, as a daemon sees them, for at least a second.
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        for text in x_dev:
            clf.predict(vec.transform([text]))
        done += len(x_dev)
    rate = done / (time.perf_counter() - start)
    print(f"baseline_macro_f1={f1:.4f} baseline_msgs_per_s={rate:.0f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
