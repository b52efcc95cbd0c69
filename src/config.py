"""Config plumbing shared by the entry points: resolvers, choice checking, one-line errors.

Hydra's own message for a bad group choice is several lines plus a hint about HYDRA_FULL_ERROR;
`check_choices` looks at the command line first and answers in one line instead.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from hydra.errors import HydraException, InstantiationException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.errors import ConfigError, UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "conf"

if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))

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
                raise ConfigError(
                    f"{match['group']}={value} is not a choice; allowed: {', '.join(allowed)}"
                )


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None and isinstance(error, InstantiationException | HydraException):
        error = error.__cause__
    return error


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors that are the user's to fix into one line on stderr and exit status 2."""
    try:
        yield
    except (UserError, InstantiationException, OmegaConfBaseException, HydraException) as error:
        cause = _root_cause(error)
        if not isinstance(cause, UserError | OmegaConfBaseException | HydraException | TypeError):
            raise
        message = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
