"""Compare finished runs: one markdown table and one plot for a sweep (or a single run).

    python -m src.report outputs/train/multiruns/2026-11-25_17-17-52
    python -m src.report outputs/train/runs/2026-11-25_17-00-44

A run is any directory below the given one (at any depth, the directory itself included) that holds a
`metrics.json` (written by src/train.py). For each run the report reads
- metrics.json: test/val metrics, epochs, fit_seconds, params, overrides;
- `.hydra/overrides.yaml` when metrics.json has no overrides (e.g. an interrupted writer);
- its TensorBoard event files (`<run>/tensorboard/`): validation accuracy after every epoch.

It writes `report.md` (the table, sorted by test accuracy, best first) and `report.png` (validation
accuracy per epoch, one line per run, and a bar chart of test accuracy) into the given directory, and
prints the table. Overrides shared by every run are listed once above the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from src.config import user_errors
from src.errors import UserError


@dataclass
class Run:
    path: Path
    name: str
    overrides: list[str]
    metrics: dict[str, float]
    epochs: int
    fit_seconds: float
    params: int
    val_curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, val/acc)

    @property
    def test_acc(self) -> float | None:
        return self.metrics.get("test/acc")


def find_runs(root: Path) -> list[Path]:
    """Every directory at or below `root` that holds a metrics.json, in path order."""
    return sorted(p.parent for p in root.rglob("metrics.json") if p.is_file())


def read_overrides(run_dir: Path, saved: Sequence[str] | None) -> list[str]:
    if saved:
        return list(saved)
    path = run_dir / ".hydra" / "overrides.yaml"
    if path.is_file():
        return [str(o) for o in yaml.safe_load(path.read_text()) or []]
    return []


def val_accuracy_per_epoch(run_dir: Path) -> list[tuple[int, float]]:
    """(epoch, val/acc) from the run's TensorBoard event files; epochs counted from 1.

    Lightning logs `val/acc` and `epoch` at the same global step, so the `epoch` scalar at that step
    names the epoch. Without event files (logger=none) the curve is empty.
    """
    log_dir = run_dir / "tensorboard"
    if not any(log_dir.glob("events.out.tfevents.*")):
        return []
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags().get("scalars", [])
    if "val/acc" not in tags:
        return []
    epoch_at = {e.step: int(e.value) for e in accumulator.Scalars("epoch")} if "epoch" in tags else {}
    curve = {}
    for index, event in enumerate(accumulator.Scalars("val/acc")):
        curve[epoch_at.get(event.step, index) + 1] = event.value  # a resumed run may repeat a step
    return sorted(curve.items())


def load_run(run_dir: Path, root: Path) -> Run:
    try:
        data = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {run_dir / 'metrics.json'}: {error}") from error
    name = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
    return Run(
        path=run_dir,
        name=name,
        overrides=read_overrides(run_dir, data.get("overrides")),
        metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
        epochs=int(data.get("epochs") or 0),
        fit_seconds=float(data.get("fit_seconds") or 0.0),
        params=int(data.get("params") or 0),
        val_curve=val_accuracy_per_epoch(run_dir),
    )


def load_runs(root: Path) -> list[Run]:
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; give a run directory or a multirun (sweep) directory")
    runs = [load_run(path, root) for path in find_runs(root)]
    if not runs:
        raise UserError(f"no runs in {root}: no metrics.json at any depth (has a run finished there?)")
    # best test accuracy first; runs without a test go last
    return sorted(runs, key=lambda r: (r.test_acc is None, -(r.test_acc or 0.0), r.name))


def split_overrides(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """Overrides every run shares, and each run's own (what the sweep varied)."""
    if len(runs) == 1:
        return [], [runs[0].overrides]
    common = [o for o in runs[0].overrides if all(o in r.overrides for r in runs[1:])]
    return common, [[o for o in r.overrides if o not in common] for r in runs]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(runs: Sequence[Run]) -> str:
    common, own = split_overrides(runs)
    header = ["run", "overrides", "params", "test acc", "best val acc", "epochs", "wall time (s)", "images/s"]
    lines = []
    if common:
        lines += [f"Common overrides: `{' '.join(common)}`", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * 5) + "|"]
    for run, overrides in zip(runs, own, strict=True):
        images = run.metrics.get("train/images_per_second")
        cells = [
            run.name,
            f"`{' '.join(overrides)}`" if overrides else "(none)",
            f"{run.params:,}",
            _fmt(run.test_acc),
            _fmt(run.metrics.get("val/acc_best", run.metrics.get("val/acc"))),
            str(run.epochs),
            f"{run.fit_seconds:.1f}",
            "-" if images is None else f"{images:,.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: Sequence[Run], path: Path) -> None:
    """report.png: validation accuracy per epoch (one line per run) and test accuracy (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, own = split_overrides(runs)
    labels = [" ".join(o) or r.name for r, o in zip(runs, own, strict=True)]
    height = max(4.0, 0.35 * len(runs) + 2)
    figure, (curves, bars) = plt.subplots(1, 2, figsize=(13, height), gridspec_kw={"width_ratios": [3, 2]})
    for run, label in zip(runs, labels, strict=True):
        if run.val_curve:
            epochs, values = zip(*run.val_curve, strict=True)
            curves.plot(epochs, values, marker="o", label=label)
    curves.set_xlabel("epoch")
    curves.set_ylabel("validation accuracy")
    curves.set_title("val/acc per epoch")
    curves.grid(alpha=0.3)
    if any(r.val_curve for r in runs):
        curves.legend(fontsize=8)
        curves.xaxis.get_major_locator().set_params(integer=True)
    tested = [(label, r.test_acc) for r, label in zip(runs, labels, strict=True) if r.test_acc is not None]
    if tested:
        names, values = zip(*reversed(tested), strict=True)  # best on top
        bars.barh(range(len(values)), values, color="tab:blue")
        bars.set_yticks(range(len(values)), names, fontsize=8)
        low = min(values)
        bars.set_xlim(max(0.0, low - (1 - low) * 0.5 - 0.01), 1.0)
        for index, value in enumerate(values):
            bars.text(value, index, f" {value:.4f}", va="center", fontsize=8)
    bars.set_xlabel("test accuracy")
    bars.set_title("test/acc")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(root: Path) -> str:
    """Write report.md and report.png into `root`; return the table."""
    runs = load_runs(root)
    table = markdown_table(runs)
    (root / "report.md").write_text(f"# Report: {root}\n\n{table}\n\n![report](report.png)\n")
    plot(runs, root / "report.png")
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory or a multirun (sweep) directory")
    args = parser.parse_args(argv)
    with user_errors():
        print(report(args.run_dir))
        print(f"\nwrote {args.run_dir / 'report.md'} and {args.run_dir / 'report.png'}")


if __name__ == "__main__":
    main(sys.argv[1:])
