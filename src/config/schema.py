"""The rules a composed config must satisfy before anything is built or trained.

`validate_config` checks the values users set on the command line (types, ranges, known names) and the
combinations that can only fail later (a GPU trainer on a machine without one, an input larger than
the decoded Flowers-17 images, ...). Every broken rule becomes one clause naming the key, the bad value
and what is allowed, e.g. `optimizer.lr=-1 is out of range: must be > 0`; all broken rules of a command
line are reported together, on one line, by src.config.check.validate_command_line.

The rules of the keys every run has are the table below (a key absent from the composed config is
skipped); a dataset's rules are on its card (src/data/catalog.py), a network's on its plan
(src/models/geometry.py). Where each rule lives and when torch is imported: docs/development.md.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from src.data.catalog import COMMON_RULES, dataset_for_target
from src.lightning_ext.precision import precision_values
from src.utils.errors import ConfigError
from src.utils.rules import Rule, broken_rules, is_int

_ABSENT = object()

# The accelerators this project runs on (tpu is refused below with a hint).
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")

RULES: tuple[Rule, ...] = (
    Rule("seed", "int", "an integer or null", nullable=True),
    Rule("threads", "int", "an integer >= 1 or null", lambda v: v >= 1, nullable=True),
    Rule("optimizer.lr", "number", "> 0", lambda v: v > 0),
    Rule("optimizer.weight_decay", "number", ">= 0", lambda v: v >= 0),
    Rule("optimizer.momentum", "number", "0 <= momentum < 1", lambda v: 0 <= v < 1),
    Rule("scheduler.max_lr", "number", "> 0", lambda v: v > 0),
    Rule("scheduler.step_size", "int", "an integer >= 1", lambda v: v >= 1),
    Rule("scheduler.gamma", "number", "> 0", lambda v: v > 0),
    Rule("scheduler.T_max", "int", "an integer >= 1", lambda v: v >= 1),
    Rule("scheduler.factor", "number", "0 < factor < 1", lambda v: 0 < v < 1),
    Rule("scheduler.patience", "int", "an integer >= 0", lambda v: v >= 0),
    Rule("scheduler.pct_start", "number", "0 < pct_start < 1", lambda v: 0 < v < 1),
    Rule("test_checkpoint", "choice", "best, last", lambda v: v in ("best", "last")),
    Rule("model.input_size", "int", "an integer >= 1", lambda v: v >= 1),
    Rule("model.in_channels", "int", "an integer >= 1", lambda v: v >= 1),
    Rule("model.num_classes", "int", "an integer >= 2", lambda v: v >= 2),
    Rule("model.dropout", "number", "0 <= dropout < 1", lambda v: 0 <= v < 1),
    Rule("module.label_smoothing", "number", "0 <= label_smoothing < 1", lambda v: 0 <= v < 1),
    Rule("module.scheduler_interval", "choice", "epoch or step", lambda v: v in ("epoch", "step")),
    Rule("trainer.max_epochs", "int", "an integer >= 1", lambda v: v >= 1),
    Rule("trainer.min_epochs", "int", "an integer >= 0", lambda v: v >= 0, nullable=True),
    Rule(
        "trainer.check_val_every_n_epoch", "int", "an integer >= 1 or null", lambda v: v >= 1, nullable=True
    ),
    Rule("trainer.log_every_n_steps", "int", "an integer >= 1", lambda v: v >= 1),
    Rule("trainer.deterministic", "bool", "true or false", nullable=True),
    Rule("trainer.fast_dev_run", "fast_dev_run", "true, false or a number of batches >= 0"),
    Rule("trainer.accelerator", "choice", ", ".join(ACCELERATORS), lambda v: v in ACCELERATORS),
)


def _value(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)


def _values(cfg: DictConfig, rules: Sequence[Rule]) -> dict[str, Any]:
    """The composed values of the rules' keys that the config has."""
    found = {rule.key: _value(cfg, rule.key) for rule in rules}
    return {key: value for key, value in found.items() if value is not _ABSENT}


