"""Errors that are the user's to fix, and how the entry points report them: one line, exit status 2."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from hydra.errors import HydraException, InstantiationException
from omegaconf.errors import OmegaConfBaseException


class UserError(Exception):
    """Bad input: a config value, a missing or damaged dataset, an unusable path."""


class ConfigError(UserError, ValueError):
    """A config value or combination that is not allowed."""


class DataError(UserError):
    """A dataset that is missing, incomplete or damaged."""


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
