"""DDP on the CPU (trainer=ddp_sim, gloo): sharding, one run directory per run, multirun, torchrun, and
equivalence with a single process on twice the batch.

Each CLI run costs seconds of interpreter start-up per process, so every test makes one run and checks
everything that run can show.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from src.data.base import EpochBatchSampler
from src.train import train
from src.training.distributed import SlurmLauncher, child_command, rank_overrides, task_overrides
from tests.conftest import PROJECT_ROOT, compose_train_config, fast_overrides, run_cli

# A single process with batch 2B against 2 DDP processes with batch B each: the same samples per step,
# the same averaged gradient, so the same weights up to float32 summation order. Measured on this test's
# setup (2 epochs, SGD lr 0.05): losses within 2.4e-7, accuracies equal, weights within 3e-8.
EQUIVALENCE_TOLERANCE = 1e-5


def without_run_dir(overrides):
    return [o for o in overrides if not o.startswith("hydra.run.dir=")]


def only_child(path):
    children = list(path.iterdir())
    assert len(children) == 1, children
    return children[0]


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("size", [96, 101])
def test_sampler_shards_every_sample_once_per_epoch(world_size, size):
    for shuffle in (True, False):
        samplers = [
            EpochBatchSampler(size, 8, shuffle=shuffle, seed=3, rank=r, world_size=world_size)
            for r in range(world_size)
        ]
        for epoch in (0, 1):
            seen = []
            for sampler in samplers:
                sampler.set_epoch(epoch)
                seen += [i for batch in sampler for i in batch]
            expected = size - size % world_size if shuffle else size  # training trims to equal shards
            assert len(seen) == len(set(seen)) == expected, (shuffle, epoch)
        if shuffle:  # equal batch counts keep the gradient all-reduces in step
            assert len({len(s) for s in samplers}) == 1
    # rank r takes positions r::w of the one-process permutation, so a step's rank batches together
    # are the one-process batch of w times the size
    whole = EpochBatchSampler(96, 16, shuffle=True, seed=3)
    halves = [EpochBatchSampler(96, 8, shuffle=True, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for big, *small in zip(whole, *halves, strict=True):
        assert sorted(big) == sorted(small[0] + small[1])


def test_rank_overrides_and_child_command(monkeypatch, tmp_path):
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert rank_overrides(["-m", "pooling=max,min"]) == ["-m", "pooling=max,min"]  # rank 0: untouched
    monkeypatch.setenv("RANK", "1")  # a torchrun worker of another node
    extra = rank_overrides(["pooling=max"])[1:]
    assert extra[0] == "hydra.output_subdir=null" and extra[1].startswith("hydra.run.dir=")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "1")  # a child of Lightning's launcher: its run dir is kept
    child = ["pooling=max", "hydra.run.dir=/x", "hydra.output_subdir=null"]
    assert rank_overrides(child) == child

    # hydra/launcher=submitit_slurm: every task of a job runs Hydra's job set-up; rank 0 as it is, the
    # others without .hydra/ and train.log of their own (through SlurmLauncher)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert task_overrides(["pooling=max"]) == ["pooling=max"]
    monkeypatch.setenv("SLURM_PROCID", "5")
    task = task_overrides(["pooling=max"])
    assert task == ["pooling=max", "hydra.output_subdir=null", "hydra.job_logging.root.handlers=[console]"]
    cfg = compose_train_config(task, tmp_path / "task")
    assert cfg.hydra.output_subdir is None and cfg.hydra.job_logging.root.handlers == ["console"]
    seen = []
    plugin_launcher = SlurmLauncher.__bases__[
        0
    ]  # hydra-submitit-launcher's (Hydra may have reloaded its module)
    assert plugin_launcher.__qualname__ == submitit_launcher.SlurmLauncher.__qualname__
    monkeypatch.setattr(plugin_launcher, "__call__", lambda self, o, *rest: seen.append(o))
    SlurmLauncher()(["pooling=max"], "hydra.sweep.dir", 0, "job_id_for_0", {})
    assert seen == [task]
    monkeypatch.delenv("SLURM_PROCID")

    compose_train_config(["pooling=min", "trainer=ddp_sim"], tmp_path / "job")
    command, cwd = child_command(1)
    assert command[:3] == [sys.executable, "-m", "src.train"] and "-m" not in command[3:]
    assert {"pooling=min", "trainer=ddp_sim", "hydra.output_subdir=null", "hydra.mode=RUN"} <= set(command)
    assert f"hydra.run.dir={tmp_path / 'job'}" in command


def test_ddp_sim_matches_one_process_on_twice_the_batch(tiny_mnist, tmp_path):
    """2 processes x batch 16 (one CLI run, Lightning's launcher) == 1 process x batch 32; and the
    DDP run leaves exactly one run directory, written by rank 0 only."""
    common = ["optimizer=sgd", "optimizer.momentum=0", "optimizer.weight_decay=0", "optimizer.lr=0.05"]
    common += ["trainer.max_epochs=2", "seed=7"]
    out = tmp_path / "ddp"
    result = run_cli(
        "src.train",
        "trainer=ddp_sim",
        "data.batch_size=16",
        *[o for o in without_run_dir(fast_overrides(tiny_mnist, out)) if "batch_size" not in o],
        *common,
        env={"OMP_NUM_THREADS": "1"},
        fresh=True,  # the DDP launcher starts the other rank as a new process from sys.argv
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in out.iterdir()} <= {"cache", "train"}
    assert [p.name for p in (out / "train").iterdir()] == ["runs"]
    run_dir = only_child(out / "train" / "runs")  # one directory for both ranks
    assert len(list(out.rglob("metrics.json"))) == 1
    ddp = json.loads((run_dir / "metrics.json").read_text())
    assert ddp["global_step"] == 2 * 6  # 192 training images / (2 ranks x 16) per epoch
    # .hydra/ is rank 0's: a child would have written job name train_ddp_process_1 and its overrides
    assert yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["name"] == "train"
    assert "hydra.output_subdir=null" not in (run_dir / ".hydra" / "overrides.yaml").read_text()
    checkpoints = {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(n.startswith("epoch_") for n in checkpoints)
    writers = {p.name.split(".")[4] for p in (run_dir / "tensorboard").glob("events.out.tfevents.*")}
    assert len(writers) == 1  # TensorBoard event files from one process (the pid is in the name)

    single_dir = tmp_path / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train(compose_train_config([*fast_overrides(tiny_mnist, single_dir), *common], single_dir))
    finally:
        torch.set_num_threads(threads)
    assert single["global_step"] == ddp["global_step"]
    for name in ("val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc"):
        assert ddp["metrics"][name] == pytest.approx(single["metrics"][name], abs=EQUIVALENCE_TOLERANCE), name
    assert ddp["metrics"]["test/acc"] > 0.3  # it learned something: the comparison is not of two nothings


def test_multirun_with_ddp_sim_gives_one_directory_per_run(tiny_mnist, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "src.train",
        "-m",
        "trainer=ddp_sim",
        "pooling=max,min",
        "trainer.fast_dev_run=true",
        *without_run_dir(fast_overrides(tiny_mnist, out)),
        env={"OMP_NUM_THREADS": "1"},
        fresh=True,  # the DDP launcher starts the other rank as a new process from sys.argv
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in out.iterdir()} <= {"cache", "train"}
    assert [p.name for p in (out / "train").iterdir()] == ["multiruns"]  # no stray run directories
    sweep = only_child(out / "train" / "multiruns")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job, pooling in (("0", "max"), ("1", "min")):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert f"pooling={pooling}" in metrics["overrides"] and "test/acc" in metrics["metrics"]
        hydra_cfg = yaml.safe_load((sweep / job / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert hydra_cfg["job"]["name"] == "train" and str(hydra_cfg["job"]["num"]) == job
    summary = json.loads((sweep / "summary.json").read_text())
    assert [run["job"] for run in summary["runs"]] == ["0", "1"]


def test_two_nodes_with_torchrun_on_loopback_share_one_run_directory(tiny_mnist, tmp_path):
    """Two torchrun agents ("nodes") on loopback, each with its own paths.log_dir: global rank 0 makes the
    one run directory, under its own; the other rank's process writes nothing under its log_dir at all.
    (With the same log_dir for both, a rank without rank_overrides would share rank 0's `${now}` directory
    whenever both started in the same second, which they nearly always do, and the test would pass.)

    The rendezvous store is hosted here, on a port the system picks as it binds (port 0), and the agents
    join it as clients: no port is chosen free, closed, and then taken by someone else."""
    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    out = tmp_path / "out"
    overrides = without_run_dir(fast_overrides(tiny_mnist, out))
    common = [o for o in overrides if not o.startswith("paths.log_dir=")]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{store.port}",
        "--rdzv-conf=is_host=false",
        "-m",
        "src.train",
        "trainer=ddp_sim",
        "trainer.num_nodes=2",
        "trainer.devices=1",
        "trainer.fast_dev_run=true",
        *common,
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(
            [*command, f"paths.log_dir={out / f'node{index}'}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for index in range(2)
    ]
    try:
        logs = [node.communicate(timeout=300)[0].decode(errors="replace") for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, log in zip(nodes, logs, strict=True):
        assert node.returncode == 0, log[-3000:]
    assert "MEMBER: 2/2" in "".join(logs)
    written = sorted(p.name for p in out.iterdir() if p.name.startswith("node"))
    assert len(written) == 1, written  # only global rank 0's node made anything under its log_dir
    run_dir = only_child(out / written[0] / "train" / "runs")
    assert len(list(out.rglob("metrics.json"))) == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "trainer.num_nodes=2" in metrics["overrides"] and "test/acc" in metrics["metrics"]
