"""Ordinary training steps make no device-to-host synchronisation.

On a GPU the host only queues kernels; anything that reads a tensor's value on the host (`.item()`,
`.cpu()`, `.tolist()`, `.numpy()`, `float(t)`, `int(t)`, `bool(t)` / `if t:`, `t` as an index) waits until
every kernel queued before it has run. One such read per step keeps the GPU idle while the host prepares
the next step, and the queue never fills. src/training/module.py is written to make none on ordinary
steps: each step's loss and logits stay on the device and are added up every KEEP_LOGITS values and at
the epoch's end (`_fold_epoch_steps`), the step loss is logged only every `trainer.log_every_n_steps`,
the non-finite-loss watch is a device-side `torch.where`, and the progress bar
(src/lightning_ext/progress.py) reads the metrics only every `min_seconds`.

Without a GPU, the test counts, during a real `trainer.fit` of LeNet-5 on tiny MNIST built from the
project's config (conf/train.yaml: progress bar, TensorBoard logger, checkpoints and the insight callbacks
all on), every call of those methods on any tensor, and which training step's window it falls in: from
one step's `on_train_batch_start` to the next one's (or to the epoch's end, so the last step of an epoch
also holds validation and the checkpoints). A step is "ordinary" unless something is due on it: a
logger write (log_every_n_steps), a progress-bar update, the epoch's last batch, a checkpoint, or the
divergence check (every 100 steps). Each call is attributed to the code responsible for it: walking out
from the caller past torch's and torchmetrics' frames, the first frame in src/ or in Lightning.

Found (Lightning 2.6.6, torch 2.14, CPU), per kind of step (with `pytest -s` the test prints each call):
- ordinary steps: none, from src/, Lightning or torch (conf/optimizer/adam.yaml's fused Adam keeps its
  step counts on the device: no `.item()` in torch/optim). Before the fix in this test's commit Lightning
  made one on every ordinary step after the epoch's first log step: `LoggerConnector.on_batch_end`
  (logger_connector.py:213, after every batch) -> `_ResultCollection.metrics` (result.py:492) ->
  `convert_tensors_to_scalars` -> `.item()` of every value logged with `prog_bar=True`, and `train/loss`
  was, and stays in the collection until the epoch ends. It is now logged without `prog_bar`, and the bar
  (src/lightning_ext/progress.py) reads it only when it updates.
- log steps: Lightning's `.item()` of the logged values for the logger (apply_func.py:134 `to_item`).
- bar updates: src/lightning_ext/progress.py's `.item()` of train/loss, once one has been logged.
- the divergence check (global step 0, 100, ...): `.tolist()` in `ImageClassifier._raise_if_diverged`.
- an epoch's last step (validation, epoch metrics, checkpoints, TensorBoard images): some hundreds, from
  src/training/insight.py, torchmetrics, Lightning.

On the CPU, `ImageClassifier._watch_loss` looks at the loss at once (`float(loss)`: on the CPU there is
nothing to wait for) and raises on the first non-finite loss. The test sets EAGER_LOSS_CHECK to () so that
the CPU run takes the path every other device takes, the one that must not synchronise.

On a GPU, test_ordinary_steps_raise_under_cuda_sync_debug_mode checks the same with
`torch.cuda.set_sync_debug_mode("error")`, which makes torch raise on any synchronising call.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import lightning
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks import RichProgressBar as LightningBar

from src.config.compose import PROJECT_ROOT
from src.lightning_ext import progress
from src.training.build import build
from src.training.module import ImageClassifier
from tests.conftest import compose_train_config, fast_overrides

SYNCING = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")
SRC = str(PROJECT_ROOT / "src") + "/"
LIGHTNING = str(Path(lightning.__file__).parent) + "/"
LIBRARIES = tuple(str(Path(m.__file__).parent) + "/" for m in (torch, sys.modules["torchmetrics"]))
EVERY, BATCH, EPOCHS, STEPS = 5, 16, 2, 12  # tiny MNIST: 192 training images, 12 steps an epoch
FOLD_EVERY = 3  # steps whose logits ImageClassifier keeps before adding them up (KEEP_LOGITS)


@dataclass
class Step:
    index: int  # global step
    batch_idx: int
    due: set[str] = field(default_factory=set)  # what is due on it: log, refresh, epoch_end, checkpoint
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (method, owner, "file:line fn")
    folds: int = 0  # ImageClassifier._fold_epoch_steps calls


def owner(frame) -> tuple[str, str]:
    """("src" | "lightning" | "torch" | "other", "file:line function" of the caller)."""
    caller = f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(SRC):
            return "src", caller
        if name.startswith(LIGHTNING):
            return "lightning", caller
        if not name.startswith(LIBRARIES):
            return "other", caller
        frame = frame.f_back
    return "torch", caller


class StepWindows(Callback):
    """Opens a step's window at its on_train_batch_start; the next step's, the next epoch's start or the
    end of training closes it (so an epoch's last step holds validation, checkpoints and epoch metrics)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.current: Step | None = None
        self.outside: list[tuple[str, str, str]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.current = Step(trainer.global_step, batch_idx)
        self.steps.append(self.current)
        if (trainer.global_step + 1) % trainer.log_every_n_steps == 0:
            self.current.due.add("log")
        if trainer.global_step % 100 == 0:
            self.current.due.add("divergence_check")  # ImageClassifier._watch_loss, off the CPU
        if batch_idx + 1 == trainer.num_training_batches:
            self.current.due.add("epoch_end")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.current = None

    def on_train_end(self, trainer, pl_module) -> None:
        self.current = None

    def mark(self, what: str) -> None:
        if self.current is not None:
            self.current.due.add(what)

    def record(self, call: tuple[str, str, str]) -> None:
        (self.current.calls if self.current is not None else self.outside).append(call)


def spy_on_syncs(monkeypatch, windows: StepWindows) -> None:
    main = threading.main_thread()
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            if threading.current_thread() is main:
                windows.record((_name, *owner(sys._getframe(1))))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)


def build_run(tiny_mnist: Path, tmp_path: Path, *extra: str):
    """The datamodule, module and Trainer of `python -m src.train` on tiny MNIST: the default callbacks
    (progress bar, checkpoints, insight) and logger (TensorBoard)."""
    with_bar = [o for o in fast_overrides(tiny_mnist, tmp_path) if not o.startswith("callbacks.progress_bar")]
    overrides = [*with_bar, f"data.batch_size={BATCH}", f"trainer.max_epochs={EPOCHS}",
                 f"trainer.log_every_n_steps={EVERY}", *extra]  # fmt: skip
    cfg = compose_train_config(overrides, tmp_path)
    assert cfg.logger.tensorboard and cfg.callbacks.progress_bar and cfg.callbacks.model_checkpoint
    datamodule, module, trainer = build(cfg)
    module.KEEP_LOGITS = FOLD_EVERY * BATCH * 10  # the kept steps are added up on ordinary steps too
    return datamodule, module, trainer


def fit_and_watch(tiny_mnist: Path, tmp_path: Path, monkeypatch) -> StepWindows:
    datamodule, module, trainer = build_run(tiny_mnist, tmp_path)
    windows = StepWindows()
    trainer.callbacks.insert(0, windows)  # the window opens before any other callback's batch start
    # The bar's clock advances 0.1 s a step: with min_seconds=0.25 it updates every third step, however
    # fast this machine is (its own module's `time` only; Rich's redraw thread keeps the real one).
    clock = iter(range(10**6))
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: next(clock) / 10))
    bar_update, save, fold = (
        LightningBar.on_train_batch_end,
        trainer.save_checkpoint,
        module._fold_epoch_steps,
    )

    def refresh(self, *args, **kwargs):
        windows.mark("refresh")
        return bar_update(self, *args, **kwargs)

    def checkpoint(*args, **kwargs):
        windows.mark("checkpoint")
        return save(*args, **kwargs)

    def folding():
        if windows.current is not None:
            windows.current.folds += 1
        return fold()

    monkeypatch.setattr(LightningBar, "on_train_batch_end", refresh)
    monkeypatch.setattr(trainer, "save_checkpoint", checkpoint)
    monkeypatch.setattr(module, "_fold_epoch_steps", folding)
    # The loss watch of every device but the CPU: on the device, no host read (see the module docstring).
    monkeypatch.setattr(ImageClassifier, "EAGER_LOSS_CHECK", ())
    with monkeypatch.context() as spying:
        spy_on_syncs(spying, windows)
        trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == EPOCHS * STEPS
    return windows


