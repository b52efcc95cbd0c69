"""Export a trained run's network with its preprocessing folded in: `python -m src.export <run dir>`.

    python -m src.export outputs/train/runs/<time>                    # ONNX: <run dir>/model.onnx
    python -m src.export <run dir> format=pt2 out=lenet5.pt2          # torch.export's format

The exported model takes a float32 batch (N, C, H, W) of pixels in [0, 1] at the dataset's stored size
(1x28x28 for MNIST, 3x32x32 for CIFAR-10, 3x256x256 for Flowers-17), any N, and returns class
probabilities: the run's test-time conversion (padding, resizing, normalisation, the centre crop, or
Flowers-17's ten crops with `data.ten_crop_test=true`, flip-averaging with `data.flip_eval=true`) is
inside. The weights are also written as safetensors beside it. Before it finishes, the exported model runs
on the run's test images and must match the checkpoint's PyTorch output within 1e-4, with the same
argmax everywhere, else one error line and no file. Needs the `export` extra (onnx, onnxruntime,
onnxscript, safetensors).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.runs.rundir import RunDir
from src.runs.trained import load_trained
from src.utils.errors import UserError, user_errors

FORMATS = ("onnx", "pt2")
PACKAGES = {"onnx": ("onnx", "onnxscript", "onnxruntime", "safetensors"), "pt2": ("safetensors",)}
TOLERANCE = 1e-4
CHECKED_IMAGES = 256  # the test images the export is checked on
USAGE = "usage: python -m src.export <run dir> [format=onnx|pt2] [out=FILE]"
INSTALL = "uv sync --extra export (or make test, which installs every extra)"


def parse(argv: Sequence[str]) -> tuple[Path, dict[str, str]]:
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        raise SystemExit(0)
    if flags := [arg for arg in argv if arg.startswith("-")]:
        raise UserError(f"{' '.join(flags)} is not an option; {USAGE}")
    if not argv:
        raise UserError(USAGE)
    options = {}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or key not in ("format", "out"):
            raise UserError(f"{arg} is not an option; allowed: format=onnx|pt2, out=FILE")
        options[key] = value
    chosen = options.setdefault("format", "onnx")
    if chosen not in FORMATS:
        raise UserError(f"format={chosen} is not a choice; allowed: {', '.join(FORMATS)}")
    missing = [p for p in PACKAGES[chosen] if importlib.util.find_spec(p) is None]
    if missing:
        raise UserError(f"format={chosen} needs {', '.join(missing)}: install them with {INSTALL}")
    return Path(argv[0]).expanduser(), options


def with_preprocessing(module: Any, datamodule: Any) -> Any:
    """The network as an nn.Module from pixels in [0, 1] at the stored size to class probabilities."""
    import torch  # deferred: imports torch (the command line is checked before)

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.module(datamodule.pixels_to_model_input(pixels, test_view=True)).softmax(dim=-1)

    return Exported().eval()


def export(run_dir: Path, chosen: str = "onnx", out: Path | None = None) -> tuple[Path, Path, float]:
    """Write the exported model and its safetensors weights; (model file, weights file, largest difference
    from the checkpoint's output on the test images)."""
    run = RunDir(run_dir)
    run.read_config()  # not a run directory: one line, before torch
    # deferred: torch and safetensors (the mistakes above are answered before they are imported)
    import torch
    from safetensors.torch import save_file

    _, datamodule, module, _ = load_trained(run)
    model = with_preprocessing(module, datamodule)
    datamodule.setup("test")
    test = datamodule.splits["test"]
    images, _ = test[list(range(min(CHECKED_IMAGES, len(test))))]
    pixels = images.float() / 255
    with torch.no_grad():
        expected = model(pixels)
    out = out or run_dir / f"model.{chosen}"
    batch = torch.export.Dim("batch", min=1)
    if chosen == "onnx":
        torch.onnx.export(model, (pixels[:2],), str(out), dynamo=True, dynamic_shapes={"pixels": {0: batch}},
                          input_names=["pixels"], output_names=["probabilities"], verbose=False)  # fmt: skip
        got = onnx_output(out, pixels)
    else:
        program = torch.export.export(model, (pixels[:2],), dynamic_shapes={"pixels": {0: batch}})
        torch.export.save(program, str(out))
        with torch.no_grad():
            got = torch.export.load(str(out)).module()(pixels)
    difference = float((got - expected).abs().max())
    if difference > TOLERANCE or not torch.equal(got.argmax(dim=1), expected.argmax(dim=1)):
        out.unlink(missing_ok=True)
        allowed = f"allowed {TOLERANCE:g}, and the same class for every test image"
        raise UserError(f"the exported model differs from the checkpoint by {difference:.2e} ({allowed})")
    weights = out.with_suffix(".safetensors")
    save_file({k: v.contiguous() for k, v in module.model.state_dict().items()}, str(weights))
    return out, weights, difference


def onnx_output(path: Path, pixels: Any) -> Any:
    # deferred: onnxruntime and torch, only for this check
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"pixels": pixels.numpy()})[0])


def main(argv: Sequence[str] | None = None) -> None:
    with user_errors():
        run_dir, options = parse(sys.argv[1:] if argv is None else argv)
        out = Path(options["out"]).expanduser() if "out" in options else None
        model, weights, difference = export(run_dir, options["format"], out)
        print(f"wrote {model} and {weights}; largest difference from the checkpoint on the test images "
              f"{difference:.1e}, the same class for every one")  # fmt: skip


if __name__ == "__main__":
    main()
