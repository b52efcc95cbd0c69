"""Every import inside a function in src/ says what it defers: a comment with "deferred" on its line or on
the comment lines directly above it (or above its group of consecutive imports). An import with nothing
to defer belongs at the top of its module."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
EXCLUDED = {"bench.py", "bench", "benchmark"}  # the benchmarks, being moved out of src/


def _comment(line: str) -> str:
    return line.split("#", 1)[1] if "#" in line else ""


def _said_above(lines: list[str], lineno: int) -> bool:
    """A comment line directly above 1-based `lineno` (or a run of them) mentions "deferred"."""
    index = lineno - 2
    while index >= 0 and lines[index].strip().startswith("#"):
        if "deferred" in lines[index]:
            return True
        index -= 1
    return False


def _function_imports(tree: ast.AST) -> list[tuple[ast.stmt, ast.stmt]]:
    """(import, first import of its group) for each import inside a function."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        in_function = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for field in ("body", "orelse", "finalbody", "handlers"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            first = None
            for statement in statements:
                if isinstance(statement, ast.Import | ast.ImportFrom):
                    first = first or statement
                    if in_function:
                        found.append((statement, first))
                else:
                    first = None
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return found


def undocumented_imports(root: Path, relative_to: Path) -> list[str]:
    """`path:line: import text` for each function-level import under `root` not said to be deferred."""
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if EXCLUDED & set(path.relative_to(root).parts):
            continue
        text = path.read_text()
        lines = text.splitlines()
        for statement, first in _function_imports(ast.parse(text)):
            own = lines[statement.lineno - 1 : statement.end_lineno]
            if any("deferred" in _comment(line) for line in own):
                continue
            if _said_above(lines, statement.lineno) or _said_above(lines, first.lineno):
                continue
            where = path.relative_to(relative_to).as_posix()
            offenders.append(f"{where}:{statement.lineno}: {ast.get_source_segment(text, statement)}")
    return offenders


def test_every_function_level_import_in_src_says_what_it_defers():
    offenders = undocumented_imports(SRC, SRC.parent)
    assert not offenders, "function-level imports without a '# deferred: ...' comment:\n" + "\n".join(
        offenders
    )


def test_the_checker_reports_a_bare_import_and_passes_commented_ones(tmp_path):
    (tmp_path / "module.py").write_text(
        "import os\n"
        "\n"
        "\n"
        "def commented():\n"
        "    import json  # deferred: json, only here\n"
        "\n"
        "\n"
        "def grouped():\n"
        "    # deferred: both, only here\n"
        "    import csv\n"
        "\n"
        "    import zlib\n"
        "\n"
        "\n"
        "class Thing:\n"
        "    def method(self):\n"
        "        x = 1  # deferred: not an import\n"
        "        import gzip\n"
        "        return x\n"
    )
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "skipped.py").write_text("def f():\n    import json\n")
    assert undocumented_imports(tmp_path, tmp_path) == ["module.py:18: import gzip"]
