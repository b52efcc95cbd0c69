"""Hydra multiruns: a pooling x padding grid in parallel processes (joblib), an Optuna search, the
sweep summary, the check of `optimized_metric` before the first trial, and hydra-submitit-launcher:
a real sweep through submitit_local and the SLURM settings (and sbatch script) of submitit_slurm."""

import csv
import json
import math
import os
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from src.config.check import validate_command_line
from src.config.compose import PROJECT_ROOT
from src.runs.rundir import RunDir
from src.runs.sweep import write_summary
from src.training.metric_names import LOGGED_METRICS
from src.utils.errors import ConfigError
from tests.conftest import fast_overrides, run_cli


def sweep_overrides(data_dir, out):
    return [o for o in fast_overrides(data_dir, out) if not o.startswith("hydra.run.dir=")]


def assert_best_is_the_argmax(summary, metric="val/acc_best"):
    """The summary's best run is the one with the highest `metric` (the first of equals, in job order)."""
    finished = [run for run in summary["runs"] if run["status"] == "ok"]
    top = max(run["metrics"][metric] for run in finished)
    first = next(run for run in finished if run["metrics"][metric] == top)
    assert summary["best"] == {"job": first["job"], "value": top, "overrides": first["overrides"]}


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
    assert_best_is_the_argmax(summary)
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
    assert_best_is_the_argmax(summary)
    for run in summary["runs"]:  # every trial drew all four searched parameters
        keys = {o.split("=")[0] for o in run["overrides"]}
        assert {"optimizer.lr", "data.batch_size", "pooling", "padding"} <= keys


def test_a_sweep_whose_job_failed_is_summarised_by_src_sweep(tiny_mnist, tmp_path):
    """A failing job (its loss diverges) ends the multirun before it writes its summary; `python -m
    src.sweep <dir>` then writes it, the failed job listed as failed, with its overrides."""
    out = tmp_path / "out"
    lr = ["optimizer=sgd", "optimizer.lr=0.01,1e+30", "trainer.max_epochs=1", "logger=none"]
    result = run_cli("src.train", "-m", *lr, *sweep_overrides(tiny_mnist, out))
    assert result.returncode == 2 and "error: training diverged" in result.stderr, result.stderr[-3000:]
    sweep = the_sweep_dir(out)
    assert not (sweep / "summary.json").exists()

    rebuilt = run_cli("src.sweep", str(sweep))
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    finished, failed = summary["runs"]
    assert (finished["job"], finished["status"]) == ("0", "ok") and "optimizer.lr=0.01" in finished[
        "overrides"
    ]
    assert (failed["job"], failed["status"], failed["metrics"]) == ("1", "failed", {})
    assert "optimizer.lr=1e+30" in failed["overrides"]  # from the job's .hydra/overrides.yaml
    assert summary["optimized_metric"] == "val/acc_best" and summary["direction"] == "maximize"
    assert json.loads(rebuilt.stdout) == summary["best"] and summary["best"]["job"] == "0"
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(row["job"], row["status"]) for row in rows] == [("0", "ok"), ("1", "failed")]
    assert (
        float(rows[0]["val/acc_best"]) == finished["metrics"]["val/acc_best"]
        and rows[1]["val/acc_best"] == ""
    )


def fake_job(sweep: Path, job: str, metrics: dict[str, float] | None = None) -> None:
    """A job directory as src.train leaves it: .hydra/overrides.yaml, and metrics.json once it finished."""
    run = RunDir(sweep / job)
    run.hydra_dir.mkdir(parents=True)
    overrides = [f"seed={job}"]
    run.overrides_file.write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        run.write_metrics({"metrics": metrics, "overrides": overrides, "epochs": 1})


def test_the_best_run_skips_nan_and_failed_jobs_and_minimises_a_loss(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep, "0", {"val/acc_best": math.nan, "val/loss": math.nan})  # first: max() would keep a NaN
    fake_job(sweep, "1")  # started, never finished
    fake_job(sweep, "2", {"val/acc_best": 0.8, "val/loss": 0.4})
    fake_job(sweep, "3", {"val/acc_best": 0.5, "val/loss": 0.9})
    fake_job(sweep, "10", {"val/acc_best": 0.7, "val/loss": 0.3})
    (sweep / ".submitit").mkdir()  # not a job

    maximised = write_summary(sweep, "val/acc_best")
    assert [(run["job"], run["status"]) for run in maximised["runs"]] == [
        ("0", "ok"), ("1", "failed"), ("2", "ok"), ("3", "ok"), ("10", "ok")
    ]  # fmt: skip
    assert maximised["direction"] == "maximize"
    assert maximised["best"] == {"job": "2", "value": 0.8, "overrides": ["seed=2"]}
    minimised = write_summary(sweep, "val/loss")  # a loss is minimised
    assert minimised["direction"] == "minimize" and minimised["best"]["job"] == "10"
    assert write_summary(sweep, "val/acc_best", "minimize")["best"]["job"] == "3"  # the sweeper's word wins
    assert write_summary(sweep, "train/acc")["best"] is None  # no run has it

    # `python -m src.sweep` rebuilds what the multirun wrote: its metric and direction, from multirun.yaml
    saved = {"optimized_metric": "val/loss", "hydra": {"sweeper": {"direction": "minimize"}}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(saved))
    result = run_cli("src.sweep", str(sweep))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {"job": "10", "value": 0.3, "overrides": ["seed=10"]}
    summary = json.loads((sweep / "summary.json").read_text())
    assert (summary["optimized_metric"], summary["direction"]) == ("val/loss", "minimize")


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


