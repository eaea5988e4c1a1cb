#!/usr/bin/env bash
# run.sh — `make bench-classifier`: Wasl's classifier against a scikit-learn baseline, on one
# core: category and priority macro-F1 and urgent recall on data/classifier/dev.tsv and
# dev2.tsv (trained on train.tsv) against the baseline on the same files, short messages per
# second, model load time and peak memory. The baseline is LinearSVC on character 2–5-grams
# (python3-sklearn, installed here when missing). No server needed; about half a minute.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
WASLCTL=$REPO/build/bin/waslctl
TRAIN=${BENCH_TRAIN:-$REPO/data/classifier/train.tsv}
DEV=${BENCH_DEV:-$REPO/data/classifier/dev.tsv}
DEV2=${BENCH_DEV2:-$REPO/data/classifier/dev2.tsv}
DEVS=("$DEV" "$DEV2")
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
speed=$("${PIN[@]}" "$WASLCTL" classifier bench "$DEV" --model "$WORK/model.bin")
echo "== baseline (scikit-learn LinearSVC, char 2-5-grams) on ${DEVS[*]}"
"${PIN[@]}" /usr/bin/python3 "$REPO/tests/bench/classifier/baseline.py" "$TRAIN" "${DEVS[@]}" \
    >"$WORK/baseline.txt"

field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2" | head -n 1; }
rate=$(field msgs_per_s "$speed")
load=$(field model_load_ms "$speed")
rss=$(field peak_rss_mib "$speed")
brate=$(field baseline_msgs_per_s "$(head -n 1 "$WORK/baseline.txt")")
ok=1
# Category and priority macro-F1 and urgent recall of both, per dev file, in one table.
printf '%-10s %-9s %8s %8s %8s %8s %8s\n' file model cat_f1 pri_f1 urg_rec raised lang_ar
for dev in "${DEVS[@]}"; do
    "${PIN[@]}" "$WASLCTL" classifier eval "$dev" --model "$WORK/model.bin" >"$WORK/eval.txt"
    ev=$(cat "$WORK/eval.txt")
    pf1=$(sed -n '/== priority/,/macro_f1 /p' "$WORK/eval.txt" | sed -n 's/.*macro_f1 \([0-9.]*\).*/\1/p')
    f1=$(field macro_f1 "$(tail -n 1 "$WORK/eval.txt")")
    base=$(grep -F "baseline_file=$dev " "$WORK/baseline.txt")
    name=$(basename "$dev" .tsv)
    printf '%-10s %-9s %8s %8s %8s %8s %8s\n' "$name" wasl "$f1" "$pf1" \
        "$(field urgent_recall "$ev")" "$(field normal_low_raised "$ev")" \
        "$(field lang_ar_macro_f1 "$(sed 's/lang_ar macro_f1/lang_ar_macro_f1/' <<<"$ev")")"
    printf '%-10s %-9s %8s %8s %8s %8s\n' "$name" baseline "$(field baseline_macro_f1 "$base")" \
        "$(field baseline_priority_macro_f1 "$base")" "$(field baseline_urgent_recall "$base")" \
        "$(field baseline_normal_low_raised "$base")"
    awk -v f="$f1" -v bf="$(field baseline_macro_f1 "$base")" 'BEGIN { exit !(f >= bf) }' || ok=0
    echo "$name: $(tail -n 1 "$WORK/eval.txt")"
done
echo "          $speed"
verdict=$(awk -v ok="$ok" -v r="$rate" -v br="$brate" -v l="$load" -v m="$rss" 'BEGIN {
    print (ok && (r > br) && (r >= 50000) && (l < 50) && (m < 64)) ? "PASS" : "FAIL" }')
echo "msgs_per_s=$rate baseline_msgs_per_s=$brate model_load_ms=$load peak_rss_mib=$rss" \
     "goals=$verdict"
[[ $verdict == PASS ]]
