"""The pooling x padding study: its grid, a small real sweep of it, and src.report's answer on it."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import compose_train_config, fast_overrides, run_cli


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_the_study_is_36_runs_of_one_fixed_recipe(tmp_path, dataset):
    cfg = compose_train_config([f"experiment=pool_pad_study_{dataset}"], tmp_path)
    grid = {key: str(values).split(",") for key, values in cfg.hydra.sweeper.params.items()}
    assert grid == {
        "pooling": ["max", "avg", "min"],
        "padding": ["valid", "same"],
        "model.activation_fn": ["tanh", "relu"],
        "seed": ["1", "2", "3"],
    }
    assert math.prod(len(values) for values in grid.values()) == 36
    assert cfg.data._target_.endswith({"mnist": "MNISTDataModule", "cifar10": "CIFAR10DataModule"}[dataset])
    assert cfg.trainer.max_epochs == {"mnist": 4, "cifar10": 10}[dataset]
    assert cfg.callbacks.every_n_epochs == cfg.trainer.max_epochs  # images of the final network only
    assert list(cfg.report.pairs) == ["pooling=min,max", "pooling=avg,max", "padding=same,valid"]


def test_a_small_study_sweep_measures_what_min_pooling_passes_and_the_report_pairs_it(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    small = [
        "pooling=max,min",
        "padding=valid",
        "model.activation_fn=relu",
        "seed=1,2",
        "trainer.max_epochs=1",
    ]
    overrides = [o for o in fast_overrides(tiny_mnist, tmp_path) if not o.startswith("hydra.run.dir=")]
    result = run_cli(
        "src.train", "-m", "experiment=pool_pad_study_mnist", *small, *overrides, f"hydra.sweep.dir={sweep}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(path.read_text()) for path in sorted(sweep.glob("*/metrics.json"))]
    assert len(runs) == 4
    by_pooling = {}
    for run in runs:
        pooling = next(o for o in run["overrides"] if o.startswith("pooling="))
        by_pooling.setdefault(pooling, []).append(run["metrics"])
        assert run["pooled_shapes"] == {"features.pool1": [6, 14, 14], "features.pool2": [16, 5, 5]}
    # After a ReLU about half the values are zero; a 2x2 min pool passes a zero when any of its four
    # inputs is one, a max pool only when all four are: more zeros after min pooling, fewer after max.
    for metrics in by_pooling["pooling=min"]:
        assert metrics["test/pool1_zeros"] > metrics["test/act1_zeros"] > 0.2
    for metrics in by_pooling["pooling=max"]:
        assert metrics["test/pool1_zeros"] < metrics["test/act1_zeros"]

    report = run_cli("src.report", str(sweep))
    assert report.returncode == 0, report.stderr[-3000:]
    rows = [line for line in report.stdout.splitlines() if line.startswith("| pooling=min − pooling=max |")]
    assert [row.split(" | ")[1:3] for row in rows] == [["model.activation_fn=relu", "2"], ["all runs", "2"]]
    assert "| `pooling=max` | 2 |" in report.stdout and "| `pooling=min` | 2 |" in report.stdout
