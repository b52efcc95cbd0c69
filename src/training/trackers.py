"""Experiment trackers beside TensorBoard: Weights & Biases and MLflow (`logger=wandb`, `logger=mlflow`,
both in `logger=many`; conf/logger/wandb.yaml and mlflow.yaml).

Their packages are the optional `trackers` extra; `check_packages` (called by src/config/check.py before
torch is imported) answers a tracker chosen without its package in one line. Both run without a
server: W&B offline into `<run dir>/wandb/`, MLflow into one SQLite store under `<paths.log_dir>/mlflow/`.
From global rank 0 they get Lightning's scalars, the resolved config (`log_config`), the insight
figures (`log_image`, `log_text`) and the final result (`log_result`); one tracker run per Hydra job
(`run_name`), grouped by sweep. Nothing heavy is imported with this module (tests/test_startup.py).
What reaches each tracker, and where: docs/trackers.md.
"""

from __future__ import annotations

import contextlib
import html
import importlib.util
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from src.lightning_ext.loggers import drop_anonymous
from src.training.distributed import launch_rank
from src.training.hparams import flat_hparams
from src.utils.errors import ConfigError, UserError

if TYPE_CHECKING:
    import lightning as L

EXTRA = "trackers"
INSTALL = f"uv sync --extra {EXTRA}"
# The last part of a logger's `_target_` -> the package it needs: this module's factories, or Lightning's
# own classes named directly in a config.
PACKAGES = {"wandb_logger": "wandb", "WandbLogger": "wandb"}
PACKAGES |= {"mlflow_logger": "mlflow", "MLFlowLogger": "mlflow"}
# Overrides that say where files are rather than what runs: left out of a tracker run's name.
WHERE = ("data.data_dir=", "paths.", "hydra.", "ckpt_path=", "resume=")
# W&B's own state (cache, settings, staging) when it runs offline: beside the runs, not in $HOME.
WANDB_STATE = {"WANDB_CACHE_DIR": "cache", "WANDB_CONFIG_DIR": "config", "WANDB_DATA_DIR": "data"}
WANDB_STATE |= {"WANDB_ARTIFACT_DIR": "artifacts"}


# ------------------------------------------------------------------------------------ the packages
def installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken parent package
        return False


def missing_message(missing: Sequence[tuple[str, str]]) -> str:
    needs = ", ".join(f"logger.{name} needs the {package} package" for name, package in missing)
    return (
        f"{needs}, which is not installed: the trackers are an optional extra, install it with "
        f"`{INSTALL}` (or `make setup-trackers`)"
    )


def check_packages(cfg: DictConfig) -> None:
    """One ConfigError line when a chosen logger needs a tracker package that is not installed (a
    `find_spec` lookup: nothing is imported)."""
    loggers = cfg.get("logger")
    if not isinstance(loggers, DictConfig):
        return
    missing = []
    for name, node in loggers.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            package = PACKAGES.get(str(node._target_).rsplit(".", 1)[-1])
            if package and not installed(package):
                missing.append((str(name), package))
    if missing:
        raise ConfigError(missing_message(missing))


def _require(package: str, name: str) -> None:
    if not installed(package):
        raise UserError(missing_message([(name, package)]))


# ------------------------------------------------------------------------------------ names, groups
@dataclass(frozen=True)
class Job:
    name: str  # the tracker run's name
    sweep: str | None  # the sweep's directory in a multirun, else None
    parent: str  # the directory holding the run's directory
    output_dir: str


def _shown(path: Path, cwd: Path) -> str:
    """A directory as the user sees it: relative to where the command ran, when it is below it."""
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def run_name(overrides: Sequence[str], fallback: str) -> str:
    """A job's overrides without the ones that only say where files are, e.g. `pooling=min padding=same`
    (`fallback`, the run directory's name, for a run without any)."""
    kept = [override for override in overrides if not override.lstrip("+~").startswith(WHERE)]
    return " ".join(kept) or fallback


