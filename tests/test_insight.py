"""What a run writes into TensorBoard (src/training/insight.py), read back from the event files and from a
real TensorBoard server."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from src.train import train
from tests.conftest import compose_train_config, fast_overrides, make_tiny_mnist

EPOCHS = 2
FEATURE_LAYERS = ["00_input", "01_conv1", "02_act1", "03_pool1", "04_conv2", "05_act2", "06_pool2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A short LeNet-5 run on the tiny MNIST (min pooling, same padding), all insight callbacks on. With
    flip_eval (each evaluated image beside its mirror image, as the CIFAR-10 recipe does), validation and
    test batches are (N, 2, C, H, W): the callbacks' branches for several views of an image run too."""
    root = tmp_path_factory.mktemp("insight")
    data = make_tiny_mnist(root / "data")
    overrides = [*fast_overrides(data, root), f"trainer.max_epochs={EPOCHS}", "trainer.log_every_n_steps=2"]
    overrides += ["pooling=min", "padding=same", "+data.flip_eval=true"]
    train(compose_train_config(overrides, root / "run"))
    return root / "run"


@pytest.fixture(scope="module")
def events(run_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_scalars_include_losses_lr_throughput_and_test(events, run_dir):
    scalars = set(events.Tags()["scalars"])
    expected = {"train/loss", "train/loss_epoch", "train/acc", "val/loss", "val/acc", "val/acc_best"}
    assert expected | {"lr-Adam", "train/images_per_second", "test/acc", "test/loss"} <= scalars
    throughput = events.Scalars("train/images_per_second")
    assert len(throughput) == EPOCHS and all(e.value > 0 for e in throughput)
    assert len(events.Scalars("val/acc")) == EPOCHS
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics["train/images_per_second"] == pytest.approx(throughput[-1].value, rel=1e-6)


def test_images_inputs_filters_feature_maps_confusion_mistakes(events):
    images = set(events.Tags()["images"])
    per_epoch = {"inputs/train", "filters/features.conv1", "confusion_matrix/val", "mistakes/val"}
    per_epoch |= {f"feature_maps/{name}" for name in FEATURE_LAYERS}
    assert per_epoch | {"confusion_matrix/test", "mistakes/test"} <= images
    for tag in per_epoch:
        assert len(events.Images(tag)) == EPOCHS, tag  # every_n_epochs=1
    # same padding keeps 32x32 through conv1; pooling halves it: the pool1 image is about half as wide
    conv1, pool1 = events.Images("feature_maps/01_conv1")[-1], events.Images("feature_maps/03_pool1")[-1]
    assert conv1.width > pool1.width
    assert events.Images("confusion_matrix/test")[0].width > 300  # a rendered matplotlib figure
    shapes = events.Tensors("feature_maps/shapes/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "03_pool1 (MinPool2d): (6, 16, 16)" in shapes and "01_conv1 (Conv2d): (6, 32, 32)" in shapes


def test_hparams_hold_the_choices_and_final_metrics(events, run_dir):
    content = events.PluginTagToContent("hparams")
    assert {"_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(content)
    assert "_hparams_/experiment" not in content  # TensorBoard builds it from all runs, differing first
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = {k: v.string_value or v.number_value for k, v in start.session_start_info.hparams.items()}
    assert hparams["pooling"] == "min" and hparams["padding"] == "same" and hparams["model"] == "lenet5"
    assert (
        hparams["data"] == "mnist" and hparams["optimizer.lr"] > 0 and hparams["trainer.max_epochs"] == EPOCHS
    )
    test_acc = json.loads((run_dir / "metrics.json").read_text())["metrics"]["test/acc"]
    assert events.Scalars("hparams/test_acc")[-1].value == pytest.approx(test_acc)
    assert {"hparams/val_acc_best", "hparams/train_images_per_second"} <= set(events.Tags()["scalars"])


def test_graph_is_logged(events):
    assert events.Tags()["graph"]
    names = {node.name for node in events.Graph().node}
    assert any("conv1" in name for name in names)


def test_csv_logger_gets_the_metrics_and_nothing_is_drawn_without_a_logger_for_images(tmp_path, monkeypatch):
    """docs/tensorboard.md: without a logger that takes images (`logger=csv` here; `logger=none`,
    fast_dev_run's dummy) the insight callbacks draw nothing, not even into memory; the per-layer test
    statistics still reach metrics.json. And `logger=csv` writes csv/metrics.csv: every epoch's scalars
    and the test metrics."""
    forbid_drawing(monkeypatch)
    data = make_tiny_mnist(tmp_path / "data", train=128, test=32)
    overrides = [*fast_overrides(data, tmp_path), "logger=csv", f"trainer.max_epochs={EPOCHS}"]
    cfg = compose_train_config(overrides, tmp_path / "run")
    metrics = train(cfg)["metrics"]
    assert {"test/act1_zeros", "test/pool2_mean"} <= set(metrics)  # FeatureMapStatistics: logger or not
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "config.yaml", "csv", "metrics.json"]

    with (run_dir / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for name in ("val/acc", "val/loss", "val/acc_best", "train/acc", "train/loss_epoch", "lr-Adam"):
        assert len(csv_column(rows, name)) == EPOCHS, name
    for name in ("val/acc", "val/acc_best", "train/images_per_second", "test/acc", "test/loss"):
        assert csv_column(rows, name)[-1] == pytest.approx(metrics[name], rel=1e-6), name
    assert csv_column(rows, "lr-Adam") == [cfg.optimizer.lr] * EPOCHS


def csv_column(rows: list[dict[str, str]], name: str) -> list[float]:
    """The values of one metric in CSVLogger's metrics.csv (a row per step that logged something)."""
    return [float(row[name]) for row in rows if row.get(name)]


def test_fast_dev_run_draws_nothing_and_writes_no_logger_files(tmp_path, monkeypatch):
    """fast_dev_run swaps the loggers (TensorBoard by default) for Lightning's dummy: no image is drawn,
    no event file written, no checkpoint saved; the run still tests its one batch."""
    forbid_drawing(monkeypatch)
    data = make_tiny_mnist(tmp_path / "data", train=128, test=32)
    cfg = compose_train_config(
        [*fast_overrides(data, tmp_path), "trainer.fast_dev_run=true"], tmp_path / "run"
    )
    metrics = train(cfg)["metrics"]
    assert math.isfinite(metrics["test/loss"]) and "test/act1_zeros" in metrics
    written = {p.name for p in (tmp_path / "run").iterdir()}
    assert written <= {"checkpoints", "config.yaml", "metrics.json"}, written  # no tensorboard/, no csv/
    assert not list((tmp_path / "run").rglob("*.ckpt"))


def forbid_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every image or text the insight callbacks would make for a logger fail the run."""
    from src.training import insight

    def no_drawing(*args, **kwargs):
        raise AssertionError("an image or text was made for TensorBoard without a logger that takes it")

    for name in ("make_grid", "figure_to_image", "log_text"):
        monkeypatch.setattr(insight, name, no_drawing)


def _serve(logdir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """A TensorBoard server on a port the system picks when it binds (--port 0: no port is chosen first
    and taken by someone else before the server binds it), and its address as the server reports it."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]
        + ["--port", "0", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
        if found:
            return server, f"http://127.0.0.1:{found.group(1)}"
        time.sleep(0.2)
    server.kill()
    raise AssertionError(f"TensorBoard did not say where it listens: {log.read_text()[-2000:]}")


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_tensorboard_server_serves_the_run(run_dir, tmp_path):
    server, address = _serve(run_dir, tmp_path / "tensorboard.log")
    base = f"{address}/data/plugin"
    try:
        deadline, scalars = time.monotonic() + 90, {}
        while time.monotonic() < deadline:
            try:
                scalars = _get_json(f"{base}/scalars/tags")
                if "val/acc" in scalars.get("tensorboard", {}):
                    break
            except OSError:
                pass  # not listening yet
            time.sleep(0.5)
        assert {"val/acc", "train/images_per_second", "test/acc"} <= set(scalars["tensorboard"])
        images = _get_json(f"{base}/images/tags")["tensorboard"]
        assert {"feature_maps/03_pool1", "confusion_matrix/test", "mistakes/val", "inputs/train"} <= set(
            images
        )
        assert _get_json(f"{base}/graphs/info")["tensorboard"]["run_graph"]
        request = urllib.request.Request(
            f"{base}/hparams/session_groups",
            data=json.dumps(
                {"allowedStatuses": ["STATUS_SUCCESS"], "colParams": [], "startIndex": 0, "sliceSize": 10}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            groups = json.loads(response.read())["sessionGroups"]
        assert groups[0]["hparams"]["pooling"] == "min" and groups[0]["hparams"]["padding"] == "same"
        final = {m["name"]["tag"]: m["value"] for m in groups[0]["metricValues"]}
        test_acc = json.loads((run_dir / "metrics.json").read_text())["metrics"]["test/acc"]
        assert final["hparams/test_acc"] == pytest.approx(test_acc)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_alexnet_feature_maps_and_filters(tmp_path):
    """The same callbacks on AlexNet: every layer of `features` (conv, ReLU, LRN, pool) gets a map."""
    data = make_tiny_mnist(tmp_path / "data", train=128, test=32)
    overrides = [
        *fast_overrides(data, tmp_path),
        "model=alexnet",
        "model.input_size=67",
        "trainer.max_epochs=1",
    ]
    overrides += ["+trainer.limit_train_batches=2", "data.eval_batch_size=16", "test=false"]
    train(compose_train_config(overrides, tmp_path / "run"))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    images = set(events.Tags()["images"])
    assert {
        "feature_maps/01_conv1",
        "feature_maps/03_lrn1",
        "feature_maps/04_pool1",
        "filters/features.conv1",
    } <= images
    assert max(tag for tag in images if tag.startswith("feature_maps/")) == "feature_maps/15_pool5"


def test_the_insight_callbacks_are_one_callback_for_lightning():
    """src.train groups them (src/training/insight.py: group_insight): Lightning calls each hook once a step,
    and only the callbacks that implement it are called, in their order."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    from src.training.insight import ConvFilters, ImagesPerSecond, InputGrid, Insight, group_insight

    calls = []

    class Probe(InputGrid):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
            calls.append(("probe", batch_idx))

    class SecondProbe(ImagesPerSecond):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
            calls.append(("second", batch_idx))

    Probe.__module__ = SecondProbe.__module__ = "src.training.insight"  # as if defined there
    monitor = LearningRateMonitor()
    callbacks = [Probe(), ConvFilters(), SecondProbe(), monitor]
    grouped = group_insight(callbacks)
    assert len(grouped) == 2 and isinstance(grouped[0], Insight) and grouped[1] is monitor
    assert grouped[0].parts == callbacks[:3]
    grouped[0].on_train_batch_start(None, None, None, 7)
    assert calls == [("probe", 7), ("second", 7)]
    assert [m.__self__ for m in grouped[0]._hooks["on_train_epoch_end"]] == callbacks[:3]
    assert grouped[0]._hooks["on_before_backward"] == []  # nobody implements it: nothing is called
    assert group_insight([monitor]) == [monitor]


@pytest.mark.parametrize("chunk_values", [2**18, 2])  # whole batches; an image at a time
def test_map_statistics_count_exact_zeros_and_the_mean_over_batches(chunk_values):
    """FeatureMapStatistics' hook: zeros (also -0.0; negatives and tiny values are not zero) and the mean,
    added up over several batches (and over the chunks of a batch) exactly as a count over the whole set."""
    from src.training.insight import FeatureMapStatistics

    stats = FeatureMapStatistics()
    stats.CHUNK_VALUES = chunk_values
    count = stats._hook("act1")
    batches = [torch.tensor([[0.0, -0.0, 1e-30, -2.0]]), torch.tensor([[3.0, 0.0], [0.0, 0.5], [0.0, 1.0]])]
    for batch in batches:
        count(None, (batch,), batch)
    zeros, total, seen = stats.sums["act1"]
    assert seen == 10 and float(zeros) == 5.0
    assert float(total) == pytest.approx((1e-30 - 2.0 + 3.0 + 0.5 + 1.0), abs=1e-6)
