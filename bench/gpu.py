"""`python -m bench gpu` (scripts/gpu_check.sh): LeNet-5 through `python -m src.train` with
trainer=gpu and trainer=ddp, AlexNet's speed against the bare loop at three batch sizes, a profile of its
step, and the epoch time of the Flowers-17 final fit; `--tiny`: the same steps on the CPU."""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from bench import common
from bench.common import EpochClock, StepWindow, bench_config, machine, prepare
from bench.speed import bare_training, speed_row, two_epoch_fit
from src.config.compose import PROJECT_ROOT
from src.runs.rundir import RunDir
from src.utils.errors import UserError
from src.utils.files import write_json_atomically

# What scripts/gpu_check.sh measures in one call on a lent GPU machine, in order of importance (a step
# that would start past the time budget is skipped, and every step's result is written as it comes).
# "tiny": the same steps on the CPU, on stand-in data, in seconds: the script's own test.
ALEXNET = "alexnet_bn_flowers17"
FLOWERS_FINAL = "alexnet_bn_flowers17_final"
GPU_CHECK: dict[str, dict[str, Any]] = {
    "full": {
        "trainer": ["trainer=gpu"],
        "ddp": ["trainer=ddp", "trainer.devices=1"],
        "mnist": {"train": 60000, "test": 10000},
        "lenet": [],
        "batches": (128, 64, 256),
        "synthetic": ["data.train_size=8192", "data.eval_size=1024"],
        "repeats": 2,
        "window": (10, 20),  # torch.profiler: 20 steps of the warm epoch, after 10
        "flowers_epochs": 6,
        "flowers": [],
    },
    "tiny": {
        "trainer": ["trainer=default"],
        "ddp": ["trainer=ddp_sim", "trainer.devices=1"],
        "mnist": {"train": 256, "test": 64},
        "lenet": ["data.val_size=64", "data.batch_size=32"],
        "batches": (4, 2),
        # AlexNet on 67x67 inputs (its smallest): the CPU trains it at 227x227 at a few images/s
        "synthetic": [
            "data.train_size=8",
            "data.eval_size=4",
            "data.eval_batch_size=4",
            "model.input_size=67",
        ],
        "repeats": 1,
        "window": (0, 2),
        "flowers_epochs": 2,
        "flowers": [
            "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=1",
            "data.eval_batch_size=4",
            "model.input_size=67",
        ],  # fmt: skip
    },
}
# No checkpoints (AlexNet's are 0.5 GB, a second or more each), not even Lightning's default one: in the
# speed runs they would be written between the epochs, off the clock, costing the check time only.
NO_CHECKPOINTS = [
    "callbacks.model_checkpoint=null",
    "callbacks.last_checkpoint=null",
    "+trainer.enable_checkpointing=false",
]
INSTRUMENTS = (
    "WindowCallback",
    "EpochClock",
    "EpochWallClock",
)  # the bench's own callbacks: not in a profile


