#!/usr/bin/env bash
# The GPU check: everything this project claims about GPUs, measured in one call of a few minutes, into
# one results folder (python -m bench gpu does the measuring: bench/gpu.py):
#   1. LeNet-5/MNIST, 1 epoch, `trainer=gpu`                     -> lenet5_gpu.json (its metrics.json)
#   2. the same with `trainer=ddp trainer.devices=1` (NCCL)      -> lenet5_ddp.json
#   3. AlexNet (experiment=alexnet_bn_flowers17, 227x227, bf16-mixed, NHWC) on data=synthetic (Flowers-17's
#      pipeline on 8,192 random images; no checkpoints): training images/s of a warm epoch through src.train
#      against the bare loop, batch 128 (batches from GPU memory, and from host memory:
#      data.keep_on_device=false), 64 and 256
#   4. where a batch-128 step goes: profiler=simple (Lightning's hooks) and torch.profiler (wall time per
#      step against GPU busy time, top operators) for src.train and the bare loop  -> profile.txt
#   5. the Flowers-17 final fit's epoch time (experiment=alexnet_bn_flowers17_final, 6 epochs, profiled)
# All of it as tables in gpu_check.md (docs-ready, the GPU named), raw in gpu_check.json; the console in
# log.txt, nvidia-smi and versions in env.txt. At most these 7 files: a device call returns 8.
#
#   scripts/gpu_check.sh --prepare        # HERE, once: wheels into .whl/, Flowers-17 into .gpu_data/
#   scripts/gpu_check.sh [results dir]    # on the GPU machine: into $OUT if set, else the dir, else
#                                         # outputs/gpu_check/<time>
#   scripts/gpu_check.sh --tiny [dir]     # the same steps on the CPU, tiny stand-in data (its test)
#
# On a lent GPU machine, in ONE device call (run from the repository root, which the call sends):
#   command: bash scripts/gpu_check.sh     carry: [".whl", ".gpu_data"]     timeout_s: 450
# The machine has Python 3.12 with torch, Lightning, torchmetrics, TensorBoard, rich, matplotlib and
# scipy, but not Hydra, OmegaConf (and its antlr4 runtime) or hydra-submitit-launcher, and no internet:
# --prepare downloads those (pure-Python) wheels, at uv.lock's versions, into .whl/, which this script
# installs into a scratch site-packages there. It also copies Flowers-17's archive (57 MiB of the 64 MiB a
# call may carry) from DATA_DIR (default ../shared/data) into .gpu_data/flowers17/; MNIST (11 MiB) does
# not fit beside it, so step 1-2 run on a stand-in of MNIST's files and size (tests/tiny_data.py; the
# report says so). Both folders are git-ignored.
# BUDGET_S (default 330): no measurement starts after that many seconds, and each one's results are
# written as it ends, so a call stopped at its timeout still returns what was measured. A rerun of some
# steps only: ONLY=flowers17_epochs,alexnet_b256 bash scripts/gpu_check.sh. PYTHON picks the interpreter
# (default: .venv/bin/python when there is one, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."

locked_version() {  # the version uv.lock pins for a package
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' uv.lock
}

if [[ ${1:-} == --prepare ]]; then
    set -e
    data=${DATA_DIR:-../shared/data}
    rm -rf .whl && mkdir -p .whl .gpu_data/flowers17
    pip=(python3 -m pip --disable-pip-version-check)
    wheels=()
    for name in hydra-core omegaconf hydra-submitit-launcher; do
        wheels+=("$name==$(locked_version "$name")")
    done
    "${pip[@]}" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "${wheels[@]}"
    # antlr4-python3-runtime (OmegaConf's grammar) is published as source only: build its wheel here
    "${pip[@]}" wheel -q --no-deps -w .whl "antlr4-python3-runtime==$(locked_version antlr4-python3-runtime)"
    install -m 0644 "$data/flowers17/17flowers.tgz" .gpu_data/flowers17/17flowers.tgz
    ls -l .whl .gpu_data/flowers17
    du -sh .whl .gpu_data
    echo "device call: command 'bash scripts/gpu_check.sh', carry ['.whl', '.gpu_data'], timeout_s 450"
    exit 0
fi

tiny=()
if [[ ${1:-} == --tiny ]]; then
    tiny=(--tiny)
    shift
fi
results=${OUT:-${1:-outputs/gpu_check/$(date +%Y-%m-%d_%H-%M-%S)}}
mkdir -p "$results"
results=$(cd "$results" && pwd)
python=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}

if ! "$python" -c "import hydra, omegaconf, hydra_plugins.hydra_submitit_launcher" 2>/dev/null; then
    if ! compgen -G ".whl/*.whl" >/dev/null; then
        echo "error: $python lacks Hydra and there is no .whl/: run scripts/gpu_check.sh --prepare first" >&2
        exit 2
    fi
    site=${TMPDIR:-/tmp}/gpu_check_site
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        .whl/*.whl || exit 2
    export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
if [[ -z ${DATA_DIR:-} && -d .gpu_data ]]; then
    export DATA_DIR=$PWD/.gpu_data
fi
export PYTHONUNBUFFERED=1

{
    date
    nvidia-smi 2>&1 || echo "(no nvidia-smi)"
    "$python" - <<'PY'
import platform
from importlib.metadata import PackageNotFoundError, version

names = ("torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf", "numpy", "pillow")
found = []
for name in names:
    try:
        found.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        found.append(f"{name} (absent)")
print("Python", platform.python_version() + ";", ", ".join(found))
PY
    echo "DATA_DIR=${DATA_DIR:-} PYTHONPATH=${PYTHONPATH:-}"
} >"$results/env.txt" 2>&1

"$python" -m bench gpu "${tiny[@]}" --results-dir "$results" --budget-s "${BUDGET_S:-330}" \
    --only "${ONLY:-}" 2>&1 | tee "$results/log.txt"
status=${PIPESTATUS[0]}
echo "gpu check: exit status $status; results in $results: $(ls "$results" | tr '\n' ' ')"
exit "$status"
