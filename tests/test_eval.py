"""src.eval: a finished run evaluated again from its own config and best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.eval import main as eval_main
from src.train import train
from tests.conftest import compose_train_config, fast_overrides, make_tiny_mnist, run_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    data = make_tiny_mnist(root / "data")
    overrides = [*fast_overrides(data, root), "trainer.max_epochs=2", "padding=same", "logger=none"]
    overrides += ["callbacks.input_grid=null", "callbacks.feature_maps=null", "callbacks.filters=null"]
    train(compose_train_config(overrides, root / "run"))
    return root / "run"


def test_eval_reproduces_the_runs_test_accuracy(run_dir):
    saved = json.loads((run_dir / "metrics.json").read_text())
    result = run_cli("src.eval", str(run_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads((run_dir / "eval_test.json").read_text())
    assert written["accuracy"] == pytest.approx(saved["metrics"]["test/acc"], abs=1e-6)
    assert written["checkpoint"] == saved["tested_checkpoint"]
    matrix = written["confusion_matrix"]
    assert written["total"] == sum(map(sum, matrix)) == 64  # the tiny test set
    assert written["correct"] == sum(matrix[i][i] for i in range(10))
    assert list(written["per_class_accuracy"]) == [str(d) for d in range(10)]
    assert f"test accuracy {written['accuracy']:.4f}" in result.stdout and "confusion matrix" in result.stdout


def test_eval_other_split_and_last_checkpoint(run_dir, tmp_path, capsys):
    eval_main([str(run_dir), "split=val", "data.eval_batch_size=7"])  # in-process: quicker than the CLI
    assert "val accuracy" in capsys.readouterr().out
    assert json.loads((run_dir / "eval_val.json").read_text())["total"] == 64  # data.val_size
    eval_main([str(run_dir), "split=val", "data.shift_eval=2"])  # each image and two shifted copies
    assert json.loads((run_dir / "eval_val.json").read_text())["total"] == 64
    eval_main([str(run_dir), "split=train"])  # the training images, in order, without augmentation
    trained = json.loads((run_dir / "eval_train.json").read_text())
    assert trained["total"] == 256 - 64 and trained["accuracy"] > 0.5  # what was not held out; learnable
    # a copy without metrics.json falls back to checkpoints/last.ckpt
    copy = tmp_path / "copy"
    (copy / "checkpoints").mkdir(parents=True)
    (copy / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    (copy / "checkpoints" / "last.ckpt").write_bytes((run_dir / "checkpoints" / "last.ckpt").read_bytes())
    eval_main([str(copy)])
    assert json.loads((copy / "eval_test.json").read_text())["checkpoint"].endswith("last.ckpt")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "is not a directory"),
        (["{empty}"], "is not a run directory: it has no config.yaml"),
        (["{run}", "split=holdout"], "split=holdout is not a choice; allowed: test, val, train"),
        (["{run}", "data.bogus=1"], "data.bogus is not a key of the run's config"),
        (["{run}", "data.shift_eval=9"], "data.shift_eval=9 is out of range: must be an integer from 0 to 8"),
    ],
)
def test_bad_input_is_one_line_exit_2(run_dir, tmp_path, capsys, args, message):
    paths = {"missing": tmp_path / "missing", "empty": tmp_path, "run": run_dir}
    with pytest.raises(SystemExit) as exit_info:
        eval_main([a.format(**paths) for a in args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
