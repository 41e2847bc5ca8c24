#!/usr/bin/env bash
# The CUDA path on a GPU machine, in one go; its figures go to bench/JOURNAL.md ("On a GPU") and the current ones to bench/RESULTS.md.
#
#   bash bench/gpu.sh RESULTS_DIR [SECONDS]
#
# 1. the GPU tests (training and prediction on CUDA against the CPU);
# 2. a Yelp-format corpus of N reviews (default 1,000,000; bench/scale.py's), prepared with the seed preset;
# 3. one seed-preset epoch over it on the GPU under torchrun (1 process), then the test part (200k
#    reviews) predicted on the GPU: epoch time, tokens/s, prediction time, accuracy;
# 4. if SECONDS (default 540) leave room, the same epoch as plain `revsent train`.
# Run from the repository root with revsent importable (PYTHONPATH=src) and its dependencies installed.
set -euo pipefail
results=${1:?give a folder for the results}
budget=${2:-540}
n=${N:-1000000}
work=${WORK:-/tmp/revsent-gpu}
device=${DEVICE:-cuda}
timed=(); if [ -x /usr/bin/time ]; then timed=(/usr/bin/time -v); fi
mkdir -p "$results" "$work"
started=$SECONDS
stamp() { echo "[$((SECONDS - started)) s] $*"; }
python3 - <<'EOF' | tee "$results/device.txt"
import torch
gpu = (f"{torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB"
       if torch.cuda.is_available() else "no GPU")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {gpu}")
EOF
stamp "GPU tests"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -3 | tee "$results/gpu-tests.txt"
stamp "corpus of $n reviews"
python3 bench/scale.py --write-corpus "$n" --work "$work"
stamp "prepare"
"${timed[@]}" python3 -m revsent prepare "$work/corpus-$n/review.json" --preset seed --out "$work/ds" --force --quiet \
    2> "$results/prepare.time" | tail -2
run() {  # name, command...
    local name=$1; shift
    stamp "$name"
    "${timed[@]}" "$@" --out "$work/$name" --force --quiet > "$results/$name.log" 2> "$results/$name.time" || {
        tail -20 "$results/$name.time"; return 1; }
    cp "$work/$name/history.csv" "$results/$name-history.csv"
    cp "$work/$name/metrics.json" "$results/$name-metrics.json"
    python3 - "$work/$name" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
row = dict(zip(*[line.split(",") for line in (out / "history.csv").read_text().splitlines()[:2]]))
m = json.loads((out / "metrics.json").read_text())
print(f"{out.name}: epoch {float(row['seconds']):.1f} s, {float(row['tokens_per_s']):,.0f} tokens/s, "
      f"{int(row['reviews']):,} reviews; test {m['n_test']:,} reviews predicted in "
      f"{m['total_seconds'] - m['train_seconds']:.1f} s (with loading and metrics); accuracy {m['accuracy']:.4f}; "
      f"device {m['device']}, processes {m.get('processes', 1)}")
EOF
}
run torchrun-1gpu python3 -m torch.distributed.run --standalone --nproc-per-node 1 -m revsent train "$work/ds" \
    --preset seed --epochs 1 --device "$device" | tee -a "$results/summary.txt"
if (( SECONDS - started < budget - 200 )); then
    run plain-1gpu python3 -m revsent train "$work/ds" --preset seed --epochs 1 --device "$device" | tee -a "$results/summary.txt"
else
    stamp "no time left for the plain run" | tee -a "$results/summary.txt"
fi
stamp "done"
