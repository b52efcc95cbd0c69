"""What Lightning's per-hook bookkeeping costs a training step, taken apart: how often a step writes the
hook's name into the LightningModule (`_current_fx_name`, through nn.Module.__setattr__) and opens the
no-op profiler's context, times what one such call costs beyond the cheapest way to do it.

    DATA_DIR=../shared/data uv run python scripts/hook_costs.py

It is why src/lightning_ext no longer patches either (docs/speed.md, "Private Lightning names"): both
together come to under 2 % of a LeNet-5 step on a 2-core CPU.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
import timeit
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.profilers import PassThroughProfiler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the project's src/
from src.config.compose import compose_config  # noqa: E402
from src.lightning_ext.process import prepare_process  # noqa: E402
from src.training.build import build  # noqa: E402

HOOK_NAME = "_current_fx_name"  # LightningModule's: the hook Lightning is calling, for self.log
STEPS = 100


def best_seconds(call, number: int = 200_000) -> float:
    return min(timeit.repeat(call, number=number, repeat=7)) / number


def counted_fit() -> tuple[float, float, float]:
    """(hook-name writes a step, profiler contexts a step, seconds a step) over one short fit."""
    counts = {"writes": 0, "profile": 0}
    setattr_, profile = torch.nn.Module.__setattr__, PassThroughProfiler.profile

    def counting_setattr(self, name, value):
        counts["writes"] += name == HOOK_NAME
        setattr_(self, name, value)

    def counting_profile(self, action_name):
        counts["profile"] += 1
        return profile(self, action_name)

    with tempfile.TemporaryDirectory() as output_dir:
        cfg = compose_config(
            ["experiment=lenet5_mnist", "logger=none", "trainer.max_epochs=1", "threads=1", "test=false",
             f"+trainer.limit_train_batches={STEPS}", "+trainer.limit_val_batches=0", "data.batch_size=64",
             f"paths.output_dir={output_dir}"]
        )  # fmt: skip
        torch.set_num_threads(1)
        datamodule, module, trainer = build(cfg)
        torch.nn.Module.__setattr__ = counting_setattr  # type: ignore[method-assign]
        PassThroughProfiler.profile = counting_profile  # type: ignore[method-assign]
        try:
            start = time.perf_counter()
            trainer.fit(module, datamodule=datamodule)
            seconds = time.perf_counter() - start
        finally:
            torch.nn.Module.__setattr__, PassThroughProfiler.profile = setattr_, profile  # type: ignore[method-assign]
    steps = trainer.global_step
    return counts["writes"] / steps, counts["profile"] / steps, seconds / steps


def main() -> None:
    prepare_process()
    module, nothing = L.LightningModule(), contextlib.nullcontext()
    write = best_seconds(lambda: torch.nn.Module.__setattr__(module, HOOK_NAME, "training_step"))
    plain_write = best_seconds(lambda: object.__setattr__(module, HOOK_NAME, "training_step"))
    profiler = PassThroughProfiler()

    def open_profile() -> None:
        with profiler.profile("on_train_batch_start"):
            pass

    def open_nothing() -> None:
        with nothing:
            pass

    context, plain_context = best_seconds(open_profile), best_seconds(open_nothing)
    writes, contexts, step = counted_fit()
    saved_writes, saved_contexts = writes * (write - plain_write), contexts * (context - plain_context)
    print(f"a step: {writes:.1f} hook-name writes, {contexts:.1f} profiler contexts; {1000 * step:.2f} ms "
          f"(whole fit of {STEPS} steps, compiling and starting included)")  # fmt: skip
    print(f"hook-name write: {1e6 * write:.2f} us, object.__setattr__ {1e6 * plain_write:.2f} us: "
          f"{1000 * saved_writes:.3f} ms a step")  # fmt: skip
    print(f"profiler context: {1e6 * context:.2f} us, a shared nullcontext {1e6 * plain_context:.2f} us: "
          f"{1000 * saved_contexts:.3f} ms a step")  # fmt: skip


if __name__ == "__main__":
    main()
