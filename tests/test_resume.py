"""Exact resume after SIGKILL, and atomic checkpoint / metrics / cache writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from src.config.compose import PROJECT_ROOT
from src.lightning_ext.checkpoints import AtomicCheckpointIO
from src.runs.rundir import RunDir
from src.train import train
from src.utils.files import atomic_save, write_json_atomically
from tests.conftest import compose_train_config, fast_overrides, run_cli
from tests.tiny_data import make_tiny_cifar

TIMING = ("per_second", "seconds", "time")  # wall-clock metrics differ between any two runs


def _command(data_dir: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "src.train",
        *fast_overrides(data_dir, out),
        # CIFAR-10's random crops and flips draw from the global RNG: a resume must restore it.
        "data=cifar10",
        "data.val_size=20",
        "trainer.max_epochs=3",
        "trainer.deterministic=true",
    ]


def _pause(marker: Path) -> list[str]:
    """Overrides for the run to be killed: a pause after every epoch's checkpoint (tests/callbacks.py) that
    only the kill ends, and a marker file written as it begins, which the test waits for: the kill lands
    between two checkpoints however slow the machine is. The resume lifts the pause (`NO_PAUSE`)."""
    return [
        "+callbacks.pause._target_=tests.callbacks.EpochPause",
        "+callbacks.pause.seconds=600",
        f"+callbacks.pause.marker={marker}",
    ]


NO_PAUSE = "+callbacks.pause.seconds=0"  # an override after resume=<run dir> wins over the run's own


def _start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the run and every process it starts
    )


def _wait_for(condition, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition(), f"{what} did not happen within {seconds} s: {log.read_text()[-3000:]}"


def _state_dict(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")[
        "state_dict"
    ]


def _comparable(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if not any(word in k for word in TIMING)}


def assert_same_run(straight_dir: Path, resumed_dir: Path) -> None:
    """The resumed run ends as the run left alone did: 3 epochs, the same steps, metrics (timings aside)
    and weights, to 1e-6."""
    expected = json.loads((straight_dir / "metrics.json").read_text())
    got = json.loads((resumed_dir / "metrics.json").read_text())
    assert (got["epochs"], got["global_step"]) == (expected["epochs"], expected["global_step"])
    assert expected["epochs"] == 3
    want, have = _comparable(expected["metrics"]), _comparable(got["metrics"])
    assert want.keys() == have.keys()
    for key, value in want.items():
        assert have[key] == pytest.approx(value, abs=1e-6), key
    weights, resumed_weights = _state_dict(straight_dir), _state_dict(resumed_dir)
    assert weights.keys() == resumed_weights.keys()
    for name, tensor in weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_sigkilled_run_resumes_to_the_same_weights_and_metrics(tmp_path):
    data = make_tiny_cifar(tmp_path / "data")
    straight_out, killed_out, marker = tmp_path / "straight", tmp_path / "killed", tmp_path / "paused"
    straight = _start(_command(data, straight_out), tmp_path / "straight.log")
    killed_log = tmp_path / "killed.log"
    killed = _start([*_command(data, killed_out), *_pause(marker)], killed_log)
    run_dir = killed_out / "run"
    try:
        _wait_for(lambda: marker.exists() or killed.poll() is not None, 240, "the first epoch", killed_log)
        assert killed.poll() is None, killed_log.read_text()[-3000:]
        assert marker.read_text() == "1\n"  # in the pause after epoch 1's checkpoint
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
    finally:
        if killed.poll() is None:
            killed.kill()
    assert killed.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()  # it really died mid-run
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0

    resumed = subprocess.run(
        [sys.executable, "-m", "src.train", f"resume={run_dir}", NO_PAUSE],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert straight.wait(300) == 0, (tmp_path / "straight.log").read_text()[-3000:]

    assert_same_run(straight_out / "run", run_dir)


def _living_members(group: int) -> list[str]:
    """The processes of process group `group` that are still alive ("pid state command"); a zombie (dead,
    not yet reaped by its new parent) is not."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid_and_name, _, rest = stat.read_text().rpartition(")")
        except OSError:  # it ended while we looked
            continue
        state, _ppid, pgrp = rest.split()[:3]
        if int(pgrp) == group and state != "Z":
            members.append(f"{stat.parent.name} {state} {pid_and_name.partition('(')[2]}")
    return members


