"""`python -m bench startup`: seconds to the first answer of fresh interpreters (the config check's
mistakes, a missing dataset, src.summary, src.train debug=fast), of this checkout or another one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import common
from bench.common import machine, machine_line
from src.config.compose import PROJECT_ROOT
from src.utils.errors import UserError
from src.utils.files import write_json_atomically

# What `python -m bench startup` times, each the best of `repeats` runs of a fresh interpreter:
# the mistakes the config check answers (exit status 2), the answer to a missing dataset, src.summary,
# and src.train debug=fast (end to end, and up to its first training batch).
MISTAKES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unknown group choice", ("pooling=median",)),
    ("unknown key", ("trainer.max_epoch=3",)),
    ("wrong type", ("data.batch_size=abc",)),
    ("out of range", ("optimizer.lr=-1",)),
    ("input too small", ("model.input_size=8",)),
    ("missing resume directory", ("resume=outputs/train/runs/no-such-run",)),
    ("misspelled optimized_metric", ("optimized_metric=val/accuracy",)),
)
IMPORTS = (("import torch", "import torch"), ("import src, lightning", "import src, lightning"))
# Put on the PYTHONPATH of the timed run: a callback that notes when the first training batch starts
# (CLOCK_MONOTONIC is one clock for all processes). Outside the project, so that it times any checkout.
FIRST_BATCH_CLOCK = """
import time

from lightning.pytorch.callbacks import Callback


class FirstBatchClock(Callback):
    def __init__(self, path):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0 and trainer.current_epoch == 0:
            with open(self.path, "a") as handle:
                handle.write(f"{time.monotonic()}\\n")
