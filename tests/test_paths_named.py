"""Every project path a comment or docstring names exists, so that a file moved or renamed cannot leave
its old name behind as a pointer to nowhere.

Scanned: the comments and docstrings of the Python files and the `#` comments of the YAML and shell files
of src/, tests/, conf/, scripts/ and bench/ (string literals are code, not prose, and are left alone).
Checked there:
- paths under those five folders, files or folders, e.g. `src/runs/rundir.py`; a `:12` or `::test_x`
  after one is a place inside it; a glob (`conf/pooling/*.yaml`) must match a file, and braces
  (`conf/hydra/launcher/submitit_{slurm,local}.yaml`) name each of their alternatives;
- dotted module names under src and tests, e.g. `src.training.insight.FeatureMapStatistics`: the longest
  prefix that is a module or package (a .py file or a folder), and the first name after it, which must
  be bound at the top level of that module (a def, a class, an assignment or an import).
Each mention that names nothing is listed as `file:line: path`.
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

from src.config.compose import PROJECT_ROOT

ROOTS = ("src", "tests", "conf", "scripts", "bench")
DOTTED_ROOTS = ("src", "tests")
HASH_COMMENTED = (".yaml", ".yml", ".sh")

# A path: one of ROOTS, then name characters, globs, {a,b} alternatives and <placeholder>s (any name).
_PATH = re.compile(r"(?<![\w./~$-])(?:" + "|".join(ROOTS) + r")/(?:[\w.*/-]|\{[\w.,-]*\}|<[\w-]+>)*")
_DOTTED = re.compile(r"(?<![\w./-])(?:" + "|".join(DOTTED_ROOTS) + r")(?:\.\w+)+")
_BRACES = re.compile(r"\{([\w.,-]*)\}")


# ------------------------------------------------------------------------------------- the prose
def python_prose(source: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each comment and each line of each docstring of a Python source."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                for number in range(first.lineno, (first.end_lineno or first.lineno) + 1):
                    yield number, lines[number - 1]


def hash_comments(source: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each `#` comment of a YAML or shell file (a `#` that starts the line or
    follows a blank)."""
    for number, line in enumerate(source.splitlines(), start=1):
        match = re.search(r"(?:^|\s)(#.*)$", line)
        if match:
            yield number, match[1]


