"""src.report on a sweep directory of real (tiny) runs, nested at different depths, and on one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.report import load_runs
from src.report import main as report_main
from src.train import train
from tests.conftest import compose_train_config, fast_overrides, make_tiny_mnist, run_cli

EPOCHS = 2


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """sweep/0 (max pooling), sweep/1 (avg) and sweep/more/2 (min): runs at any depth count."""
    root = tmp_path_factory.mktemp("report")
    data = make_tiny_mnist(root / "data")
    for job, pooling in (("0", "max"), ("1", "avg"), ("more/2", "min")):
        run = root / "sweep" / job
        overrides = [
            *fast_overrides(data, root),
            f"trainer.max_epochs={EPOCHS}",
            f"pooling={pooling}",
        ]
        overrides += ["callbacks.input_grid=null", "callbacks.feature_maps=null", "callbacks.filters=null"]
        train(compose_train_config(overrides, run))
    return root / "sweep"


def test_report_on_a_sweep_writes_sorted_table_and_plot(sweep):
    result = run_cli("src.report", str(sweep))
    assert result.returncode == 0, result.stderr[-2000:]
    table = (sweep / "report.md").read_text()
    assert (sweep / "report.png").stat().st_size > 10_000
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 3
    assert {row.split(" | ")[1] for row in rows} == {"`pooling=max`", "`pooling=avg`", "`pooling=min`"}
    test_accs = [float(row.split(" | ")[3]) for row in rows]
    assert test_accs == sorted(test_accs, reverse=True)
    assert "Common overrides:" in table and "trainer.max_epochs=2" in table.split("|")[0]
    for row in rows:  # params, epochs, wall time
        cells = row.strip("| ").split(" | ")
        assert cells[2] == "61,706" and cells[5] == str(EPOCHS) and float(cells[6]) > 0
    assert rows[0] in result.stdout  # the table is printed too
    # the values come from each run's metrics.json; the curves from its event files
    runs = {run.name: run for run in load_runs(sweep)}
    assert set(runs) == {"0", "1", "more/2"}
    metrics = json.loads((sweep / "1" / "metrics.json").read_text())
    assert runs["1"].test_acc == metrics["metrics"]["test/acc"]
    assert [epoch for epoch, _ in runs["1"].val_curve] == list(range(1, EPOCHS + 1))


def test_report_on_a_single_run_and_on_an_empty_dir(sweep, tmp_path, capsys):
    report_main([str(sweep / "more" / "2")])  # in-process: quicker than the CLI
    assert (sweep / "more" / "2" / "report.png").is_file() and "pooling=min" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: no runs in {tmp_path}: no metrics.json at any depth (has a run finished there?)"
    ]
