"""DDP under Hydra: one run directory per run, however the processes are started.

- Lightning's own launcher (`trainer=ddp`): `child_command` starts ranks 1..n-1 with this job's own
  overrides in this job's directory (not `sys.argv`, which in a multirun would start a sweep each);
- torchrun, srun, Lightning's multi-node env vars: `rank_overrides` sends every non-zero rank's Hydra
  output to a throwaway directory, so rank 0's run directory is the only one;
- several DDP jobs in one process (a serial multirun): `isolated_job` gives each a fresh process group;
- hydra/launcher=submitit_slurm: `SlurmLauncher` keeps the tasks of rank > 0 out of `.hydra/` and train.log.
How each case works: docs/scale-out.md.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

# Env vars through which an external launcher tells a process its rank (torchrun sets RANK; SLURM
# SLURM_PROCID; Lightning's launcher LOCAL_RANK for its children; multi-node by hand NODE_RANK).
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")
# What Lightning's subprocess launcher writes into os.environ of rank 0.
RENDEZVOUS_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def _quote(value: str) -> str:
    """A value for a Hydra override, quoted when the override grammar would split it."""
    if value and all(ch.isalnum() or ch in "/._-+" for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def launch_rank() -> int:
    """The largest rank any launcher has given this process (0 for a plain `python -m src.train`).

    Non-zero means "not the process that owns the run directory": a torchrun/srun worker other than
    global rank 0, a Lightning child (LOCAL_RANK > 0), or the main process of node > 0.
    """
    ranks = []
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.strip().lstrip("-").isdigit():
            ranks.append(int(value))
    return max(ranks, default=0)


def rank_overrides(argv: Sequence[str]) -> list[str]:
    """`argv` with Hydra's output redirected for processes that are not global rank 0.

    - `hydra.output_subdir=null`: never write `.hydra/` (rank 0's copy stays intact);
    - without an explicit `hydra.run.dir=` (torchrun/srun/multi-node workers): a temporary run and
      sweep directory, removed at exit, so no stray timestamped directory appears under outputs/.
      An explicit `hydra.run.dir=` (what `child_command` passes) is kept.
    """
    args = list(argv)
    if launch_rank() == 0:
        return args
    extra = [] if "hydra.output_subdir=null" in args else ["hydra.output_subdir=null"]
    if not any(arg.lstrip("+").startswith("hydra.run.dir=") for arg in args):
        scratch = tempfile.mkdtemp(prefix=f"src-train-rank{launch_rank()}-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        extra += [f"hydra.run.dir={_quote(scratch)}", f"hydra.sweep.dir={_quote(scratch)}"]
    return args + extra


def task_overrides(overrides: Sequence[str]) -> list[str]:
    """A job's sweep overrides for one SLURM task: as they are for rank 0; for the other ranks without
    `.hydra/` and with their log on stdout (see the module doc, 4)."""
    if launch_rank() == 0:
        return list(overrides)
    return [*overrides, "hydra.output_subdir=null", "hydra.job_logging.root.handlers=[console]"]


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, whose job tasks of rank > 0 write nothing into the run
    directory (conf/hydra/launcher/submitit_slurm.yaml)."""

    def __call__(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        return super().__call__(task_overrides(sweep_overrides), *args, **kwargs)


def child_command(local_rank: int) -> tuple[list[str], str]:
    """The command Lightning's subprocess launcher runs for local rank `local_rank` (see module doc)."""
    hydra_cfg = HydraConfig.get()
    command = [sys.executable, "-m", "src.train", f"--config-name={hydra_cfg.job.config_name}"]
    for source in hydra_cfg.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            command.append(f"--config-dir={source.path}")
    command += list(hydra_cfg.overrides.task)
    command += [
        f"hydra.run.dir={_quote(hydra_cfg.runtime.output_dir)}",
        "hydra.output_subdir=null",  # rank 0 wrote .hydra/; a child must not overwrite it
        "hydra.mode=RUN",  # hparams_search configs set MULTIRUN; a child is one run
        f"hydra.job.name=train_ddp_process_{local_rank}",
    ]
    return command, get_original_cwd()


@contextlib.contextmanager
def isolated_job() -> Iterator[None]:
    """Run one training job; afterwards destroy its process group and restore the rendezvous env vars,
    so the next job of a multirun in this process starts its own group (and its children find it)."""
    saved = {name: os.environ.get(name) for name in RENDEZVOUS_VARIABLES}
    try:
        yield
    finally:
        import torch.distributed as dist  # deferred: torch, only as the job ends

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