def prose(path: Path) -> Iterator[tuple[int, str]]:
    if path.suffix == ".py":
        yield from python_prose(path.read_text(encoding="utf-8"))
    elif path.suffix in HASH_COMMENTED or (not path.suffix and path.read_bytes()[:2] == b"#!"):
        yield from hash_comments(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------- the mentions
def expand_braces(path: str) -> list[str]:
    """`a/{b,c}.yaml` -> [`a/b.yaml`, `a/c.yaml`] (each brace group in turn)."""
    parts = _BRACES.split(path)  # text, group, text, group, ..., text
    choices = [part.split(",") if index % 2 else [part] for index, part in enumerate(parts)]
    return ["".join(combination) for combination in itertools.product(*choices)]


def path_exists(root: Path, mention: str) -> bool:
    """Every alternative of `mention` is there (a glob or a `<placeholder>`: matches something)."""
    for path in expand_braces(re.sub(r"<[\w-]+>", "*", mention.rstrip("."))):
        found = any(root.glob(path.rstrip("/"))) if "*" in path else (root / path).exists()
        if not found:
            return False
    return True


def top_level_names(module: Path) -> set[str]:
    """The names a module binds at its top level (also under `if TYPE_CHECKING:` and in `try:`), and
    those its `__all__` lists (a module `__getattr__` loads them on first use: src/models/__init__.py)."""
    names: set[str] = set()
    statements = list(ast.parse(module.read_text(encoding="utf-8")).body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            if isinstance(node, ast.Assign) and "__all__" in names and isinstance(node.value, ast.List):
                names.update(e.value for e in node.value.elts if isinstance(e, ast.Constant))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            statements += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            statements += [s for handler in getattr(node, "handlers", []) for s in handler.body]
    return names


def module_exists(root: Path, dotted: str) -> bool:
    """`src.runs.rundir.RunDir`: src/runs/rundir.py (or a package folder of that name) exists, and `RunDir`
    is bound in it."""
    parts = dotted.split(".")
    folder = root / parts[0]
    for index, part in enumerate(parts[1:], start=1):
        if (folder / part).is_dir():
            folder = folder / part
            continue
        if (folder / f"{part}.py").is_file():
            if index + 1 == len(parts):
                return True
            return parts[index + 1] in top_level_names(folder / f"{part}.py")
        init = folder / "__init__.py"
        # a name bound in a package's __init__.py; right below the root only modules and packages count
        return index > 1 and init.is_file() and part in top_level_names(init)
    return True


def missing_mentions(root: Path, folders: tuple[str, ...] = ROOTS) -> list[str]:
    """`file:line: path` for each path or module named in prose below `folders` of `root` that is not
    there (module doc)."""
    missing = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root)
            if not path.is_file() or any(p.startswith(".") or p == "__pycache__" for p in relative.parts):
                continue
            for number, text in sorted(prose(path)):
                for mention in _PATH.findall(text):
                    if not path_exists(root, mention):
                        missing.append(f"{relative}:{number}: {mention.rstrip('.')}")
                for mention in _DOTTED.findall(text):
                    if not module_exists(root, mention):
                        missing.append(f"{relative}:{number}: {mention}")
    return missing


# ------------------------------------------------------------------------------------------ tests
def test_every_path_named_in_a_comment_or_docstring_exists():
    missing = missing_mentions(PROJECT_ROOT)
    assert not missing, "named but not there:\n" + "\n".join(missing)


def test_the_scanner_lists_each_missing_mention_and_nothing_else(tmp_path):
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "__init__.py").write_text("")
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("from src.pkg.real import Thing\n")
    (tmp_path / "conf" / "pooling").mkdir(parents=True)
    for name in ("max", "min"):
        (tmp_path / "conf" / "pooling" / f"{name}.yaml").write_text(f"name: {name}\n")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "src" / "pkg" / "real.py").write_text(
        '''"""The module: src/pkg/real.py:2, src/pkg/gone.py, conf/pooling/*.yaml.

Also conf/pooling/{max,avg}.yaml and src.pkg.real.Thing, src.pkg.real.Gone, src.pkg.Thing.
"""

NOT_PROSE = "src/pkg/absent.py"  # but this comment is: src/pkg/ and src.pkg.nothing


def f():
    """tests/test_x.py::test_y and conf/model/*.yaml; src.gone."""
    return "conf/absent.yaml src.absent"


class Thing:
    LIMIT = 3
'''
    )
    (tmp_path / "conf" / "train.yaml").write_text(
        "# src.pkg.real.LIMIT, src.pkg.real.Thing and src.pkg (conf/pooling/min.yaml).\n"
        "key: src/pkg/value.py  # conf/padding/\n"
        "url: http://example.org/src/nothing.py  # see https://example.org/conf/x.yaml\n"
    )
    (tmp_path / "scripts" / "run").write_text("#!/bin/sh\n# scripts/gone.sh\necho src/absent.py\n")
    (tmp_path / "scripts" / "notes.txt").write_text("src/unscanned.py\n")
    assert missing_mentions(tmp_path) == [
        "src/pkg/real.py:1: src/pkg/gone.py",
        "src/pkg/real.py:3: conf/pooling/{max,avg}.yaml",
        "src/pkg/real.py:3: src.pkg.real.Gone",
        "src/pkg/real.py:6: src.pkg.nothing",
        "src/pkg/real.py:10: tests/test_x.py",
        "src/pkg/real.py:10: conf/model/*.yaml",
        "src/pkg/real.py:10: src.gone",
        "conf/train.yaml:1: src.pkg.real.LIMIT",
        "conf/train.yaml:2: conf/padding/",
        "scripts/run:2: scripts/gone.sh",
    ]


def test_brace_expansion_and_module_lookup():
    assert expand_braces("conf/hydra/launcher/submitit_{slurm,local}.yaml") == [
        "conf/hydra/launcher/submitit_slurm.yaml",
        "conf/hydra/launcher/submitit_local.yaml",
    ]
    assert module_exists(PROJECT_ROOT, "src.training.insight.FeatureMapStatistics")
    assert not module_exists(PROJECT_ROOT, "src.insight.FeatureMapStatistics")
    assert module_exists(PROJECT_ROOT, "src.models.LeNet5")  # a package's import
    assert not module_exists(PROJECT_ROOT, "src.models.LeNet7")
