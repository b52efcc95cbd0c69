"""callbacks=ema: an exponential moving average of the weights (Lightning's EMAWeightAveraging) is what
validation, the test and the checkpoints' weights use; training goes on with the current weights, and a
resumed run continues both."""

from __future__ import annotations

import json

import torch

from src.eval import main as eval_main
from src.train import train
from tests.conftest import compose_train_config, fast_overrides

QUIET = ["logger=none", "callbacks.input_grid=null", "callbacks.feature_maps=null", "callbacks.filters=null"]


def test_ema_weights_are_checkpointed_tested_and_evaluated(tiny_mnist, tmp_path, capsys):
    overrides = [*fast_overrides(tiny_mnist, tmp_path), *QUIET, "trainer.max_epochs=2", "callbacks=ema",
                 "callbacks.ema.decay=0.9", "test_checkpoint=last"]  # fmt: skip
    result = train(compose_train_config(overrides, tmp_path / "run"))
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    averaged, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert averaged.keys() == current.keys()
    assert any(not torch.equal(averaged[k], current[k]) for k in averaged)  # the average is not the weights
    # src.eval rebuilds the network from state_dict: the averaged weights give the run's own test result
    capsys.readouterr()
    eval_main([str(tmp_path / "run"), "ckpt_path=" + str(tmp_path / "run" / "checkpoints" / "last.ckpt")])
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert f"{metrics['test/acc']:.4f}" in out and result["metrics"]["test/acc"] == metrics["test/acc"]