def describe(steps: list[Step]) -> str:
    lines = []
    for step in steps:
        counts = Counter((method, who, where) for method, who, where in step.calls)
        folded = " (folds the kept steps)" if step.folds else ""
        lines.append(
            f"step {step.index} due={sorted(step.due) or 'nothing'}{folded}: {len(step.calls)} calls"
        )
        lines += [f"    {n} x {method} [{who}] {where}" for (method, who, where), n in counts.most_common()]
    return "\n".join(lines)


def test_ordinary_training_steps_make_no_host_sync(tiny_mnist, tmp_path, monkeypatch):
    windows = fit_and_watch(tiny_mnist, tmp_path, monkeypatch)
    steps = windows.steps
    ordinary = [s for s in steps if not s.due]
    report = describe(steps)
    print(report)  # pytest -s: every call, step by step
    assert len(ordinary) >= 8, report  # the test needs ordinary steps to look at
    assert any(s.folds for s in ordinary), report  # _fold_epoch_steps ran on an ordinary step
    assert {"log", "refresh", "epoch_end", "checkpoint"} <= set().union(*(s.due for s in steps)), report
    # Nothing at all is read back on an ordinary step: not by src/, not by Lightning, not by torch.
    assert [(s.index, call) for s in ordinary for call in s.calls] == [], report
    # The steps where something is due do read values back: the bookkeeping is there, and the spy works.
    assert any(c[1] == "lightning" for s in steps if "log" in s.due for c in s.calls), report
    assert any(c[1] == "src" for s in steps if "epoch_end" in s.due for c in s.calls), report


