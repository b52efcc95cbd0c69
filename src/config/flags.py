"""Hydra's own command-line flags (`--cfg`, `-m`, `--info`, `-sc`, ...) checked by Hydra's own rules, so a
mistake in them is one line (src/utils/errors.py) instead of Hydra's usage text or traceback.

`parse_flags` reads the command line with Hydra's argument parser (`hydra._internal.utils.get_args_parser`,
the one @hydra.main uses) and applies the rules Hydra applies only after it has started: one of --run,
--multirun, --cfg, --info and --shell-completion; --resolve only with --cfg or --help.
`check_show_config` runs Hydra's own `--cfg` printing with its output captured, so what `--cfg ...
--resolve` cannot resolve is answered with the key and what to pass instead. `check_shell_completion`:
Hydra completes installed commands only (`python -m` cannot be completed: Hydra issue #1957).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Sequence
from typing import Any, NoReturn, cast

from hydra import initialize_config_dir
from hydra._internal.hydra import Hydra
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.plugins.completion_plugin import CompletionPlugin
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, OmegaConfBaseException

from src.config.compose import CONFIG_DIR
from src.utils.errors import ConfigError

# The flags of which Hydra runs one (its own rule, hydra/_internal/utils.py: _run_hydra).
MODES = {"run": "--run", "multirun": "--multirun (-m)", "cfg": "--cfg", "info": "--info"}
MODES["shell_completion"] = "--shell-completion (-sc)"
COMPLETION_SUBCOMMANDS = ("install", "uninstall", "query")


def _flag_list(parser: argparse.ArgumentParser) -> str:
    """Hydra's flags as one line, from argparse's usage: `[--help] ... [--cfg {job,hydra,all}] ...`."""
    usage = " ".join(parser.format_usage().split())
    return usage.removeprefix("usage: ").partition(" ")[2].replace(" [overrides ...]", "")


def _parser_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """argparse's error, as one ConfigError line that says what is allowed."""
    unrecognized = message.removeprefix("unrecognized arguments: ")
    if unrecognized != message:
        words = unrecognized.split()
        if all("=" in word and not word.startswith("-") for word in words):
            raise ConfigError(
                f"{' '.join(words)} comes after a flag: Hydra reads the key=value overrides as one group, so "
                "give the flags first, then every override (e.g. --cfg job model=lenet5 pooling=min)"
            )
        message = f"{' '.join(words)} is not a flag of Hydra's; flags: {_flag_list(parser)}"
    raise ConfigError(message)


