"""conf/ as Hydra composes it, for the entry points and the config check.

Besides the YAML files of conf/, composing needs the resolvers conf/ names, which this module registers
when it is imported: `${project_root:}` (conf/paths), `${dataset:num_classes}` and
`${dataset:image_channels}` (conf/model: from the card of `data._target_`, src/data/catalog.py),
`${devices_per_node:...}` and `${gpus_per_node:...}` (conf/hydra/launcher: what SLURM reserves).

Every config group is a folder of conf/ and its choices are the folder's files (`choices`), the
`pooling` and `padding` groups too (conf/pooling/*.yaml, conf/padding/*.yaml); a choice that conf/ no
longer has, because it was renamed or removed, is answered with the one to use (`RENAMED_CHOICES`).

`compose_config` is Hydra's compose API (no run directory, no logging), for checks and tools.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from omegaconf import DictConfig, ListConfig, OmegaConf

from src.data.catalog import dataset_for_target
from src.utils.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"

GPU_ACCELERATORS = ("gpu", "cuda")

# conf/hydra/launcher/submitit_{slurm,local}.yaml name every setting of the plugin's own configs of the
# same names, which Hydra then also type-checks against them ("automatic schema matching"), with a
# deprecation warning at every start; the check is welcome, the warning dropped (here: the job processes
# of submitit import this module too).
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against")


# ------------------------------------------------------------------------------------ resolvers
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
        import torch  # deferred: torch, only submitit_local with devices=-1/auto counts this machine's GPUs

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


def dataset_fact(name: str, *, _root_: DictConfig) -> Any:
    """`${dataset:num_classes}`: an attribute of the card of the configured `data._target_`."""
    target = str(OmegaConf.select(_root_, "data._target_", default=""))
    card = dataset_for_target(target)
    if card is None:
        raise ConfigError(
            f"data._target_={target} has no card in src/data/catalog.py to read {name} from; "
            "set model.num_classes and model.in_channels yourself"
        )
    return getattr(card, name)


def register_resolvers() -> None:
    """Register the resolvers conf/ names (once; harmless again)."""
    for name, resolver in (
        ("project_root", lambda: str(PROJECT_ROOT)),
        ("dataset", dataset_fact),
        ("devices_per_node", devices_per_node),
        ("gpus_per_node", gpus_per_node),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


register_resolvers()


# ------------------------------------------------------------------------------------- composing
_GROUP_OVERRIDE = re.compile(r"^[+~]*(?P<group>[a-z_]+)=(?P<value>[\w.,-]*)$")

# Choices conf/ had and no longer has: group -> old name -> the choice to use instead. `group=old` is
# answered in one line naming it (`check_choices`), before anything is composed. The one table of them.
RENAMED_CHOICES: dict[str, dict[str, str]] = {
    # The study sheet's recipes: "seed" is the random seed's word only.
    "experiment": {
        "seed_lenet5_mnist": "sheet_lenet5_mnist",
        "seed_lenet5_cifar10": "sheet_lenet5_cifar10",
        "seed_alexnet_bn_flowers17": "sheet_alexnet_bn_flowers17",
    },
    "trainer": {"cpu": "default"},  # trainer=cpu was the same trainer as trainer=default
}


def choices(group: str) -> list[str]:
    """The options of a config group: the YAML files in conf/<group>/; [] when `group` is no group."""
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def default_choice(group: str) -> str | None:
    """The choice conf/train.yaml's defaults list makes for `group` (None: none, or no such group)."""
    train = OmegaConf.load(CONFIG_DIR / "train.yaml")
    assert isinstance(train, DictConfig)  # a YAML mapping
    for entry in train.get("defaults", []):
        if isinstance(entry, DictConfig) and group in entry:
            return entry[group]
    return None


def renamed_choice_problem(group: str, value: str) -> str | None:
    """The one line for a choice of RENAMED_CHOICES (None for any other), e.g. `experiment=seed_lenet5_mnist
    was renamed: use experiment=sheet_lenet5_mnist`."""
    new = RENAMED_CHOICES.get(group, {}).get(value)
    if new is None:
        return None
    default = " (the default)" if new == default_choice(group) else ""
    return f"{group}={value} was renamed: use {group}={new}{default}"


def check_choices(overrides: Sequence[str]) -> None:
    """Fail fast, in one line, on `group=option` overrides that name no option (e.g. pooling=median), or
    one that was renamed (RENAMED_CHOICES: the line names the new one).

    Only plain values and comma lists (multirun sweeps) are checked; Hydra's sweep functions such as
    choice(...) or range(...) are left to Hydra.
    """
    for override in overrides:
        match = _GROUP_OVERRIDE.match(override)
        if not match:
            continue
        group = match["group"]
        allowed = choices(group)
        if not allowed:  # not a config group
            continue
        for value in match["value"].split(","):
            if value not in allowed and value != "null":
                listed = f"{group}={value} is not a choice; allowed: {', '.join(allowed)}"
                raise ConfigError(renamed_choice_problem(group, value) or listed)


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
            assert override.input_line is not None  # parse_overrides keeps each line
            single.append(override.input_line)
    return single


def compose_config(overrides: Sequence[str], config_name: str = "train") -> DictConfig:
    """The config a command line composes to, without Hydra's run directory (for checks and tools)."""
    check_choices(overrides)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=first_of_each_sweep(overrides))
