"""src.api: train a run and use it from Python, as a notebook does."""

from __future__ import annotations

import pytest
from PIL import Image

from src.api import train
from src.utils.errors import UserError
from tests.conftest import fast_overrides, make_tiny_mnist


def test_train_then_load_run_and_predict(tmp_path):
    data = make_tiny_mnist(tmp_path / "data")
    overrides = [*fast_overrides(data, tmp_path), "trainer.max_epochs=2", "logger=none"]
    result = train(overrides, output_dir=tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").is_file() and result["metrics"]["test/acc"] > 0.5

    from src import load_run

    run = load_run(tmp_path / "run")
    assert run.classes == [str(d) for d in range(10)] and not run.model.training
    assert run.config.model._target_.endswith("LeNet5")
    run.datamodule.setup("test")
    images, labels = run.datamodule.splits["test"][list(range(16))]
    assert run.preprocess(images).shape == (16, 1, 32, 32)  # MNIST padded to LeNet-5's 32x32
    from_tensors = run.predict(images, topk=2)
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(image[0].numpy()).save(paths[-1])
    from_files = run.predict(paths, topk=2)
    assert [top[0][0] for top in from_files] == [top[0][0] for top in from_tensors]
    assert all(len(top) == 2 and top[0][1] >= top[1][1] for top in from_files)
    correct = sum(int(top[0][0]) == int(label) for top, label in zip(from_files, labels, strict=True))
    assert correct >= 8


def test_train_answers_a_mistake_as_the_cli_does(tmp_path):
    with pytest.raises(UserError, match="pooling=mean is not a choice; allowed: avg, max, min"):
        train(["pooling=mean"], output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_project_package_stays_light():
    """`import src` (every command does) does not import torch for the API: its load_run is lazy."""
    import subprocess
    import sys

    code = "import src, sys; assert 'torch' not in sys.modules; print(callable(src.load_run))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