def parse_flags(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as @hydra.main reads it (flags, and `overrides`), with Hydra's rules applied."""
    parser = get_args_parser()
    parser.error = lambda message: _parser_error(parser, message)  # type: ignore[method-assign]
    flags = parser.parse_args(list(argv))
    if flags.help:  # Hydra's order: --help first, whatever else is given
        return flags
    if flags.resolve and not flags.cfg:
        raise ConfigError("--resolve goes with --cfg (or --help): e.g. --cfg job --resolve")
    if flags.hydra_help:
        return flags
    given = [name for key, name in MODES.items() if getattr(flags, key) not in (None, False)]
    if len(given) > 1:
        raise ConfigError(
            f"{' and '.join(given)} cannot be combined: give one of {', '.join(MODES.values())}"
            + (" (--cfg shows one job's config: leave out -m)" if flags.cfg and flags.multirun else "")
        )
    return flags


def check_show_config(flags: argparse.Namespace, config_name: str) -> None:
    """Run Hydra's `--cfg` printing with its output captured: what it cannot print, in one line."""
    command = f"--cfg {flags.cfg}" + (" --resolve" if flags.resolve else "")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(captured):
                hydra.show_cfg(
                    config_name=config_name,
                    overrides=list(flags.overrides),
                    cfg_type=flags.cfg,
                    package=flags.package,
                    resolve=flags.resolve,
                )
        except SystemExit:  # Hydra's "package 'x' not found in config"
            raise ConfigError(
                f"--package {flags.package} is not in the config {command} prints; name a key of it, "
                "e.g. --package model (job), --package hydra.run (hydra)"
            ) from None
        except InterpolationKeyError as error:
            key = _unresolvable_key(hydra, flags, config_name)
            raise ConfigError(_unresolvable(error, key, flags.cfg, command)) from None


def _unresolvable_key(hydra: Hydra, flags: argparse.Namespace, config_name: str) -> str | None:
    """The full key `--cfg ... --resolve` stops at (OmegaConf.resolve does not say): the config Hydra's
    show_cfg prints, composed the same way, walked key by key."""
    cfg = hydra.compose_config(
        config_name=config_name, overrides=list(flags.overrides), run_mode=RunMode.RUN,
        with_log_configuration=False,
    )  # fmt: skip
    HydraConfig.instance().set_config(cfg)
    OmegaConf.set_readonly(cfg.hydra, None)
    cfg = hydra.get_sanitized_cfg(cfg, flags.cfg)
    node = cfg if flags.package in (None, "_global_") else OmegaConf.select(cfg, flags.package)
    return _first_failing_key(node) if isinstance(node, DictConfig | ListConfig) else None


def _first_failing_key(node: DictConfig | ListConfig) -> str | None:
    keys: list[Any] = list(node) if isinstance(node, DictConfig) else list(range(len(node)))
    for key in keys:
        try:
            value = node[key]
        except InterpolationKeyError as error:
            return str(error.full_key)
        except OmegaConfBaseException:  # `???` (hydra.job.num: a run sets it), which resolve leaves as it is
            continue
        if isinstance(value, DictConfig | ListConfig) and (found := _first_failing_key(value)):
            return found
    return None


def _unresolvable(error: InterpolationKeyError, key: str | None, cfg_type: str, command: str) -> str:
    """The line for a key `--cfg ... --resolve` cannot resolve: which key, and what to pass instead."""
    found = re.search(r"Interpolation key '([^']+)' not found", str(error))
    missing = found[1] if found else "?"
    key = key or "a key"
    if cfg_type == "hydra" and not missing.startswith("hydra"):
        return (
            f"{command} cannot resolve {key}: it names {missing}, which is in the job's config and "
            "--cfg hydra leaves that out; pass --cfg all --resolve --package hydra (Hydra's config, resolved)"
        )
    return (
        f"{command} cannot resolve {key}: {missing} is not in the config; "
        f"set it (+{missing}=...) or leave out --resolve"
    )


def check_shell_completion(overrides: Sequence[str], program: str | None, command: str) -> None:
    """`-sc install=bash` (uninstall=, query=) as Hydra takes it; `install` only for the installed
    `command`: `python -m` (a `program` ending in .py, Hydra's own test) cannot be completed."""
    plugins = Plugins.instance().discover(CompletionPlugin)  # 0.2 s
    shells = sorted(cast(Any, plugin).provides() for plugin in plugins)  # a static method of each plugin
    allowed = ", ".join(f"{sub}={'|'.join(shells)}" for sub in COMPLETION_SUBCOMMANDS)
    # Hydra's rule: exactly one of the subcommands among the overrides (hydra/_internal/hydra.py)
    pairs = [arg.partition("=") for arg in overrides if arg.partition("=")[0] in COMPLETION_SUBCOMMANDS]
    if len(pairs) != 1:
        raise ConfigError(f"-sc takes one of {allowed}; got: {' '.join(overrides) or 'nothing'}")
    subcommand, _, shell = pairs[0]
    if shell not in shells:
        raise ConfigError(f"-sc {subcommand}={shell}: no completion for {shell}; shells: {', '.join(shells)}")
    if subcommand == "install" and program is not None and program.endswith(".py"):
        raise ConfigError(
            f"shell completion needs the installed command: {command} -sc install={shell} "
            f"(`uv sync` puts {command} in .venv/bin; `python -m` cannot be completed, Hydra issue #1957)"
        )
