"""The benchmark: how accurate and how fast, measured on this machine, written where the README reads it.

    python -m src.bench accuracy                     # LeNet-5/MNIST recipe: accuracy, time to 99.0 %
    python -m src.bench accuracy --experiment sheet_lenet5_mnist
    python -m src.bench speed                        # src.train's path vs a bare PyTorch loop, per batch size
    python -m src.bench steps                        # step by step: src.train, plain Lightning, bare
    python -m src.bench startup                      # seconds to the first answer (errors, first batch)
    python -m src.bench startup --root ../before --label before   # the same for another checkout
    python -m src.bench keras                        # the study sheet's Keras LeNet-5 beside the same here
    python -m src.bench scaling                      # images/s against batch size and threads
    python -m src.bench all                          # every suite but gpu (`make bench`)
    python -m src.bench gpu --results-dir DIR        # the GPU check (scripts/gpu_check.sh)

Extra Hydra overrides go at the end: `python -m src.bench accuracy trainer.max_epochs=5`.

accuracy: trains through the same code as `python -m src.train` (same config, same LightningModule,
default callbacks); after every epoch it evaluates the test set outside the timed part, to record when
the test accuracy first reaches each target.
speed: one row per recipe and batch size (SPEED_ROWS: lenet5_mnist at 64, 128, 256 and the study sheet's
recipe); per row, in one process, interleaved (L, bare, L, bare, L, bare; best of each; `--repeats`),
one warm training epoch of (a) the full Lightning + Hydra path and (b) a minimal hand-written loop
doing the recipe's work over the same model, datamodule, loss, optimizer, schedule, batch size and
threads; evaluation images/s of both over the validation and the test batches; the data pipeline alone.
steps: the same rows; during one src.train fit each training step is cut at its hooks into parts (data,
before, forward, backward, optimizer) and followed by a bare step on the same batch, timed in the same
parts; medians over a warm epoch; the same for a plain LightningModule of the recipe (Lightning's own
cost), the two fits interleaved `--repeats` times; src.train's validation and test batches each
followed by a bare evaluation batch (src/benchmark/steps.py).
startup: fresh interpreters, best of `--repeats`: each config mistake of MISTAKES (exit status 2), a
missing dataset, `python -c "import torch"` / `"import src, lightning"`, `python -m src.summary`, and
`python -m src.train debug=fast` to its first training batch and to its end; `-X importtime`'s top
entries. `--root` times another checkout (e.g. `git worktree add ../before <commit>`) with this
interpreter; `--label` names its column (results: startup_<label>.json; startup.md shows them all).
keras: the study sheet's Keras LeNet-5 (bench/keras_lenet5.py, TensorFlow CPU in a throw-away uv environment)
beside the same network and recipe as a bare loop and through src.train, and beside our own recipe;
and, when DATA_DIR holds CIFAR-10, the study sheet's 2-epoch CIFAR-10 run in both (test accuracy over three
seeds and training images/s).
scaling: training images/s of the bare step against batch size and torch threads, for both networks.
gpu: LeNet-5 through `python -m src.train` with trainer=gpu and trainer=ddp, AlexNet's speed against the
bare loop at three batch sizes, a profile of its step, the Flowers-17 final fit's epoch time
(scripts/gpu_check.sh).

Results: bench/results/<suite>.json, <suite>.md (and scaling.png), with machine, versions and date.
Each suite is a module of src/benchmark/ (common.py: what they share); this file only dispatches.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from src.benchmark import common
from src.benchmark.accuracy import accuracy_markdown, run_accuracy
from src.benchmark.common import save
from src.benchmark.gpu import gpu_markdown, run_gpu_check
from src.benchmark.keras import keras_markdown, run_keras
from src.benchmark.scaling import run_scaling, scaling_markdown, scaling_plot
from src.benchmark.speed import SPEED_ROWS, run_speed, speed_markdown
from src.benchmark.startup import run_startup, save_startup
from src.benchmark.steps import run_steps, steps_markdown
from src.config.compose import PROJECT_ROOT
from src.utils.errors import UserError, user_errors

ALL_SUITES = ("accuracy", "speed", "steps", "startup", "keras", "scaling")  # `all`, in this order


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=(*ALL_SUITES, "all", "gpu"))
    parser.add_argument(
        "--experiment",
        action="append",
        help="accuracy/speed/steps: experiment(s) to run (default: lenet5_mnist and sheet_lenet5_mnist for "
        "accuracy; for speed, lenet5_mnist at batch 64, 128, 256 and sheet_lenet5_mnist)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="speed, steps, startup: interleaved pairs / best of"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=PROJECT_ROOT,
        help="startup: the checkout to time (e.g. an older commit's)",
    )
    parser.add_argument("--label", default="after", help="startup: its column, e.g. before or after")
    parser.add_argument(
        "--results-dir",
        type=Path,
        help="where the results go (default: bench/results; gpu: bench/results/gpu_check)",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="gpu: the same steps on the CPU, tiny stand-in data"
    )
    parser.add_argument("--budget-s", type=float, help="gpu: start no measurement after this many seconds")
    parser.add_argument(
        "--only", default="", help="gpu: only these measurements, e.g. flowers17_epochs,alexnet_b256"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_intermixed_args(argv)
    if args.suite == "gpu":
        with user_errors():
            mode = "tiny" if args.tiny else "full"
            only = [name for name in args.only.split(",") if name]
            results_dir = args.results_dir or common.RESULTS_DIR / "gpu_check"
            report = run_gpu_check(results_dir, mode, args.budget_s, only)
        failed = [name for name, s in report["steps"].items() if "error" in s]
        print("\n".join(gpu_markdown(report)[0]), flush=True)
        if failed:
            raise SystemExit(f"error: the GPU check failed in: {', '.join(failed)}")
        return
    suites = ALL_SUITES if args.suite == "all" else (args.suite,)
    if args.results_dir:  # e.g. a variant's figures beside the default ones
        common.RESULTS_DIR = args.results_dir.resolve()
    with user_errors():
        if "accuracy" in suites:
            experiments = args.experiment or ["lenet5_mnist", "sheet_lenet5_mnist"]
            results = [run_accuracy(e, args.overrides) for e in experiments]
            save("accuracy", {"runs": results}, accuracy_markdown(results))
        if "speed" in suites:
            rows = [(e, None) for e in args.experiment] if args.experiment else SPEED_ROWS
            result = run_speed(rows, args.overrides, args.repeats)
            save("speed", result, speed_markdown(result))
        if "steps" in suites:
            rows = [(e, None) for e in args.experiment] if args.experiment else SPEED_ROWS
            result = run_steps(rows, args.overrides, args.repeats)
            save("steps", result, steps_markdown(result))
        if "startup" in suites:
            if not re.fullmatch(r"[\w-]+", args.label):
                raise UserError(f"--label={args.label} must be letters, digits, _ or -")
            save_startup(args.label, run_startup(args.root.resolve(), args.repeats, args.overrides))
        if "keras" in suites:
            result = run_keras(args.overrides)
            save("keras", result, keras_markdown(result))
        if "scaling" in suites:
            result = run_scaling(args.overrides)
            scaling_plot(result, common.RESULTS_DIR / "scaling.png")
            save("scaling", result, [*scaling_markdown(result), "", "![scaling](bench/results/scaling.png)"])


if __name__ == "__main__":
    main()