def test_two_runs_through_submitit_local(tiny_mnist, tmp_path):
    """submitit starts each run as a job process of its own (everything of submitit_slurm but the
    scheduler): each writes its own run directory under the sweep, and the sweep gets its summary."""
    out = tmp_path / "out"
    result = run_cli(
        "src.train",
        "-m",
        "hydra/launcher=submitit_local",
        "pooling=max,min",
        "trainer.max_epochs=1",
        "logger=none",
        *sweep_overrides(tiny_mnist, out),
        env={"OMP_NUM_THREADS": "1"},
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in result.stdout + result.stderr
    sweep = the_sweep_dir(out)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [".submitit", "0", "1"]
    for job, pooling in (("0", "max"), ("1", "min")):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert f"pooling={pooling}" in metrics["overrides"] and metrics["epochs"] == 1
        assert 0 <= metrics["metrics"]["test/acc"] <= 1
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert (sweep / job / "config.yaml").is_file()
        hydra_cfg = yaml.safe_load((sweep / job / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert str(hydra_cfg["job"]["num"]) == job and hydra_cfg["launcher"]["tasks_per_node"] == 1
    # submitit's own record: one job each, run in a process of its own that ended successfully
    logs = sorted((sweep / ".submitit").glob("*/*_0_log.out"))
    assert len(logs) == 2 and len({log.parent.name for log in logs}) == 2
    assert all("Job completed successfully" in log.read_text() for log in logs)
    summary = json.loads((sweep / "summary.json").read_text())
    assert [(run["job"], run["status"]) for run in summary["runs"]] == [("0", "ok"), ("1", "ok")]
    assert_best_is_the_argmax(summary)


def test_slurm_launcher_settings_for_two_nodes_of_four_gpus(tmp_path, monkeypatch):
    """hydra/launcher=submitit_slurm with trainer=ddp trainer.devices=4 trainer.num_nodes=2 asks SLURM for
    2 nodes x 4 tasks x 4 GPUs, as `--cfg` shows and as submitit would write it into the sbatch script;
    no cluster needed."""
    ddp = ["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", f"paths.log_dir={tmp_path}"]
    result = run_cli(
        "src.train",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
        *ddp,
        "--cfg",
        "all",
        "--resolve",
        "--package",
        "hydra.launcher",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    launcher = yaml.safe_load(result.stdout)
    assert launcher["_target_"] == "src.training.distributed.SlurmLauncher"
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert launcher["partition"] == "gpu" and launcher["timeout_min"] == 60
    assert launcher["submitit_folder"].startswith(f"{tmp_path}/train/multiruns/")
    assert launcher["additional_parameters"] == {"chdir": str(PROJECT_ROOT)}

    # Every setting of the plugin's schema is in the config file, and nothing else.
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf

    assert set(launcher) == set(OmegaConf.structured(SlurmQueueConf))

    # The sbatch script, built by submitit from these settings as the plugin passes them on.
    import submitit

    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit only checks that srun exists
    (stub / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub}{os.pathsep}{os.environ['PATH']}")
    params = {
        k: v for k, v in launcher.items() if k not in ("_target_", "submitit_folder", "max_num_timeout")
    }
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm", slurm_max_num_timeout=0)
    base = set(OmegaConf.structured(BaseQueueConf))
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    sbatch = executor._executor._make_submission_file_text("python -u -m submitit.core._submit x", "uid")
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu", "--time=60",
                 "--cpus-per-task=4", f"--chdir={PROJECT_ROOT}"):  # fmt: skip
        assert f"#SBATCH {line}\n" in sbatch, line

    # Submitting from a login node without GPUs passes the checks; a device count SLURM cannot reserve
    # (trainer=ddp's default -1: every GPU) fails in one line, before anything is submitted.
    validate_command_line(["-m", "hydra/launcher=submitit_slurm", *ddp])
    with pytest.raises(ConfigError, match=r"^trainer.devices=-1 gives no number of devices per node"):
        validate_command_line(
            ["-m", "hydra/launcher=submitit_slurm", "trainer=ddp", f"paths.log_dir={tmp_path}"]
        )
