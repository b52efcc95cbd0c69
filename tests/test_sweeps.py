"""Hydra multiruns: a pooling x padding grid in parallel processes (joblib), an Optuna search, the
sweep summary, and the check of `optimized_metric` before the first trial."""

import csv
import json
import sys

import pytest
import yaml

from src.module import LOGGED_METRICS
from tests.conftest import fast_overrides, run_cli


def sweep_overrides(data_dir, out):
    return [o for o in fast_overrides(data_dir, out) if not o.startswith("hydra.run.dir=")]


def the_sweep_dir(out):
    assert [p.name for p in (out / "train").iterdir()] == ["multiruns"]  # no stray run directories
    sweeps = list((out / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def test_six_run_grid_with_joblib_launcher_and_summary(tiny_mnist, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "src.train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "pooling=max,avg,min",
        "padding=valid,same",
        "trainer.fast_dev_run=true",
        "logger=none",
        *sweep_overrides(tiny_mnist, out),
        env={"OMP_NUM_THREADS": "1"},
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    sweep = the_sweep_dir(out)
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    assert [p.name for p in jobs] == [str(i) for i in range(6)]
    grid = set()
    for job in jobs:
        overrides = json.loads((job / "metrics.json").read_text())["overrides"]
        grid.add(tuple(o for o in overrides if o.startswith(("pooling=", "padding="))))
    assert len(grid) == 6

    summary = json.loads((sweep / "summary.json").read_text())
    assert [run["job"] for run in summary["runs"]] == [str(i) for i in range(6)]
    assert all(run["status"] == "ok" and "test/acc" in run["metrics"] for run in summary["runs"])
    assert summary["optimized_metric"] == "val/acc_best"
    assert summary["best"]["job"] in {str(i) for i in range(6)}
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 6 and "padding=" in rows[0]["overrides"] and float(rows[0]["test/acc"]) >= 0


def test_optuna_search_two_trials(tiny_mnist, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "src.train",
        "hparams_search=lenet5_optuna",  # sets hydra.mode=MULTIRUN: no -m needed
        "hydra.sweeper.n_trials=2",
        "trainer.fast_dev_run=true",
        "logger=none",
        *[o for o in sweep_overrides(tiny_mnist, out) if not o.startswith("data.batch_size=")],
        env={"OMP_NUM_THREADS": "1"},
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = the_sweep_dir(out)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["direction"] == "maximize" and len(summary["runs"]) == 2
    assert summary["best"]["value"] == pytest.approx(best["best_value"])
    for run in summary["runs"]:  # every trial drew all four searched parameters
        keys = {o.split("=")[0] for o in run["overrides"]}
        assert {"optimizer.lr", "data.batch_size", "pooling", "padding"} <= keys


def test_unknown_optimized_metric_fails_before_the_first_trial(tiny_mnist, tmp_path, monkeypatch, capsys):
    from src.train import cli

    out = tmp_path / "out"
    argv = ["hparams_search=lenet5_optuna", "optimized_metric=val/accuracy"]
    argv += sweep_overrides(tiny_mnist, out)
    monkeypatch.setattr(sys, "argv", ["src.train", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"error: optimized_metric=val/accuracy is never logged; logged: {', '.join(LOGGED_METRICS)}"
    ]
    assert not (out / "train").exists()  # no sweep directory, no trial
