"""What a training process changes in Lightning, each once per process however many runs it trains (a
multirun trains several in one process): quieter logs, a CUDA check that costs nothing without a GPU
driver, and the command that starts the DDP ranks of a Hydra run.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import warnings
from collections.abc import Callable, Sequence


@functools.cache
def prepare_process() -> None:
    """Import Lightning and adjust it for this process (see the module doc); a no-op after the first call."""
    # deferred: Lightning, once per process (config errors are answered before it)
    import lightning  # noqa: F401  (first: importing it sets the variable _skip_nvml_probe_without_driver reads)

    _quiet_lightning()
    _skip_nvml_probe_without_driver()


def _quiet_lightning() -> None:
    """Drop Lightning's advertising tips and a deprecation warning it raises against itself."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "💡 Tip" not in record.getMessage()
    )
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def _skip_nvml_probe_without_driver() -> None:
    """lightning.fabric sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (a fork-safe GPU check). Without an NVIDIA
    driver, torch then retries loading libnvidia-ml inside every optimizer.step(), as a failed probe is
    not cached: 0.25 ms a step, 4 % of a LeNet-5 step on a 2-core CPU. No driver means no GPU whose CUDA
    state a fork could spoil, so the plain check is used instead."""
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"


@functools.cache
def launch_ranks_with(command: Callable[[int], tuple[Sequence[str], str]]) -> None:
    """Make Lightning's subprocess launcher (`trainer=ddp` started with plain `python -m ...`) start local
    rank r > 0 of a Hydra run with `command(r)` -> (argv, working directory), once per process.

    Lightning's own command for a Hydra run (its private `_hydra_subprocess_cmd`) re-runs `sys.argv` plus
    `hydra.run.dir=...`, which in a multirun holds `-m` and the sweep lists, so every rank would start a
    sweep of its own (src/training/distributed.py: `child_command`)."""
    from lightning.pytorch.strategies.launchers import subprocess_script  # deferred: Lightning

    subprocess_script._hydra_subprocess_cmd = command  # type: ignore[assignment]  # the patch itself
