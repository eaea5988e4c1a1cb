#!/usr/bin/env bash
# run.sh — `make bench-classifier`: Wasl's classifier against a scikit-learn baseline, on one
# core: macro-F1 on data/classifier/dev.tsv (trained on train.tsv), short messages per second,
# model load time and peak memory. The baseline is LinearSVC on character 2–5-grams
# (python3-sklearn, installed here when missing). No server needed; about half a minute.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
WASLCTL=$REPO/build/bin/waslctl
TRAIN=${BENCH_TRAIN:-$REPO/data/classifier/train.tsv}
DEV=${BENCH_DEV:-$REPO/data/classifier/dev.tsv}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# One core for both sides, and no hidden thread pools in numpy.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PIN=(taskset -c 0)

if ! /usr/bin/python3 -c 'import sklearn' 2>/dev/null; then
    if ((EUID == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            python3-sklearn >/dev/null
    else
        echo "bench: install python3-sklearn for the baseline" >&2
        exit 1
    fi
fi

echo "== training on $TRAIN"
"${PIN[@]}" "$WASLCTL" classifier train "$TRAIN" -o "$WORK/model.bin" 2>/dev/null
echo "== evaluating on $DEV"
"${PIN[@]}" "$WASLCTL" classifier eval "$DEV" --model "$WORK/model.bin" >"$WORK/eval.txt"
sed -n '/== category/,/macro_f1 /p' "$WORK/eval.txt"
wasl=$(tail -n 1 "$WORK/eval.txt")
speed=$("${PIN[@]}" "$WASLCTL" classifier bench "$DEV" --model "$WORK/model.bin")
echo "== baseline (scikit-learn LinearSVC, char 2-5-grams)"
base=$("${PIN[@]}" /usr/bin/python3 "$REPO/tests/bench/classifier/baseline.py" "$TRAIN" "$DEV")

field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
f1=$(field macro_f1 "$wasl")
rate=$(field msgs_per_s "$speed")
load=$(field model_load_ms "$speed")
rss=$(field peak_rss_mib "$speed")
bf1=$(field baseline_macro_f1 "$base")
brate=$(field baseline_msgs_per_s "$base")
echo "wasl:     $wasl"
echo "          $speed"
echo "baseline: $base"
verdict=$(awk -v f="$f1" -v bf="$bf1" -v r="$rate" -v br="$brate" -v l="$load" -v m="$rss" 'BEGIN {
    ok = (f >= bf) && (r > br) && (r >= 50000) && (l < 100) && (m < 64)
    print ok ? "PASS" : "FAIL" }')
echo "macro_f1=$f1 baseline_macro_f1=$bf1 msgs_per_s=$rate baseline_msgs_per_s=$brate" \
     "model_load_ms=$load peak_rss_mib=$rss goals=$verdict"
[[ $verdict == PASS ]]
