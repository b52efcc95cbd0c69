"""`python -m bench keras`: the study sheet's Keras LeNet-5 (bench/keras_lenet5.py, TensorFlow in a
throw-away uv environment) beside the same recipe here, bare and through src.train, and beside our own
recipe; with CIFAR-10 in DATA_DIR, the study sheet's 2-epoch CIFAR-10 run in both over three seeds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from bench import common
from bench.common import EpochClock, bench_config, prepare
from bench.speed import bare_training, lightning_training
from src.config.compose import PROJECT_ROOT
from src.runs.report import mean_std
from src.utils.errors import UserError

# TensorFlow is not a dependency: the study sheet's Keras LeNet-5 runs in a throw-away uv environment.
# scripts/uv finds (or installs) uv wherever it is, as the Makefile does.
KERAS_COMMAND = [str(PROJECT_ROOT / "scripts" / "uv"), "run", "--no-project", "--python", "3.11",
                 "--with", "tensorflow-cpu==2.21.0", "python", "bench/keras_lenet5.py"]  # fmt: skip
CIFAR10_SEEDS = (42, 1, 2)


def keras_speed(data_dir: str, out: Path, extra: list[str] | None = None) -> dict[str, Any]:
    """Run bench/keras_lenet5.py (seed LeNet-5, batch 128) and return its JSON result."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [*KERAS_COMMAND, "--data-dir", data_dir, "--out", str(out), *(extra or [])]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"the Keras benchmark failed ({' '.join(command)}): {last}")
    return json.loads(out.read_text())


def run_keras(overrides: list[str], keras_extra: list[str] | None = None, repeats: int = 3) -> dict[str, Any]:
    """Training images/s of the sheet's LeNet-5 in Keras beside the same recipe here, bare and src.train,
    and beside our own recipe (ReLU, max pooling, batch 256) through src.train."""
    seed = bench_config("sheet_lenet5_mnist", overrides, "keras_seed")
    ours = bench_config("lenet5_mnist", overrides, "keras_ours")
    keras = keras_speed(str(seed.data.data_dir), common.output_dir() / "keras_raw.json", keras_extra)
    runs = {"bare": [], "seed": [], "ours": []}
    for _ in range(repeats):  # Keras: its best of 3 warm epochs; here: the best of `repeats`, interleaved
        runs["bare"].append(bare_training(seed)["train"])
        runs["seed"].append(lightning_training(seed)["train"])
        runs["ours"].append(lightning_training(ours)["train"])
    rows = [
        ("seed LeNet-5 (tanh, average pooling, Adam)", f"Keras {keras['keras']} / TensorFlow "
         f"{keras['tensorflow']} CPU, `model.fit`", 128, keras["images_per_second"]),
        ("the same network and recipe", "bare PyTorch loop", seed.data.batch_size, max(runs["bare"])),
        ("the same network and recipe", "src.train `experiment=sheet_lenet5_mnist`", seed.data.batch_size,
         max(runs["seed"])),
        ("our recipe (ReLU, max pooling, one-cycle)", "src.train `experiment=lenet5_mnist`",
         ours.data.batch_size, max(runs["ours"])),
    ]  # fmt: skip
    return {
        "keras": keras,
        "all_runs": runs,
        "cifar10": run_keras_cifar10(overrides, keras_extra),
        "rows": [
            {
                "recipe": r,
                "framework": f,
                "batch_size": b,
                "images_per_second": round(v),
                "vs_keras": round(v / keras["images_per_second"], 3),
            }
            for r, f, b, v in rows
        ],  # fmt: skip
    }


def fit_and_test(cfg: DictConfig) -> dict[str, float]:
    """A whole src.train run (fit, then test the last weights): test accuracy and the images/s of the
    last training epoch."""
    datamodule, module, trainer = prepare(cfg)
    clock = EpochClock()
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, verbose=False)
    acc = float(trainer.callback_metrics["test/acc"])
    return {"test_acc": round(acc, 4), "images_per_second": clock.rows[-1]["images_per_second"]}


