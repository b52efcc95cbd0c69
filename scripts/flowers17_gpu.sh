#!/usr/bin/env bash
# The Flowers-17 AlexNet recipe on one GPU (trainer=gpu: bf16 mixed precision), for docs/results.md:
# the val-chosen recipe once, then its final fit on train + val with several seeds (the seed-to-seed spread
# of the test accuracy). Each run's metrics.json is copied to <results dir>/<run>.json, its per-epoch
# CSV log to <results dir>/<run>.csv.
#   DATA_DIR=../shared/data scripts/flowers17_gpu.sh bench/results/flowers17_gpu
# BUDGET_S=<seconds> starts no new run after that long; PYTHON picks the interpreter (default: python3;
# PYTHON=.venv/bin/python for the uv environment).
set -uo pipefail
results=${1:?usage: scripts/flowers17_gpu.sh <results dir>}
python=${PYTHON:-python3}
budget=${BUDGET_S:-1000000}
mkdir -p "$results"
started=$SECONDS

train() {  # train <run name> <overrides...>
    local name=$1
    shift
    if ((SECONDS - started > budget)); then
        echo "skipped $name: over the ${budget} s budget"
        return
    fi
    local dir=outputs/flowers17_gpu/$name
    "$python" -m src.train trainer=gpu "logger=[tensorboard,csv]" callbacks.progress_bar=null hydra.run.dir="$dir" "$@" 2>&1 |
        grep -v "^\s*$" | tail -n 4
    cp "$dir/csv/metrics.csv" "$results/$name.csv"
    cp "$dir/metrics.json" "$results/$name.json" && echo "$name: $(tr -d '\n ' <"$dir/metrics.json")"
}

train final_seed42 experiment=alexnet_bn_flowers17_final seed=42
train recipe_seed42 experiment=alexnet_bn_flowers17 seed=42
for seed in 1 2; do
    train "final_seed$seed" experiment=alexnet_bn_flowers17_final seed=$seed
done
