"""Config plumbing shared by the entry points: resolvers, choice checking, one-line errors.

Hydra's own message for a bad group choice is several lines plus a hint about HYDRA_FULL_ERROR;
`check_choices` looks at the command line first and answers in one line instead.

Nothing here imports torch or Lightning (tests/test_startup.py checks it): `validate_command_line`
answers a mistake before the 10-20 s those imports take on a small machine. The network is checked
through its torch-free plan (src/models/geometry.py); only a config that names a network outside
src/models, asks for a GPU, or gives an optimizer/scheduler a key conf/ never sets imports torch to
be checked.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.errors import HydraException, InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.errors import ConfigError, UserError
from src.metric_names import LOGGED_METRICS
from src.models.geometry import check_network
from src.schema import SUPPLIED_ARGUMENTS, check_cache_dir, check_writable, output_directory, validate_config
from src.trackers import check_packages

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "conf"

GPU_ACCELERATORS = ("gpu", "cuda")
# Launchers whose jobs run on other machines: the devices they name are not looked for here.
CLUSTER_LAUNCHERS = ("submitit_slurm",)


def devices_per_node(devices: Any, local: bool = False) -> int:
    """`trainer.devices` as the number of devices a launcher reserves on each node (conf/hydra/launcher/):
    4 -> 4, [0, 1] or "0,1" -> 2. -1 and "auto" ("every device of the machine") have no number before
    the job runs; `local=True` (submitit_local: this machine) counts this machine's GPUs."""
    if isinstance(devices, ListConfig | list | tuple):
        return len(devices)
    text = str(devices).strip()
    if "," in text:
        return len([part for part in text.strip("[]").split(",") if part.strip()])
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if local:
        import torch  # only submitit_local with devices=-1/auto counts this machine's GPUs

        return max(torch.cuda.device_count(), 1)
    raise ConfigError(
        f"trainer.devices={text} gives no number of devices per node, which hydra/launcher=submitit_slurm "
        "reserves (one task and one GPU each): set a count, e.g. trainer.devices=4"
    )


def gpus_per_node(accelerator: Any, devices: Any, local: bool = False) -> int | None:
    """The GPUs a launcher reserves per node: `devices_per_node` on a GPU trainer, else none (None:
    SLURM asks for no GPU; 0 for submitit_local, which then hides this machine's GPUs from the job)."""
    if str(accelerator) in GPU_ACCELERATORS:
        return devices_per_node(devices, local)
    return 0 if local else None


# conf/hydra/launcher/submitit_{slurm,local}.yaml name every setting of the plugin's own configs of the
# same names, which Hydra then also type-checks against them ("automatic schema matching"), with a
# deprecation warning at every start; the check is welcome, the warning dropped (here: the job processes
# of submitit import this module too).
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against")

for _name, _resolver in (
    ("project_root", lambda: str(PROJECT_ROOT)),
    ("devices_per_node", devices_per_node),
    ("gpus_per_node", gpus_per_node),
):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)

_GROUP_OVERRIDE = re.compile(r"^[+~]*(?P<group>[a-z_]+)=(?P<value>[\w.,-]*)$")


def choices(group: str) -> list[str]:
    """The options of a config group: the YAML files in conf/<group>/."""
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def check_choices(overrides: Sequence[str]) -> None:
    """Fail fast, in one line, on `group=option` overrides that name no option (e.g. pooling=median).

    Only plain values and comma lists (multirun sweeps) are checked; Hydra's sweep functions such as
    choice(...) or range(...) are left to Hydra.
    """
    for override in overrides:
        match = _GROUP_OVERRIDE.match(override)
        if not match or not (CONFIG_DIR / match["group"]).is_dir():
            continue
        allowed = choices(match["group"])
        for value in match["value"].split(","):
            if value not in allowed and value != "null":
                raise ConfigError(f"{match['group']}={value} is not a choice; allowed: {', '.join(allowed)}")


def first_of_each_sweep(overrides: Sequence[str]) -> list[str]:
    """The overrides of a multirun's first job: `pooling=max,min` -> `pooling=max`."""
    prefixes = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++", OverrideType.DEL: "~"}
    single = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.is_sweep_override():
            key = override.key_or_group + (f"@{override.package}" if override.package else "")
            first = next(iter(override.sweep_string_iterator()))
            single.append(f"{prefixes.get(override.type, '')}{key}={first}")
        else:
            single.append(override.input_line)
    return single


