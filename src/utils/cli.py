"""The entry points' command lines: `ArgumentParser`, argparse whose every mistake is one line on stderr
(`error: ...; usage: ...`) and exit status 2, like the errors of src/utils/errors.py; `--help` as argparse
prints it. `program` names the command as it was typed: `cnn-eval` when installed, else `python -m src.eval`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

_NUMBER = re.compile(r"^-\d+(\.\d*)?([eE][-+]?\d+)?$")
HELP_FLAGS = ("-h", "--help")


def program(module: str) -> str:
    """How the command was started: the installed command's name, or `python -m <module>` (a sys.argv[0]
    that ends in .py, the test Hydra's shell completion makes too)."""
    name = sys.argv[0]
    return f"python -m {module}" if not name or name.endswith(".py") else os.path.basename(name)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors; an unknown flag is named before any missing argument."""

    def __init__(self, module: str, **kwargs: Any) -> None:
        self.option_names: set[str] = set()  # every --flag added (argparse keeps its own list private)
        super().__init__(prog=program(module), allow_abbrev=False, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.option_names.update(action.option_strings)
        return action

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        words = list(sys.argv[1:] if args is None else args)
        unknown = [
            word
            for word in words
            if word.startswith("-") and word != "-" and not _NUMBER.match(word)
            and word.split("=", 1)[0] not in self.option_names
        ]  # fmt: skip
        if unknown and not any(word in HELP_FLAGS for word in words):
            options = ", ".join(sorted(self.option_names, key=lambda o: (o.lstrip("-"), o)))
            self.error(f"{' '.join(unknown)} is not an option; options: {options}")
        return super().parse_args(words, namespace)

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")
        print(f"error: {message}; usage: {usage}", file=sys.stderr)
        raise SystemExit(2)