def run_keras_cifar10(overrides: list[str], keras_extra: list[str] | None = None) -> dict[str, Any]:
    """The study sheet's CIFAR-10 run (tanh, average pooling, Adam, batch 128, 2 epochs, all 50,000 training
    images) in Keras and through src.train `experiment=sheet_lenet5_cifar10`, for each of CIFAR10_SEEDS."""
    first = bench_config("sheet_lenet5_cifar10", overrides, "keras_cifar10")
    data_dir = Path(str(first.data.data_dir))
    if not any((data_dir / name).exists() for name in ("cifar-10-python.tar.gz", "cifar-10-batches-py")):
        return {"skipped": f"no CIFAR-10 in {data_dir}"}
    epochs = ["--epochs", str(first.trainer.max_epochs), "--batch-size", str(first.data.batch_size)]
    keras_runs, ours = [], []
    for seed in CIFAR10_SEEDS:  # interleaved, as everywhere in this benchmark
        extra = ["--dataset", "cifar10", *epochs, "--seed", str(seed), *(keras_extra or [])]
        keras = keras_speed(str(data_dir), common.output_dir() / f"keras_cifar10_{seed}.json", extra)
        keras_runs.append(keras)
        cfg = bench_config("sheet_lenet5_cifar10", [*overrides, f"seed={seed}"], f"keras_cifar10_{seed}")
        ours.append(fit_and_test(cfg))
    keras_name = f"Keras {keras_runs[0]['keras']} / TensorFlow {keras_runs[0]['tensorflow']} CPU, `model.fit`"
    keras_results = [
        {"test_acc": k["test_acc_after_epochs"], "images_per_second": k["images_per_second"]}
        for k in keras_runs
    ]
    rows = [
        cifar10_row(keras_name, keras_results),
        cifar10_row("src.train `experiment=sheet_lenet5_cifar10`", ours),
    ]
    for row in rows:
        row["vs_keras"] = round(row["images_per_second"] / rows[0]["images_per_second"], 3)
    return {
        "seeds": list(CIFAR10_SEEDS),
        "epochs": int(first.trainer.max_epochs),
        "batch_size": int(first.data.batch_size),
        "keras_runs": keras_runs,
        "ours": ours,
        "rows": rows,
    }


def cifar10_row(framework: str, runs: list[dict[str, float]]) -> dict[str, Any]:
    """Test accuracy over the seeds (mean, std, each) and the best training images/s."""
    mean, std = mean_std([r["test_acc"] for r in runs])
    return {
        "framework": framework,
        "test_acc_mean": round(mean, 4),
        "test_acc_std": round(std, 4),
        "test_acc": [r["test_acc"] for r in runs],
        "images_per_second": max(r["images_per_second"] for r in runs),
    }


def keras_markdown(result: dict[str, Any]) -> list[str]:
    lines = ["| recipe | framework | batch | training images/s | × Keras |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['recipe']} | {r['framework']} | {r['batch_size']} | "
                     f"{r['images_per_second']:,} | {r['vs_keras']:.2f} |")  # fmt: skip
    cifar = result.get("cifar10") or {}
    if "rows" not in cifar:
        return [*lines, "", f"CIFAR-10: {cifar.get('skipped', 'not run')}."]
    lines += [
        "",
        "The sheet's CIFAR-10 run: LeNet-5 on colour 32x32 (tanh, average pooling, valid padding, "
        "Adam 1e-3), "
        f"{cifar['epochs']} epochs of all 50,000 training images, batch {cifar['batch_size']}, "
        f"seeds {', '.join(map(str, cifar['seeds']))}:",
        "",
        "| framework | test acc (mean ± std) | each seed | training images/s (best epoch) | × Keras |",
        "|---|---|---|---|---|",
    ]
    for r in cifar["rows"]:
        each = ", ".join(f"{a:.2%}" for a in r["test_acc"])
        lines.append(f"| {r['framework']} | {r['test_acc_mean']:.2%} ± {r['test_acc_std']:.2%} | {each} | "
                     f"{r['images_per_second']:,} | {r['vs_keras']:.2f} |")  # fmt: skip
    return lines