def compose_config(overrides: Sequence[str], config_name: str = "train") -> DictConfig:
    """The config a command line composes to, without Hydra's run directory (for checks and tools)."""
    check_choices(overrides)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=first_of_each_sweep(overrides))


def cluster_launcher(argv: Sequence[str]) -> str | None:
    """The launcher of `hydra/launcher=<name>` when its jobs run on other machines (SLURM), else None."""
    names = [arg.split("=", 1)[1] for arg in argv if arg.lstrip("+").startswith("hydra/launcher=")]
    return names[-1] if names and names[-1] in CLUSTER_LAUNCHERS else None


def check_optimized_metric(name: str | None) -> None:
    """A sweeper's objective must be a metric the module logs; checked before the first trial."""
    if name and name not in LOGGED_METRICS:
        raise ConfigError(f"optimized_metric={name} is never logged; logged: {', '.join(LOGGED_METRICS)}")


@functools.cache
def group_file_arguments() -> dict[str, frozenset[str]]:
    """`_target_` -> the keys conf/optimizer/*.yaml and conf/scheduler/*.yaml set for it: known to be
    arguments of that class (tests/test_config.py checks every file against its class), so the config
    check need not import the class (and torch) to check them again."""
    known: dict[str, set[str]] = {}
    for group in SUPPLIED_ARGUMENTS:
        for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
            node = OmegaConf.load(path)
            node = node.get(group, node) if "_target_" not in node else node  # `# @package _global_` files
            if isinstance(node, DictConfig) and "_target_" in node:
                keys = known.setdefault(str(node._target_), set())
                keys.update(str(key) for key in node if not str(key).startswith("_"))
    return {target: frozenset(keys) for target, keys in known.items()}


def check_model(model: DictConfig) -> None:
    """The network's arguments, choices and input size, with the messages its constructor gives:
    through its torch-free plan for src/models' networks, else by building it on torch's meta device
    (no memory, no weights)."""
    arguments = OmegaConf.to_container(model, resolve=True)
    target = str(arguments.pop("_target_", ""))
    if any(str(key).startswith("_") for key in arguments) or not check_network(target, arguments):
        import torch
        from hydra.utils import instantiate

        with torch.device("meta"):
            instantiate(model)


def validate_command_line(argv: Sequence[str]) -> None:
    """Everything that can be checked before a run starts, so bad input fails in one line, at once, and
    before torch and Lightning are imported: group choices, unknown keys, interpolations, value rules
    (src/schema.py), and the network itself (its plan: pooling, padding, activation, input size)."""
    if any(
        arg.startswith(("--help", "-h", "--hydra-help", "--info", "--cfg", "-c", "--shell")) for arg in argv
    ):
        return
    cfg = compose_config([arg for arg in argv if not arg.startswith("-")])
    check_optimized_metric(cfg.get("optimized_metric"))
    for key in ("model", "data", "module"):
        OmegaConf.to_container(cfg[key], resolve=True)
    cluster = cluster_launcher(argv)
    if cluster:  # the jobs run on the cluster's nodes: their GPUs are not here, but must be counted
        devices_per_node(cfg.trainer.get("devices", 1))
    # src/schema.py: types, ranges, devices, combinations (before the model sees them)
    validate_config(cfg, known_arguments=group_file_arguments(), on_this_machine=not cluster)
    check_packages(cfg)  # logger=wandb / mlflow without the trackers extra: one line, how to install it
    check_model(cfg.model)
    check_writable(output_directory(cfg, argv))  # last: it creates the log directory
    check_cache_dir(Path(str(cfg.paths.cache_dir)).expanduser())


def _root_cause(error: BaseException) -> BaseException:
    """The exception behind Hydra's wrappers (instantiate wraps the constructor's own error)."""
    while error.__cause__ is not None and isinstance(error, InstantiationException):
        error = error.__cause__
    return error


def one_line(error: BaseException) -> str:
    """An error's message on one line, without OmegaConf's full_key/object_type trailer."""
    noise = ("full_key:", "object_type=", "reference_type=", "Set the environment variable HYDRA_FULL_ERROR")
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line.rstrip(".") for line in lines if line and not line.startswith(noise)]
    return "; ".join(kept) or type(error).__name__


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors that are the user's to fix into one line on stderr and exit status 2."""
    try:
        yield
    except (UserError, InstantiationException, OmegaConfBaseException, HydraException) as error:
        cause = _root_cause(error)
        if not isinstance(cause, UserError | OmegaConfBaseException | HydraException | TypeError):
            raise
        print(f"error: {one_line(cause)}", file=sys.stderr)
        raise SystemExit(2) from None
