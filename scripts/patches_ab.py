"""What each of src/lightning_ext's per-step changes saves a training step: LeNet-5 on MNIST (experiment=
lenet5_mnist) trained with every change on, then with one change off (Lightning's own behaviour), each
variant in turn, interleaved; the median time between two training batches, and its ratio to "all on".

    DATA_DIR=../shared/data uv run python scripts/patches_ab.py [--rounds 3] [--steps 300] [--batch 64]

The results and the decisions they led to: docs/speed.md, "Private Lightning names: what each one pays".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.profilers import PassThroughProfiler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the project's src/
from src.config.compose import compose_config  # noqa: E402
from src.lightning_ext import lean_steps  # noqa: E402
from src.lightning_ext.process import prepare_process  # noqa: E402
from src.training.build import build  # noqa: E402


class StepClock(L.Callback):
    """The wall time between consecutive training batches' ends: the whole step, every hook included."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, *args: object) -> None:
        self.times.append(time.perf_counter())

    def median_ms(self, skip: int = 20) -> float:
        gaps = [b - a for a, b in zip(self.times[skip:], self.times[skip + 1 :], strict=False)]
        return 1000 * statistics.median(gaps)


def original_setattr(self: object, name: str, value: object) -> None:
    torch.nn.Module.__setattr__(self, name, value)


def variants() -> dict[str, tuple[Callable[[], None], list[str]]]:
    """name -> (switch it off, extra overrides); "all on" switches nothing off."""
    shipped_setattr, shipped_profile = lean_steps.CheapHookName.__setattr__, lean_steps.QuietProfiler.profile

    def restore() -> None:
        lean_steps.CheapHookName.__setattr__ = shipped_setattr  # type: ignore[method-assign]
        lean_steps.QuietProfiler.profile = shipped_profile  # type: ignore[method-assign]

    def hook_name_off() -> None:
        restore()
        lean_steps.CheapHookName.__setattr__ = original_setattr  # type: ignore[method-assign,assignment]

    def profiler_off() -> None:
        restore()
        lean_steps.QuietProfiler.profile = PassThroughProfiler.profile  # type: ignore[method-assign]

    def both_off() -> None:
        hook_name_off()
        lean_steps.QuietProfiler.profile = PassThroughProfiler.profile  # type: ignore[method-assign]

    return {
        "all on": (restore, []),
        "hook name via nn.Module.__setattr__": (hook_name_off, []),
        "Lightning's no-op profiler": (profiler_off, []),
        "both of lean_steps.py off": (both_off, []),
        "progress bar updated every batch": (restore, ["callbacks.progress_bar.min_seconds=0"]),
    }


def one_fit(overrides: list[str], steps: int, output_dir: str) -> float:
    cfg = compose_config(
        [
            "experiment=lenet5_mnist",
            "logger=none",
            "trainer.max_epochs=1",
            f"+trainer.limit_train_batches={steps}",
            "+trainer.limit_val_batches=0",
            "test=false",
            f"paths.output_dir={output_dir}",
            *overrides,
        ]
    )
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    L.seed_everything(0, verbose=False)
    datamodule, module, trainer = build(cfg)
    clock = StepClock()
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    return clock.median_ms()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every fit")
    args = parser.parse_args()
    prepare_process()
    table = variants()
    results: dict[str, list[float]] = {name: [] for name in table}
    with tempfile.TemporaryDirectory() as output_dir:
        one_fit([f"data.batch_size={args.batch}", *args.overrides], args.steps, output_dir)  # warm-up
        for round_ in range(args.rounds):
            for name, (switch_off, extra) in table.items():
                switch_off()
                overrides = [f"data.batch_size={args.batch}", *args.overrides, *extra]
                results[name].append(one_fit(overrides, args.steps, output_dir))
                print(f"round {round_ + 1}: {name}: {results[name][-1]:.3f} ms", flush=True)
        table["all on"][0]()
    base, base_min = statistics.median(results["all on"]), min(results["all on"])
    print(f"\nstep time, batch {args.batch}, {torch.get_num_threads()} threads, {args.rounds} rounds:")
    print("| variant | median of the fits | ÷ all on | fastest fit | ÷ all on |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in results.items():
        median, fastest = statistics.median(values), min(values)
        ratios = f"{median / base:.3f} | {fastest:.3f} ms | {fastest / base_min:.3f}"
        print(f"| {name} | {median:.3f} ms | {ratios} |")


if __name__ == "__main__":
    main()
