"""Classify your own images with a trained run: `python -m src.predict <run dir> <file or folder>...`.

    python -m src.predict outputs/train/runs/<time> my_digit.png photos/ topk=3 out=predictions.csv

Each file is read as the run's dataset holds its images (greyscale or RGB, short side resized to the
stored size, central square: src/data/images.py), then converted by the run's datamodule exactly as its
evaluation images are, and classified by Lightning's `Trainer.predict`. MNIST's digits are white on
black: a photo of ink on paper needs `invert=true`. A file that is no readable image is one warning line
and skipped. Prints a table and writes a CSV (`path,class,probability[,class_2,probability_2,...]`),
by default `<run dir>/predictions.csv`.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from src.data.images import image_files, read_image
from src.lightning_ext.process import prepare_process
from src.runs.rundir import RunDir
from src.runs.trained import evaluation_trainer, load_trained, top_classes
from src.utils.errors import UserError, user_errors
from src.utils.files import atomic_open

OPTIONS = ("out", "topk", "ckpt_path", "invert")
USAGE = "usage: python -m src.predict <run dir> <image file or folder>... [out=FILE.csv] [topk=K] " \
    "[ckpt_path=FILE] [invert=true] [key=value config overrides]"  # fmt: skip


def parse(argv: Sequence[str]) -> tuple[Path, list[Path], dict[str, str], list[str]]:
    """(run dir, image paths, options, config overrides) of the command line."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        raise SystemExit(0)
    if flags := [arg for arg in argv if arg.startswith("-")]:
        raise UserError(f"{' '.join(flags)} is not an option; {USAGE}")
    if len(argv) < 2:
        raise UserError(USAGE)
    options, overrides, paths = {}, [], []
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if sep and key in OPTIONS:
            options[key] = value
        elif sep and not Path(arg).exists():
            overrides.append(arg)
        else:
            paths.append(Path(arg).expanduser())
    if not paths:
        raise UserError(f"no image file or folder given; {USAGE}")
    return Path(argv[0]).expanduser(), paths, options, overrides


def topk_of(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"topk={text} is not a whole number >= 1")
    return int(text)


def predict(
    run_dir: Path, paths: Sequence[Path], topk: int = 1, ckpt_path: Path | None = None,
    invert: bool = False, overrides: Sequence[str] = (),
) -> list[dict]:  # fmt: skip
    """One row per readable image: path, and the top-k (class, probability), most probable first."""
    files = image_files(paths)
    run = RunDir(run_dir)
    run.read_config()  # a missing or damaged run directory: one line, before torch is imported
    if ckpt_path is None:
        run.tested_checkpoint()  # likewise a run without a checkpoint
    import torch  # deferred: imports torch (the mistakes above are answered before it)

    prepare_process()
    _, datamodule, module, _ = load_trained(run, overrides, ckpt_path)
    card = datamodule.card
    readable, images = [], []
    for path in files:
        try:
            pixels = read_image(path, card.image_channels, card.image_size)
        except (OSError, ValueError) as error:  # Pillow: not an image, truncated, unsupported
            print(f"warning: {path} skipped: {str(error).splitlines()[0]}", file=sys.stderr)
            continue
        readable.append(path)
        images.append(torch.from_numpy(255 - pixels if invert else pixels.copy()))
    if not images:
        raise UserError("none of the files given is a readable image")
    batch = torch.stack(images)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(batch, torch.zeros(len(batch), dtype=torch.long)),
        batch_size=datamodule.eval_batch_size,
    )
    # this datamodule predicts these images; it converts each batch, as in evaluation
    datamodule.predict_dataloader = lambda: loader  # type: ignore[method-assign]
    trainer = evaluation_trainer()
    batches = trainer.predict(module, datamodule=datamodule)  # one dataloader: a list of batch outputs
    probabilities = torch.cat(cast(list[torch.Tensor], batches))
    names = datamodule.label_names(probabilities.shape[1])
    tops = top_classes(probabilities, names, topk)
    return [{"path": str(path), "top": top} for path, top in zip(readable, tops, strict=True)]


def to_csv(rows: Sequence[dict]) -> str:
    k = max(len(row["top"]) for row in rows)
    header = ["path", "class", "probability"]
    header += [f"{name}_{rank}" for rank in range(2, k + 1) for name in ("class", "probability")]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row["path"], *(v for name, p in row["top"] for v in (name, f"{p:.6f}"))])
    return text.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    with user_errors():
        run_dir, paths, options, overrides = parse(sys.argv[1:] if argv is None else argv)
        topk = topk_of(options.get("topk", "1"))
        invert = options.get("invert", "false").lower()
        if invert not in ("true", "false"):
            raise UserError(f"invert={invert} is not a choice; allowed: true, false")
        ckpt = Path(options["ckpt_path"]).expanduser() if "ckpt_path" in options else None
        rows = predict(run_dir, paths, topk, ckpt, invert == "true", overrides)
        out = Path(options.get("out") or run_dir / "predictions.csv")
        with atomic_open(out, "w") as handle:
            handle.write(to_csv(rows))
        width = max(len(row["path"]) for row in rows)
        for row in rows:
            others = "  ".join(f"{name} {p:.3f}" for name, p in row["top"][1:])
            name, p = row["top"][0]
            print(f"{row['path']:<{width}}  {name:>12} {p:.3f}  {others}".rstrip())
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
