"""scripts/gpu_check.sh in its tiny form (every step on the CPU, stand-in data), and the pieces of the GPU
check that can be checked without a GPU: the GPU's busy time from profiler events, batches served from
a device copy of a split, the synthetic datamodule, the bare loop's precision."""

from __future__ import annotations

import json
import os
import re
import subprocess
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from bench.common import CPU, autocast, device_of, gpu_busy_seconds
from src.config.compose import PROJECT_ROOT, compose_config
from src.utils.errors import UserError
from tests.tiny_data import make_tiny_mnist

EXPECTED_FILES = {"env.txt", "log.txt", "gpu_check.json", "gpu_check.md", "profile.txt"}
EXPECTED_FILES |= {"lenet5_gpu.json", "lenet5_ddp.json"}


@pytest.mark.slow  # ~2 min on 2 busy cores: three interpreters and AlexNet on the CPU
def test_tiny_gpu_check_runs_every_step_into_one_folder(tmp_path):
    results = tmp_path / "results"
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "DATA_DIR": str(tmp_path / "no_data"),  # tiny: stand-ins whatever DATA_DIR holds
        "CACHE_DIR": str(tmp_path / "cache"),
        "BENCH_OUTPUT_DIR": str(tmp_path / "outputs"),
    }
    env.pop("OUT", None)
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--tiny", str(results)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    # one folder, at most the 8 files (plain names) a device call brings back
    names = {p.name for p in results.iterdir()}
    assert names == EXPECTED_FILES and all(p.is_file() for p in results.iterdir())
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in names)

    report = json.loads((results / "gpu_check.json").read_text())
    steps = report["steps"]
    assert report["mode"] == "tiny" and report["machine"]["gpu"] is None
    assert set(steps) == {"data", "lenet5_gpu", "lenet5_ddp", "alexnet_b4", "alexnet_b4_host",
                          "alexnet_profile", "flowers17_epochs", "alexnet_b2"}  # fmt: skip
    assert all("result" in step for step in steps.values()), steps
    ok = {name: step["result"] for name, step in steps.items()}
    assert "stand-in" in ok["data"]["mnist_kind"] and "stand-in" in ok["data"]["flowers_kind"]
    for name in ("lenet5_gpu", "lenet5_ddp"):
        assert ok[name]["epochs"] == 1 and 0 <= ok[name]["test_acc"] <= 1
        metrics = json.loads((results / f"{name}.json").read_text())  # the run's own metrics.json
        assert metrics["metrics"]["test/acc"] == ok[name]["test_acc"]
    assert "trainer=default" in ok["lenet5_gpu"]["command"]
    assert ok["lenet5_ddp"]["distributed_backend"] == "gloo"  # the DDP path (NCCL on a GPU)
    for name in ("alexnet_b4", "alexnet_b4_host", "alexnet_b2"):
        speed = ok[name]
        assert (
            speed["train_images_per_second"]["lightning"] > 0 and speed["train_images_per_second"]["bare"] > 0
        )
        assert speed["batches_from"] == "host memory"  # no GPU here
    assert (
        ok["alexnet_b2"]["batch_size"] == 2
        and "data.keep_on_device=false" in ok["alexnet_b4_host"]["overrides"]
    )
    profile = ok["alexnet_profile"]
    for window in (profile["lightning_window"], profile["bare_window"]):
        assert (
            window["steps"] == 2 and window["wall_ms_per_step"] > 0 and window["gpu_busy_ms_per_step"] is None
        )
    actions = {row["action"] for row in profile["hooks"]}
    assert "[Strategy]SingleDeviceStrategy.backward" in actions
    assert not any("WindowCallback" in action for action in actions)  # the bench's own probes left out
    flowers = ok["flowers17_epochs"]
    assert flowers["epochs"] == 2 and len(flowers["epoch_seconds"]) == 2 and flowers["train_images"] == 128
    assert any(row["action"] == "run_training_epoch" for row in flowers["profile"])

    markdown = (results / "gpu_check.md").read_text()
    assert markdown.startswith("# GPU check: no GPU (--tiny, on the CPU)")
    tables = (
        "| command | epochs | test acc |",
        "| batch | batches from | src.train | bare loop |",
        "| loop | images/s | wall ms/step |",
        "| action | calls | median ms | ms per epoch |",
    )
    assert all(table in markdown for table in tables)
    assert "== torch.profiler, src.train, batch 4" in (results / "profile.txt").read_text()
    assert "gpu check: exit status 0" in done.stdout


