import copy
from functools import partial

import pytest
import torch

from src.models import LeNet5
from src.training.module import ImageClassifier


def classifier(**kwargs) -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier(
        LeNet5(activation_fn="relu"), optimizer=partial(torch.optim.Adam, lr=1e-3), **kwargs
    )


def test_channels_last_computes_the_same_logits():
    plain = classifier()
    nhwc = classifier(channels_last=True)
    nhwc.load_state_dict(copy.deepcopy(plain.state_dict()))
    x = torch.randn(8, 1, 32, 32)
    assert nhwc.model.features.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(plain(x), nhwc(x), atol=1e-5)
    assert set(plain.state_dict()) == set(nhwc.state_dict())  # checkpoints interchangeable


def test_multi_crop_input_averages_the_softmax_over_crops():
    module = classifier().eval()
    crops = torch.randn(4, 10, 1, 32, 32)
    log_mean = module(crops)
    expected = torch.stack([module(crops[:, i]).softmax(-1) for i in range(10)], 1).mean(1)
    assert log_mean.shape == (4, 10)
    assert torch.allclose(log_mean.exp(), expected, atol=1e-6)


@pytest.mark.parametrize("keep_logits", [2**20, 100])  # added up at the epoch's end; every 3 steps
def test_epoch_train_loss_and_accuracy_are_the_means_over_all_training_images(keep_logits):
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    module = ImageClassifier(LeNet5(), optimizer=partial(torch.optim.SGD, lr=0.0))  # weights stay put
    module.KEEP_LOGITS = keep_logits
    images, labels = torch.randn(50, 1, 32, 32), torch.randint(0, 10, (50,))
    with torch.no_grad():
        logits = module(images)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(module, DataLoader(TensorDataset(images, labels), batch_size=4))  # 12 x 4 + 2
    metrics = trainer.callback_metrics
    expected_acc = (logits.argmax(1) == labels).float().mean()
    assert torch.allclose(metrics["train/acc"], expected_acc)
    expected_loss = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(metrics["train/loss_epoch"], expected_loss, atol=1e-5)


def test_progress_bar_updates_at_most_every_min_seconds_and_at_the_last_batch(monkeypatch):
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import RichProgressBar as LightningBar

    from src.lightning_ext import progress

    drawn, clock = [], iter(range(100))  # monotonic() ticks 1 s per call
    monkeypatch.setattr(LightningBar, "on_train_batch_end", lambda self, t, m, o, b, i: drawn.append(i))
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    bar = progress.RichProgressBar(min_seconds=2.5)
    trainer = SimpleNamespace(num_training_batches=9)
    for index in range(9):
        bar.on_train_batch_end(trainer, None, None, None, index)
    # batch i ends at t = i s: updated at t = 0, 3, 6 (>= 2.5 s apart) and at the last batch (8)
    assert drawn == [0, 3, 6, 8]


def test_progress_bar_shows_the_step_loss_after_the_standard_items():
    """train/loss is logged without prog_bar=True (Lightning would call .item() on it after every batch:
    tests/test_no_sync.py); the bar reads it from callback_metrics when it updates, and shows it where
    Lightning did: right after v_num, before the metrics logged with prog_bar=True."""
    from types import SimpleNamespace

    from src.lightning_ext import progress

    bar = progress.RichProgressBar()
    trainer = SimpleNamespace(
        loggers=[SimpleNamespace(version=3)],
        progress_bar_metrics={"val/loss": 0.5, "val/acc": 0.75},
        callback_metrics={"train/loss": torch.tensor(0.25), "val/loss": torch.tensor(0.5)},
    )
    shown = bar.get_metrics(trainer, None)
    assert list(shown) == ["v_num", "train/loss", "val/loss", "val/acc"]
    assert shown["train/loss"] == 0.25 and isinstance(shown["train/loss"], float)
    trainer.callback_metrics = {}  # before the first log step: nothing added
    assert bar.get_metrics(trainer, None) == {"v_num": 3, "val/loss": 0.5, "val/acc": 0.75}