def test_sigkilled_ddp_run_resumes_to_the_same_metrics(tmp_path):
    """trainer=ddp_sim, 2 processes: SIGKILL to the run's whole process group after its first epoch's
    checkpoint leaves no process, no half-written file and one run directory; resume=<run dir> then
    ends with the metrics and weights of the same run left alone."""
    data = make_tiny_cifar(tmp_path / "data")
    straight_out, killed_out = tmp_path / "straight", tmp_path / "killed"
    marker = tmp_path / "first_epoch_done"

    def command(out: Path, *extra: str) -> list[str]:
        single = [
            arg for arg in _command(data, out) if not arg.startswith(("hydra.run.dir=", "data.batch_size="))
        ]
        # a timestamped run directory, as a user gets: the rank started by Lightning must not make another
        return [*single, "trainer=ddp_sim", "data.batch_size=8", "logger=none", *extra]

    threads = {"OMP_NUM_THREADS": "1"}
    straight = _start(command(straight_out), tmp_path / "straight.log", threads)
    killed_log = tmp_path / "killed.log"
    killed = _start(command(killed_out, *_pause(marker)), killed_log, threads)
    try:
        _wait_for(lambda: marker.exists() or killed.poll() is not None, 300, "the first epoch", killed_log)
        assert killed.poll() is None, killed_log.read_text()[-3000:]
        assert marker.read_text() == "1\n"  # rank 0 is in the pause after epoch 1's checkpoint
        assert len(_living_members(killed.pid)) >= 2  # rank 0 and the rank Lightning started
        os.killpg(killed.pid, signal.SIGKILL)
        assert killed.wait(30) == -signal.SIGKILL
        _wait_for(lambda: not _living_members(killed.pid), 30, "the end of every process", killed_log)
    finally:
        if killed.poll() is None or _living_members(killed.pid):
            os.killpg(killed.pid, signal.SIGKILL)
    runs = list((killed_out / "train" / "runs").iterdir())
    assert len(runs) == 1, runs  # one run directory for both ranks
    run_dir = runs[0]
    assert not (run_dir / "metrics.json").exists()  # it really died mid-run
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    assert not list(run_dir.rglob("*.tmp"))  # no half-written checkpoint (or anything else)
    for checkpoint in checkpoints.iterdir():
        assert torch.load(checkpoint, weights_only=True)["epoch"] == 0

    resumed = subprocess.run(
        [sys.executable, "-m", "src.train", f"resume={run_dir}", NO_PAUSE],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **threads},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert straight.wait(400) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    assert list((killed_out / "train" / "runs").iterdir()) == [run_dir]  # no second run directory

    assert_same_run(next((straight_out / "train" / "runs").iterdir()), run_dir)


