"""Evaluate a finished run again: accuracy, per-class accuracy and the confusion matrix.

    python -m src.eval outputs/train/runs/2026-11-25_17-00-44
    python -m src.eval <run dir> split=val
    python -m src.eval <run dir> split=test data.data_dir=/elsewhere data.eval_batch_size=500
    python -m src.eval <run dir> ckpt_path=<run dir>/checkpoints/epoch_004.ckpt

The run's own saved config (`<run>/config.yaml`, the resolved one, else `.hydra/config.yaml`) rebuilds
the datamodule and the network; the weights come from the run's best checkpoint (metrics.json's
`tested_checkpoint`, else `checkpoints/last.ckpt`; or `ckpt_path=`), checked first (whole, a Lightning
checkpoint, this model's: src/utils/checkpoints.py) and loaded with `torch.load(weights_only=True)`:
our checkpoints hold tensors and plain values only, never pickled code. A damaged or foreign
checkpoint, metrics.json or saved config ends in one line naming the file. Further `key=value` overrides
change the saved config (unknown keys are an error). The split is evaluated in order, in batches of
`data.eval_batch_size`, with the validation/test view of the images (no augmentation), exactly as
`trainer.test` saw it, so `split=test` reproduces the run's test/acc.

Prints the results and writes them next to the run: `<run>/eval_<split>.json`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.runs.rundir import RUN_CONFIG_KEYS, RunDir
from src.utils.checkpoints import check_checkpoint, state_shapes
from src.utils.errors import UserError, user_errors

SPLITS = ("test", "val", "train")


def load_run_config(run: RunDir, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's saved config with `key=value` overrides applied (struct mode: no new keys)."""
    cfg = run.read_config(needs=RUN_CONFIG_KEYS)
    OmegaConf.set_struct(cfg, True)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise UserError(f"{override!r} is not key=value")
        if OmegaConf.select(cfg, key, default=KeyError) is KeyError:
            raise UserError(f"{key} is not a key of the run's config")
        OmegaConf.update(cfg, key, yaml_value(value), merge=True)
    return cfg


def yaml_value(text: str) -> Any:
    """`3` -> 3, `true` -> True, `null` -> None, anything else stays a string (as Hydra reads values)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def evaluate(
    run_dir: Path, split: str = "test", overrides: Sequence[str] = (), ckpt_path: Path | None = None
) -> dict[str, Any]:
    """Rebuild the run, load its checkpoint (or `ckpt_path`), evaluate `split`; return (and write) the
    results."""
    if split not in SPLITS:
        raise UserError(f"split={split} is not a choice; allowed: {', '.join(SPLITS)}")
    run = RunDir(run_dir)
    cfg = load_run_config(run, overrides)
    checkpoint_path = ckpt_path or run.tested_checkpoint()
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module, model=instantiate(cfg.model))
    check_checkpoint(checkpoint_path, state_shapes(module))
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated file, or one that would need pickled code
        raise UserError(f"cannot load {checkpoint_path}: {str(error).splitlines()[0]}") from error
    module.load_state_dict(checkpoint["state_dict"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module.to(device).eval()

    datamodule.setup("test")
    datamodule.evaluating_split = split  # the test split gets the test view (ten crops) as in trainer.test
    data = datamodule.splits[split]
    classes = module.model.num_classes
    counts = torch.zeros(classes * classes, dtype=torch.long, device=device)
    batch_size = datamodule.eval_batch_size
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            images, labels = data[list(range(start, min(start + batch_size, len(data))))]
            images, labels = images.to(device), labels.to(device)
            predicted = module(datamodule.to_model_input(images, train=False)).argmax(dim=1)
            counts += torch.bincount(labels * classes + predicted, minlength=classes * classes)
    matrix = counts.view(classes, classes).cpu()
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