def hydra_job() -> Job:
    """The name and the grouping of this Hydra job's tracker run."""
    if not HydraConfig.initialized():
        cwd = Path.cwd()
        return Job(name=cwd.name, sweep=None, parent=_shown(cwd, cwd), output_dir=str(cwd))
    hydra_cfg = cast(DictConfig, HydraConfig.get())  # typed as its dataclass, read as a DictConfig
    cwd = Path(OmegaConf.select(hydra_cfg, "runtime.cwd", default=None) or os.getcwd())
    output_dir = Path(hydra_cfg.runtime.output_dir)
    sweep_dir = OmegaConf.select(hydra_cfg, "sweep.dir", default=None)
    sweep = None
    if OmegaConf.select(hydra_cfg, "mode", default=None) == RunMode.MULTIRUN and sweep_dir:
        sweep = _shown(Path(sweep_dir), cwd)
    overrides = OmegaConf.select(hydra_cfg, "overrides.task", default=None) or []
    return Job(
        name=run_name(list(overrides), output_dir.name),
        sweep=sweep,
        parent=sweep or _shown(output_dir.parent, cwd),
        output_dir=str(output_dir),
    )


def _launch_rank() -> int:
    return launch_rank()


# ------------------------------------------------------------------------------------ the loggers
def wandb_logger(
    *,
    save_dir: str,
    offline: bool = True,
    state_dir: str | None = None,
    name: str | None = None,
    group: str | None = None,
    settings: Mapping[str, Any] | None = None,
    **kwargs: Any,
):
    """Lightning's WandbLogger for this job: the run in `<save_dir>/wandb/`, named after the job's
    overrides, grouped by sweep. Offline (the default), W&B's cache, settings and staging directories
    go below `state_dir` unless WANDB_*_DIR already name them; online, W&B's own defaults (and your
    `wandb login`) apply. `settings` go to wandb.init (by default: no console capture, no banner)."""
    _require("wandb", "wandb")
    from lightning.pytorch.loggers import WandbLogger  # deferred: Lightning and wandb, only for this logger

    if offline and state_dir:
        for variable, folder in WANDB_STATE.items():
            os.environ.setdefault(variable, str(Path(state_dir) / folder))
    job = hydra_job()
    logger = WandbLogger(
        name=name or job.name,
        group=group or job.sweep,
        save_dir=save_dir,
        offline=offline,
        settings={"silent": True, "console": "off", **(settings or {})},
        **kwargs,
    )
    return drop_anonymous(logger)  # no deprecation warning from W&B (src/lightning_ext/loggers.py)


