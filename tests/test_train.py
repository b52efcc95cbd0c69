import json

import pytest
import torch

from src.train import train
from tests.conftest import SHARED_DATA, compose_train_config, fast_overrides, run_cli


def test_cli_fast_dev_run_writes_metrics_json(tiny_mnist, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "src.train",
        "model=lenet5",
        "data=mnist",
        "trainer.fast_dev_run=true",
        *fast_overrides(tiny_mnist, out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = out / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["metrics"]["test/acc"] <= 1.0
    assert metrics["params"] == 61_706
    assert (run_dir / "config.yaml").exists() and (run_dir / ".hydra" / "config.yaml").exists()
    assert "test/acc" in result.stdout
    assert not list(tiny_mnist.rglob("*cache*"))  # nothing written into the data directory


def test_short_training_learns_and_checkpoints(tiny_mnist, tmp_path):
    cfg = compose_train_config(
        [
            *fast_overrides(tiny_mnist, tmp_path),
            "trainer.max_epochs=3",
            "model.activation_fn=relu",
            "pooling=min",
            "padding=same",
            "optimizer.lr=0.003",
        ],
        tmp_path,
    )
    result = train(cfg)
    assert result["epochs"] == 3
    assert result["metrics"]["test/acc"] > 0.5  # the toy digits are easy; chance is 0.1
    assert result["metrics"]["val/acc_best"] >= result["metrics"]["val/acc"] - 1e-6
    checkpoints = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(name.startswith("epoch_") for name in checkpoints)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)  # no pickled code
    assert "state_dict" in saved
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["epochs"] == 3
    assert written["tested_checkpoint"].endswith(".ckpt") and "epoch_" in written["tested_checkpoint"]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_test_checkpoint_last_tests_the_final_epoch(tiny_mnist, tmp_path):
    overrides = [*fast_overrides(tiny_mnist, tmp_path), "trainer.max_epochs=3", "test_checkpoint=last"]
    result = train(compose_train_config(overrides, tmp_path))
    tested = result["tested_checkpoint"]
    assert tested.endswith("last.ckpt")
    assert torch.load(tested, weights_only=True)["epoch"] == 2  # the third (last) epoch, counted from 0


def test_sgd_and_schedulers_compose_and_run(tiny_mnist, tmp_path):
    for scheduler in ("onecycle", "plateau", "cosine", "step"):
        overrides = [o for o in fast_overrides(tiny_mnist, tmp_path / scheduler) if "progress_bar" not in o]
        cfg = compose_train_config(
            [
                *overrides,
                "optimizer=sgd",
                f"scheduler={scheduler}",
                "trainer.max_epochs=1",
                "logger=none",
                "callbacks=none",
            ],
            tmp_path / scheduler,
        )
        assert train(cfg)["epochs"] == 1, scheduler


@pytest.mark.slow
def test_one_epoch_on_real_mnist_reaches_97_percent(tmp_path):
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real MNIST not found in {SHARED_DATA / 'MNIST' / 'raw'} (set DATA_DIR)")
    cfg = compose_train_config(
        [
            f"data.data_dir={SHARED_DATA}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "trainer.max_epochs=1",
            "data.download=false",
            "callbacks.progress_bar=null",
        ],
        tmp_path,
    )
    result = train(cfg)
    assert result["metrics"]["test/acc"] >= 0.97, result["metrics"]
