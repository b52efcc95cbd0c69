"""`validate_command_line`: everything that can fail before a run starts, answered in one line and before
torch and Lightning are imported (what that saves: docs/configuration.md, docs/speed.md).

What it checks, in order: Hydra's own flags (src/config/flags.py), the group choices (`pooling=median`),
unknown keys and interpolations (by composing the config), `optimized_metric`, the value rules and
combinations (src/config/schema.py, the datasets' cards), the network (its torch-free plan,
src/models/geometry.py: choices and input size), `ckpt_path=` (a whole checkpoint:
src/utils/checkpoints.py), and the output and cache directories. Only a config that names a network
outside src/models, asks for a GPU, gives an optimizer/scheduler a key conf/ never sets, or a precision
conf/ never sets imports torch (or Lightning) to be checked. Why the config is composed here and again by
Hydra: docs/development.md."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.config.compose import CONFIG_DIR, compose_config, devices_per_node
from src.config.flags import check_shell_completion, check_show_config, parse_flags
from src.config.schema import (
    SUPPLIED_ARGUMENTS,
    check_cache_dir,
    check_writable,
    output_directory,
    validate_config,
)
from src.models.geometry import check_network
from src.training.metric_names import LOGGED_METRICS
from src.training.trackers import check_packages
from src.utils.checkpoints import LIGHTNING_KEYWORDS, read_checkpoint
from src.utils.errors import ConfigError

# Launchers whose jobs run on other machines: the devices they name are not looked for here.
CLUSTER_LAUNCHERS = ("submitit_slurm",)


def cluster_launcher(argv: Sequence[str]) -> str | None:
    """The launcher of `hydra/launcher=<name>` when its jobs run on other machines (SLURM), else None."""
    names = [arg.split("=", 1)[1] for arg in argv if arg.lstrip("+").startswith("hydra/launcher=")]
    return names[-1] if names and names[-1] in CLUSTER_LAUNCHERS else None


def check_optimized_metric(name: str | None) -> None:
    """A sweeper's objective must be a metric the module logs; checked before the first trial."""
    if name and name not in LOGGED_METRICS:
        raise ConfigError(f"optimized_metric={name} is never logged; logged: {', '.join(LOGGED_METRICS)}")


def _group_files(group: str) -> list[DictConfig]:
    """The nodes conf/<group>/*.yaml define (the group's own node of `# @package _global_` files)."""
    nodes = []
    for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
        node = OmegaConf.load(path)
        if isinstance(node, DictConfig) and "_target_" not in node:
            node = node.get(group, node)
        if isinstance(node, DictConfig):
            nodes.append(node)
    return nodes


@functools.cache
def group_file_arguments() -> dict[str, frozenset[str]]:
    """`_target_` -> the keys conf/optimizer/*.yaml and conf/scheduler/*.yaml set for it: known to be
    arguments of that class (tests/test_config.py checks every file against its class), so the config
    check need not import the class (and torch) to check them again."""
    known: dict[str, set[str]] = {}
    for group in SUPPLIED_ARGUMENTS:
        for node in _group_files(group):
            if "_target_" in node:
                keys = known.setdefault(str(node._target_), set())
                keys.update(str(key) for key in node if not str(key).startswith("_"))
    return {target: frozenset(keys) for target, keys in known.items()}


@functools.cache
def group_file_precisions() -> frozenset[str]:
    """The `precision` values conf/trainer/*.yaml set: known to be Lightning's (tests/test_config.py
    checks them), so the config check need not import Lightning to ask again."""
    return frozenset(str(node.precision) for node in _group_files("trainer") if "precision" in node)


def check_model(model: DictConfig) -> None:
    """The network's arguments, choices and input size, with the messages its constructor gives:
    through its torch-free plan for src/models' networks, else by building it on torch's meta device
    (no memory, no weights)."""
    arguments = cast(dict[str, Any], OmegaConf.to_container(model, resolve=True))  # of a DictConfig
    target = str(arguments.pop("_target_", ""))
    if any(str(key).startswith("_") for key in arguments) or not check_network(target, arguments):
        import torch  # deferred: torch, only for a model without a torch-free plan

        with torch.device("meta"):
            instantiate(model)


def check_checkpoint_file(path: str | None) -> None:
    """`ckpt_path=` names a whole Lightning checkpoint that training can continue from; whether it is this
    model's is answered once the model is built (src/train.py), as that needs torch."""
    if path is not None and str(path) not in LIGHTNING_KEYWORDS:
        read_checkpoint(Path(str(path)).expanduser(), resume=True)


def validate_command_line(
    argv: Sequence[str], program: str | None = None, command: str = "cnn-train"
) -> None:
    """Everything that can be checked before a run starts (module doc), for the command line Hydra will
    get; raises one ConfigError (or the error of composing) with a one-line message. Hydra's own flags
    first, by Hydra's rules (src/config/flags.py); `program` is sys.argv[0] and `command` the installed
    command's name, for `-sc install=bash`."""
    flags = parse_flags(argv)
    if flags.shell_completion:
        check_shell_completion(flags.overrides, program, command)
        return
    if flags.config_path or flags.config_dir or flags.experimental_rerun:
        return  # another config tree, or a saved job: Hydra reads it
    config_name = flags.config_name or "train"
    if flags.cfg or flags.info or flags.help or flags.hydra_help:  # nothing runs: the overrides compose
        compose_config(flags.overrides, config_name)
        if flags.cfg:
            check_show_config(flags, config_name)
        return
    cfg = compose_config(flags.overrides, config_name)
    check_optimized_metric(cfg.get("optimized_metric"))
    for key in ("model", "data", "module"):
        OmegaConf.to_container(cfg[key], resolve=True)
    cluster = cluster_launcher(argv)
    if cluster:  # the jobs run on the cluster's nodes: their GPUs are not here, but must be counted
        devices_per_node(cfg.trainer.get("devices", 1))
    validate_config(
        cfg,
        known_arguments=group_file_arguments(),
        on_this_machine=not cluster,
        known_precisions=group_file_precisions(),
    )
    check_packages(cfg)  # logger=wandb / mlflow without the trackers extra: one line, how to install it
    check_model(cfg.model)
    check_checkpoint_file(cfg.get("ckpt_path"))
    check_writable(output_directory(cfg, argv))  # last: it creates the log directory
    check_cache_dir(Path(str(cfg.paths.cache_dir)).expanduser())