def local_store(tracking_uri: str) -> Path | None:
    """The file of a local SQLite store (`sqlite:///<path>`) or the folder of a file store, else None
    (a server)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :])
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "file" or (not parsed.scheme and not tracking_uri.startswith("databricks")):
        return Path(unquote(parsed.path))
    return None


@contextlib.contextmanager
def store_lock(store: Path | None) -> Iterator[None]:
    """Serialise the creation of a local store and its experiments across processes (parallel jobs of
    a sweep, DDP ranks started together): SQLite itself is safe, MLflow's first-time set-up of the
    tables and its get-or-create of an experiment are not."""
    if store is None:
        yield
        return
    # deferred: filelock (~60 ms), only for a local MLflow store
    from filelock import FileLock  # flock on POSIX, LockFileEx on Windows: dropped when the holder dies

    store.parent.mkdir(parents=True, exist_ok=True)  # SQLite does not create folders
    with FileLock(store.parent / f".{store.name}.lock"):  # waits for the process holding it
        yield


def mlflow_logger(
    *,
    tracking_uri: str,
    experiment_name: str | None = None,
    run_name: str | None = None,
    artifact_location: str | None = None,
    tags: Mapping[str, Any] | None = None,
    **kwargs: Any,
):
    """Lightning's MLFlowLogger for this job: its experiment is the sweep (or the runs' parent folder),
    the run is named after the job's overrides and tagged with its directory. A local store gets its
    artifacts (images, text) in `artifacts/` beside it unless `artifact_location` says otherwise."""
    _require("mlflow", "mlflow")
    from lightning.pytorch.loggers import MLFlowLogger  # deferred: Lightning and mlflow, only for this logger

    # MLflow's first use of a store logs every migration step at INFO; keep the console to the run
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.db.db_types"):
        logging.getLogger(name).setLevel(logging.WARNING)
    job = hydra_job()
    store = local_store(tracking_uri)
    if artifact_location is None and store is not None:
        artifact_location = (store.parent / "artifacts").resolve().as_uri()
    experiment_name = experiment_name or job.parent
    with store_lock(store):
        logger = MLFlowLogger(
            experiment_name=experiment_name,
            run_name=run_name or job.name,
            tracking_uri=tracking_uri,
            artifact_location=artifact_location,
            tags={"run_dir": job.output_dir, **(tags or {})},
            **kwargs,
        )
        if _launch_rank() == 0:  # create the experiment now, under the lock (Lightning finds it later)
            from mlflow.tracking import MlflowClient  # deferred: mlflow, only for this logger

            client = MlflowClient(tracking_uri)  # the store MLFlowLogger has just opened
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                client.create_experiment(experiment_name, artifact_location=artifact_location)
            elif experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
    return logger


# ------------------------------------------------------------------------------------ logging
def _classes() -> tuple[Any, Any]:
    from lightning.pytorch.loggers import MLFlowLogger, WandbLogger  # deferred: Lightning

    return WandbLogger, MLFlowLogger


def trackers(trainer: L.Trainer) -> list[Any]:
    """The run's W&B and MLflow loggers."""
    wandb_class, mlflow_class = _classes()
    return [logger for logger in trainer.loggers if isinstance(logger, wandb_class | mlflow_class)]


def on_rank_zero(trainer: L.Trainer) -> bool:
    """Global rank 0, also before fit has set up the ranks (the main process of node 1 of a multi-node
    run launched by hand thinks it is rank 0 until then: src.training.distributed.launch_rank knows
    better)."""
    return trainer.is_global_zero and _launch_rank() == 0


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def _flatten(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            if not str(key).startswith("_"):  # _target_, _partial_: the class is named by its group
                yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), _scalar(node)


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as one flat dict, in order: TensorBoard's HParams
    (src.training.hparams.flat_hparams:
    the group choices model, data, pooling, padding, optimizer, scheduler, experiment, then what tells
    runs apart), the other group choices (trainer, logger, callbacks, ...), then every other key, dotted
    (`trainer.max_epochs`, `data.val_size`, `paths.output_dir`, ...)."""
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    params = flat_hparams(cfg, choices)
    for group, choice in choices.items():
        if not group.startswith("hydra") and group not in params:
            params[group] = "none" if choice is None else str(choice)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)  # of a DictConfig
    resolved.pop("hydra", None)
    for key, value in _flatten(resolved):
        params.setdefault(key, value)
    return params


def log_config(trainer: L.Trainer, cfg: DictConfig) -> None:
    """The run's resolved config as every tracker's hyper-parameters (W&B's config, MLflow's params)."""
    active = trackers(trainer)
    if not active or not on_rank_zero(trainer):
        return
    params = hyperparameters(cfg)
    for logger in active:
        logger.log_hyperparams(params)


def _hwc_uint8(image: Any):
    """A (C, H, W) image, uint8 or float in [0, 1], as the (H, W, C) uint8 array the trackers take;
    floats are scaled as TensorBoard's add_image scales them."""
    import torch  # deferred: torch, only when an image is logged

    image = image.detach().cpu()
    if image.dtype != torch.uint8:
        image = (image.float() * 255).clamp(0, 255).to(torch.uint8)
    if image.ndim == 3:
        image = image.permute(1, 2, 0)
        if image.shape[-1] == 1:
            image = image[..., 0]
    return image.contiguous().numpy()