def _devices_problem(cfg: DictConfig, on_this_machine: bool = True) -> str | None:
    """trainer.accelerator / trainer.devices that this machine cannot provide. `on_this_machine=False`
    (a cluster launcher: the jobs run on other machines) checks the values only."""
    accelerator, devices = _value(cfg, "trainer.accelerator"), _value(cfg, "trainer.devices")
    if on_this_machine and accelerator in ("gpu", "cuda", "mps"):
        import torch  # deferred: torch, only for a config that asks for a GPU here
    if on_this_machine and accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        return (
            f"trainer.accelerator={accelerator} is not available: no CUDA GPU on this machine; "
            "use trainer=default (or trainer.accelerator=cpu)"
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        return "trainer.accelerator=mps is not available on this machine; use trainer=default"
    if accelerator == "tpu":
        return "trainer.accelerator=tpu is not supported here; use trainer=default or trainer=gpu"
    if devices is _ABSENT or devices in ("auto", -1, "-1"):
        return None
    if is_int(devices):
        if devices < 1:
            return f"trainer.devices={devices} is out of range: must be an integer >= 1, -1 or auto"
        if on_this_machine and accelerator in ("gpu", "cuda") and devices > torch.cuda.device_count():
            return (
                f"trainer.devices={devices} is not available: this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s)"
            )
        return None
    if isinstance(devices, str | Sequence):
        return None  # "0,1" or [0, 1]: Lightning parses and checks these itself
    return f"trainer.devices={devices} is not allowed: must be an integer >= 1, a list of ids, -1 or auto"


def _data_problems(cfg: DictConfig) -> list[str]:
    """The dataset's own rules and its largest input, as its card declares them (src/data/catalog.py);
    for a datamodule without a card, the rules of every in-memory datamodule."""
    card = dataset_for_target(str(_value(cfg, "data._target_")))
    if card is None:
        return broken_rules(COMMON_RULES, _values(cfg, COMMON_RULES))
    options = {key.removeprefix("data."): value for key, value in _values(cfg, card.rules).items()}
    return card.problems(options, _value(cfg, "model.input_size"))


def _precision_problem(cfg: DictConfig, known_precisions: Collection[str]) -> str | None:
    """A `trainer.precision` Lightning does not take, asked of Lightning itself (which imports it) unless
    conf/ sets the value somewhere (`known_precisions`, checked against Lightning by the tests)."""
    value = _value(cfg, "trainer.precision")
    if value is _ABSENT or str(value) in known_precisions:
        return None
    allowed = precision_values()
    if str(value) in allowed:
        return None
    return f"trainer.precision={value} is not a choice; allowed: {', '.join(allowed)}"


def _combination_problems(cfg: DictConfig) -> list[str]:
    problems = _train_on_val_problems(cfg)
    min_epochs, max_epochs = _value(cfg, "trainer.min_epochs"), _value(cfg, "trainer.max_epochs")
    if is_int(min_epochs) and is_int(max_epochs) and min_epochs > max_epochs >= 1:
        problems.append(
            f"trainer.min_epochs={min_epochs} is out of range: must be <= trainer.max_epochs={max_epochs}"
        )
    return problems


def _train_on_val_problems(cfg: DictConfig) -> list[str]:
    """Training on the validation split makes val/acc a training metric: nothing may select on it."""
    if _value(cfg, "data.train_on_val") is not True:
        return []
    problems = []
    if _value(cfg, "test_checkpoint") != "last":
        problems.append(
            "data.train_on_val=true needs test_checkpoint=last: the best val/acc checkpoint selects "
            "nothing when the network trains on the validation images"
        )
    if isinstance(_value(cfg, "callbacks.early_stopping"), DictConfig):
        problems.append(
            "data.train_on_val=true cannot stop early on the validation split it trains on: "
            "drop it with ~callbacks.early_stopping"
        )
    return problems


# Arguments the LightningModule passes itself (src/training/module.py), not set in the config group.
SUPPLIED_ARGUMENTS = {"optimizer": {"params"}, "scheduler": {"optimizer", "total_steps"}}


def _argument_problems(cfg: DictConfig, known_arguments: Mapping[str, Collection[str]]) -> list[str]:
    """Keys of the optimizer/scheduler groups that their class does not take, e.g. a plateau
    scheduler's `patience` left over when an experiment's scheduler is swapped for `scheduler=cosine`.
    The class (and with it torch) is imported only when a key is not in `known_arguments[target]`."""
    problems = []
    for group, supplied in SUPPLIED_ARGUMENTS.items():
        node = _value(cfg, group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        known = known_arguments.get(str(node._target_), ())
        if all(str(key).startswith("_") or key in known for key in node):
            continue
        try:
            parameters = inspect.signature(get_class(node._target_)).parameters
        except (ImportError, ValueError, TypeError):
            continue  # an unknown target is reported when it is instantiated
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            continue
        allowed = [name for name in parameters if name not in supplied]
        for key in map(str, node):  # a config node's keys are strings
            if not key.startswith("_") and key not in parameters:
                problems.append(
                    f"{group}.{key}={node[key]} is not an argument of {node._target_}: its arguments are "
                    f"{', '.join(allowed)} (drop it with ~{group}.{key})"
                )
    return problems


def config_problems(
    cfg: DictConfig,
    known_arguments: Mapping[str, Collection[str]] | None = None,
    on_this_machine: bool = True,
    known_precisions: Collection[str] = (),
) -> list[str]:
    """Every broken rule of a composed config, one clause each (empty: the config is fine).
    `known_arguments`: optimizer/scheduler keys known to be arguments of their `_target_` (not checked
    against the class again, so its module need not be imported); by default every key is checked.
    `known_precisions`: precisions not asked of Lightning again (by default every one is).
    `on_this_machine=False`: the runs go to other machines (hydra/launcher=submitit_slurm), so the
    devices are not looked for here."""
    problems = broken_rules(RULES, _values(cfg, RULES)) + _data_problems(cfg)
    for problem in (_precision_problem(cfg, known_precisions), _devices_problem(cfg, on_this_machine)):
        if problem:
            problems.append(problem)
    return problems + _combination_problems(cfg) + _argument_problems(cfg, known_arguments or {})


def validate_config(
    cfg: DictConfig,
    known_arguments: Mapping[str, Collection[str]] | None = None,
    on_this_machine: bool = True,
    known_precisions: Collection[str] = (),
) -> None:
    """Raise one ConfigError whose single line lists every broken rule."""
    problems = config_problems(cfg, known_arguments, on_this_machine, known_precisions)
    if problems:
        raise ConfigError("; ".join(problems))


def _override(argv: Sequence[str], key: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in argv if arg.lstrip("+").startswith(f"{key}=")]
    return values[-1] if values else None


def output_directory(cfg: DictConfig, argv: Sequence[str]) -> Path:
    """The directory the run will create and write into (or below which it will): hydra.run.dir /
    hydra.sweep.dir when given on the command line, else paths.log_dir."""
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    explicit = _override(argv, "hydra.sweep.dir" if multirun else "hydra.run.dir")
    if explicit and "${" not in explicit:
        return Path(explicit).expanduser()
    return Path(str(cfg.paths.log_dir)).expanduser()


def check_writable(
    directory: Path, hint: str = "set paths.log_dir (or hydra.run.dir) to a writable directory"
) -> None:
    """Create `directory` (as the run would) and write a scratch file into it, or raise one line."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"cannot write the output directory {directory}: {reason}; {hint}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write the output directory {directory}: permission denied; {hint}")


def check_cache_dir(directory: Path) -> None:
    """The cache must exist or be creatable (it may be read-only when it already holds everything)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            f"cannot create the cache directory {directory}: {reason}; "
            "set CACHE_DIR (or paths.cache_dir=...) to a writable directory"
        ) from None
