"""TensorBoard insight: see what the networks, pooling and padding do.

Callbacks that write into the run's TensorBoard event files and, through `log_image`/`log_text`, into
its trackers (src/training/trackers.py): images per second, the input batch, the first conv's filters,
one example's feature maps, confusion matrices and the most confident mistakes; hparams via
`log_hparams`. Each is its own entry in conf/callbacks/insight.yaml (`callbacks.feature_maps=null`
switches one off); images are logged every `callbacks.every_n_epochs` epochs, at the global step.
They log nothing without a logger that takes images, never synchronise with the host per step, and
log from global rank 0 only. Tags and what to look for: docs/tensorboard.md.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor, nn

from src.lightning_ext.tensorboard import add_summaries
from src.training import trackers
from src.training.hparams import flat_hparams


# ------------------------------------------------------------------------------------------ helpers
def make_grid(tensor: Tensor, **kwargs: Any) -> Tensor:
    """torchvision's make_grid, imported when the first image is drawn (a run without a TensorBoard
    logger, or with fast_dev_run, draws none and does not import torchvision for it)."""
    from torchvision.utils import make_grid as torchvision_make_grid  # deferred: torchvision

    return torchvision_make_grid(tensor, **kwargs)


def tensorboard(trainer: L.Trainer):
    """The run's SummaryWriter (torch.utils.tensorboard), or None when there is no TensorBoard logger."""
    for logger in trainer.loggers:
        if isinstance(logger, LightningTensorBoardLogger):
            return logger.experiment
    return None


def image_loggers(trainer: L.Trainer) -> list[Any]:
    """The run's loggers that take images: its TensorBoard logger, then its trackers
    (src/training/trackers.py)."""
    writer = [logger for logger in trainer.loggers if isinstance(logger, LightningTensorBoardLogger)][:1]
    return writer + trackers.trackers(trainer)


def log_image(trainer: L.Trainer, tag: str, image: Tensor, step: int) -> None:
    """One (C, H, W) image, uint8 or float in [0, 1], to every logger that takes images: TensorBoard's
    `add_image`, and the trackers' image APIs (src/training/trackers.py). Global rank 0 only, like every
    caller."""
    for logger in image_loggers(trainer):
        if isinstance(logger, LightningTensorBoardLogger):
            logger.experiment.add_image(tag, image, step)
        else:
            trackers.log_image(logger, tag, image, step)


def log_text(trainer: L.Trainer, tag: str, text: str, step: int) -> None:
    """A (markdown) text to TensorBoard's Text tab and to the trackers (src/training/trackers.py)."""
    for logger in image_loggers(trainer):
        if isinstance(logger, LightningTensorBoardLogger):
            logger.experiment.add_text(tag, text, step)
        else:
            trackers.log_text(logger, tag, text, step)


def network(pl_module: L.LightningModule) -> nn.Module:
    """The plain nn.Module inside the LightningModule (ImageClassifier keeps it in `.model`)."""
    return getattr(pl_module, "model", pl_module)


def to_unit_range(x: Tensor) -> Tensor:
    """Min-max scale a tensor to [0, 1] (one scale for the whole tensor, so relative strengths survive)."""
    low, high = x.min(), x.max()
    return (x - low) / (high - low).clamp_min(1e-8)


def enlarge(images: Tensor, min_size: int) -> Tensor:
    """Nearest-neighbour upscaling of (N, C, H, W) so that tiny maps (LeNet-5's 5x5) stay visible."""
    factor = max(1, math.ceil(min_size / max(images.shape[-2:])))
    return images if factor == 1 else F.interpolate(images, scale_factor=factor, mode="nearest")


def figure_to_image(figure) -> Tensor:
    """Render a matplotlib figure (Agg, no display needed) into a (3, H, W) uint8 tensor."""
    plt = pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    buffer.seek(0)
    array = torch.from_numpy(np.array(Image.open(buffer).convert("RGB")))
    return array.permute(2, 0, 1).contiguous()


def pyplot():
    """matplotlib.pyplot on the Agg backend: draws into memory, works without a display."""
    import matplotlib  # deferred: matplotlib, only for a figure

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # deferred: pyplot, after the Agg backend is set

    return plt


class InsightCallback(Callback):
    """A callback of this module: src.train hands them to Lightning as one (`group_insight`)."""