def test_resume_with_new_overrides_trains_on_in_the_same_directory(tiny_mnist, tmp_path):
    """`resume=<run dir> trainer.max_epochs=3` continues a finished 1-epoch run to 3 epochs, in its own
    directory, with its own overrides and the new one in place of the old."""
    common = [*fast_overrides(tiny_mnist, tmp_path), "logger=none", "padding=same"]
    first = run_cli("src.train", *common, "trainer.max_epochs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "run"
    steps = json.loads((run_dir / "metrics.json").read_text())["global_step"]
    before = sorted(p.name for p in tmp_path.iterdir())

    resumed = run_cli("src.train", f"resume={run_dir}", "trainer.max_epochs=3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no second run directory
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["global_step"]) == (3, 3 * steps)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"Restoring states from the checkpoint path at {last}" in resumed.stdout + resumed.stderr
    assert "padding=same" in metrics["overrides"] and "trainer.max_epochs=3" in metrics["overrides"]
    assert "trainer.max_epochs=1" not in metrics["overrides"]
    assert f"ckpt_path={last}" in metrics["overrides"]
    assert torch.load(last, weights_only=True)["epoch"] == 2
    # what a later resume= reads back: this command line
    assert "trainer.max_epochs=3" in RunDir(run_dir).read_overrides()


def _a_run_without_checkpoint(path: Path) -> Path:
    path.joinpath(".hydra").mkdir(parents=True)
    path.joinpath(".hydra", "overrides.yaml").write_text("- pooling=min\n- trainer.max_epochs=2\n")
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resume={run}", "resume={run}"], "resume= is given more than once; name one run directory"),
        (["-m", "resume={run}"], "resume= continues one run; it cannot be combined with -m/--multirun"),
        (["resume={run}"], "resume={run} has no checkpoint to continue from: {run}/checkpoints/last.ckpt "
                           "is missing (the run stopped before its first epoch ended, or ran with "
                           "callbacks=none); start it again"),
    ],
)  # fmt: skip
def test_resume_errors_are_one_line_before_anything_runs(tmp_path, monkeypatch, capsys, argv, message):
    from src.train import cli

    run = _a_run_without_checkpoint(tmp_path / "run")
    monkeypatch.setattr(sys, "argv", ["src.train", *(arg.format(run=run) for arg in argv)])
    with pytest.raises(SystemExit) as exit_info:
        cli()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {message.format(run=run)}"]


class Boom(RuntimeError):
    pass


def _explode_midway(obj, handle, *args, **kwargs):
    handle.write(b"half a file")
    raise Boom


WRITERS = {
    "checkpoint": lambda path, value: AtomicCheckpointIO().save_checkpoint({"value": value}, path),
    "metrics.json": lambda path, value: write_json_atomically({"value": value}, path),
    "dataset cache": lambda path, value: atomic_save({"value": value}, path),
}


def _read(path: Path) -> int:
    if path.suffix == ".json":
        return json.loads(path.read_text())["value"]
    return torch.load(path, weights_only=True)["value"]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_failed_write_leaves_the_previous_file_and_no_temp_file(tmp_path, monkeypatch, writer):
    path = tmp_path / ("metrics.json" if writer == "metrics.json" else "file.ckpt")
    WRITERS[writer](path, 1)
    monkeypatch.setattr(torch, "save", _explode_midway)
    monkeypatch.setattr(json, "dump", lambda obj, handle, **kw: _explode_midway(obj, handle.buffer))
    with pytest.raises(Boom):
        WRITERS[writer](path, 2)
    monkeypatch.undo()
    assert _read(path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_process_killed_while_saving_a_checkpoint_leaves_the_old_one(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"value": 1}, path)
    script = (
        "import os, torch\n"
        "from src.lightning_ext.checkpoints import AtomicCheckpointIO\n"
        "def die(obj, handle, *a, **k):\n"
        "    handle.write(b'partial'); handle.flush(); os._exit(9)\n"
        "torch.save = die\n"
        f"AtomicCheckpointIO().save_checkpoint({{'value': 2}}, {str(path)!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 9
    assert torch.load(path, weights_only=True)["value"] == 1  # the old checkpoint, whole
    AtomicCheckpointIO().save_checkpoint({"value": 3}, path)  # a stray temp file does not get in the way
    assert torch.load(path, weights_only=True)["value"] == 3
    assert all(p.name == "last.ckpt" or p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_last_checkpoint_is_the_latest_epoch_even_when_val_acc_stops_improving(tiny_mnist, tmp_path):
    # lr 0: the weights never change, so val/acc never improves after epoch 0 and Lightning's own
    # ModelCheckpoint would leave last.ckpt at epoch 0; resume=<run dir> must continue after epoch 2.
    cfg = compose_train_config(
        [*fast_overrides(tiny_mnist, tmp_path), "trainer.max_epochs=3", "optimizer.lr=0", "logger=none"],
        tmp_path,
    )
    train(cfg)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("epoch_*.ckpt")) == ["epoch_000.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    first = torch.load(checkpoints / "epoch_000.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == 3 * first["global_step"]
