"""src.export: the network with its preprocessing folded in, as ONNX (checked with onnxruntime) or
torch.export's pt2, equal to the checkpoint's PyTorch output within 1e-4 and in every argmax."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from src import export as export_module
from src.export import main as export_main
from src.runs.rundir import RunDir
from src.runs.trained import load_trained
from src.train import train
from src.utils.errors import UserError
from tests.conftest import SHARED_DATA, compose_train_config, fast_overrides, make_tiny_mnist, run_cli
from tests.tiny_data import make_tiny_cifar, make_tiny_flowers

QUIET = ["trainer.max_epochs=1", "logger=none", "callbacks.input_grid=null", "callbacks.feature_maps=null",
         "callbacks.filters=null", "test=false"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("export") / "data")


def trained_run(data: Path, root: Path, *overrides: str) -> Path:
    train(compose_train_config([*fast_overrides(data, root), *QUIET, *overrides], root / "run"))
    return root / "run"


@pytest.mark.slow
@pytest.mark.parametrize("padding", ["valid", "same", "paper"])
@pytest.mark.parametrize("pooling", ["max", "avg", "min"])
def test_onnx_of_lenet5_under_every_pooling_and_padding(data, tmp_path, capsys, pooling, padding):
    import onnxruntime

    run = trained_run(data, tmp_path, f"pooling={pooling}", f"padding={padding}")
    export_main([str(run)])
    assert "the same class for every one" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    _, datamodule, module, _ = load_trained(RunDir(run))
    datamodule.setup("test")
    images, _ = datamodule.splits["test"][list(range(5))]  # another batch size than the export's
    with torch.no_grad():
        expected = module(datamodule.to_model_input(images, train=False)).softmax(dim=-1).numpy()
    got = session.run(None, {"pixels": (images.float() / 255).numpy()})[0]
    assert got.shape == (5, 10) and np.abs(got - expected).max() <= 1e-4
    assert (run / "model.safetensors").is_file()


def test_pt2_export_and_its_weights(data, tmp_path, capsys):
    from safetensors.torch import load_file

    run = trained_run(data, tmp_path)
    out = tmp_path / "lenet5.pt2"
    export_main([str(run), "format=pt2", f"out={out}"])
    assert f"wrote {out}" in capsys.readouterr().out
    program = torch.export.load(str(out)).module()
    pixels = torch.rand(3, 1, 28, 28)  # pixels at MNIST's stored size, any batch
    probabilities = program(pixels)
    assert probabilities.shape == (3, 10) and torch.allclose(probabilities.sum(dim=1), torch.ones(3))
    _, _, module, _ = load_trained(RunDir(run))
    weights = load_file(str(out.with_suffix(".safetensors")))
    assert weights.keys() == module.model.state_dict().keys()


def test_a_difference_beyond_the_tolerance_writes_nothing(data, tmp_path, monkeypatch):
    run = trained_run(data, tmp_path)
    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)  # every export now "differs"
    with pytest.raises(UserError, match="differs from the checkpoint"):
        export_module.export(run, "pt2")
    assert not (run / "model.pt2").exists() and not (run / "model.safetensors").exists()


def test_export_without_its_packages_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    with pytest.raises(UserError, match="format=onnx needs onnx: install them with uv sync --extra export"):
        export_module.parse(["somewhere"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}", "format=tflite"], "format=tflite is not a choice; allowed: onnx, pt2"),
        (["{tmp}", "size=3"], "size=3 is not an option"),
        (["{tmp}"], str(Path("{tmp}"))),  # not a run directory
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = run_cli("src.export", *(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message.format(tmp=tmp_path) in lines[0], result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("source", ["tiny", "real"])
def test_onnx_of_lenet5_on_cifar10_with_its_flip_averaged_test(tmp_path, capsys, source):
    """LeNet-5 on CIFAR-10 (tiny stand-in, and the real archive when it is there), tested flip-averaged
    (and, on the tiny stand-in, with shifted copies too): the export takes 3x32x32 pixels, folds the
    average over the six views in, and matches the checkpoint."""
    import onnxruntime

    data = make_tiny_cifar(tmp_path / "data") if source == "tiny" else SHARED_DATA
    if not (data / "cifar-10-python.tar.gz").exists():
        pytest.skip(f"real CIFAR-10 not found in {SHARED_DATA} (set DATA_DIR)")
    base = [o for o in fast_overrides(data, tmp_path) if not o.startswith("data.val_size")]
    cifar = ["data=cifar10", "data.flip_eval=true", "+trainer.limit_train_batches=20"]
    cifar += ["data.val_size=20", "data.shift_eval=1"] if source == "tiny" else []
    train(compose_train_config([*base, *QUIET, *cifar], tmp_path / "run"))
    export_main([str(tmp_path / "run")])
    assert "the same class for every one" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(
        str(tmp_path / "run" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    probabilities = session.run(None, {"pixels": np.random.rand(3, 3, 32, 32).astype(np.float32)})[0]
    assert probabilities.shape == (3, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


ALEXNETS = {
    "alexnet_lrn_groups2": ["model=alexnet", "model.groups=2"],
    "alexnet_bn_ten_crops": ["model=alexnet_bn", "data.ten_crop_test=true"],
}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(ALEXNETS))
def test_onnx_of_alexnet_on_flowers17(tmp_path, capsys, monkeypatch, model):
    """AlexNet (LRN, the paper's two-GPU groups) and AlexNet-BN tested on ten crops, on tiny Flowers-17
    (224/227 crops of the 256x256 images, inside the export), one training batch: the export matches the
    checkpoint."""
    data = make_tiny_flowers(tmp_path / "data", textured=True)
    base = [o for o in fast_overrides(data, tmp_path) if not o.startswith("data.val_size")]
    limits = ["data=flowers17", "data.batch_size=8", "data.eval_batch_size=64",
              "+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1"]  # fmt: skip
    train(compose_train_config([*base, *QUIET, *limits, *ALEXNETS[model]], tmp_path / "run"))
    monkeypatch.setattr(export_module, "CHECKED_IMAGES", 32)  # AlexNet on 10 crops: 32 images are enough
    export_main([str(tmp_path / "run")])
    assert "the same class for every one" in capsys.readouterr().out
    assert (tmp_path / "run" / "model.onnx").is_file()
