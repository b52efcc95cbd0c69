"""src.report on a sweep directory of real (tiny) runs, nested at different depths, and on one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from src.report import main as report_main
from src.runs.report import load_runs, report
from src.runs.rundir import RunDir
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
        f"error: no runs in {tmp_path}: no metrics.json or .hydra/ at any depth (has a run started there?)"
    ]


# ------------------------------------------------------------------ fake sweeps: grouping, pairs, status
def fake_run(root: Path, name: str, overrides: list[str], acc: float | None = None, **extra) -> Path:
    """A run directory as src.train leaves it: .hydra/overrides.yaml, and metrics.json when finished."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if acc is not None:
        metrics = {"test/acc": acc, "val/acc_best": acc + 0.01}
        data = {"metrics": metrics, "epochs": 3, "fit_seconds": 1.5, "params": 61_706, "overrides": overrides}
        data["pooled_shapes"] = {"features.pool1": [6, 14, 14], "features.pool2": [16, 5, 5]}
        (run / "metrics.json").write_text(json.dumps({**data, **extra}))
    return run


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    return [line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith(f"| {first_cell}")]


def test_runs_that_differ_only_in_seed_are_one_setting_with_mean_and_std(tmp_path):
    for job, (pooling, seed, acc) in enumerate(
        [
            ("max", 1, 0.90),
            ("max", 2, 0.92),
            ("max", 3, 0.94),
            ("min", 1, 0.80),
            ("min", 2, 0.83),
            ("min", 3, 0.86),
        ]
    ):
        fake_run(tmp_path, str(job), ["data=mnist", f"pooling={pooling}", f"seed={seed}"], acc)
    fake_run(tmp_path, "6", ["data=mnist", "pooling=avg", "seed=1"])  # died: no metrics.json, no lock
    live = fake_run(tmp_path, "7", ["data=mnist", "pooling=avg", "seed=2"])
    with RunDir(live).running():  # a process holds the run's lock: still training
        text = report(tmp_path)
    rows = table_rows(text, "`pooling=")
    by_setting = {row[0]: row for row in rows if "±" in row[2]}
    assert by_setting["`pooling=max`"][1:4] == ["3", "92.00% ± 2.00%", "93.00%"]
    assert by_setting["`pooling=min`"][1:4] == ["3", "83.00% ± 3.00%", "84.00%"]
    assert by_setting["`pooling=max`"][4:6] == ["61,706", "pool2 16×5×5"]
    assert list(by_setting) == ["`pooling=max`", "`pooling=min`"]  # best mean first
    assert "Common overrides: `data=mnist`" in text
    assert "### Not finished (2)" in text
    assert "- 6: stopped before it finished (failed or killed); `data=mnist pooling=avg seed=1`" in text
    assert "- 7: still running; `data=mnist pooling=avg seed=2`" in text
    every = [row for row in table_rows(text, "") if row[0].isdigit()]
    assert [row[0] for row in every] == ["2", "1", "0", "5", "4", "3"]  # six finished runs, best first
    assert (tmp_path / "report_groups.png").stat().st_size > 5_000
    assert list((tmp_path / "tensorboard_report").glob("events.out.tfevents.*"))
    assert (tmp_path / "report.md").read_text().count("±") >= 2


def test_paired_differences_per_activation_and_the_noise_verdict(tmp_path):
    accs = {  # (pooling, activation) -> test accuracy of seeds 1, 2, 3
        ("max", "relu"): (0.90, 0.92, 0.94), ("min", "relu"): (0.80, 0.83, 0.86),  # min - max: -9 +- 1 points
        ("max", "tanh"): (0.90, 0.92, 0.94), ("min", "tanh"): (0.91, 0.91, 0.945),  # noise: +1, -1, +0.5
    }  # fmt: skip
    job = 0
    for (pooling, act), values in accs.items():
        for seed, acc in enumerate(values, start=1):
            fake_run(
                tmp_path, str(job), [f"pooling={pooling}", f"model.activation_fn={act}", f"seed={seed}"], acc
            )
            job += 1
    text = report(tmp_path, ["pooling=min,max"], "model.activation_fn")
    rows = {row[1]: row for row in table_rows(text, "pooling=min")}
    relu, tanh, both = rows["model.activation_fn=relu"], rows["model.activation_fn=tanh"], rows["all runs"]
    assert relu[2:5] == ["3", "-9.00", "1.00"] and relu[6:] == ["0.00409", "**yes**"]
    assert relu[5] == f"{((0.02**2 + 0.03**2) / 2) ** 0.5 * 100:.2f}"  # the two settings' pooled seed std
    assert tanh[2] == "3" and tanh[3] == "+0.17" and tanh[7] == "no"
    assert both[2] == "6"
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path), "--pair", "pooling=min"])
    assert exit_info.value.code == 2


def test_an_experiment_names_its_pairs_in_its_config(tmp_path):
    for seed, (a, b) in enumerate([(0.5, 0.6), (0.52, 0.61)], start=1):
        fake_run(tmp_path, f"a{seed}", ["padding=same", f"seed={seed}"], a)
        fake_run(tmp_path, f"b{seed}", ["padding=valid", f"seed={seed}"], b)
    (tmp_path / "a1" / "config.yaml").write_text(
        yaml.safe_dump({"report": {"pairs": ["padding=same,valid"]}})
    )
    text = report(tmp_path)
    [row] = table_rows(text, "padding=same")
    assert row[1:4] == ["all runs", "2", "-9.50"]
