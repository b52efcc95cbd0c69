"""src/runs/rundir.py names a run's files; conf/ tells the writers (Lightning, the TensorBoard logger)
where to put them: both must agree."""

from __future__ import annotations

from pathlib import Path

from src.runs.rundir import RunDir
from tests.conftest import compose_train_config


def test_the_writers_in_conf_use_the_run_directorys_names(tmp_path):
    cfg = compose_train_config(["logger=tensorboard", "callbacks=default"], tmp_path)
    run = RunDir(tmp_path)
    assert Path(cfg.callbacks.model_checkpoint.dirpath) == run.checkpoints
    logger = cfg.logger.tensorboard
    assert Path(logger.save_dir) / logger.name / str(logger.version) == run.tensorboard
