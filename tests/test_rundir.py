"""src/runs/rundir.py names a run's files; conf/ tells the writers (Lightning, the TensorBoard logger)
where to put them: both must agree. Its `.running` lock, and the MLflow store's lock, across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from src.config.compose import PROJECT_ROOT
from src.runs.rundir import RUNNING, STOPPED, RunDir
from src.training.trackers import store_lock
from src.utils.errors import UserError
from tests.conftest import compose_train_config


def test_the_writers_in_conf_use_the_run_directorys_names(tmp_path):
    cfg = compose_train_config(["logger=tensorboard", "callbacks=default"], tmp_path)
    run = RunDir(tmp_path)
    assert Path(cfg.callbacks.model_checkpoint.dirpath) == run.checkpoints
    logger = cfg.logger.tensorboard
    assert Path(logger.save_dir) / logger.name / str(logger.version) == run.tensorboard


# --------------------------------------------------------------------- the `.running` lock across processes
HOLD = """
import sys, time
from pathlib import Path
{imports}
with {lock}:
    print("held", flush=True)
    time.sleep(120)
"""


def hold_in_a_process(imports: str, lock: str) -> subprocess.Popen:
    """A process that takes a lock and sleeps in it; returns once it holds the lock."""
    code = HOLD.format(imports=imports, lock=lock)
    holder = subprocess.Popen(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_run_is_running_while_its_process_holds_the_lock_and_stopped_once_it_is_killed(tmp_path):
    run = RunDir(tmp_path / "run")
    (run.path / ".hydra").mkdir(parents=True)
    holder = hold_in_a_process(
        "from src.runs.rundir import RunDir", f"RunDir(Path({str(run.path)!r})).running()"
    )
    try:
        assert run.status() == RUNNING and run.is_running()
        assert [run.is_running() for _ in range(3)] == [True] * 3  # a probe leaves the lock with its holder
        with (
            pytest.raises(UserError, match=rf"is in use: process {holder.pid} is training in it"),
            run.running(),
        ):
            pass
    finally:
        holder.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
        holder.wait(30)
    assert (run.path / ".running").is_file()  # left behind by the killed process, but no longer locked
    assert run.status() == STOPPED
    with run.running():  # resume= of the dead run takes the lock
        assert run.status() == RUNNING  # this process holds it: a probe through another handle fails
    assert not (run.path / ".running").exists() and run.status() == STOPPED


def test_a_run_that_ends_removes_its_lock_file_and_probes_leave_none(tmp_path):
    run = RunDir(tmp_path)
    assert not run.is_running() and not (tmp_path / ".running").exists()  # a probe creates nothing
    with run.running():
        assert (tmp_path / ".running").read_text().strip() == str(os.getpid())
    assert not (tmp_path / ".running").exists() and not run.is_running()


def test_the_mlflow_store_lock_waits_for_its_holder_and_is_released_when_it_is_killed(tmp_path):
    store = tmp_path / "mlflow" / "mlflow.db"
    holder = hold_in_a_process(
        "from src.training.trackers import store_lock", f"store_lock(Path({str(store)!r}))"
    )
    lock_file = store.parent / f".{store.name}.lock"
    try:
        with pytest.raises(Timeout):
            FileLock(lock_file, timeout=0.2).acquire()
    finally:
        holder.kill()
        holder.wait(30)
    with store_lock(store):  # the kernel dropped the dead holder's lock
        pass