class EpochWallClock(L.Callback):
    """Wall time of whole epochs: training, validation, checkpoints and the epoch-end callbacks."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.marks.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.marks.append(time.perf_counter())

    def seconds(self) -> list[float]:
        return [round(b - a, 3) for a, b in zip(self.marks, self.marks[1:], strict=False)]


def profile_rows(profiler: Any, per: int, top: int, min_calls: int = 1) -> list[dict[str, Any]]:
    """Lightning's SimpleProfiler as rows: action, calls, median ms, total s, ms per `per` (a step, an
    epoch); only actions called at least `min_calls` times, the `top` largest totals."""
    rows = []
    for action, durations in profiler.recorded_durations.items():
        if len(durations) < min_calls or any(name in action for name in INSTRUMENTS):
            continue
        total = math.fsum(durations)
        name = re.sub(r"\{.*\}", "", action)  # ModelCheckpoint{'monitor': ...}.on_… -> ModelCheckpoint.on_…
        median = statistics.median(durations)
        rows.append({"action": name, "calls": len(durations), "median_ms": round(1000 * median, 3),
                     "total_s": round(total, 3), "ms_per": round(1000 * total / max(per, 1), 3)})  # fmt: skip
    return sorted(rows, key=lambda row: -row["total_s"])[:top]


def gpu_data(mode: str, data_dir: Path) -> dict[str, Any]:
    """The MNIST and Flowers-17 to use: DATA_DIR's, or stand-ins of the same files and sizes written by
    tests/tiny_data.py (MNIST: bright bars on noise; Flowers-17: 1,360 one-colour JPEGs, decoded to the
    same 256x256 tensors). A device call carries 64 MiB at most: Flowers-17's archive (57 MiB), not MNIST."""
    from src.data.mnist import MNIST_FILES
    from tests.tiny_data import make_tiny_flowers, make_tiny_mnist  # the writers of the real file formats

    standins = common.output_dir() / "gpu_check_data" / mode
    raw = data_dir / "MNIST" / "raw"
    if mode == "full" and all((raw / f).is_file() or (raw / f"{f}.gz").is_file() for f in MNIST_FILES):
        mnist, mnist_kind = data_dir, "MNIST"
    else:
        size = GPU_CHECK[mode]["mnist"]
        mnist = make_tiny_mnist(standins / "mnist", size["train"], size["test"], compress=False)
        mnist_kind = f"a stand-in of MNIST's shape ({size['train']:,} + {size['test']:,} synthetic images)"
    if mode == "full" and (data_dir / "flowers17" / "17flowers.tgz").is_file():
        flowers, flowers_kind = data_dir, "Flowers-17 (17flowers.tgz)"
    else:
        flowers = standins / "flowers17"
        if not (flowers / "flowers17" / "17flowers.tgz").is_file():
            make_tiny_flowers(flowers)
        flowers_kind = "a stand-in of Flowers-17's shape (1,360 one-colour JPEGs)"
    return {
        "mnist": str(mnist),
        "mnist_kind": mnist_kind,
        "flowers": str(flowers),
        "flowers_kind": flowers_kind,
    }


def cli_run(name: str, overrides: list[str], paths: list[str], results_dir: Path) -> dict[str, Any]:
    """`python -m src.train <overrides>` as a user runs it; its metrics.json goes to <results>/<name>.json."""
    run_dir = common.output_dir() / f"gpu_check_{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "src.train", *overrides, *paths, f"hydra.run.dir={run_dir}",
               "callbacks.progress_bar=null"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    print(done.stdout[-1500:], done.stderr[-1500:], sep="\n", flush=True)
    if done.returncode != 0:
        raise UserError(f"{' '.join(command)} ended with status {done.returncode}: {done.stderr[-1500:]}")
    run = RunDir(run_dir)
    shutil.copy(run.metrics_file, results_dir / f"{name}.json")
    metrics = run.read_metrics()
    backend = re.search(r"distributed_backend=(\w+)", done.stdout + done.stderr)
    return {
        "command": "python -m src.train " + " ".join(overrides),
        "wall_seconds": round(wall, 1),
        "fit_seconds": metrics["fit_seconds"],
        "epochs": metrics["epochs"],
        "test_acc": metrics["metrics"].get("test/acc"),
        "train_images_per_second": metrics["metrics"].get("train/images_per_second"),
        "distributed_backend": backend[1] if backend else None,
    }


def alexnet_overrides(mode: str, batch: int, on_device: bool = True) -> list[str]:
    settings = GPU_CHECK[mode]
    return [*settings["trainer"], "data=synthetic", *settings["synthetic"], f"data.batch_size={batch}",
            f"data.keep_on_device={str(on_device).lower()}", *NO_CHECKPOINTS]  # fmt: skip


def alexnet_speed(mode: str, batch: int, on_device: bool = True) -> dict[str, Any]:
    """src.train against the bare loop for AlexNet on 227x227 (bf16, NHWC on a GPU), one batch size."""
    result = speed_row(
        ALEXNET, None, alexnet_overrides(mode, batch, on_device), GPU_CHECK[mode]["repeats"], extras=False
    )
    gpu = GPU_CHECK[mode]["trainer"] == ["trainer=gpu"]
    return {**result, "batches_from": "GPU memory" if on_device and gpu else "host memory"}