def _mlflow_key(tag: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_\-./ ]", "_", tag)


def log_image(logger: Any, tag: str, image: Any, step: int) -> None:
    """One image to a tracker: W&B's `log_image` (under `tag`, at `trainer/global_step`), MLflow's
    step-indexed image of key `tag` (the run's Artifacts, images/)."""
    wandb_class, _ = _classes()
    array = _hwc_uint8(image)
    if isinstance(logger, wandb_class):
        logger.log_image(key=tag, images=[array], step=step)
    else:
        logger.experiment.log_image(logger.run_id, array, key=_mlflow_key(tag), step=step, synchronous=True)


def log_text(logger: Any, tag: str, text: str, step: int) -> None:
    """A text to a tracker: W&B an HTML panel, MLflow an artifact `<tag>.txt`."""
    wandb_class, _ = _classes()
    plain = text.replace("  \n", "\n")  # TensorBoard's markdown line breaks
    if isinstance(logger, wandb_class):
        import wandb  # deferred: wandb, only for its logger

        logger.log_metrics({tag: wandb.Html(f"<pre>{html.escape(plain)}</pre>", inject=False)}, step=step)
    else:
        logger.experiment.log_text(logger.run_id, plain, f"{_mlflow_key(tag)}.txt")


def log_result(trainer: L.Trainer, result: Mapping[str, Any]) -> None:
    """The end of a run, once, to every tracker: its final metrics (those of metrics.json), epochs,
    fit time and parameter count, and the best and the tested checkpoint's paths. W&B: the run's
    summary. MLflow: metrics (the ones its history does not already end with) and tags."""
    active = trackers(trainer)
    if not active or not on_rank_zero(trainer):
        return
    final = {key: float(value) for key, value in result["metrics"].items()}
    final |= {key: float(result[key]) for key in ("epochs", "fit_seconds", "params") if key in result}
    from src.lightning_ext.checkpoints import checkpoint_paths  # deferred: imports Lightning

    paths = {
        "best_checkpoint": checkpoint_paths(trainer)[0] or None,
        "tested_checkpoint": result.get("tested_checkpoint"),
    }
    paths = {key: str(value) for key, value in paths.items() if value}
    wandb_class, _ = _classes()
    for logger in active:
        if isinstance(logger, wandb_class):
            logger.experiment.summary.update({**final, **paths})
            continue
        from mlflow.entities import Metric, RunTag  # deferred: mlflow, only for its logger

        client, run_id, now = logger.experiment, logger.run_id, int(time.time() * 1000)
        latest = client.get_run(run_id).data.metrics
        metrics = [
            Metric(key, value, now, trainer.global_step)
            for key, value in final.items()
            if latest.get(key) != value
        ]
        tags = [RunTag(key, value) for key, value in paths.items()]
        client.log_batch(run_id, metrics=metrics, tags=tags, synchronous=True)


def close(trainer: L.Trainer, failed: bool) -> None:
    """End this job's tracker runs: W&B's run finishes (so the next job of a multirun in this process
    starts its own), MLflow's is marked FINISHED or FAILED."""
    if not on_rank_zero(trainer):
        return
    wandb_class, _ = _classes()
    for logger in trackers(trainer):
        if isinstance(logger, wandb_class):
            run = getattr(logger, "_experiment", None)  # None: the run never started
            if run is not None:  # kept, finished: a stray later call fails instead of starting a run
                run.finish(exit_code=1 if failed else 0)
        else:
            logger.finalize("failed" if failed else "success")


@contextlib.contextmanager
def closing(trainer: L.Trainer) -> Iterator[None]:
    """Close the trackers' runs when the block ends, as failed when it raised."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # the training error is the one to report
            close(trainer, failed=True)
        raise
    close(trainer, failed=False)
