"""Where this project goes past the public API of Lightning, TensorBoard and torchmetrics:

    checkpoints.py   checkpoints written atomically; where the best and the last one are
    progress.py      a rich progress bar that redraws at most a few times a second
    tensorboard.py   a graph traced from the model's own example; summaries into the run's event file
    process.py       once per process: quieter logs, a cheap CUDA check, the command of DDP ranks
    precision.py     the `trainer.precision` values Lightning accepts, for the config check
    lean_imports.py  torchmetrics without the optional packages it would import for nothing
    loggers.py       W&B's logger without a deprecation warning of its own making

PRIVATE_NAMES lists every private name used, and only here (tests/test_lightning_ext.py checks them
against the installed versions); what each costs or fixes: docs/speed.md. Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrivateName:
    symbol: str  # "module:attribute", the attribute possibly dotted (a class's method)
    used_in: str  # the module of this package that uses it
    why: str
    instance: bool = False  # an attribute the class's __init__ sets, not one of the class itself


PRIVATE_NAMES: tuple[PrivateName, ...] = (
    PrivateName(
        "lightning.pytorch.strategies.launchers.subprocess_script:_hydra_subprocess_cmd",
        "process.py",
        "replaced: Lightning starts the DDP ranks of a Hydra run with the parent's sys.argv, which in a "
        "multirun holds the whole sweep (Lightning 2.x; upstream: Lightning-AI/pytorch-lightning#18175, "
        "open)",
    ),
    PrivateName(
        "lightning.pytorch.loggers.wandb:WandbLogger._wandb_init",
        "loggers.py",
        "the keyword arguments WandbLogger passes wandb.init; `anonymous=None` is dropped from them (W&B "
        ">= 0.20 warns about it; Lightning 2.x passes it always)",
        instance=True,
    ),
    PrivateName(
        "lightning.pytorch.core.module:_jit_is_scripting",
        "tensorboard.py",
        "traces the graph as Lightning's own TensorBoardLogger.log_graph does, without its detour through "
        "the datamodule's batch hook (Lightning 2.x)",
    ),
    PrivateName(
        "torch.utils.tensorboard.writer:SummaryWriter._get_file_writer",
        "tensorboard.py",
        "the run's own event file, reopened after Lightning closed it: SummaryWriter.add_hparams would "
        "write a second run into a sub-directory",
    ),
    PrivateName(
        "lightning.fabric.plugins.precision.precision:_PRECISION_INPUT",
        "precision.py",
        "Lightning's list of precision values, asked instead of copied (a typing.Union of Literals)",
    ),
    *(
        PrivateName(
            f"torchmetrics.utilities.imports:{flag}",
            "lean_imports.py",
            "set to unavailable so that torchmetrics skips importing torchvision, matplotlib and "
            "scipy.signal (torchmetrics 1.x)",
        )
        for flag in ("_TORCHVISION_AVAILABLE", "_MATPLOTLIB_AVAILABLE", "_SCIPI_AVAILABLE")
    ),
    PrivateName(
        "lightning_utilities.core.imports:RequirementCache._check_available",
        "lean_imports.py",
        "how lean_imports recognises torchmetrics' optional-import flags before setting `available`",
    ),
)