def alexnet_profile(mode: str, batch: int) -> dict[str, Any]:
    """Where a step's time goes: Lightning's hooks (profiler=simple), and torch.profiler's wall time per
    step against the GPU's busy time, for src.train and for the bare loop."""
    cfg = bench_config(ALEXNET, [*alexnet_overrides(mode, batch), "profiler=simple"], "gpu_check_profile")
    skip, steps = GPU_CHECK[mode]["window"]
    lightning_window, bare_window = StepWindow(skip, steps), StepWindow(skip, steps)
    _, _, trainer, clock = two_epoch_fit(cfg, lightning_window)
    per_step = trainer.num_training_batches
    bare_speed = bare_training(cfg, bare_window)["train"]
    return {
        "batch_size": batch,
        "lightning_images_per_second": clock.rows[-1]["images_per_second"],
        "bare_images_per_second": round(bare_speed),
        "hooks": profile_rows(trainer.profiler, per=2 * per_step, top=14, min_calls=2 * per_step),
        "lightning_window": lightning_window.result,
        "bare_window": bare_window.result,
    }


def flowers_epochs(mode: str, flowers_dir: str) -> dict[str, Any]:
    """Epoch time of the Flowers-17 final fit (train + val, 1,020 images an epoch): each epoch's wall
    time, its training part, and what the rest went to (profiler=simple)."""
    settings = GPU_CHECK[mode]
    extra = NO_CHECKPOINTS if mode == "tiny" else []  # on the GPU the epoch time includes its checkpoints
    epochs = f"trainer.max_epochs={settings['flowers_epochs']}"
    overrides = [*settings["trainer"], f"data.data_dir={flowers_dir}", epochs, "profiler=simple",
                 *settings["flowers"], *extra]  # fmt: skip
    cfg = bench_config(FLOWERS_FINAL, overrides, "gpu_check_flowers17")
    datamodule, module, trainer = prepare(cfg)  # decodes the archive into the cache first, off the clock
    clock, wall = EpochClock(), EpochWallClock()
    trainer.callbacks.extend([clock, wall])
    trainer.fit(module, datamodule=datamodule)
    epochs = wall.seconds()
    later = epochs[1:] or epochs
    return {
        "experiment": FLOWERS_FINAL,
        "overrides": overrides,
        "epochs": len(epochs),
        "epoch_seconds": epochs,
        "median_epoch_seconds": round(statistics.median(later), 3),  # after the first (cuDNN's search)
        "train_seconds": [
            round(r["train_seconds"] - p, 3)
            for r, p in zip(clock.rows, [0.0] + [r["train_seconds"] for r in clock.rows], strict=False)
        ],  # fmt: skip
        "train_images_per_second": [r["images_per_second"] for r in clock.rows],
        "train_images": clock.trained_images // max(len(clock.rows), 1),
        "profile": profile_rows(trainer.profiler, per=len(epochs), top=12),
    }