"""


def timed(command: list[str], root: Path, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds of a fresh process (from before it starts to its exit), its exit status and the
    last line of its stderr."""
    start = time.monotonic()
    done = subprocess.run(
        command, cwd=root, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    seconds = time.monotonic() - start
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return seconds, done.returncode, last


def best_of(
    repeats: int, command: list[str], root: Path, expect: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The best of `repeats` runs; a run that does not end with `expect` is an error (one line)."""
    runs = [timed(command, root, env) for _ in range(repeats)]
    for _, code, last in runs:
        if code != expect:
            raise UserError(f"`{' '.join(command[1:])}` in {root} ended with {code}, not {expect}: {last}")
    return {
        "seconds": round(min(r[0] for r in runs), 3),
        "all": [round(r[0], 3) for r in runs],
        "answer": runs[0][2],
    }


def importtime_top(
    command: list[str], root: Path, env: dict[str, str] | None = None, top: int = 8
) -> list[dict[str, Any]]:
    """`python -X importtime <command>`: the top-level imports with the largest cumulative times."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    entries = []
    for line in done.stderr.splitlines():
        match = re.match(r"^import time:\s+(\d+) \|\s+(\d+) \| (\S+)$", line)  # one space: top level
        if match:
            entries.append({"module": match[3], "seconds": round(int(match[2]) / 1e6, 3)})
    return sorted(entries, key=lambda e: -e["seconds"])[:top]


def run_startup(
    root: Path, repeats: int = 3, overrides: Sequence[str] = (), data_dir: str | None = None
) -> dict[str, Any]:
    """Seconds to the answer, each the best of `repeats` fresh interpreters, of the checkout `root` (this
    project by default; another checkout, e.g. an older commit's, is timed with this interpreter).
    `overrides` go to the runs that read data (debug=fast, the missing dataset)."""
    python = sys.executable
    data_dir = data_dir or os.environ.get("DATA_DIR") or str(PROJECT_ROOT / "data")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        scratch_dir = Path(scratch)
        (scratch_dir / "empty").mkdir()
        (scratch_dir / "_first_batch_clock.py").write_text(FIRST_BATCH_CLOCK)
        quiet = [f"hydra.run.dir={scratch_dir / 'run'}", f"paths.log_dir={scratch_dir / 'outputs'}"]
        with_data = [*quiet, *overrides]
        errors = {
            name: best_of(repeats, [python, "-m", "src.train", *args, *quiet], root, expect=2)
            for name, args in MISTAKES
        }
        missing = best_of(
            repeats, [python, "-m", "src.train", "data.download=false", *with_data,
                      f"paths.cache_dir={scratch_dir / 'empty'}"], root, expect=2,
            env={"DATA_DIR": str(scratch_dir / "empty")},
        )  # fmt: skip
        imports = {name: best_of(repeats, [python, "-c", code], root, expect=0) for name, code in IMPORTS}
        summary_command = [python, "-m", "src.summary", "model=lenet5"]
        summary = best_of(repeats, summary_command, root, expect=0)
        clock_file = scratch_dir / "first_batch.txt"
        train_command = [
            python, "-m", "src.train", "debug=fast", *with_data,
            "+callbacks.first_batch_clock._target_=_first_batch_clock.FirstBatchClock",
            f"+callbacks.first_batch_clock.path={clock_file}",
        ]  # fmt: skip
        env = {
            "DATA_DIR": data_dir,
            "PYTHONPATH": os.pathsep.join(filter(None, [scratch, os.environ.get("PYTHONPATH")])),
        }
        first_batch, whole = [], []
        for _ in range(repeats):
            clock_file.unlink(missing_ok=True)
            start = time.monotonic()
            seconds, code, last = timed(train_command, root, env)
            if code != 0:
                raise UserError(f"`src.train debug=fast` in {root} ended with {code}: {last}")
            first_batch.append(float(clock_file.read_text().split()[0]) - start)
            whole.append(seconds)
        return {
            "root": str(root),
            "commit": git_commit(root),
            "errors": errors,
            "error_seconds_worst": max(e["seconds"] for e in errors.values()),
            "missing_data": missing,
            "imports": imports,
            "summary": summary,
            "train_fast_dev_run": {
                "first_batch_seconds": round(min(first_batch), 3),
                "seconds": round(min(whole), 3),
                "all": {
                    "first_batch": [round(x, 3) for x in first_batch],
                    "whole": [round(x, 3) for x in whole],
                },
            },
            "importtime_train": importtime_top(
                [python, "-m", "src.train", "debug=fast", *with_data], root, env
            ),
            "importtime_summary": importtime_top(summary_command, root),
            "repeats": repeats,
            "overrides": list(overrides),
        }


STARTUP_LABELS = ("before", "after")  # docs/speed.md's columns, in this order; other labels follow


def startup_markdown(results: dict[str, dict[str, Any]]) -> list[str]:
    """One column per label (e.g. before / after): seconds to the answer, then -X importtime's top."""
    labels = sorted(results, key=lambda k: (STARTUP_LABELS.index(k) if k in STARTUP_LABELS else 99, k))
    header = (
        "| what the user runs | "
        + " | ".join(f"{label} (`{results[label].get('commit') or '?'}`)" for label in labels)
        + " |"
    )
    lines = [header, "|---|" + "---|" * len(labels)]

    def row(title: str, pick: Callable[[dict[str, Any]], Any]) -> None:
        cells = []
        for label in labels:
            try:
                cells.append(f"{pick(results[label]):.2f} s")
            except (KeyError, TypeError):
                cells.append("–")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    for name, args in MISTAKES:
        row(f"`python -m src.train {' '.join(args)}` ({name})", lambda r, n=name: r["errors"][n]["seconds"])
    row(
        "`DATA_DIR=<empty> python -m src.train data.download=false` (no MNIST, empty cache)",
        lambda r: r["missing_data"]["seconds"],
    )
    row("`python -m src.summary model=lenet5`", lambda r: r["summary"]["seconds"])
    row(
        "`python -m src.train debug=fast`: to its first training batch",
        lambda r: r["train_fast_dev_run"]["first_batch_seconds"],
    )
    row("`python -m src.train debug=fast`: end to end", lambda r: r["train_fast_dev_run"]["seconds"])
    for name, _ in IMPORTS:
        row(f'`python -c "{name}"`', lambda r, n=name: r["imports"][n]["seconds"])
    lines += ["", "`python -X importtime`, the top-level imports with the largest cumulative times (s):", ""]
    for key, title in (("importtime_train", "src.train debug=fast"), ("importtime_summary", "src.summary")):
        for label in labels:
            entries = results[label].get(key) or []
            listed = ", ".join(f"`{e['module']}` {e['seconds']:.2f}" for e in entries)
            lines.append(f"- {title}, {label}: {listed}")
    return lines


def save_startup(label: str, result: dict[str, Any], results_dir: Path = common.RESULTS_DIR) -> None:
    """<results_dir>/startup_<label>.json, and startup.md from every startup_*.json there."""
    results_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + " ".join(sys.argv[1:])
    write_json_atomically(
        {**result, "machine": machine(), "command": command}, results_dir / f"startup_{label}.json"
    )
    results = {
        path.stem.removeprefix("startup_"): json.loads(path.read_text())
        for path in sorted(results_dir.glob("startup_*.json"))
    }
    machines = [f"{name}: {machine_line(r['machine'], r['command'])}" for name, r in sorted(results.items())]
    text = "\n".join([*startup_markdown(results), "", *machines])
    (results_dir / "startup.md").write_text(text + "\n")
    print(text, flush=True)


def git_commit(root: Path) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or None