class SyncDebugOnOrdinarySteps(Callback):
    """torch.cuda.set_sync_debug_mode("error") from an ordinary step's on_train_batch_start to the next
    batch's transfer (so Lightning's bookkeeping after on_train_batch_end is inside), off on any step where
    something is due: a log step, the divergence check, the bar's update (with min_seconds=1000: the first
    batch and each epoch's last), the epoch's last batch (validation, checkpoints)."""

    def __init__(self) -> None:
        self.checked = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step
        due = (step + 1) % trainer.log_every_n_steps == 0 or step % 100 == 0 or batch_idx == 0
        if not due and batch_idx + 1 < trainer.num_training_batches:
            torch.cuda.set_sync_debug_mode("error")
            self.checked += 1

    @staticmethod
    def off(*args, **kwargs) -> None:
        torch.cuda.set_sync_debug_mode("default")

    on_validation_start = on_train_epoch_end = on_train_end = on_exception = off


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_ordinary_steps_raise_under_cuda_sync_debug_mode(tiny_mnist, tmp_path, monkeypatch):
    """On a GPU (trainer=gpu: bf16-mixed, cudnn.benchmark), torch raises on any synchronising call made
    in an ordinary step's window; a few such steps run."""
    datamodule, module, trainer = build_run(tiny_mnist, tmp_path, "trainer=gpu",
                                            "callbacks.progress_bar.min_seconds=1000")  # fmt: skip
    guard = SyncDebugOnOrdinarySteps()
    trainer.callbacks.insert(0, guard)
    transfer = module.on_before_batch_transfer

    def before_transfer(batch, dataloader_idx):
        guard.off()  # the next batch's host-to-device copy belongs to no step's window
        return transfer(batch, dataloader_idx)

    monkeypatch.setattr(module, "on_before_batch_transfer", before_transfer)
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.global_step == EPOCHS * STEPS
    assert guard.checked >= 8
