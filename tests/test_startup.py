"""Start-up: what a command imports before it answers (no timings here: `python -m bench startup`).

Each command runs in a fresh interpreter, as `python -m <module> <args>` would (runpy), and writes the
names in sys.modules when it ends, however it ends; the tests read that list. (`python -X importtime`
would not do: it does not list modules loaded with importlib.import_module, as Lightning and Hydra load
torchmetrics and the `_target_` classes.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from src.config.compose import PROJECT_ROOT
from tests.conftest import fast_overrides
from tests.tiny_data import make_tiny_mnist

HEAVY = ("torch", "lightning", "torchvision", "torchmetrics", "numpy")
PROBE = """
import json, runpy, sys
out, sys.argv = sys.argv[1], sys.argv[2:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
finally:
    with open(out, "w") as handle:
        json.dump(sorted(sys.modules), handle)
"""


def run_fresh(
    tmp_path: Path, module: str, *args: str
) -> tuple[subprocess.CompletedProcess, list[str], set[str]]:
    """Run `python -m module args` in a new interpreter: the result, its stderr lines, sys.modules at exit."""
    out = tmp_path / "modules.json"
    out.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), module, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    messages = [line for line in result.stderr.splitlines() if line.strip()]
    return result, messages, set(json.loads(out.read_text()))


def mistakes(tmp_path: Path) -> list[tuple[list[str], str]]:
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    return [
        (["pooling=median"], "error: pooling=median is not a choice; allowed: avg, max, min"),
        (["padding=full"], "error: padding=full is not a choice; allowed: paper, same, valid"),
        (["trainer=cpu"], "error: trainer=cpu was renamed: use trainer=default (the default)"),
        (
            ["experiment=seed_lenet5_mnist"],
            "error: experiment=seed_lenet5_mnist was renamed: use experiment=sheet_lenet5_mnist",
        ),
        (["model=lenet"], "error: model=lenet is not a choice; allowed: alexnet, alexnet_bn, lenet5"),
        (["model.input_size=8"], "error: input 8x8 is too small: the feature map vanishes at layer conv2"),
        (
            ["model=alexnet", "model.input_size=32"],
            "error: input 32x32 is too small: the feature map vanishes",
        ),
        (["trainer.max_epoch=3"], "error: Could not override 'trainer.max_epoch'"),
        (["data.batch_size=abc"], "error: data.batch_size=abc is not an integer: must be an integer >= 1"),
        (["optimizer.lr=-1"], "error: optimizer.lr=-1 is out of range: must be > 0"),
        (["experiment=lenet5_mnist", "scheduler.max_lr=0"], "error: scheduler.max_lr=0 is out of range"),
        (["model.activation_fn=swish"], "error: activation='swish' is not supported; choose one of:"),
        (["model.norm=lrn"], "error: model.norm='lrn' is not supported; choose one of: none, batch"),
        (["+model.width=2"], "error: LeNet5.__init__() got an unexpected keyword argument 'width'"),
        ([f"resume={empty}"], f"error: resume={empty} is not a run directory"),
        (
            ["hparams_search=lenet5_optuna", "optimized_metric=val/accuracy"],
            "error: optimized_metric=val/accuracy is never logged; logged: train/loss",
        ),
        # Hydra's own flags, by Hydra's rules (src/config/flags.py)
        (["--frobnicate"], "error: --frobnicate is not a flag of Hydra's; flags: [--help] [--hydra-help]"),
        (["--cfg", "jobs"], "error: argument --cfg/-c: invalid choice: 'jobs' (choose from 'job', 'hydra'"),
        (["-m", "--cfg", "hydra", "model=lenet5"], "error: --multirun (-m) and --cfg cannot be combined"),
        (["--cfg", "job", "-m"], "error: --multirun (-m) and --cfg cannot be combined: give one of --run"),
        (["--resolve"], "error: --resolve goes with --cfg (or --help): e.g. --cfg job --resolve"),
        (
            ["--cfg", "hydra", "--resolve"],
            "error: --cfg hydra --resolve cannot resolve hydra.run.dir: it names paths.log_dir, which is in "
            "the job's config and --cfg hydra leaves that out; pass --cfg all --resolve --package hydra",
        ),
        (
            ["--cfg", "job", "--resolve", "+extra=${nowhere.key}"],
            "error: --cfg job --resolve cannot resolve extra: nowhere.key is not in the config; set it",
        ),
        (["--cfg", "job", "-p", "nothere"], "error: --package nothere is not in the config --cfg job prints"),
        (["--cfg", "job", "data=foo"], "error: data=foo is not a choice; allowed: cifar10, flowers17"),
        (["model=lenet5", "--cfg", "job"], "error: data.download=false comes after a flag: Hydra reads"),
        (
            ["-sc", "install=bash"],
            "error: shell completion needs the installed command: cnn-train -sc install=bash",
        ),
        (["-sc", "install=tcsh"], "error: -sc install=tcsh: no completion for tcsh; shells: bash, fish, zsh"),
        (["-sc"], "error: -sc takes one of install=bash|fish|zsh, uninstall=bash|fish|zsh, query="),
    ]


def test_mistakes_are_answered_before_torch_or_lightning_is_imported(tmp_path):
    failures = []
    for args, message in mistakes(tmp_path):
        result, messages, modules = run_fresh(tmp_path, "src.train", *args, "data.download=false")
        if result.returncode != 2 or not messages or not messages[-1].startswith(message):
            failures.append(f"{args}: exit {result.returncode}, {messages[-3:]}")
        elif heavy := sorted(module for module in modules if module.split(".")[0] in HEAVY):
            failures.append(f"{args}: imported {heavy} before answering")
    assert not failures, "\n".join(failures)


def test_a_gpu_check_still_reads_torch_and_names_the_machine(tmp_path):
    """The one check that needs torch imports it only when the config asks for a GPU."""
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result, messages, modules = run_fresh(tmp_path, "src.train", "trainer=gpu", "data.download=false")
    assert result.returncode == 2 and "trainer.accelerator=gpu is not available" in messages[-1]
    assert "torch" in modules and "lightning" not in modules


def test_a_fast_dev_run_imports_only_what_it_uses(tmp_path):
    data = make_tiny_mnist(tmp_path / "data")
    result, messages, modules = run_fresh(
        tmp_path, "src.train", *fast_overrides(data, tmp_path), "debug=fast"
    )
    assert result.returncode == 0, messages[-5:]
    assert {"torch", "lightning", "torchmetrics", "src.training.module"} <= modules
    # no figure, no logger (fast_dev_run), no sweep, and MNIST is read without torchvision;
    # torchmetrics' own optional imports of these are skipped (src/lightning_ext/lean_imports.py)
    unused = ("torchvision", "matplotlib", "tensorboard", "scipy", "optuna", "joblib", "pandas")
    assert not sorted(module for module in modules if module.split(".")[0] in unused)


def test_missing_data_is_reported_before_the_model_and_trainer_are_built(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result, messages, modules = run_fresh(tmp_path, "src.train", *fast_overrides(empty, tmp_path))
    assert result.returncode == 2
    assert re.match(r"error: MNIST not found: expected train-images-idx3-ubyte", messages[-1]), messages[-3:]
    # the LightningModule, callbacks and loggers were never instantiated
    assert not modules & {
        "src.training.module",
        "src.training.insight",
        "src.lightning_ext.progress",
        "src.lightning_ext.checkpoints",
    }


def test_summary_imports_torch_but_not_lightning_or_the_compiler(tmp_path):
    result, messages, modules = run_fresh(tmp_path, "src.summary", "model=lenet5")
    assert result.returncode == 0 and "Total params: 61,706" in result.stdout
    assert "torch" in modules
    assert not modules & {"lightning", "torchmetrics", "torchvision", "torch._dynamo", "sympy", "matplotlib"}


def test_torchmetrics_sees_its_optional_packages_as_absent():
    """src/lightning_ext/lean_imports.py's hook is installed by `import src` (conftest.py imported it before
    anything imported torchmetrics); if torchmetrics renames these flags, this fails."""
    import torchmetrics.utilities.imports as flags
    from torchmetrics import MaxMetric
    from torchmetrics.classification import MulticlassAccuracy

    assert not flags._TORCHVISION_AVAILABLE and not flags._MATPLOTLIB_AVAILABLE and not flags._SCIPI_AVAILABLE
    assert flags._SCIPY_AVAILABLE  # the other flags keep their answers
    # the metrics this project uses work as before
    import torch

    accuracy = MulticlassAccuracy(3, average="micro", validate_args=False)
    accuracy.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]))
    best = MaxMetric()
    best.update(accuracy.compute())
    assert float(best.compute()) == pytest.approx(0.75)
