"""Lightning's TensorBoardLogger with a graph that works with our datamodules, and a way to add summaries
to the event file after Lightning has closed it.

With `log_graph=True` Lightning traces `example_input_array` at the start of fit, but first passes it
through the datamodule's `on_after_batch_transfer`, which here expects an (images, labels) batch of uint8
images. The example is already a model input, so `log_graph` below only moves it to the module's device
and traces it the way Lightning does (inside its `_jit_is_scripting`, which keeps LightningModule
properties from complaining while torch.jit traces them).
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.core.module import _jit_is_scripting
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from torch import Tensor


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoardLogger; its graph is traced from the example as it is, once a run."""

    def __init__(self, *args: Any, log_graph: bool = False, **kwargs: Any) -> None:
        kwargs["log_graph"] = log_graph
        super().__init__(*args, **kwargs)
        self.draws_graph, self.graph_logged = log_graph, False

    # a LightningModule, not any nn.Module: Lightning's own override narrows it the same way
    def log_graph(self, model: L.LightningModule, input_array: Tensor | None = None) -> None:  # type: ignore[override]
        # Lightning calls this at the start of fit and again of test: one graph per run is enough.
        if not self.draws_graph or self.graph_logged:
            return
        example = model.example_input_array if input_array is None else input_array
        if not isinstance(example, Tensor):
            return super().log_graph(model, input_array)
        with _jit_is_scripting(), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice; TensorBoard still uses it
            self.experiment.add_graph(model, example.to(model.device))
        self.graph_logged = True


def add_summaries(writer: Any, *summaries: Any) -> None:
    """Add protobuf summaries (e.g. TensorBoard's hparams session start and end) to the event file of a
    `torch.utils.tensorboard.SummaryWriter`. Its public `add_hparams` would write them into a new
    sub-directory (a second run in TensorBoard's list); its private `_get_file_writer()` gives the run's
    own event file, reopened if Lightning closed it after fit or test."""
    file_writer = writer._get_file_writer()
    for summary in summaries:
        file_writer.add_summary(summary)
