"""The experiment trackers (src/training/trackers.py): W&B offline and MLflow's local store, through the
real CLI on the tiny MNIST, read back with each tracker's own client:

- W&B: `wandb leet inspect --json [--summary] <offline run folder>`, W&B's CLI for local runs, which
  reads the run's `.wandb` transaction log (history, config, summary; `wandb.Api` is online-only, and
  an offline run writes no files/config.yaml or wandb-summary.json);
- MLflow: `mlflow.tracking.MlflowClient` on the run's SQLite store.

Also: a 2-job multirun gives two runs in one W&B group / MLflow experiment; a DDP run of two processes
gives one run of each; a tracker chosen without its package ends with one line, before torch is
imported. The trackers are the optional `trackers` extra: without it these tests skip, except in CI
(`make test` installs it), where they fail.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.config.compose import PROJECT_ROOT
from src.training.trackers import INSTALL, check_packages, installed, local_store, run_name
from src.utils.errors import ConfigError
from tests.conftest import compose_train_config, fast_overrides, run_cli

# Where a careless tracker would write (the process runs in the project root): compared before and after.
STRAYS = ("wandb", "mlruns", "mlartifacts", "mlflow.db")


def need(*packages: str) -> None:
    missing = [package for package in packages if not installed(package)]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed: the trackers extra ({INSTALL}, or make setup-trackers)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the tracker tests: {message}")
    pytest.skip(message)


def stray_files() -> set[str]:
    return {name for name in STRAYS if (PROJECT_ROOT / name).exists()}


def train(tmp_path: Path, data: Path, *overrides: str, multirun: bool = False, fresh: bool = False):
    """`python -m src.train <overrides>` on the tiny MNIST, with $HOME in tmp_path (the trackers must not
    write there, nor into the project root)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    out = tmp_path / "out"
    args = [*fast_overrides(data, out), "trainer.max_epochs=1", *overrides]
    if multirun:
        args = ["-m", *(arg for arg in args if not arg.startswith("hydra.run.dir="))]
    before = stray_files()
    result = run_cli("src.train", *args, env={"HOME": str(home), "OMP_NUM_THREADS": "1"}, fresh=fresh)
    assert result.returncode == 0, result.stderr[-3000:]
    in_home = [path for path in home.rglob("*") if path.name.startswith(("wandb", "mlflow", "mlruns"))]
    assert not in_home, "a tracker wrote into $HOME"  # (matplotlib's font cache may be there)
    assert stray_files() == before, "a tracker wrote into the project root"
    return out


