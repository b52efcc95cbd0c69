"""One summary per multirun: `<sweep dir>/summary.json` and `summary.csv`, one entry per run.

`SweepSummary` is a Hydra callback (registered in conf/hydra/default.yaml). When a multirun ends, with
any launcher (basic, joblib, submitit) or sweeper (basic, Optuna), it reads every job's metrics.json
(written by src.train; src/runs/rundir.py) and lists the run's directory, overrides and metrics; the
best run on `optimized_metric` is named at the top. Jobs that wrote no metrics.json (crashed, killed)
are listed with status "failed"; jobs whose metrics.json or `.hydra/overrides.yaml` is damaged with
status "damaged" and the reason (`problem`). A finished job whose TensorBoard event file is damaged
(src/runs/events.py) keeps status "ok", its metrics.json being whole, with `event_problems` and one
warning line each on stderr.

Rebuild a summary by hand: `python -m src.sweep outputs/train/multiruns/<time>`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from src.runs.events import event_file_problems
from src.runs.rundir import RunDir, RunFileError


def _job_number(path: Path) -> tuple[int, str]:
    return (int(path.name), path.name) if path.name.isdigit() else (sys.maxsize, path.name)


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One entry per job directory of the sweep (a subdirectory holding metrics.json or .hydra/)."""
    runs = []
    for job_dir in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=_job_number):
        run = RunDir(job_dir)
        if not run.is_run():
            continue
        runs.append({"job": job_dir.name, "dir": str(job_dir), **_entry(run)})
    return runs


def _entry(run: RunDir) -> dict[str, Any]:
    """A job's status, overrides and metrics; `damaged`, with the reason, when its files cannot be read."""
    try:
        data = run.read_metrics()
        if data is None:
            return {"status": "failed", "overrides": run.read_overrides(), "metrics": {}}
    except RunFileError as error:
        overrides = []
        with contextlib.suppress(RunFileError):  # what the job was, when .hydra/ can still tell
            overrides = run.read_overrides()
        return {"status": "damaged", "problem": str(error), "overrides": overrides, "metrics": {}}
    entry = {
        "status": "ok",
        "overrides": data.get("overrides", []),
        "metrics": data["metrics"],
        "epochs": data.get("epochs"),
        "fit_seconds": data.get("fit_seconds"),
        "params": data.get("params"),
    }
    problems = event_file_problems(run.tensorboard)
    return {**entry, "event_problems": problems} if problems else entry


def best_run(runs: list[dict[str, Any]], metric: str | None, direction: str) -> dict[str, Any] | None:
    scored = [r for r in runs if metric and isinstance(r["metrics"].get(metric), int | float)]
    scored = [r for r in scored if not math.isnan(r["metrics"][metric])]
    if not scored:
        return None
    pick = min if direction == "minimize" else max
    return pick(scored, key=lambda r: r["metrics"][metric])


def write_summary(sweep_dir: Path, metric: str | None = None, direction: str | None = None) -> dict[str, Any]:
    """Write summary.json and summary.csv into `sweep_dir`; return the summary."""
    runs = collect(sweep_dir)
    for run in runs:
        for problem in run.get("event_problems", []):
            print(f"warning: job {run['job']}: {problem}; its metrics are listed", file=sys.stderr)
    direction = direction or ("minimize" if metric and "loss" in metric else "maximize")
    best = best_run(runs, metric, direction)
    summary = {
        "sweep_dir": str(sweep_dir),
        "optimized_metric": metric,
        "direction": direction,
        "best": {"job": best["job"], "value": best["metrics"][metric], "overrides": best["overrides"]}
        if best
        else None,
        "runs": runs,
    }
    (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    metric_names = sorted({name for run in runs for name in run["metrics"]})
    with (sweep_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["job", "status", "overrides", *metric_names, "epochs", "fit_seconds", "dir"])
        for run in runs:
            writer.writerow(
                [
                    run["job"],
                    run["status"],
                    " ".join(run["overrides"]),
                    *(run["metrics"].get(name, "") for name in metric_names),
                    run.get("epochs", ""),
                    run.get("fit_seconds", ""),
                    run["dir"],
                ]
            )
    return summary


def sweep_settings(config: DictConfig) -> tuple[str | None, str | None]:
    """What a multirun optimised, from its config (the live one, or the sweep's saved multirun.yaml):
    `optimized_metric`, and the sweeper's direction where it has one (Optuna's; None: by the metric's
    name)."""
    direction = OmegaConf.select(config, "hydra.sweeper.direction", default=None)
    direction = str(direction).split(".")[-1] if isinstance(direction, str) else None
    return config.get("optimized_metric"), direction


class SweepSummary(Callback):
    """Hydra callback: after a multirun, summarise every job of the sweep directory."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        summary = write_summary(sweep_dir, *sweep_settings(config))
        line = f"{len(summary['runs'])} runs summarised in {sweep_dir / 'summary.json'}"
        damaged = [run["job"] for run in summary["runs"] if run["status"] == "damaged"]
        if damaged:
            line += f"; damaged, left out: job {', '.join(damaged)}"
        if summary["best"]:
            best = summary["best"]
            line += f"; best {summary['optimized_metric']} {best['value']:.4f}: job {best['job']}"
        print(line)