def test_gpu_busy_time_counts_overlapping_work_once():
    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU

    def event(device, start, end, name="kernel", annotation=False):
        span = SimpleNamespace(start=start, end=end)
        return SimpleNamespace(device_type=device, time_range=span, name=name, is_user_annotation=annotation)

    events = [
        event(cuda, 0, 10),
        event(cuda, 5, 15),
        event(cpu, 0, 100),
        event(cuda, 20, 30),
        event(cuda, 22, 25),
        # ranges that span kernels and the idle time between them are not work (Lightning's optimizer
        # step shows as one on the GPU's timeline)
        event(cuda, 0, 100, name="Optimizer.step#SGD.step"),
        event(cuda, 40, 90, name="my block", annotation=True),
    ]
    assert gpu_busy_seconds(events) == pytest.approx(25e-6)  # [0, 15] and [20, 30], in microseconds
    assert gpu_busy_seconds([]) == 0


def test_batches_are_served_from_a_device_copy_made_once(tmp_path):
    cfg = compose_config([f"data.data_dir={make_tiny_mnist(tmp_path / 'data')}", "data.download=false",
                          f"paths.cache_dir={tmp_path / 'cache'}", "data.val_size=64"])  # fmt: skip
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert datamodule.keep_on_device and datamodule.serving_device() == torch.device("cpu")
    ready = datamodule.served_split("train")  # MNIST is made model-ready once (src/data/base.py)
    assert ready.model_ready and datamodule.served_split("train") is ready  # the host: no copy
    datamodule.batch_device = torch.device("cuda")
    datamodule.keep_on_device = False
    assert datamodule.serving_device() == torch.device("cpu")  # data.keep_on_device=false: the host

    # Another device (the meta device stands in for a GPU here): one copy per split, reused
    datamodule.serving_device = lambda: torch.device("meta")
    copy = datamodule.served_split("train")
    assert copy.images.device.type == "meta" and datamodule.served_split("train") is copy
    assert copy.model_ready  # the model-ready split is what is copied
    images, labels = copy[[0, 5, 7]]
    assert images.device.type == labels.device.type == "meta" and images.shape == (3, 1, 32, 32)
    host = datamodule.splits["train"]
    assert host.images.device.type == "cpu" and torch.equal(host[[0, 5, 7]][1], host.labels[[0, 5, 7]])


def test_synthetic_data_has_flowers17_shapes_and_pipeline(tmp_path):
    cfg = compose_config(["experiment=alexnet_bn_flowers17", "data=synthetic", "data.train_size=12",
                          "data.eval_size=4", "data.batch_size=4"])  # fmt: skip
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    again = instantiate(cfg.data)
    again.setup("fit")
    assert {name: len(split) for name, split in datamodule.splits.items()} == {
        "train": 12,
        "val": 4,
        "test": 4,
    }
    assert datamodule.splits["train"].images.shape == (12, 3, 256, 256)
    assert torch.equal(again.splits["train"].images, datamodule.splits["train"].images)  # seeded (and reused)
    images, labels = next(iter(datamodule.train_dataloader()))
    assert datamodule.to_model_input(images, train=True).shape == (4, 3, 227, 227)  # AlexNet's crops
    assert labels.max() < 17


def test_bare_loop_uses_lightnings_precision():
    assert isinstance(autocast(torch.device("cpu"), "32-true"), type(autocast(CPU, "32")))
    assert autocast(torch.device("cuda"), "bf16-mixed").fast_dtype == torch.bfloat16
    with pytest.raises(UserError, match="32-true or bf16-mixed"):
        autocast(torch.device("cuda"), "16-mixed")
    assert device_of(compose_config(["trainer=gpu"])) == torch.device("cuda")
    assert device_of(compose_config(["trainer=ddp_sim"])) == torch.device("cpu")
