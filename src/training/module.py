"""One LightningModule for image classification, whatever the network.

The network arrives ready-made (Hydra instantiates `model` first), and so do the optimizer and the
learning-rate scheduler, as partial functions still waiting for the parameters / the optimizer.
The names it logs are listed in src/training/metric_names.py (torch-free, for the config check).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from src.lightning_ext.checkpoints import checkpoint_paths
from src.training.reliability import TrainingDiverged, rng_state, set_rng_state

if TYPE_CHECKING:
    from src.models.layers import Network


def view_averaged(network: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """`network`'s logits for (N, C, H, W); for (N, views, C, H, W) (a flip-averaged or ten-crop test) the
    log of the softmax averaged over each image's views, which cross-entropy and argmax treat like logits."""
    if x.ndim == 5:
        batch, views = x.shape[:2]
        probabilities = network(x.flatten(0, 1)).softmax(dim=-1).view(batch, views, -1).mean(dim=1)
        return probabilities.clamp_min(1e-12).log()
    return network(x)


class ImageClassifier(L.LightningModule):
    KEEP_LOGITS = 2**20  # training logits kept (4 MB in float32) before they are added to the epoch's sums
    EAGER_LOSS_CHECK = (
        "cpu",
    )  # device types whose step loss _watch_loss reads at once (nothing to wait for)

    def __init__(
        self,
        model: Network,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/loss",
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        # Plain values only: the network's weights are in the state_dict, and the network, optimizer and
        # scheduler configs are in the run's config.yaml (partials in a checkpoint would need pickle).
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"], logger=False)
        # channels_last (NHWC) memory: on this project's 2-core CPU it nearly doubles LeNet-5's training
        # speed (max pooling is twice as fast on NHWC); on GPUs it lets cuDNN use tensor-core kernels.
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        if compile:  # torch.compile the network's forward in place: the checkpoints keep the plain key names
            self.model.compile()
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        num_classes = model.num_classes
        # validate_args=False: no torch.unique() over every batch's labels to check their range.
        # (Training accuracy is counted in training_step instead, with two tensor ops a step.)
        accuracy = partial(MulticlassAccuracy, num_classes, average="micro", validate_args=False)
        self.val_acc, self.test_acc = accuracy(), accuracy()
        self.val_acc_best = MaxMetric()
        size = model.input_size
        # Lets Lightning print per-layer shapes and TensorBoard draw the graph.
        self.example_input_array = torch.zeros(1, model.in_channels, size, size)
        self._resumed: dict[str, Any] = {}  # from a checkpoint, applied in on_train_start
        self._divergence: Tensor | None = None  # (step, loss) of the first non-finite loss, or (-1, 0)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for (N, C, H, W); for (N, views, C, H, W) the views averaged (`view_averaged`)."""
        return view_averaged(self._run, x)

    def _run(self, x: Tensor) -> Tensor:
        if self.hparams["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def _shared_step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self(images)
        return self.criterion(logits, labels), logits

    def _eval_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        loss, logits = self._shared_step(batch)
        metric, size = getattr(self, f"{stage}_acc"), len(batch[1])
        metric.update(logits.argmax(dim=1), batch[1])
        # Evaluation has few, large batches: log through Lightning, which averages over the epoch
        # (weighted by batch size) and across DDP ranks.
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True)
        # The logits are for callbacks (src/training/insight.py: confusion matrix, mistakes); Lightning hands
        # them to on_{validation,test}_batch_end and keeps nothing.
        return logits

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, logits = self._shared_step(batch)
        self._watch_loss(loss)
        # Each self.log() costs Lightning ~0.5 ms of bookkeeping, ~6 % of a LeNet-5 step on this CPU. So
        # the step loss is logged only on the steps the logger writes anyway (trainer.log_every_n_steps),
        # and the epoch's loss and accuracy are computed at the end of the epoch from what each step
        # keeps here, on the device (no host sync): its loss and its logits, whose argmax is then one
        # operation for many steps instead of one a step.
        self._epoch_steps.append((loss.detach(), logits.detach(), batch[1]))
        self._kept_logits += logits.numel()
        if self._kept_logits >= self.KEEP_LOGITS:
            self._fold_epoch_steps()
        # both set on the Trainer by Lightning's connectors, not declared on the class
        every = max(self.trainer.log_every_n_steps, 1)  # type: ignore[attr-defined]
        if (self.global_step + 1) % every == 0 or self.trainer.fast_dev_run:  # type: ignore[attr-defined]
            # Not prog_bar=True: Lightning would then call .item() on it after every later step of the
            # epoch (a host sync on a GPU); src/lightning_ext/progress.py shows it when the bar updates.
            self.log("train/loss", loss, on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_start(self) -> None:
        self._epoch_steps: list[tuple[Tensor, Tensor, Tensor]] = []  # (loss, logits, labels)
        self._kept_logits = 0  # values in the kept logits
        self._loss_sum, self._correct = (torch.zeros((), device=self.device) for _ in range(2))
        self._seen = 0

    def _fold_epoch_steps(self) -> None:
        """Add the kept steps to the epoch's loss sum, correct count and sample count."""
        if not self._epoch_steps:
            return
        losses, logits, labels = zip(*self._epoch_steps, strict=True)
        counts = [len(y) for y in labels]  # shapes: no device sync
        sizes = torch.tensor(counts, dtype=torch.float32).to(self._loss_sum.device, non_blocking=True)
        self._loss_sum = self._loss_sum + (torch.stack(losses).float() * sizes).sum()
        self._correct = self._correct + (torch.cat(logits).argmax(dim=1) == torch.cat(labels)).sum()
        self._seen += sum(counts)
        self._epoch_steps, self._kept_logits = [], 0

    def on_train_epoch_end(self) -> None:
        self._raise_if_diverged()
        self._fold_epoch_steps()
        if self._seen:  # each rank's own samples in DDP: a collective here could cross the reduce
            # that the progress bar triggers on rank 0 only, and hang
            self.log("train/loss_epoch", self._loss_sum / self._seen, prog_bar=True)
            self.log("train/acc", self._correct / self._seen, prog_bar=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Class probabilities (N, classes) of a batch of model inputs (src.predict)."""
        return self(batch[0]).softmax(dim=-1)

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # the sanity-check validation must not count as the best
        if self._resumed:  # here, not on load: the sanity check before this draws from the RNG
            if "val_acc_best" in self._resumed:
                self.val_acc_best.max_value = self._resumed["val_acc_best"].to(self.device)
            if "rng_states" in self._resumed:
                set_rng_state(self._resumed["rng_states"])
            self._resumed = {}

    # ------------------------------------------------------------------ exact resume, divergence
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning saves weights, optimizer, scheduler and loop state; with these a resumed run
        # continues exactly: the random generators (augmentation, dropout) and the best val/acc so far.
        checkpoint["rng_states"] = rng_state()
        checkpoint["val_acc_best"] = self.val_acc_best.max_value.detach().cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resumed = {key: checkpoint[key] for key in ("rng_states", "val_acc_best") if key in checkpoint}

    def _watch_loss(self, loss: Tensor) -> None:
        """Record the first step whose loss is not finite, on the device (no host sync); stop at once on
        the CPU (EAGER_LOSS_CHECK), where looking costs nothing, elsewhere every 100 steps and before any
        checkpoint."""
        if loss.device.type in self.EAGER_LOSS_CHECK:
            value = float(loss.detach())
            if not math.isfinite(value):
                self._divergence = torch.tensor([float(self.global_step), value])
                self._raise_if_diverged()
            return
        loss = loss.detach().float()
        if self._divergence is None or self._divergence.device != loss.device:
            self._divergence = torch.tensor([-1.0, 0.0], device=loss.device)
        first = ~torch.isfinite(loss) & (self._divergence[0] < 0)
        here = torch.stack([torch.full_like(loss, float(self.global_step)), loss])
        self._divergence = torch.where(first, here, self._divergence)
        if self.global_step % 100 == 0:
            self._raise_if_diverged()

    def _raise_if_diverged(self) -> None:
        if self._divergence is None:
            return
        step, value = self._divergence.tolist()
        if step < 0:
            return
        best, last = checkpoint_paths(self.trainer)
        last = last or best
        kept = f"the last good checkpoint is kept: {last}" if last else "no checkpoint had been written yet"
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else float("nan")
        raise TrainingDiverged(
            f"training diverged: the loss is {value} at step {int(step)} (epoch {self.current_epoch}); "
            f"{kept}; lower optimizer.lr (the learning rate was {lr:g}) or clip the gradients "
            "(trainer.gradient_clip_val=1.0)"
        )

    def on_validation_start(self) -> None:
        if not self.trainer.sanity_checking:
            self._raise_if_diverged()  # before validation ends and a checkpoint saves bad weights

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        extra = {}
        if "total_steps" in inspect.signature(
            self.scheduler_factory
        ).parameters and "total_steps" not in getattr(self.scheduler_factory, "keywords", {}):
            extra["total_steps"] = self.trainer.estimated_stepping_batches  # OneCycleLR
        scheduler = self.scheduler_factory(optimizer=optimizer, **extra)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.hparams["scheduler_interval"],
                "monitor": self.hparams["scheduler_monitor"],
                "frequency": 1,
            },
        }
