"""src.predict: a trained run classifies image files as its own test loop classifies the same images."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from src.predict import main as predict_main
from src.runs.rundir import RunDir
from src.runs.trained import evaluation_trainer, load_trained
from src.train import train
from tests.conftest import SHARED_DATA, compose_train_config, fast_overrides, make_tiny_mnist, run_cli
from tests.tiny_data import make_tiny_flowers


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    data = make_tiny_mnist(root / "data")
    overrides = [*fast_overrides(data, root), "trainer.max_epochs=2", "logger=none"]
    overrides += ["callbacks.input_grid=null", "callbacks.feature_maps=null", "callbacks.filters=null"]
    train(compose_train_config(overrides, root / "run"))
    return root / "run"


class KeepProbabilities(L.Callback):
    """Keeps the class probabilities the test loop gives each test image, in order."""

    def __init__(self) -> None:
        self.probabilities: list[torch.Tensor] = []

    def on_test_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.probabilities.append(outputs.softmax(dim=1))  # test_step returns the logits


def probabilities_from_the_test_loop(run_dir: Path) -> torch.Tensor:
    """(test images, classes): the probabilities the run's own test loop (`Trainer.test`, with the run's
    test view) gives each test image."""
    _, datamodule, module, _ = load_trained(RunDir(run_dir))
    keep = KeepProbabilities()
    evaluation_trainer([keep]).test(module, datamodule=datamodule, verbose=False)
    return torch.cat(keep.probabilities)


def classes_from_the_test_loop(run_dir: Path) -> list[int]:
    return probabilities_from_the_test_loop(run_dir).argmax(dim=1).tolist()


def predict_test_images_as_png(run_dir: Path, folder: Path, count: int) -> tuple[list[int], list[int], Path]:
    """(what src.predict says, what the run's test loop says, the CSV) for the first `count` test images
    of the run, written as PNG files."""
    _, datamodule, module, _ = load_trained(RunDir(run_dir))
    datamodule.setup("test")
    images, _ = datamodule.splits["test"][list(range(count))]
    folder.mkdir()
    for index, image in enumerate(images):
        pixels = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(folder / f"{index:04d}.png")
    out = folder.parent / "predicted.csv"
    predict_main([str(run_dir), str(folder), f"out={out}", "topk=3"])
    rows = list(csv.reader(out.open()))
    names = datamodule.label_names(module.model.num_classes)
    return [names.index(row[1]) for row in rows[1:]], classes_from_the_test_loop(run_dir)[:count], out


def test_predictions_of_png_files_are_the_test_loops(run_dir, tmp_path, capsys):
    """The test images written as PNG files and predicted give, image by image, the class the run's own
    test loop gives them."""
    predicted, expected, out = predict_test_images_as_png(run_dir, tmp_path / "pngs", 64)
    assert predicted == expected and len(predicted) == 64
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["path", "class", "probability", "class_2", "probability_2", "class_3", "probability_3"]
    probabilities = np.array([[float(row[i]) for i in (2, 4, 6)] for row in rows[1:]])
    assert (np.diff(probabilities, axis=1) <= 0).all() and (probabilities <= 1).all()
    assert f"wrote {out}" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize(("data", "found"), [("mnist", "MNIST/raw"), ("cifar10", "cifar-10-python.tar.gz")])
def test_real_test_images_as_png_are_predicted_as_the_test_loop_does(tmp_path, data, found):
    """300 real test images (MNIST, CIFAR-10 with its flip-averaged test) written as PNG files: src.predict
    agrees with the run's own test loop on every one of them, so on their accuracy too, after a short
    training."""
    if not (SHARED_DATA / found).exists():
        pytest.skip(f"real {data} not found in {SHARED_DATA} (set DATA_DIR)")
    overrides = [f"data={data}", f"data.data_dir={SHARED_DATA}", f"paths.cache_dir={tmp_path / 'cache'}",
                 "data.download=false", "trainer.max_epochs=1", "+trainer.limit_train_batches=100",
                 "logger=none", "callbacks.progress_bar=null", "test=false"]  # fmt: skip
    overrides += ["data.flip_eval=true"] if data == "cifar10" else []  # a test view predict must take too
    train(compose_train_config(overrides, tmp_path / "run"))
    predicted, expected, _ = predict_test_images_as_png(tmp_path / "run", tmp_path / "pngs", 300)
    assert predicted == expected and len(predicted) == 300


def test_a_bad_file_is_one_warning_and_the_others_are_predicted(run_dir, tmp_path, capsys):
    good = tmp_path / "seven.jpg"
    Image.fromarray(np.full((40, 30, 3), 200, dtype=np.uint8)).save(good)  # colour, another size
    (tmp_path / "notes.png").write_text("not an image")
    truncated = tmp_path / "cut.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    predict_main([str(run_dir), str(good), str(tmp_path / "notes.png"), str(truncated)])
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "notes.png skipped" in warnings[0] and "cut.png skipped" in warnings[1]
    rows = list(csv.reader((run_dir / "predictions.csv").open()))
    assert [row[0] for row in rows[1:]] == [str(good)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{run}", "{tmp}/missing.png"], "missing.png does not exist"),
        (["{run}", "{tmp}/empty"], "holds no image file"),
        (["{run}", "{tmp}/empty", "topk=0"], "topk=0 is not a whole number >= 1"),
        (["{run}"], "usage: python -m src.predict"),
        (["{tmp}/norun", "{tmp}/empty"], "holds no image file"),
        (["{tmp}/norun", "{tmp}/one.png"], "norun"),  # no saved config: not a run directory
        (["{tmp}/nockpt", "{tmp}/one.png"], "checkpoints/last.ckpt"),  # a run without a checkpoint
    ],
)
def test_bad_input_is_one_line_exit_2(run_dir, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "norun").mkdir()
    (tmp_path / "nockpt").mkdir()
    (tmp_path / "nockpt" / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "one.png")
    result = run_cli("src.predict", *(a.format(run=run_dir, tmp=tmp_path) for a in args))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("ten_crop_test", [False, True])
def test_flowers17_jpegs_are_predicted_as_the_test_loop_does(tmp_path, ten_crop_test):
    """Flowers-17's own JPEG files (tiny stand-ins, the archive's layout), predicted by src.predict, get the
    class the run's test loop gives the same test images: its centre crop, or its ten crops averaged."""
    from src.data.flowers17 import read_jpegs

    data = make_tiny_flowers(tmp_path / "data", textured=True)  # noisy: crops of an image differ
    base = [o for o in fast_overrides(data, tmp_path) if not o.startswith("data.val_size")]
    overrides = [*base, "data=flowers17", "model=lenet5", "trainer.max_epochs=1", "logger=none", "test=false",
                 "+trainer.limit_train_batches=4", "callbacks.input_grid=null", "callbacks.feature_maps=null",
                 "callbacks.filters=null", f"data.ten_crop_test={str(ten_crop_test).lower()}"]  # fmt: skip
    train(compose_train_config(overrides, tmp_path / "run"))
    _, datamodule, module, _ = load_trained(RunDir(tmp_path / "run"))
    dataset = datamodule.found()
    test = datamodule._split(dataset)["test"]
    jpegs = read_jpegs(dataset.archive)
    folder = tmp_path / "jpg"
    folder.mkdir()
    for index in test.tolist():
        (folder / f"image_{index + 1:04d}.jpg").write_bytes(jpegs[index + 1])
    out = tmp_path / "flowers.csv"
    predict_main([str(tmp_path / "run"), str(folder), f"out={out}"])
    names = datamodule.label_names(module.model.num_classes)
    by_file = {Path(row[0]).name: row[1:3] for row in list(csv.reader(out.open()))[1:]}
    rows = [by_file[f"image_{index + 1:04d}.jpg"] for index in test.tolist()]
    expected = probabilities_from_the_test_loop(tmp_path / "run")
    assert [names.index(name) for name, _ in rows] == expected.argmax(dim=1).tolist() and len(rows) == len(
        test
    )
    # The probabilities too (so the view is the test's: one centre crop's differ from ten crops' mean).
    got = torch.tensor([float(p) for _, p in rows])
    assert torch.allclose(got, expected.max(dim=1).values, atol=2e-6)
