"""Evaluate a finished run again: accuracy, per-class accuracy and the confusion matrix.

    python -m src.eval outputs/train/runs/2026-11-25_17-00-44
    python -m src.eval <run dir> split=val
    python -m src.eval <run dir> split=test data.data_dir=/elsewhere data.eval_batch_size=500
    python -m src.eval <run dir> ckpt_path=<run dir>/checkpoints/epoch_004.ckpt

The run's saved config rebuilds the datamodule and the network; its tested checkpoint (or `ckpt_path=`)
is checked (src/utils/checkpoints.py) and loaded with `torch.load(weights_only=True)`. Lightning's
`trainer.test` (the test split, with its test view) or `trainer.validate` (val, train) evaluates it, so
`split=test` reproduces the run's test/acc; the results are printed and written to
`<run>/eval_<split>.json`. More: docs/tensorboard.md.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import Tensor

from src.lightning_ext.process import prepare_process
from src.runs.rundir import RunDir
from src.runs.trained import evaluation_trainer, load_trained
from src.utils.cli import ArgumentParser
from src.utils.errors import UserError, user_errors

if TYPE_CHECKING:
    from src.data.base import InMemoryDataModule

SPLITS = ("test", "val", "train")


def evaluate(
    run_dir: Path, split: str = "test", overrides: Sequence[str] = (), ckpt_path: Path | None = None
) -> dict[str, Any]:
    """Rebuild the run, load its checkpoint (or `ckpt_path`), evaluate `split`; return (and write) the
    results."""
    if split not in SPLITS:
        raise UserError(f"split={split} is not a choice; allowed: {', '.join(SPLITS)}")
    run = RunDir(run_dir)
    cfg, datamodule, module, checkpoint_path = load_trained(run, overrides, ckpt_path)
    prepare_process()  # Lightning's console tips off, as in src.train
    classes = module.model.num_classes
    matrix = confusion_matrix(module, datamodule, split, classes)
    names = datamodule.label_names(classes)
    per_class = matrix.diag().double() / matrix.sum(dim=1).clamp_min(1).double()
    result = {
        "run_dir": str(run_dir),
        "split": split,
        "checkpoint": str(checkpoint_path),
        "accuracy": matrix.diag().sum().item() / max(1, matrix.sum().item()),
        "correct": int(matrix.diag().sum()),
        "total": int(matrix.sum()),
        "class_names": names,
        "per_class_accuracy": {name: float(acc) for name, acc in zip(names, per_class, strict=True)},
        "confusion_matrix": matrix.tolist(),
        "overrides": list(overrides),
    }
    run.write_eval(split, result)
    return result


class ConfusionCounter(L.Callback):
    """Counts (true, predicted) pairs from the logits each evaluation step returns
    (src/training/module.py: `validation_step` and `test_step` return them)."""

    def __init__(self, classes: int) -> None:
        self.classes, self.counts = classes, torch.zeros(classes * classes, dtype=torch.long)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        pairs = batch[1] * self.classes + outputs.argmax(dim=1)
        self.counts += torch.bincount(pairs, minlength=self.classes**2).cpu()

    on_test_batch_end = on_validation_batch_end


def confusion_matrix(
    module: L.LightningModule, datamodule: InMemoryDataModule, split: str, classes: int
) -> Tensor:
    """(true, predicted) counts of `split`, evaluated by Lightning as fit and test evaluate: `trainer.test`
    for the test split (with its test view, e.g. Flowers-17's ten crops), `trainer.validate` for the
    validation split and for the training images (in order, without augmentation)."""
    counter = ConfusionCounter(classes)
    trainer = evaluation_trainer([counter])
    if split == "test":
        trainer.test(module, datamodule=datamodule, verbose=False)
    else:
        if split == "train":  # the validation loop over the training images (this datamodule's only)
            datamodule.val_dataloader = functools.partial(datamodule.loader, "train", train=False)  # type: ignore[method-assign]
        trainer.validate(module, datamodule=datamodule, verbose=False)
    return counter.counts.view(classes, classes)


def format_result(result: dict[str, Any]) -> str:
    names = result["class_names"]
    lines = [
        f"{result['split']} accuracy {result['accuracy']:.4f} ({result['correct']}/{result['total']})"
        f"  checkpoint {result['checkpoint']}",
        "",
        "per-class accuracy:",
        *(f"  {name:>12}  {acc:.4f}" for name, acc in result["per_class_accuracy"].items()),
        "",
        "confusion matrix (rows: true, columns: predicted):",
    ]
    width = max(5, *(len(str(v)) for row in result["confusion_matrix"] for v in row), *map(len, names))
    lines.append(" " * 12 + " ".join(name[:width].rjust(width) for name in names))
    for name, row in zip(names, result["confusion_matrix"], strict=True):
        lines.append(f"{name[:12]:>12}" + " ".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser("src.eval", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the directory of a finished run")
    parser.add_argument(
        "overrides", nargs="*", help="split=test|val|train, ckpt_path=<file> and key=value config overrides"
    )
    args = parser.parse_args(argv)
    split, ckpt_path = "test", None
    overrides = []
    for override in args.overrides:
        if override.startswith("split="):
            split = override.partition("=")[2]
        elif override.startswith("ckpt_path="):
            ckpt_path = Path(override.partition("=")[2]).expanduser()
        else:
            overrides.append(override)
    with user_errors():
        result = evaluate(args.run_dir, split, overrides, ckpt_path)
        print(format_result(result))
        print(f"\nwrote {RunDir(args.run_dir).eval_file(split)}")


if __name__ == "__main__":
    main(sys.argv[1:])
