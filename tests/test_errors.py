"""Every bad input through the real CLI: exit status 2, one line `error: ...`, no traceback, nothing
half-written."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import torch

from tests.conftest import fast_overrides, run_cli
from tests.tiny_data import make_tiny_mnist, write_idx


def _one_line_error(result) -> str:
    """The last stderr line, after checking that the run failed the way a user error should."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


def _corrupt_gz(root: Path) -> Path:
    """Tiny MNIST whose training images .gz is cut in half."""
    make_tiny_mnist(root)
    gz = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    return root


def _wrong_count(root: Path) -> Path:
    """Tiny MNIST whose training labels file holds fewer labels than there are images."""
    make_tiny_mnist(root)
    write_idx(root / "MNIST" / "raw" / "train-labels-idx1-ubyte", torch.zeros(100).numpy(), compress=True)
    return root


def _corrupt_cifar(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "cifar-10-python.tar.gz").write_bytes(gzip.compress(b"not a tar archive" * 100)[:200])
    return root


def test_bad_inputs_fail_in_one_line_before_training(tmp_path):
    data = make_tiny_mnist(tmp_path / "data")
    (tmp_path / "file.txt").write_text("a file, not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    # (name, data dir, extra overrides, patterns the one error line must match)
    cases = [
        (
            # Every value rule that fails is one clause of the same line: a user fixes them all at once.
            "out-of-range values, wrong types, no GPU, flowers input > 256",
            data,
            [
                "data=flowers17",
                "model=alexnet",
                "model.input_size=300",
                "model.dropout=1.5",
                "data.min_crop_area=0",
                "optimizer.lr=-1",
                "data.batch_size=abc",
                "trainer.max_epochs=0",
                "trainer=gpu",
            ],
            [
                r"optimizer\.lr=-1 is out of range: must be > 0(;|$)",
                r"data\.batch_size=abc is not an integer: must be an integer >= 1(;|$)",
                r"model\.dropout=1\.5 is out of range: must be 0 <= dropout < 1(;|$)",
                r"data\.min_crop_area=0 is out of range: must be 0 < min_crop_area <= 1 or null(;|$)",
                r"trainer\.max_epochs=0 is out of range: must be an integer >= 1(;|$)",
                r"trainer\.accelerator=gpu is not available: no CUDA GPU on this machine; "
                r"use trainer=default",
                r"model\.input_size=300 is too large for data=flowers17: must be <= 256",
            ],
        ),
        (
            "zero batch size",
            data,
            ["data.batch_size=0"],
            [r"^error: data\.batch_size=0 is out of range: must be an integer >= 1$"],
        ),
        ("misspelled key", data, ["trainer.max_epoch=3"], [r"Could not override 'trainer\.max_epoch'"]),
        (
            # e.g. `experiment=alexnet_flowers17 scheduler=cosine` keeps the plateau's `patience`
            "arguments the optimizer or scheduler class does not take",
            data,
            ["scheduler=cosine", "+scheduler.patience=8", "+optimizer.momentum=0.9"],
            [
                r"optimizer\.momentum=0\.9 is not an argument of torch\.optim\.Adam: its arguments are lr, ",
                r"scheduler\.patience=8 is not an argument of torch\.optim\.lr_scheduler\.CosineAnnealingLR: "
                r"its arguments are T_max, eta_min, last_epoch \(drop it with ~scheduler\.patience\)",
            ],
        ),
        (
            "input too small",
            data,
            ["model.input_size=8"],
            [r"input 8x8 is too small: .*the smallest input that works is"],
        ),
        (
            "unwritable output directory",
            data,
            [f"hydra.run.dir={tmp_path / 'file.txt' / 'run'}"],
            [r"cannot write the output directory .*file\.txt/run: Not a directory; set paths\.log_dir"],
        ),
        (
            "cache directory under a file",
            data,
            [f"paths.cache_dir={tmp_path / 'file.txt' / 'cache'}"],
            [r"cannot create the cache directory .*file\.txt/cache: Not a directory; set CACHE_DIR"],
        ),
        ("missing MNIST", empty, [], [r"MNIST not found: expected train-images-idx3-ubyte.*DATA_DIR"]),
        (
            "truncated MNIST .gz",
            _corrupt_gz(tmp_path / "gz"),
            [],
            [r"cannot decompress .*train-images-idx3-ubyte\.gz: .*replace it with the official file"],
        ),
        (
            "MNIST image and label counts differ",
            _wrong_count(tmp_path / "count"),
            [],
            [r"train-images-idx3-ubyte\.gz holds 256 images but .*train-labels-idx1-ubyte\.gz 100 labels"],
        ),
        (
            "missing Flowers-17 archive",
            empty,
            ["data=flowers17"],
            [r"Flowers-17 not found: expected 17flowers\.tgz in .*DATA_DIR"],
        ),
        (
            "corrupt CIFAR-10 archive",
            _corrupt_cifar(tmp_path / "cifar"),
            ["data=cifar10"],
            [r"cannot extract .*cifar-10-python\.tar\.gz: .*replace it with the official file"],
        ),
        (
            "resume of a directory that is no run",
            data,
            [f"resume={empty}"],
            [r"resume=.*empty is not a run directory: .*overrides\.yaml is missing"],
        ),
    ]

    def run(case):
        name, data_dir, extra, _ = case
        out = tmp_path / "runs" / re.sub(r"\W+", "_", name)
        overrides = fast_overrides(data_dir, out)
        if "data=flowers17" in extra:  # Flowers-17 has a fixed 40/20/20 split: no val_size
            overrides = [o for o in overrides if not o.startswith("data.val_size")]
        return run_cli("src.train", *overrides, *extra)

    results = [run(case) for case in cases]
    failures = []
    for (name, _, _, patterns), result in zip(cases, results, strict=True):
        try:
            line = _one_line_error(result)
            assert line.startswith("error: "), line
            for pattern in patterns:
                assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
        except AssertionError as error:
            failures.append(f"{name}: {error}")
    assert not failures, "\n".join(failures)
    assert not list((tmp_path / "runs").rglob("checkpoints")), "something trained"
    # Nothing half-extracted or half-decompressed was left behind in any cache.
    assert not [p for p in (tmp_path / "runs").rglob("cache/**/*") if p.name.startswith(".")]


def test_non_finite_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tiny_mnist, tmp_path):
    # A sane first epoch (its checkpoint is the good one), then the learning rate is multiplied by 1e9.
    result = run_cli(
        "src.train",
        *fast_overrides(tiny_mnist, tmp_path),
        "optimizer=sgd",
        "scheduler=step",
        "scheduler.step_size=1",
        "scheduler.gamma=1e9",
        "model.activation_fn=relu",
        "trainer.max_epochs=3",
    )
    line = _one_line_error(result)
    assert re.search(
        r"^error: training diverged: the loss is (nan|inf|-inf) at step \d+ \(epoch 1\)", line
    ), line
    assert "the last good checkpoint is kept" in line and "optimizer.lr" in line
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(tensor).all() for tensor in last["state_dict"].values())
    assert not (tmp_path / "run" / "metrics.json").exists()
