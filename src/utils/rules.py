"""A value rule: the type and range a config value must have, and the one clause that says what is wrong.

    Rule("data.batch_size", "int", "an integer >= 1", lambda v: v >= 1)
    check_rule(rule, 0)  ->  "data.batch_size=0 is out of range: must be an integer >= 1"

The config check (src/config/schema.py) holds the rules of the keys every run has; the datasets declare
the rules of their own options (src/data/catalog.py), which their datamodules check too. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    key: str  # the config key, e.g. "data.batch_size"
    kind: str  # "int", "number", "bool", "choice", "fast_dev_run"
    allowed: str  # what the message says is allowed
    check: Callable[[Any], bool] = lambda value: True
    nullable: bool = False


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "int":
        return is_int(value)
    if kind == "number":
        return is_number(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "fast_dev_run":
        return isinstance(value, bool) or (is_int(value) and value >= 0)
    return True


_KIND_NAMES = {"int": "an integer", "number": "a number", "bool": "true or false"}


def check_rule(rule: Rule, value: Any) -> str | None:
    """The clause for a broken rule, or None."""
    if value is None and rule.nullable:
        return None
    if not _kind_ok(rule.kind, value):
        if rule.kind in _KIND_NAMES:
            return f"{rule.key}={value} is not {_KIND_NAMES[rule.kind]}: must be {rule.allowed}"
        return f"{rule.key}={value} is not allowed: must be {rule.allowed}"
    if rule.kind in ("int", "number") and not rule.check(value):
        return f"{rule.key}={value} is out of range: must be {rule.allowed}"
    if rule.kind == "choice" and not rule.check(value):
        return f"{rule.key}={value} is not a choice; allowed: {rule.allowed}"
    return None


def broken_rules(rules: Iterable[Rule], values: Mapping[str, Any]) -> list[str]:
    """One clause per rule whose key is in `values` and whose value breaks it."""
    clauses = (check_rule(rule, values[rule.key]) for rule in rules if rule.key in values)
    return [clause for clause in clauses if clause]
