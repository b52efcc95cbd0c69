import json
import math

import pytest
import torch

from src.train import train
from tests.conftest import SHARED_DATA, compose_train_config, fast_overrides, run_cli
from tests.tiny_data import snapshot

EPOCHS, STEPS = 3, 6  # tiny MNIST: 256 - 64 validation images = 192, in batches of 32 (fast_overrides)


def test_cli_fast_dev_run_writes_metrics_json(tiny_mnist, tmp_path):
    out = tmp_path / "out"
    before = snapshot(tiny_mnist)
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
    assert snapshot(tiny_mnist) == before  # nothing written into the data directory (names, sizes, mtimes)


def test_short_training_learns_and_checkpoints(tiny_mnist, tmp_path, monkeypatch):
    """Also the one Trainer test with the configured progress bar (src/lightning_ext/progress.py): with
    min_seconds longer than the run, Lightning's bar is updated at the first batch and at every epoch's
    last batch, and at no other."""
    from lightning.pytorch.callbacks import RichProgressBar as LightningBar

    updates, update = [], LightningBar.on_train_batch_end

    def counted(self, trainer, pl_module, outputs, batch, batch_idx):
        updates.append((trainer.current_epoch, batch_idx))
        update(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(LightningBar, "on_train_batch_end", counted)
    with_bar = [o for o in fast_overrides(tiny_mnist, tmp_path) if not o.startswith("callbacks.progress_bar")]
    cfg = compose_train_config(
        [
            *with_bar,
            "callbacks.progress_bar.min_seconds=1000",
            "trainer.max_epochs=3",
            "model.activation_fn=relu",
            "pooling=min",
            "padding=same",
            "optimizer.lr=0.003",
        ],
        tmp_path,
    )
    result = train(cfg)
    assert updates == [(0, 0), (0, STEPS - 1), (1, STEPS - 1), (2, STEPS - 1)]
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


# Each scheduler of conf/scheduler/ on SGD (lr 0.01), 3 epochs of 6 steps: the learning rate the optimizer
# had at the start of every step, worked out from the schedule's definition. Epoch schedules change it
# between epochs, one-cycle after every step (its total_steps filled in from the trainer).
LR = 0.01


def per_epoch(rates: list[float]) -> list[float]:
    return [rate for rate in rates for _ in range(STEPS)]


def one_cycle_rates() -> list[float]:
    """torch's OneCycleLR over the run's 18 steps, max_lr 0.01, a quarter of them warming up."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR, momentum=0.9)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, pct_start=0.25, total_steps=18)
    rates = []
    for _ in range(EPOCHS * STEPS):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


SCHEDULES = {
    "onecycle": ([], one_cycle_rates),
    # T_max = trainer.max_epochs: half a cosine over the run
    "cosine": ([], lambda: per_epoch([LR * (1 + math.cos(math.pi * e / EPOCHS)) / 2 for e in range(EPOCHS)])),
    "step": (["scheduler.step_size=1", "scheduler.gamma=0.5"], lambda: per_epoch([LR, LR / 2, LR / 4])),
    # val/loss never improves by 10 (abs) after the first epoch's value: cut by 10 after the second epoch
    "plateau": (
        ["scheduler.patience=0", "+scheduler.threshold=10", "+scheduler.threshold_mode=abs"],
        lambda: per_epoch([LR, LR, LR / 10]),
    ),
}


@pytest.mark.parametrize("scheduler", SCHEDULES)
def test_each_scheduler_sets_the_learning_rate_it_promises(tiny_mnist, tmp_path, scheduler):
    settings, expected = SCHEDULES[scheduler]
    rates = tmp_path / "rates.json"
    overrides = [o for o in fast_overrides(tiny_mnist, tmp_path) if "progress_bar" not in o]  # callbacks=none
    cfg = compose_train_config(
        [
            *overrides,
            "optimizer=sgd",
            f"optimizer.lr={LR}",
            f"scheduler={scheduler}",
            *settings,
            f"trainer.max_epochs={EPOCHS}",
            "logger=none",
            "callbacks=none",
            "+callbacks.lr_probe._target_=tests.callbacks.LearningRates",
            f"+callbacks.lr_probe.path={rates}",
        ],
        tmp_path,
    )
    assert train(cfg)["epochs"] == EPOCHS
    seen = json.loads(rates.read_text())
    assert [int(step) for step in seen] == list(range(EPOCHS * STEPS))
    assert list(seen.values()) == pytest.approx(expected(), rel=1e-6, abs=1e-12)


def test_val_size_0_validates_on_the_test_split_and_early_stopping_stops(tiny_mnist, tmp_path):
    """data.val_size=0 (the study sheet's CIFAR-10 setting): all 256 training images train (8 steps an
    epoch) and validation is the test split. With lr 0 the weights never change, so val/acc never improves
    after the first epoch: early stopping (patience 1) ends the 10-epoch run after its second epoch."""
    overrides = [o for o in fast_overrides(tiny_mnist, tmp_path) if not o.startswith("data.val_size=")]
    overrides += ["data.val_size=0", "optimizer.lr=0", "trainer.max_epochs=10", "logger=none"]
    overrides += ["callbacks=early_stopping", "callbacks.early_stopping.patience=1"]
    result = train(compose_train_config(overrides, tmp_path))
    assert (result["epochs"], result["global_step"]) == (2, 2 * 8)
    metrics = result["metrics"]
    assert metrics["val/acc"] == metrics["test/acc"]  # one split, the same weights
    assert metrics["val/loss"] == pytest.approx(metrics["test/loss"], rel=1e-6)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_000.ckpt", "last.ckpt"]


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


@pytest.mark.parametrize(
    ("overrides", "checkpoints", "bar"),
    [
        (["callbacks=none"], None, None),
        (["callbacks.progress_bar=null"], "ModelCheckpoint", None),
        (["callbacks=none", "+trainer.enable_progress_bar=true"], None, "RichProgressBar"),
        ([], "ModelCheckpoint", "RichProgressBar"),
    ],
)
def test_the_callbacks_group_is_the_whole_list(tiny_mnist, tmp_path, overrides, checkpoints, bar):
    """Lightning adds a checkpoint callback and a progress bar of its own when the callbacks hold none:
    callbacks=none trains with neither (no checkpoint files; the test uses the final weights) unless
    a trainer flag asks for Lightning's."""
    from src.training.build import build

    base = [o for o in fast_overrides(tiny_mnist, tmp_path) if "progress_bar" not in o]
    cfg = compose_train_config([*base, "logger=none", "trainer.max_epochs=1", *overrides], tmp_path)
    _, _, trainer = build(cfg)
    named = {"checkpoints": trainer.checkpoint_callback, "bar": trainer.progress_bar_callback}
    named = {key: None if c is None else type(c).__name__ for key, c in named.items()}
    assert named == {"checkpoints": checkpoints, "bar": bar}
    if overrides == ["callbacks=none"]:
        result = train(cfg)
        assert result["epochs"] == 1 and result.get("tested_checkpoint") is None
        assert not list(tmp_path.rglob("*.ckpt"))