def wandb_inspect(run_folder: Path, tmp_path: Path, summary: bool = True) -> tuple[dict, list[dict]]:
    """An offline run as W&B's own CLI reads it: the `--summary` object (state, name, config, summary;
    {} with summary=False) and the records of its transaction log (run, config, history, exit, ...)."""
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json"]
    env = {**os.environ, "HOME": str(tmp_path / "home")}

    def run(*args: str) -> str:
        result = subprocess.run(
            [*command, *args, str(run_folder)], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    records = [json.loads(line) for line in run().splitlines() if line.strip()]
    return (json.loads(run("--summary")) if summary else {}), records


def history(records: list[dict]) -> list[dict]:
    return [record["history"]["item"] for record in records if record["type"] == "history"]


def the_run_record(records: list[dict]) -> dict:
    (run,) = [record["run"] for record in records if record["type"] == "run"]
    return run


def mlflow_client(out: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{out / 'mlflow' / 'mlflow.db'}")


def expected_name(overrides: list[str]) -> str:
    """What a run is named: its overrides but those that say where files are (the tiny data, the output)."""
    where = ("data.data_dir=", "paths.", "hydra.")
    return " ".join(o for o in overrides if not o.startswith(where))


def assert_local_loggers_hold(run_dir: Path, test_acc: float) -> None:
    """The run's TensorBoard event file and CSVLogger's metrics.csv, each with the run's test/acc."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert events.Scalars("test/acc")[-1].value == pytest.approx(test_acc)
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        logged = [float(row["test/acc"]) for row in csv.DictReader(handle) if row.get("test/acc")]
    assert logged == [pytest.approx(test_acc)]


# ------------------------------------------------------------------------------------------ W&B
def test_wandb_offline_run_holds_history_config_and_summary(tiny_mnist, tmp_path):
    need("wandb")
    out = train(tmp_path, tiny_mnist, "logger=wandb", "pooling=min")
    run_dir = out / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (folder,) = (run_dir / "wandb").glob("offline-run-*")
    summary, records = wandb_inspect(folder, tmp_path)

    assert summary["state"] == "finished" and summary["exit_code"] == 0
    assert summary["project"] == "classic-cnns"
    overrides = [*fast_overrides(tiny_mnist, out), "trainer.max_epochs=1", "logger=wandb", "pooling=min"]
    assert summary["name"] == expected_name(overrides)
    assert not the_run_record(records).get("run_group")  # a single run: no group
    # the resolved config, group choices included
    config = summary["config"]
    assert config["pooling"] == "min" and config["model"] == "lenet5" and config["data"] == "mnist"
    assert config["logger"] == "wandb" and config["trainer.max_epochs"] == 1
    assert config["optimizer.lr"] > 0 and config["paths.output_dir"] == str(run_dir)
    # sent once, before training (W&B lists it alphabetically; the order sent: test_hyperparameters_...)
    (sent,) = [record["num"] for record in records if record["type"] == "config"]
    assert sent < min(record["num"] for record in records if record["type"] == "history")
    # every scalar TensorBoard gets, the figures, and the final metrics in the summary
    logged = set().union(*history(records))
    scalars = {"val/loss", "val/acc", "val/acc_best", "train/acc", "train/loss_epoch", "lr-Adam"}
    scalars |= {"train/images_per_second", "test/acc", "test/loss", "trainer/global_step"}
    assert scalars <= logged
    figures = {"confusion_matrix/val", "confusion_matrix/test", "mistakes/val", "inputs/train"}
    figures |= {"filters/features.conv1", "feature_maps/01_conv1", "feature_maps/03_pool1"}
    for tag in figures:
        assert f"{tag}._type" in logged, tag
    final = summary["summary"]
    confusion = final["confusion_matrix/test"]
    assert confusion["_type"] == "images/separated" and confusion["width"] > 300  # a rendered figure
    assert all((folder / "files" / name).is_file() for name in confusion["filenames"])
    shapes = folder / "files" / final["feature_maps/shapes"]["path"]
    assert "03_pool1 (MinPool2d): (6, 14, 14)" in shapes.read_text()
    assert final["test/acc"] == pytest.approx(metrics["metrics"]["test/acc"])
    assert final["val/acc_best"] == pytest.approx(metrics["metrics"]["val/acc_best"])
    assert final["epochs"] == 1 and final["params"] == metrics["params"]
    assert final["best_checkpoint"] == metrics["tested_checkpoint"]  # test_checkpoint=best
    assert Path(final["best_checkpoint"]).is_file()
    # W&B's own cache, settings and logs: under paths.log_dir, not $HOME (checked by train())
    assert (out / "wandb" / "cache").is_dir()


# ------------------------------------------------------------------------------------------ MLflow
def test_mlflow_local_store_holds_metrics_params_and_run_name(tiny_mnist, tmp_path):
    need("mlflow")
    out = train(tmp_path, tiny_mnist, "logger=mlflow", "padding=same")
    run_dir = out / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    client = mlflow_client(out)
    experiment = client.get_experiment_by_name(str(out))  # single runs: the folder holding their folder
    assert experiment is not None, [e.name for e in client.search_experiments()]
    (run,) = client.search_runs([experiment.experiment_id])

    overrides = [*fast_overrides(tiny_mnist, out), "trainer.max_epochs=1", "logger=mlflow", "padding=same"]
    assert run.info.run_name == expected_name(overrides)
    assert run.info.status == "FINISHED"
    assert run.data.tags["run_dir"] == str(run_dir)
    assert run.data.tags["best_checkpoint"] == metrics["tested_checkpoint"]
    params = run.data.params
    assert params["padding"] == "same" and params["model"] == "lenet5" and params["logger"] == "mlflow"
    assert params["trainer.max_epochs"] == "1" and float(params["optimizer.lr"]) > 0
    # the scalars, one point an epoch, and the final metrics
    for key in ("val/acc", "val/loss", "val/acc_best", "train/acc", "lr-Adam", "train/images_per_second"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 1, key
    for key in ("test/acc", "test/loss", "val/acc_best", "train/images_per_second"):
        assert run.data.metrics[key] == pytest.approx(metrics["metrics"][key]), key
    assert run.data.metrics["epochs"] == 1 and run.data.metrics["params"] == metrics["params"]
    # the figures (step-indexed images) and the layer shapes, in the store's artifacts folder
    images = {Path(a.path).name.split("+")[0] for a in client.list_artifacts(run.info.run_id, "images")}
    expected = {"confusion_matrix~val", "confusion_matrix~test", "mistakes~val", "inputs~train"}
    expected |= {"filters~features.conv1", "feature_maps~01_conv1", "feature_maps~03_pool1"}
    assert expected <= images
    shapes = client.download_artifacts(run.info.run_id, "feature_maps/shapes.txt", str(tmp_path))
    assert "01_conv1 (Conv2d): (6, 32, 32)" in Path(shapes).read_text()
    assert run.info.artifact_uri.startswith((out / "mlflow" / "artifacts").as_uri())


# ------------------------------------------------------------------------------------------ multirun
def test_a_two_job_multirun_is_two_runs_in_one_group_and_experiment(tiny_mnist, tmp_path):
    """With logger=many (TensorBoard, CSV, W&B, MLflow): each job also has its TensorBoard events and its
    csv/metrics.csv, each holding the job's own final test/acc."""
    need("wandb", "mlflow")
    out = train(
        tmp_path, tiny_mnist, "logger=many", "pooling=max,min", "callbacks.feature_maps=null", multirun=True
    )
    (sweep,) = (out / "train" / "multiruns").iterdir()
    names = {}
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        names[job] = expected_name(metrics["overrides"])
        assert_local_loggers_hold(sweep / job, metrics["metrics"]["test/acc"])
    assert names["0"] != names["1"] and "pooling=max" in names["0"] and "pooling=min" in names["1"]

    # W&B: one offline run per job, in the job's directory, grouped by the sweep (one process: the
    # first job's run was finished before the second started its own)
    runs = {}
    for job in ("0", "1"):
        (folder,) = (sweep / job / "wandb").glob("offline-run-*")
        _, records = wandb_inspect(folder, tmp_path, summary=False)
        assert [record["exit"].get("exit_code", 0) for record in records if record["type"] == "exit"] == [0]
        run = the_run_record(records)
        assert run["run_group"] == str(sweep)
        runs[job] = (run["run_id"], run["display_name"])
    assert runs["0"][0] != runs["1"][0]
    assert {job: name for job, (_, name) in runs.items()} == names

    # MLflow: the sweep is one experiment of two runs
    client = mlflow_client(out)
    experiment = client.get_experiment_by_name(str(sweep))
    assert experiment is not None, [e.name for e in client.search_experiments()]
    found = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in found) == sorted(names.values())
    assert all(run.info.status == "FINISHED" for run in found)
    assert {run.data.tags["run_dir"] for run in found} == {str(sweep / "0"), str(sweep / "1")}


# ------------------------------------------------------------------------------------------ failures
FAIL = """
import sys
from types import SimpleNamespace
from src.training.trackers import closing, mlflow_logger, wandb_logger

out = sys.argv[1]
def job(name):  # one job's loggers, as src.train builds them
    store = f"sqlite:///{out}/mlflow.db"
    loggers = [wandb_logger(save_dir=f"{out}/{name}", state_dir=f"{out}/wandb", name=name, group="sweep"),
               mlflow_logger(tracking_uri=store, experiment_name="sweep", run_name=name)]
    return SimpleNamespace(loggers=loggers, is_global_zero=True)

trainer = job("failing")
try:
    with closing(trainer):
        for logger in trainer.loggers:
            logger.log_metrics({"val/acc": 0.5}, step=1)
        raise RuntimeError("the job failed")
except RuntimeError:
    pass
trainer = job("next")  # the next job of a multirun in the same process: a run of its own
with closing(trainer):
    for logger in trainer.loggers:
        logger.log_metrics({"val/acc": 0.75}, step=1)
"""


def test_a_failed_job_ends_its_tracker_runs_as_failed_and_the_next_job_gets_its_own(tmp_path):
    need("wandb", "mlflow")
    (tmp_path / "home").mkdir()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", FAIL, str(tmp_path)], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    exits, ids = {}, set()
    for name in ("failing", "next"):
        (folder,) = (tmp_path / name / "wandb").glob("offline-run-*")
        _, records = wandb_inspect(folder, tmp_path, summary=False)
        exits[name] = [record["exit"].get("exit_code", 0) for record in records if record["type"] == "exit"]
        ids.add(the_run_record(records)["run_id"])
    assert exits == {"failing": [1], "next": [0]} and len(ids) == 2
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    assert {run.info.run_name: run.info.status for run in runs} == {"failing": "FAILED", "next": "FINISHED"}


# ------------------------------------------------------------------------------------------ DDP
@pytest.mark.slow
def test_ddp_logs_one_run_from_rank_zero(tiny_mnist, tmp_path):
    need("wandb", "mlflow")
    out = train(
        tmp_path, tiny_mnist, "logger=[wandb,mlflow]", "trainer=ddp_sim", "callbacks.feature_maps=null",
        fresh=True,
    )  # fmt: skip
    assert len(list((out / "run" / "wandb").glob("offline-run-*"))) == 1
    client = mlflow_client(out)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert len(client.get_metric_history(runs[0].info.run_id, "val/acc")) == 1


# ------------------------------------------------------------------------------------------ without the extra
HIDE = """
import runpy, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # as if not installed: find_spec answers None, import fails
sys.argv = sys.argv[2:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
finally:
    heavy = sorted(name for name in ("torch", "lightning") if name in sys.modules)
    print("imported:", ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("choice", "hidden", "names"),
    [("logger=wandb", "wandb", "logger.wandb needs the wandb package"),
     ("logger=mlflow", "mlflow", "logger.mlflow needs the mlflow package"),
     ("logger=many", "wandb,mlflow", "logger.wandb needs the wandb package, logger.mlflow needs the mlflow")],
)  # fmt: skip
def test_a_tracker_without_its_package_is_one_line_before_torch(tmp_path, choice, hidden, names):
    result = subprocess.run(
        [sys.executable, "-c", HIDE, hidden, "src.train", choice, f"paths.log_dir={tmp_path}"],
        cwd=PROJECT_ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert lines[-1] == "imported: ", lines  # answered before torch or Lightning was imported
    assert len(lines) == 2 and lines[0].startswith(f"error: {names}"), lines
    assert f"install it with `{INSTALL}`" in lines[0]


def test_the_package_check_reads_every_logger_of_the_config(tmp_path, monkeypatch):
    cfg = compose_train_config(["logger=many"], tmp_path)
    monkeypatch.setattr("src.training.trackers.installed", lambda package: package != "mlflow")
    with pytest.raises(ConfigError, match=r"^logger\.mlflow needs the mlflow package, which is not installe"):
        check_packages(cfg)
    check_packages(compose_train_config(["logger=tensorboard"], tmp_path))  # nothing to install
    check_packages(compose_train_config(["logger=none"], tmp_path))


# ------------------------------------------------------------------------------------------ helpers
def test_run_names_leave_out_where_the_files_are():
    overrides = ["pooling=min", "data.data_dir=/data", "paths.log_dir=/out", "ckpt_path=/x/last.ckpt"]
    assert run_name([*overrides, "+trainer.max_epochs=3"], "fallback") == "pooling=min +trainer.max_epochs=3"
    assert run_name(["paths.cache_dir=/c"], "2026-11-26_10-00-00") == "2026-11-26_10-00-00"


def test_local_stores_are_found_in_their_uris():
    assert local_store("sqlite:////abs/outputs/mlflow/mlflow.db") == Path("/abs/outputs/mlflow/mlflow.db")
    assert local_store("sqlite:///rel/mlflow.db") == Path("rel/mlflow.db")
    assert local_store("file:///abs/mlruns") == Path("/abs/mlruns")
    assert local_store("http://tracking:5000") is None
    assert local_store("databricks") is None


def test_hyperparameters_put_the_group_choices_first(tmp_path):
    from src.training.hparams import flat_hparams
    from src.training.trackers import hyperparameters

    cfg = compose_train_config(["pooling=avg", "padding=same", "logger=csv"], tmp_path)
    params = hyperparameters(cfg)
    keys = list(params)
    tensorboard = list(flat_hparams(cfg, {}))  # what TensorBoard's HParams tab shows, in its order
    assert keys[: len(tensorboard)] == tensorboard
    assert keys[:4] == ["model", "data", "pooling", "padding"]
    assert params["pooling"] == "avg" and params["padding"] == "same"
    assert params["logger"] == "csv" and params["trainer"] == "default"  # the other choices follow
    assert params["data.val_size"] == cfg.data.val_size and params["seed"] == 42  # then every other key
    assert not any(key.startswith("hydra") or "._" in key or key.startswith("_") for key in keys)
    assert all(value is None or isinstance(value, bool | int | float | str) for value in params.values())