def run_gpu_check(
    results_dir: Path, mode: str, budget_s: float | None, only: Sequence[str] = ()
) -> dict[str, Any]:
    """Every measurement of the GPU check (or those named in `only`, e.g. to finish a check that ran out
    of time), each written to <results dir> as soon as it is done."""
    results_dir.mkdir(parents=True, exist_ok=True)
    settings, started = GPU_CHECK[mode], time.monotonic()
    if mode == "full" and not torch.cuda.is_available():
        raise UserError(
            "the GPU check needs a CUDA GPU (no GPU here: scripts/gpu_check.sh --tiny runs it on the CPU)"
        )
    data_dir = Path(os.environ.get("DATA_DIR", PROJECT_ROOT / "data")).expanduser()
    report: dict[str, Any] = {"mode": mode, "machine": machine(), "budget_s": budget_s, "steps": {}}
    if torch.cuda.is_available():
        report["machine"]["cuda"] = torch.version.cuda

    def step(name: str, measure: Callable[[], Any]) -> None:
        if only and name not in only and name != "data":
            return
        if budget_s is not None and time.monotonic() - started > budget_s:
            report["steps"][name] = {"skipped": f"over the {budget_s:.0f} s budget"}
        else:
            print(f"--- gpu check: {name} ({time.monotonic() - started:.0f} s in)", flush=True)
            start = time.perf_counter()
            try:
                report["steps"][name] = {"result": measure()}
            except Exception as error:  # one failed measurement must not lose the others
                traceback.print_exc()
                report["steps"][name] = {"error": f"{type(error).__name__}: {error}"[-3000:]}
            report["steps"][name]["seconds"] = round(time.perf_counter() - start, 1)
        write_gpu_report(report, results_dir)

    data: dict[str, Any] = {}
    step("data", lambda: data.update(gpu_data(mode, data_dir)) or dict(data))
    mnist = [
        f"data.data_dir={data.get('mnist')}",
        "data.download=false",
        f"paths.cache_dir={common.output_dir() / 'gpu_check_cache'}",
    ]
    lenet = ["experiment=lenet5_mnist", "trainer.max_epochs=1", *settings["lenet"]]
    step("lenet5_gpu", lambda: cli_run("lenet5_gpu", [*lenet, *settings["trainer"]], mnist, results_dir))
    step("lenet5_ddp", lambda: cli_run("lenet5_ddp", [*lenet, *settings["ddp"]], mnist, results_dir))
    first, *others = settings["batches"]
    step(f"alexnet_b{first}", lambda: alexnet_speed(mode, first))
    step(f"alexnet_b{first}_host", lambda: alexnet_speed(mode, first, on_device=False))
    step("alexnet_profile", lambda: alexnet_profile(mode, first))
    step("flowers17_epochs", lambda: flowers_epochs(mode, data["flowers"]))
    for batch in others:
        step(f"alexnet_b{batch}", lambda batch=batch: alexnet_speed(mode, batch))
    report["seconds"] = round(time.monotonic() - started, 1)
    write_gpu_report(report, results_dir)
    return report


def _cell(value: Any, spec: str = ",.0f") -> str:
    return "–" if value is None else format(value, spec)


