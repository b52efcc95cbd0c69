"""The benchmark: how accurate and how fast, measured on this machine, written where docs/ reads it.

    python -m bench accuracy                     # LeNet-5/MNIST recipe: accuracy, time to 99.0 %
    python -m bench accuracy --experiment sheet_lenet5_mnist
    python -m bench speed                        # src.train's path vs a bare PyTorch loop, per batch size
    python -m bench steps                        # step by step: src.train, plain Lightning, bare
    python -m bench startup                      # seconds to the first answer (errors, first batch)
    python -m bench startup --root ../before --label before   # the same for another checkout
    python -m bench keras                        # the study sheet's Keras LeNet-5 beside the same here
    python -m bench scaling                      # images/s against batch size and threads
    python -m bench time_to_accuracy --bare      # images and seconds to each test accuracy, 3 seeds
    python -m bench all                          # every suite but gpu (`make bench`)
    python -m bench gpu --results-dir DIR        # the GPU check (scripts/gpu_check.sh)

Extra Hydra overrides go at the end: `python -m bench accuracy trainer.max_epochs=5`.

Results: bench/results/<suite>.json, <suite>.md (and scaling.png), with machine, versions and date.
Each suite is a module of bench/ (common.py: what they share); this file only dispatches. What each
suite measures, and how: docs/development.md, "What each benchmark suite measures".
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bench import common
from bench.accuracy import accuracy_markdown, run_accuracy
from bench.common import save
from bench.gpu import gpu_markdown, run_gpu_check
from bench.keras import keras_markdown, run_keras
from bench.scaling import run_scaling, scaling_markdown, scaling_plot
from bench.speed import SPEED_ROWS, run_speed, speed_markdown
from bench.startup import run_startup, save_startup
from bench.steps import run_steps, steps_markdown
from bench.time_to_accuracy import run_time_to_accuracy, time_to_accuracy_markdown, time_to_accuracy_plot
from src.config.compose import PROJECT_ROOT
from src.utils.errors import UserError, user_errors

ALL_SUITES = (
    "accuracy",
    "speed",
    "steps",
    "startup",
    "keras",
    "scaling",
    "time_to_accuracy",
)  # `all`, in this order
HELP = {
    "accuracy": "LeNet-5/MNIST recipes: test accuracy after each epoch, time to 99.0 %%",
    "speed": "src.train's path against a bare PyTorch loop, per recipe and batch size",
    "steps": "a training step cut into parts: src.train, plain Lightning, bare",
    "startup": "seconds to the first answer (config mistakes, missing data, first batch)",
    "keras": "the study sheet's Keras LeNet-5 beside the same network here",
    "scaling": "training images/s against batch size and torch threads",
    "time_to_accuracy": "images and seconds until the test accuracy reaches each threshold, per seed",
    "all": "every suite but gpu, in turn (make bench)",
    "gpu": "the GPU check (scripts/gpu_check.sh): trainer=gpu and ddp, AlexNet's speed, a profile",
}


def parser() -> argparse.ArgumentParser:
    """`python -m bench <suite> [options] [hydra overrides]`: a subcommand per suite, with its options."""
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    suites = top.add_subparsers(dest="suite", required=True, metavar="suite")
    for name, text in HELP.items():
        sub = suites.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--results-dir",
            type=Path,
            help="where the results go (default: bench/results; gpu: bench/results/gpu_check)",
        )
        if name == "time_to_accuracy":
            sub.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one run per seed")
            sub.add_argument("--every", type=int, help="test every N training images (default: per recipe)")
            sub.add_argument("--bare", action="store_true", help="the recipe in the bare loop too")
            sub.add_argument(
                "--variant", action="append", default=[], metavar="NAME=OVERRIDE[,OVERRIDE]",
                help="the recipe with these overrides too (an ablation row); repeatable",
            )  # fmt: skip
        if name in ("accuracy", "speed", "steps", "time_to_accuracy"):
            sub.add_argument(
                "--experiment",
                action="append",
                help="experiment(s) to run (default: lenet5_mnist and sheet_lenet5_mnist; for speed and "
                "steps, lenet5_mnist at batch 64, 128, 256 and sheet_lenet5_mnist)",
            )
        if name in ("speed", "steps", "startup", "all"):
            sub.add_argument("--repeats", type=int, default=3, help="interleaved pairs / best of")
        if name == "startup":
            sub.add_argument("--root", type=Path, default=PROJECT_ROOT, help="the checkout to time")
            sub.add_argument("--label", default="after", help="its column, e.g. before or after")
        if name == "gpu":
            sub.add_argument(
                "--tiny", action="store_true", help="the same steps on the CPU, tiny stand-in data"
            )
            sub.add_argument("--budget-s", type=float, help="start no measurement after this many seconds")
            sub.add_argument("--only", default="", help="only these, e.g. flowers17_epochs,alexnet_b256")
        sub.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with user_errors():
        if args.suite == "gpu":
            run_gpu(args)
            return
        results_dir = (args.results_dir or common.RESULTS_DIR).resolve()
        for suite in ALL_SUITES if args.suite == "all" else (args.suite,):
            SUITES[suite](args, results_dir)


def run_gpu(args: argparse.Namespace) -> None:
    only = [name for name in args.only.split(",") if name]
    results_dir = args.results_dir or common.RESULTS_DIR / "gpu_check"
    report = run_gpu_check(results_dir, "tiny" if args.tiny else "full", args.budget_s, only)
    print("\n".join(gpu_markdown(report)[0]), flush=True)
    failed = [name for name, step in report["steps"].items() if "error" in step]
    if failed:
        raise SystemExit(f"error: the GPU check failed in: {', '.join(failed)}")


def experiments(args: argparse.Namespace) -> list[str] | None:
    return getattr(args, "experiment", None)


def accuracy(args: argparse.Namespace, results_dir: Path) -> None:
    results = [
        run_accuracy(e, args.overrides) for e in experiments(args) or ["lenet5_mnist", "sheet_lenet5_mnist"]
    ]
    save("accuracy", {"runs": results}, accuracy_markdown(results), results_dir)


def speed(args: argparse.Namespace, results_dir: Path) -> None:
    rows = [(e, None) for e in experiments(args)] if experiments(args) else SPEED_ROWS
    result = run_speed(rows, args.overrides, args.repeats)
    save("speed", result, speed_markdown(result), results_dir)


def steps(args: argparse.Namespace, results_dir: Path) -> None:
    rows = [(e, None) for e in experiments(args)] if experiments(args) else SPEED_ROWS
    result = run_steps(rows, args.overrides, args.repeats)
    save("steps", result, steps_markdown(result), results_dir)


def startup(args: argparse.Namespace, results_dir: Path) -> None:
    label, root = getattr(args, "label", "after"), getattr(args, "root", PROJECT_ROOT)
    if not re.fullmatch(r"[\w-]+", label):
        raise UserError(f"--label={label} must be letters, digits, _ or -")
    save_startup(label, run_startup(root.resolve(), args.repeats, args.overrides), results_dir)


def keras(args: argparse.Namespace, results_dir: Path) -> None:
    result = run_keras(args.overrides)
    save("keras", result, keras_markdown(result), results_dir)


def scaling(args: argparse.Namespace, results_dir: Path) -> None:
    result = run_scaling(args.overrides)
    results_dir.mkdir(parents=True, exist_ok=True)  # the plot is drawn before save() writes the tables
    scaling_plot(result, results_dir / "scaling.png")
    save("scaling", result, [*scaling_markdown(result), "", "![scaling](scaling.png)"], results_dir)


def time_to_accuracy(args: argparse.Namespace, results_dir: Path) -> None:
    variants = {}
    for text in getattr(args, "variant", []):
        name, sep, overrides = text.partition("=")
        if not sep or not name or not overrides:
            raise UserError(f"--variant {text} is not NAME=OVERRIDE[,OVERRIDE...]")
        variants[name] = overrides.split(",")
    for experiment in experiments(args) or ["lenet5_mnist"]:
        seeds, every = getattr(args, "seeds", [1, 2, 3]), getattr(args, "every", None)
        bare = getattr(args, "bare", False)
        result = run_time_to_accuracy(experiment, args.overrides, seeds, variants, every, bare)
        name = f"time_to_accuracy_{experiment}"
        results_dir.mkdir(parents=True, exist_ok=True)
        time_to_accuracy_plot(result, results_dir / f"{name}.png")
        save(name, result, [*time_to_accuracy_markdown(result), "", f"![{name}]({name}.png)"], results_dir)


SUITES = {"accuracy": accuracy, "speed": speed, "steps": steps, "startup": startup, "keras": keras,
          "scaling": scaling, "time_to_accuracy": time_to_accuracy}  # fmt: skip


if __name__ == "__main__":
    main()
