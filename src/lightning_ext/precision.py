"""The values of `trainer.precision` the installed Lightning accepts: asked, not copied."""

from __future__ import annotations

from typing import Any, get_args


def _literal_values(annotation: Any) -> list[Any]:
    """The values of a Literal, or of every Literal inside a Union of them."""
    args = get_args(annotation)
    if not args or all(not get_args(arg) for arg in args):
        return list(args)
    return [value for arg in args for value in _literal_values(arg)]


def precision_values() -> tuple[str, ...]:
    """Every precision Lightning's Trainer takes, as text ("32-true", "bf16-mixed", "16", ...). Imports
    Lightning (and torch): the config check asks only about values conf/ itself never sets."""
    # deferred: Lightning (and torch), only for a precision value conf/ never sets
    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT

    return tuple(dict.fromkeys(str(value) for value in _literal_values(_PRECISION_INPUT)))