def _lenet_lines(ok: dict[str, Any]) -> list[str]:
    kind = ok.get("data", {}).get("mnist_kind", "?")
    lines = [f"LeNet-5 (`experiment=lenet5_mnist trainer.max_epochs=1`) on {kind}:", "",
             "| command | epochs | test acc | fit time | training images/s | backend |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in (ok[name] for name in ("lenet5_gpu", "lenet5_ddp") if name in ok):
        lines.append(f"| `{r['command']}` | {r['epochs']} | {_cell(r['test_acc'], '.2%')} | "
                     f"{r['fit_seconds']:.1f} s | {_cell(r['train_images_per_second'])} | "
                     f"{r['distributed_backend'] or '–'} |")  # fmt: skip
    return lines


def _speed_lines(ok: dict[str, Any], trainer: str) -> list[str]:
    speeds = sorted((r for name, r in ok.items() if name.startswith("alexnet_b")),
                    key=lambda r: (r["batch_size"], r["batches_from"]))  # fmt: skip
    if not speeds:
        return []
    lines = [f"AlexNet (`experiment={ALEXNET} data=synthetic {trainer}`: 227x227 crops of 256x256 images; "
             "no checkpoints), training images/s of a warm epoch, the best of the interleaved runs:", "",
             "| batch | batches from | src.train | bare loop | ratio | ratio of each pair |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in speeds:
        t, pairs = r["train_images_per_second"], ", ".join(f"{x:.3f}" for x in r["train_ratio_per_pair"])
        lines.append(f"| {r['batch_size']} | {r['batches_from']} | {t['lightning']:,} | {t['bare']:,} | "
                     f"{r['train_ratio']:.3f} | {pairs} |")  # fmt: skip
    return lines


def _profile_lines(p: dict[str, Any], first_step: int) -> tuple[list[str], list[str]]:
    lines = [f"Where a step of batch {p['batch_size']} goes: torch.profiler over steps {first_step}+ of the "
             "warm epoch (GPU busy: any kernel or copy running):", "",
             "| loop | images/s | wall ms/step | GPU busy ms/step | GPU busy share |",
             "|---|---|---|---|---|"]  # fmt: skip
    text = []
    loops = (("src.train", p["lightning_window"], p["lightning_images_per_second"]),
             ("bare loop", p["bare_window"], p["bare_images_per_second"]))  # fmt: skip
    for label, window, speed in loops:
        if window:
            lines.append(f"| {label} | {speed:,} | {window['wall_ms_per_step']:.2f} | "
                         f"{_cell(window['gpu_busy_ms_per_step'], '.2f')} | "
                         f"{_cell(window['gpu_busy_share'], '.0%')} |")  # fmt: skip
            text += [f"== torch.profiler, {label}, batch {p['batch_size']}, {window['steps']} steps",
                     window["top_operators"], ""]  # fmt: skip
    lines += ["", "src.train's step by Lightning's hooks (`profiler=simple`, host time):", "",
              "| action | calls | median ms | ms per step |", "|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| `{h['action']}` | {h['calls']} | {h['median_ms']:.3f} | {h['ms_per']:.3f} |" for h in p["hooks"]
    ]
    return lines, text


def _flowers_lines(f: dict[str, Any], kind: str, trainer: str) -> list[str]:
    def each(values: list[float], spec: str) -> str:
        return ", ".join(format(v, spec) for v in values)

    lines = [f"Flowers-17 final fit (`experiment={FLOWERS_FINAL} {trainer}`) on {kind}, "
             f"{f['train_images']:,} training images an epoch: epochs of {each(f['epoch_seconds'], '.2f')} s "
             f"(median after the first {f['median_epoch_seconds']:.2f} s), of which training "
             f"{each(f['train_seconds'], '.2f')} s ({each(f['train_images_per_second'], ',')} images/s). "
             "Where an epoch goes (`profiler=simple`, host time):", "",
             "| action | calls | median ms | ms per epoch |", "|---|---|---|---|"]  # fmt: skip
    return lines + [f"| `{h['action']}` | {h['calls']} | {h['median_ms']:.3f} | {h['ms_per']:.1f} |"
                    for h in f["profile"]]  # fmt: skip


def gpu_markdown(report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The tables of the GPU check (docs-ready), and torch.profiler's operator tables for profile.txt."""
    m, steps, settings = report["machine"], report["steps"], GPU_CHECK[report["mode"]]
    ok = {name: s["result"] for name, s in steps.items() if "result" in s}
    trainer = " ".join(settings["trainer"])
    cuda = f" (CUDA {m['cuda']})" if m.get("cuda") else ""
    lines = [f"# GPU check: {m['gpu'] or 'no GPU (--tiny, on the CPU)'}", "",
             f"`scripts/gpu_check.sh` on {m['date']}: {m['gpu'] or m['cpu']}; Python {m['python']}, "
             f"torch {m['torch']}{cuda}, lightning {m['lightning']}; "
             f"{report.get('seconds', '…')} s in all."]  # fmt: skip
    lines += [
        f"- **{name}**: {s.get('error') or s.get('skipped')}"
        for name, s in steps.items()
        if "result" not in s
    ]
    lines += ["", *_lenet_lines(ok), "", *_speed_lines(ok, trainer)]
    text: list[str] = []
    if "alexnet_profile" in ok:
        profile_lines, text = _profile_lines(ok["alexnet_profile"], settings["window"][0])
        lines += ["", *profile_lines]
    if "flowers17_epochs" in ok:
        kind = ok.get("data", {}).get("flowers_kind", "?")
        lines += ["", *_flowers_lines(ok["flowers17_epochs"], kind, trainer)]
    return lines, text


def write_gpu_report(report: dict[str, Any], results_dir: Path) -> None:
    """<results>/gpu_check.json, gpu_check.md and profile.txt: rewritten after every step."""
    write_json_atomically(report | {"command": "scripts/gpu_check.sh"}, results_dir / "gpu_check.json")
    lines, profile = gpu_markdown(report)
    (results_dir / "gpu_check.md").write_text("\n".join(lines) + "\n")
    if profile:
        (results_dir / "profile.txt").write_text("\n".join(profile) + "\n")