class EveryNEpochs(InsightCallback):
    """Base: `due(trainer)` is true every `every_n_epochs` epochs and at the last epoch."""

    def __init__(self, every_n_epochs: int = 1) -> None:
        self.every_n_epochs = max(1, int(every_n_epochs))

    def due(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking or not trainer.is_global_zero or not image_loggers(trainer):
            return False
        epoch = trainer.current_epoch + 1
        return epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs


# ------------------------------------------------------------------------------------------- group
# Every hook of lightning's Callback except the state ones (the callbacks here keep no state).
HOOKS = tuple(
    name
    for name in dir(Callback)
    if (name.startswith("on_") or name in ("setup", "teardown")) and callable(getattr(Callback, name))
)


class Insight(Callback):
    """The callbacks of this module as one Lightning callback.

    Lightning calls every hook of every callback on every training step (six per step, each inside a
    profiler context), whether the callback implements it or not; six insight callbacks that mostly
    act once an epoch cost as many calls a step. This one is called once per hook and passes it on only
    to the callbacks that implement it, in their order. `src.train` groups them (`group_insight`); each
    stays its own entry of conf/callbacks/insight.yaml.
    """

    def __init__(self, parts: Sequence[Callback]) -> None:
        self.parts = list(parts)
        self._hooks = {
            name: [getattr(part, name) for part in self.parts if _implements(part, name)] for name in HOOKS
        }


def _implements(callback: Callback, name: str) -> bool:
    return getattr(type(callback), name) is not getattr(Callback, name)


def _passing_on(name: str):
    def hook(self: Insight, *args: Any, **kwargs: Any) -> None:
        for method in self._hooks[name]:
            method(*args, **kwargs)

    hook.__name__ = hook.__qualname__ = name
    return hook


for _name in HOOKS:
    setattr(Insight, _name, _passing_on(_name))


def group_insight(callbacks: Sequence[Callback]) -> list[Callback]:
    """`callbacks` with this module's callbacks replaced by one `Insight` where the first of them was
    (they are contiguous in the default config, so the order of all hooks is unchanged)."""
    ours = [c for c in callbacks if isinstance(c, InsightCallback)]
    if len(ours) < 2:
        return list(callbacks)
    grouped: list[L.Callback] = []
    placed = False
    for callback in callbacks:
        if callback in ours:
            if not placed:
                grouped.append(Insight(ours))
                placed = True
        else:
            grouped.append(callback)
    return grouped


# ------------------------------------------------------------------------------------------ scalars
class ImagesPerSecond(InsightCallback):
    """`train/images_per_second`: training throughput of each epoch (all ranks together).

    Counting uses the batch's shape (a Python int, no device sync); the clock stops at the epoch's last
    training batch, so validation time is not counted. On a GPU that one moment synchronises once per
    epoch, so the queued kernels are included.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.images, self.start = 0, time.perf_counter()
        self.stop: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.images += len(batch[1])
        if batch_idx + 1 >= trainer.num_training_batches:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            self.stop = time.perf_counter()

    def epoch_seconds(self) -> float:
        """Training time of the epoch so far: up to its last training batch once that has ended."""
        return (self.stop or time.perf_counter()) - self.start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = self.epoch_seconds()
        if self.images and seconds > 0:
            pl_module.log("train/images_per_second", self.images / seconds, reduce_fx="sum", sync_dist=True)


# ------------------------------------------------------------------------------------------ images
class InputGrid(EveryNEpochs):
    """`inputs/train`: the first training batch of the epoch exactly as the network receives it, i.e.
    after the datamodule's `to_model_input(images, train=True)`: augmented, resized/padded to the
    model's input (MNIST's 28x28 -> 32x32 for LeNet-5), normalised. Shown min-max scaled."""

    def __init__(self, every_n_epochs: int = 1, num_images: int = 64) -> None:
        super().__init__(every_n_epochs)
        self.num_images = num_images
        self.batch: Tensor | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == 0 and self.due(trainer):
            self.batch = batch[0][: self.num_images].detach().clone()  # stays on the device

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.batch is None or not self.due(trainer):
            return
        images = self.batch.float().cpu()
        if images.ndim == 5:  # several crops per image: show the first
            images = images[:, 0]
        grid = make_grid(to_unit_range(images), nrow=int(math.sqrt(len(images))) or 1, padding=2)
        log_image(trainer, "inputs/train", grid, trainer.global_step)
        self.batch = None


class ConvFilters(EveryNEpochs):
    """`filters/<name>`: the kernels of the first convolution, one tile per (output, input) channel
    pair; RGB tiles when the layer reads 3 channels (AlexNet's 96 11x11x3 colour detectors).
    Each kernel is scaled on its own: what matters is its pattern (edge, blob, colour), not its size."""

    def __init__(self, every_n_epochs: int = 1, min_tile: int = 33) -> None:
        super().__init__(every_n_epochs)
        self.min_tile = min_tile

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.due(trainer):
            return
        named = [(n, m) for n, m in network(pl_module).named_modules() if isinstance(m, nn.Conv2d)]
        if not named:
            return
        name, conv = named[0]
        weight = conv.weight.detach().float().cpu()  # (out, in / groups, k, k)
        tiles = weight if weight.shape[1] == 3 else weight.flatten(0, 1).unsqueeze(1)
        low = tiles.amin(dim=(1, 2, 3), keepdim=True)
        high = tiles.amax(dim=(1, 2, 3), keepdim=True)
        tiles = enlarge((tiles - low) / (high - low).clamp_min(1e-8), self.min_tile)
        nrow = weight.shape[1] if weight.shape[1] != 3 and weight.shape[1] > 1 else 16
        grid = make_grid(tiles, nrow=min(nrow, len(tiles)), padding=2, pad_value=0.5)
        log_image(trainer, f"filters/{name}", grid, trainer.global_step)


class FeatureMaps(EveryNEpochs):
    """`feature_maps/NN_<layer>`: one fixed validation image after every layer of `model.features`.

    The image is the first of the validation set (the same in every run, so runs compare tile for tile).
    Every channel of a layer is one tile, all tiles of a layer share one grey scale (black = the layer's
    lowest value, white = its highest), so you can see
    - padding: `valid` convolutions shrink the map and lose the border (LeNet-5: 32 -> 28), `same`
      keeps the size and draws a frame where the zero padding was;
    - pooling: max keeps the bright strokes (strongest response), avg blurs them, min keeps the weakest
      response: after a ReLU mostly zeros (a dark map), after tanh the dark background.
    Every map is enlarged by the same integer factor (nearest neighbour; the input becomes at least
    `input_tile` pixels), so the tiles keep their true relative sizes: a 28x28 `valid` map is visibly
    smaller than a 32x32 `same` one. `feature_maps/shapes` (a text entry) lists every layer's shape.
    """

    def __init__(self, every_n_epochs: int = 1, input_tile: int = 128, max_channels: int = 64) -> None:
        super().__init__(every_n_epochs)
        self.input_tile, self.max_channels = input_tile, max_channels
        self.example: Tensor | None = None
        self.shapes_logged = False

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.example is None and batch_idx == 0 and dataloader_idx == 0:
            example = batch[0][:1].detach().clone()
            self.example = example[:, 0] if example.ndim == 5 else example  # one crop of a ten-crop

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        features = getattr(network(pl_module), "features", None)
        if self.example is None or features is None or not self.due(trainer):
            return
        step = trainer.global_step
        x, shapes = self.example.to(pl_module.device), [f"input: {tuple(self.example.shape[1:])}"]
        factor = max(1, math.ceil(self.input_tile / max(x.shape[-2:])))
        with torch.no_grad():
            self._log(trainer, "00_input", x, step, factor)
            for index, (name, layer) in enumerate(features.named_children(), start=1):
                x = layer(x)  # in eval mode: dropout off, BatchNorm uses its running statistics
                self._log(trainer, f"{index:02d}_{name}", x, step, factor)
                shapes.append(f"{index:02d}_{name} ({type(layer).__name__}): {tuple(x.shape[1:])}")
        if not self.shapes_logged:  # markdown: two trailing spaces end a line
            log_text(trainer, "feature_maps/shapes", "  \n".join(shapes), step)
            self.shapes_logged = True

    def _log(self, trainer: L.Trainer, tag: str, x: Tensor, step: int, factor: int) -> None:
        maps = x[0, : self.max_channels].float().cpu().unsqueeze(1)  # (channels, 1, H, W)
        maps = to_unit_range(maps)
        if factor > 1:
            maps = F.interpolate(maps, scale_factor=factor, mode="nearest")
        grid = make_grid(maps, nrow=math.ceil(math.sqrt(len(maps))), padding=2, pad_value=1.0)
        log_image(trainer, f"feature_maps/{tag}", grid, step)


class FeatureMapStatistics(InsightCallback):
    """`test/<layer>_zeros` and `test/<layer>_mean` for every activation and pooling layer of
    `model.features`: the fraction of values that are exactly zero and the mean value, over the whole
    test set. They put numbers on what the feature-map images show: after a ReLU about half the values
    are zero; max pooling keeps a window's largest value, so few zeros survive it, while min pooling
    keeps the smallest, so a window with a single zero passes a zero (mostly zeros); after tanh, min
    pooling keeps the most negative response (a negative mean) and max pooling the most positive.

    Forward hooks count on the device during `trainer.test` only (no host sync per batch); the values
    land in metrics.json with the other test metrics. Unlike the images, they are logged without a
    TensorBoard logger too.
    """

    CHUNK_VALUES = 2**18  # values counted at a time: 1 MB of float32

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.sums: dict[str, list[Any]] = {}

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.sums = {}
        features = getattr(network(pl_module), "features", None)
        if features is None:
            return
        for name, layer in features.named_children():
            if name.startswith(("act", "pool")):
                self.handles.append(layer.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def count(module: nn.Module, inputs: Any, output: Tensor) -> None:
            values = output.detach()
            totals = self.sums.setdefault(name, [0, 0, 0])  # zeros, sum (tensors on the device), count
            # No float64 copy: a chunk's float32 sums are exact enough (counts exact below 2**24 values;
            # the chunks add up in float64). The nonzero values are counted as the sum of |sign(x)|:
            # torch.count_nonzero took 4.4 ms, this 0.9 ms, for LeNet-5's act1 at batch 256 on 2 CPU
            # cores. In chunks of ~1 MB, which the sum and the |sign| then read from the cache instead
            # of memory: the hooks' time in a LeNet-5 MNIST test went from 0.11 to 0.06 s.
            rows = max(1, self.CHUNK_VALUES // max(values[0].numel(), 1))  # images a chunk
            for chunk in values.split(rows):
                nonzero = chunk.sign().abs_().sum(dtype=torch.float32).double()
                totals[0] = totals[0] + (chunk.numel() - nonzero)
                totals[1] = totals[1] + chunk.sum(dtype=torch.float32).double()
            totals[2] += values.numel()

        return count

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        for name, (zeros, total, count) in self.sums.items():
            if count:
                pl_module.log(f"test/{name}_zeros", zeros.double() / count, sync_dist=True)
                pl_module.log(f"test/{name}_mean", total / count, sync_dist=True)


class ConfusionAndMistakes(EveryNEpochs):
    """`confusion_matrix/{val,test}` and `mistakes/{val,test}`.

    Needs the logits: ImageClassifier's validation_step and test_step return them. Per batch, the
    confusion counts are added with one `bincount` and the `num_mistakes` most confident wrong
    predictions are kept with one `topk`, both on the device; they are drawn (matplotlib, Agg) at the
    end of the epoch: rows are true classes, columns predictions, colour = share of the row.
    """

    def __init__(
        self, every_n_epochs: int = 1, num_mistakes: int = 16, confusion: bool = True, mistakes: bool = True
    ) -> None:
        super().__init__(every_n_epochs)
        self.num_mistakes, self.confusion, self.mistakes = num_mistakes, confusion, mistakes
        self.state: dict[str, Tensor] | None = None

    # ---- collection
    def _start(self, trainer: L.Trainer, stage: str) -> None:
        active = (stage == "test" and trainer.is_global_zero and bool(image_loggers(trainer))) or (
            stage == "val" and self.due(trainer)
        )
        self.state = {} if active else None

    def _collect(self, outputs: Any, batch: Sequence[Tensor]) -> None:
        if self.state is None or not isinstance(outputs, Tensor):
            return
        images, labels = batch[0], batch[1]
        logits = outputs.detach().float()
        classes = logits.shape[1]
        probabilities = logits.softmax(dim=1)
        confidence, predicted = probabilities.max(dim=1)
        counts = torch.bincount(labels * classes + predicted, minlength=classes * classes)
        state = self.state
        state["counts"] = state["counts"] + counts if "counts" in state else counts
        # candidates: this batch's most confident errors (confidence -1 for the correct ones), selected
        # before anything is copied, and the best so far
        wrong = torch.where(predicted != labels, confidence, torch.full_like(confidence, -1.0))
        best = wrong.topk(min(self.num_mistakes, len(wrong))).indices
        if images.ndim == 5:
            images = images[:, 0]
        candidates = {
            "score": wrong[best],
            "images": images.detach()[best],
            "labels": labels[best],
            "predicted": predicted[best],
        }
        if "score" in state:
            candidates = {k: torch.cat([state[k], v]) for k, v in candidates.items()}
        keep = candidates["score"].topk(min(self.num_mistakes, len(candidates["score"]))).indices
        state.update({k: v[keep] for k, v in candidates.items()})

    # ---- drawing
    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self.state or "counts" not in self.state:
            self.state = None
            return
        step, state = trainer.global_step, self.state
        self.state = None
        classes = math.isqrt(len(state["counts"]))
        names = trainer.datamodule.label_names(classes)  # type: ignore[attr-defined]  # set by Lightning at fit
        if self.confusion:
            matrix = state["counts"].view(classes, classes).cpu()
            log_image(trainer, f"confusion_matrix/{stage}", confusion_figure(matrix, names, stage), step)
        if self.mistakes:
            wrong = state["score"] >= 0
            if bool(wrong.any()):
                image = mistakes_figure(
                    state["images"][wrong].float().cpu(),
                    state["labels"][wrong].cpu(),
                    state["predicted"][wrong].cpu(),
                    state["score"][wrong].cpu(),
                    names,
                )
                log_image(trainer, f"mistakes/{stage}", image, step)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, "val")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._collect(outputs, batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._draw(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, "test")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._collect(outputs, batch)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._draw(trainer, pl_module, "test")


def confusion_figure(matrix: Tensor, names: Sequence[str], title: str = "") -> Tensor:
    """The confusion matrix as an image: colour = fraction of the true class, numbers = counts."""
    plt = pyplot()
    classes = len(names)
    rows = matrix.double() / matrix.sum(dim=1, keepdim=True).clamp_min(1)
    size = max(4.5, 0.45 * classes + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(classes), names, rotation=90 if max(map(len, names)) > 2 else 0)
    axes.set_yticks(range(classes), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = matrix.diag().sum().item() / max(1, matrix.sum().item())
    axes.set_title(f"{title} confusion matrix, accuracy {accuracy:.4f}".strip())
    if classes <= 20:
        for true in range(classes):
            for pred in range(classes):
                count = int(matrix[true, pred])
                if count:
                    colour = "white" if rows[true, pred] > 0.5 else "black"
                    axes.text(pred, true, str(count), ha="center", va="center", fontsize=7, color=colour)
    return figure_to_image(figure)


def mistakes_figure(
    images: Tensor, labels: Tensor, predicted: Tensor, confidence: Tensor, names: Sequence[str]
) -> Tensor:
    """The most confident mistakes, each captioned `true / → predicted / (confidence)`.

    One canvas in one Axes, not a subplot per image: matplotlib spends ~40 ms setting up each Axes,
    which made this figure cost more than evaluating MNIST's whole test set."""
    plt = pyplot()
    count, channels, height, width = images.shape
    columns = min(8, count)
    rows = math.ceil(count / columns)
    caption, gap = max(height // 2, 12), max(width // 8, 2)  # pixels above each image, between images
    canvas = torch.ones(rows * (height + caption), columns * (width + gap), channels)
    for index in range(count):
        top, left = (index // columns) * (height + caption) + caption, (index % columns) * (width + gap)
        canvas[top : top + height, left : left + width] = to_unit_range(images[index]).permute(1, 2, 0)
    figure, axes = plt.subplots(figsize=(1.6 * columns, 1.8 * rows))
    axes.imshow(canvas[..., 0] if channels == 1 else canvas, cmap="gray", vmin=0, vmax=1)
    axes.set_axis_off()
    for index in range(count):
        x = (index % columns) * (width + gap) + width / 2
        y = (index // columns) * (height + caption) + caption - 1
        true, pred = names[int(labels[index])], names[int(predicted[index])]
        text = f"{true}\n→ {pred}\n({float(confidence[index]):.2f})"
        axes.text(x, y, text, ha="center", va="bottom", fontsize=7)
    axes.set_title("most confident mistakes: true → predicted (confidence)", fontsize=9)
    return figure_to_image(figure)


def log_hparams(trainer: L.Trainer, cfg: DictConfig, metrics: Mapping[str, float]) -> None:
    """Write the run's config + final metrics into TensorBoard's HParams tab (one row per run).

    Each run writes a session start (its hparams) and a session end, and its final metrics as scalars
    `hparams/<name>` (e.g. `hparams/test_acc`, separate tags, so the `test/acc` and `val/acc` curves get
    no stray point). No run writes an experiment summary: TensorBoard then builds one from all the runs
    it sees and puts the hparams whose values differ (e.g. pooling and padding in a sweep) first.
    """
    writer = tensorboard(trainer)
    if writer is None or not trainer.is_global_zero:
        return
    from torch.utils.tensorboard.summary import hparams  # deferred: TensorBoard, only with its logger

    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    params = flat_hparams(cfg, choices)
    wanted = ("val/acc", "val/acc_best", "val/loss", "test/acc", "test/loss", "train/images_per_second")
    values = {f"hparams/{k.replace('/', '_')}": float(metrics[k]) for k in wanted if k in metrics}
    values["hparams/epochs"] = float(trainer.current_epoch)
    _experiment, session_start, session_end = hparams(params, values)
    add_summaries(writer, session_start, session_end)  # into the run's own event file
    for name, value in values.items():
        writer.add_scalar(name, value, trainer.global_step)
    writer.flush()
