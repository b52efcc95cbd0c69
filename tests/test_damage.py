"""Files damaged after they were written, through the real CLI on tiny data: checkpoints (resume=,
ckpt_path=, src.eval, the test after fit; also ones planted with code to run), dataset caches, run
directories read by src.report / src.sweep / src.eval, and writes that run out of room (a file-size
limit standing in for a full disk)."""

from __future__ import annotations

import hashlib
import json
import os
import pickletools
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.config.compose import PROJECT_ROOT
from src.data import cache
from src.data.flowers17 import Flowers17
from src.runs.report import load_runs
from src.utils.checkpoints import TORCH_SAFE_GLOBALS, CheckpointError, read_checkpoint
from tests.conftest import fast_overrides, run_cli
from tests.test_report import fake_run
from tests.tiny_data import make_tiny_cifar, make_tiny_flowers, make_tiny_mnist

QUIET = ["logger=none", "callbacks.input_grid=null", "callbacks.feature_maps=null", "callbacks.filters=null"]
TRUNCATED = "is truncated or not a checkpoint (no complete zip archive)"


# ------------------------------------------------------------------------------------ helpers
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_weight(path: Path) -> None:
    """One byte in the middle of the file changed: inside a storage (fc1's weights or their optimizer
    state fill most of it), so the file stays a zip that torch.load reads without a word."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def one_line_error(result) -> str:
    """The last stderr line, after checking that the command failed the way a user error should."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


def no_whole_checkpoint(run: Path, reason: str) -> str:
    """resume='s one line when each of the run's three checkpoints fails for `reason`."""
    names = ("last.ckpt", "epoch_000.ckpt", "epoch_001.ckpt")
    each = "; ".join(f"checkpoint {run / 'checkpoints' / name} {reason}" for name in names)
    start = f"error: resume={run} has no whole checkpoint to continue from"
    return f"{start}: {each}; start the run again without resume="


def succeeded(result) -> str:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 2-epoch run on tiny MNIST (gzipped: decoded into the cache), every epoch's checkpoint kept:
    <root>/run/checkpoints/epoch_000.ckpt, epoch_001.ckpt, last.ckpt."""
    root = tmp_path_factory.mktemp("damage")
    data = make_tiny_mnist(root / "data")
    overrides = [*fast_overrides(data, root), *QUIET, "trainer.max_epochs=2"]
    succeeded(run_cli("src.train", *overrides, "+callbacks.model_checkpoint.save_top_k=-1"))
    return root


def copy_run(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained run whose metrics.json names the copy's tested checkpoint, not the original's."""
    run = Path(shutil.copytree(trained / "run", tmp_path / "run"))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["tested_checkpoint"] = str(run / "checkpoints" / Path(metrics["tested_checkpoint"]).name)
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def steps_per_epoch(run: Path) -> int:
    metrics = json.loads((run / "metrics.json").read_text())
    return metrics["global_step"] // metrics["epochs"]


# ---------------------------------------------------------------------------------- checkpoints
def test_resume_passes_a_damaged_last_ckpt_over_for_the_newest_whole_one(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    checkpoints, steps = run / "checkpoints", steps_per_epoch(run)
    truncate(checkpoints / "last.ckpt")
    flip_a_weight(checkpoints / "epoch_001.ckpt")  # the newest but one is damaged too: epoch_000 it is

    result = run_cli("src.train", f"resume={run}", "trainer.max_epochs=3")
    succeeded(result)
    assert warnings(result) == [
        f"warning: checkpoint {checkpoints / 'last.ckpt'} {TRUNCATED}; resume continues from "
        f"{checkpoints / 'epoch_000.ckpt'}, saved after 1 epoch (global step {steps})"
    ]
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["global_step"]) == (3, 3 * steps)  # epochs 2 and 3 trained again


def test_resume_with_no_whole_checkpoint_says_so_in_one_line(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    checkpoints = run / "checkpoints"
    for checkpoint in checkpoints.glob("*.ckpt"):
        truncate(checkpoint)
    line = one_line_error(run_cli("src.train", f"resume={run}"))
    assert line == no_whole_checkpoint(run, TRUNCATED)


def foreign_checkpoints(trained: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the reason its one-line error must give)."""
    last = trained / "run" / "checkpoints" / "last.ckpt"
    files = {name: tmp_path / f"{name}.ckpt" for name in ("truncated", "flipped", "text", "plain", "weights")}
    files["truncated"].write_bytes(last.read_bytes()[:1000])
    files["flipped"].write_bytes(last.read_bytes())
    flip_a_weight(files["flipped"])
    files["text"].write_text("not a checkpoint\n")
    torch.save({"weights": torch.zeros(3)}, files["plain"])  # a torch file, not Lightning's
    state = torch.load(last, weights_only=True)
    torch.save({key: state[key] for key in ("state_dict", "epoch", "global_step")}, files["weights"])
    return {
        "truncated": (files["truncated"], re.escape(TRUNCATED)),
        "flipped": (files["flipped"], r"is damaged: archive/data/\d+ fails its CRC-32 check"),
        "text": (files["text"], re.escape(TRUNCATED)),
        "plain": (files["plain"], re.escape("is not a Lightning checkpoint (it holds no state_dict)")),
        "weights": (files["weights"], "holds only weights, no optimizer state: .* not continued"),
    }


def test_ckpt_path_damaged_or_not_a_checkpoint_or_another_models_ends_in_one_line(trained, tmp_path):
    overrides = [*fast_overrides(trained / "data", tmp_path), *QUIET]
    for name, (path, reason) in foreign_checkpoints(trained, tmp_path).items():
        line = one_line_error(run_cli("src.train", *overrides, f"ckpt_path={path}"))
        assert re.fullmatch(f"error: checkpoint {re.escape(str(path))} {reason}", line), (name, line)
    # Another model's: the run's own last.ckpt (padding=valid) for a padding=same network.
    last = trained / "run" / "checkpoints" / "last.ckpt"
    line = one_line_error(run_cli("src.train", *overrides, "padding=same", f"ckpt_path={last}"))
    assert line.startswith(
        f"error: checkpoint {last} was saved from another model: it holds model.classifier.fc1.weight "
        "120x400 (the model's: 120x1024); give a checkpoint of this model and data"
    ), line
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_the_test_after_fit_checks_the_checkpoint_it_loads(trained, tmp_path):
    overrides = [*fast_overrides(trained / "data", tmp_path), *QUIET, "trainer.max_epochs=1"]
    damage = "+callbacks.damage._target_=tests.callbacks.DamageBestCheckpoint"  # after fit, before test
    line = one_line_error(run_cli("src.train", *overrides, damage))
    best = tmp_path / "run" / "checkpoints" / "epoch_000.ckpt"
    assert line == f"error: checkpoint {best} {TRUNCATED}"


def test_eval_with_a_damaged_or_foreign_checkpoint_ends_in_one_line(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    tested = (
        run / "checkpoints" / Path(json.loads((run / "metrics.json").read_text())["tested_checkpoint"]).name
    )
    flip_a_weight(tested)
    line = one_line_error(run_cli("src.eval", str(run)))
    assert re.fullmatch(
        rf"error: checkpoint {re.escape(str(tested))} is damaged: archive/data/\d+ fails .*", line
    )
    # ckpt_path=: a whole Lightning checkpoint of a network with other shapes
    state = torch.load(trained / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    state["state_dict"]["model.classifier.fc1.weight"] = torch.zeros(120, 1024)
    del state["state_dict"]["model.classifier.fc3.bias"]
    foreign = tmp_path / "foreign.ckpt"
    torch.save(state, foreign)
    line = one_line_error(run_cli("src.eval", str(run), f"ckpt_path={foreign}"))
    assert line == (
        f"error: checkpoint {foreign} was saved from another model: it lacks model.classifier.fc3.bias, "
        "holds model.classifier.fc1.weight 120x1024 (the model's: 120x400); give a checkpoint of this "
        "model and data (the same model=, padding=, data=)"
    )


# ----------------------------------------------------------------- checkpoints that would run code
SYSTEM = f"{os.system.__module__}.system"  # how a pickle names os.system: posix.system on Linux
RUNS_CODE = (
    f"would run code when loaded: its data.pkl names {SYSTEM}, which torch.load(weights_only=True) refuses; "
    "the file is not used"
)


class RunsCode:
    """Unpickled, it runs `touch <marker>`: what a planted checkpoint can do with any command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant_code(checkpoint: Path, marker: Path, into: Path | None = None) -> Path:
    """The real Lightning checkpoint `checkpoint` with one more entry that runs `touch <marker>` when
    unpickled, saved by torch.save over `checkpoint` (or into `into`)."""
    state = torch.load(checkpoint, weights_only=True)
    state["payload"] = RunsCode(marker)
    torch.save(state, into or checkpoint)
    return into or checkpoint


def only_line(result) -> str:
    """stderr, after checking that the command failed as a user error and that stderr is that one line."""
    line = one_line_error(result)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-3000:]
    return line


def pickle_globals(checkpoint: Path) -> set[str]:
    """The globals (`module.name`) the data.pkl of a torch.save file names, read with pickletools."""
    with zipfile.ZipFile(checkpoint) as archive:
        payload = archive.read(next(name for name in archive.namelist() if name.endswith("/data.pkl")))
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(payload) if op.name == "GLOBAL"}


def test_the_checks_list_of_safe_globals_is_torchs():
    """src/utils/checkpoints.py names, without torch, exactly the globals the installed torch's
    `torch.load(weights_only=True)` allows by default (a torch upgrade that changes them fails here)."""
    from torch._weights_only_unpickler import _get_allowed_globals

    assert set(TORCH_SAFE_GLOBALS) == set(_get_allowed_globals())


def test_real_checkpoints_of_a_fit_are_accepted(trained):
    """Every checkpoint a fit wrote (the best, each epoch's, last.ckpt) names only globals torch allows,
    and the check accepts it for resuming."""
    checkpoints = sorted((trained / "run" / "checkpoints").glob("*.ckpt"))
    assert [path.name for path in checkpoints] == ["epoch_000.ckpt", "epoch_001.ckpt", "last.ckpt"]
    for path in checkpoints:
        found = pickle_globals(path)
        assert "collections.OrderedDict" in found and "torch._utils._rebuild_tensor_v2" in found, found
        assert found <= TORCH_SAFE_GLOBALS, found - TORCH_SAFE_GLOBALS
        assert read_checkpoint(path, resume=True).global_step > 0


def test_the_planted_checkpoint_runs_its_code_when_loaded_unchecked(trained, tmp_path):
    """The payload of the tests below is live: loaded with weights_only=False it creates its marker, and
    the check refuses it naming os.system's global."""
    marker = tmp_path / "ran"
    planted = plant_code(trained / "run" / "checkpoints" / "last.ckpt", marker, tmp_path / "planted.ckpt")
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint {planted} {RUNS_CODE}")):
        read_checkpoint(planted)
    assert not marker.exists()
    torch.load(planted, weights_only=False)
    assert marker.exists()


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(trained, tmp_path):
    """ckpt_path= of src.train and src.eval, src.predict of a run whose checkpoint was replaced, and
    resume= of a run whose every checkpoint was replaced: exit 2, one stderr line naming the global, and
    the planted command never runs."""
    marker = tmp_path / "ran"
    planted = plant_code(trained / "run" / "checkpoints" / "last.ckpt", marker, tmp_path / "planted.ckpt")
    overrides = [*fast_overrides(trained / "data", tmp_path), *QUIET]
    line = only_line(run_cli("src.train", *overrides, f"ckpt_path={planted}"))
    assert line == f"error: checkpoint {planted} {RUNS_CODE}"
    assert not (tmp_path / "run").exists()  # refused before the run started

    run = copy_run(trained, tmp_path / "copy")
    line = only_line(run_cli("src.eval", str(run), f"ckpt_path={planted}"))
    assert line == f"error: checkpoint {planted} {RUNS_CODE}"

    checkpoints = run / "checkpoints"
    tested = checkpoints / Path(json.loads((run / "metrics.json").read_text())["tested_checkpoint"]).name
    plant_code(tested, marker)
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "one.png")
    line = only_line(run_cli("src.predict", str(run), str(tmp_path / "one.png")))
    assert line == f"error: checkpoint {tested} {RUNS_CODE}"

    for checkpoint in checkpoints.glob("*.ckpt"):
        if checkpoint != tested:
            plant_code(checkpoint, marker)
    line = only_line(run_cli("src.train", f"resume={run}"))
    assert line == no_whole_checkpoint(run, RUNS_CODE)
    assert not marker.exists()


def test_resume_passes_a_last_ckpt_that_would_run_code_over_and_logs_it_in_train_log(trained, tmp_path):
    """resume= of a run whose last.ckpt was replaced: it continues from the newest safe checkpoint, the
    warning is one stderr line (not repeated on stdout) and a WARNING in the run's train.log, and the
    planted command never runs."""
    run = copy_run(trained, tmp_path)
    checkpoints, steps, marker = run / "checkpoints", steps_per_epoch(run), tmp_path / "ran"
    plant_code(checkpoints / "last.ckpt", marker)
    log_before = (run / "train.log").read_text()

    result = run_cli("src.train", f"resume={run}", "trainer.max_epochs=3")
    succeeded(result)
    warning = (
        f"checkpoint {checkpoints / 'last.ckpt'} {RUNS_CODE}; resume continues from "
        f"{checkpoints / 'epoch_001.ckpt'}, saved after 2 epochs (global step {2 * steps})"
    )
    assert warnings(result) == [f"warning: {warning}"]
    assert warning not in result.stdout
    log = (run / "train.log").read_text()
    assert log.startswith(log_before)  # appended to the run's own log
    logged = [line for line in log[len(log_before) :].splitlines() if warning in line]
    assert len(logged) == 1 and logged[0].endswith(f"[src.runs.resume][WARNING] - {warning}"), logged
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["global_step"]) == (3, 3 * steps)
    assert not marker.exists()


# ------------------------------------------------------------------------------- run directories
def test_eval_of_a_run_with_damaged_files_ends_in_one_line(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    (run / "metrics.json").write_text('{"metrics": {"test/acc": 0.9')  # cut short
    line = one_line_error(run_cli("src.eval", str(run)))
    assert re.fullmatch(
        rf"error: {re.escape(str(run / 'metrics.json'))} is damaged \(JSONDecodeError: [^;]+\); "
        r"name the checkpoint to use with ckpt_path=<file>",
        line,
    ), line
    (run / "config.yaml").write_text("data:\n  _target_: src.data.mnist.MNISTDataModule\n")  # cut short
    line = one_line_error(run_cli("src.eval", str(run), f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"))
    assert (
        line
        == f"error: {run / 'config.yaml'} is damaged: it lacks model, module, which every run's config has"
    )
    (run / "config.yaml").write_bytes(b"\x00\xff garbage: [")
    assert one_line_error(run_cli("src.eval", str(run))).startswith(
        f"error: {run / 'config.yaml'} is damaged ("
    )


def test_report_and_sweep_list_runs_with_damaged_files_and_go_on(tmp_path):
    sweep = tmp_path / "sweep"
    fake_run(sweep, "0", ["pooling=max"], 0.9)
    fake_run(sweep, "1", ["pooling=avg"], 0.8)
    (sweep / "1" / "metrics.json").write_text('{"metrics": {"test/a')  # cut short
    fake_run(sweep, "2", ["pooling=min"])  # not finished, and its overrides are garbage
    (sweep / "2" / ".hydra" / "overrides.yaml").write_text("- pooling=min\n  - : [")
    fake_run(sweep, "3", ["pooling=avg"], 0.85)
    (sweep / "3" / "metrics.json").write_text("[]")  # JSON, but not src.train's
    fake_run(sweep, "4", ["pooling=min"], 0.7)
    shutil.rmtree(sweep / "4" / ".hydra")  # finished; its overrides are in metrics.json too

    report = run_cli("src.report", str(sweep))
    succeeded(report)
    text = (sweep / "report.md").read_text()
    damaged = text.split("### Damaged, left out (3)\n\n")[1].split("\n\n")[0].splitlines()
    assert damaged[0] == (
        f"- 1: {sweep / '1' / 'metrics.json'} is damaged (JSONDecodeError: Unterminated string starting at: "
        "line 1 column 14 (char 13))"
    )
    overrides = re.escape(str(sweep / "2" / ".hydra" / "overrides.yaml"))
    assert re.fullmatch(rf"- 2: {overrides} is damaged \(\w+: .+ at line \d\)", damaged[1]), damaged[1]
    assert damaged[2] == f'- 3: {sweep / "3" / "metrics.json"} is damaged: it holds no "metrics" object'

    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| 0", "| 4"]  # the whole runs, best first

    summary = run_cli("src.sweep", str(sweep))
    succeeded(summary)
    runs = json.loads((sweep / "summary.json").read_text())["runs"]
    assert [run["status"] for run in runs] == ["ok", "damaged", "damaged", "damaged", "ok"]
    assert runs[1]["overrides"] == ["pooling=avg"]  # from .hydra/, which is whole
    assert [line.split(":")[0] for line in warnings(summary)] == ["warning"] * 3
    assert json.loads(summary.stdout)["job"] == "0"


def write_event_file(run: Path, epochs: int = 4) -> Path:
    """`val/acc` and `epoch` at each epoch's step, as Lightning's TensorBoard logger writes them."""
    from torch.utils.tensorboard import SummaryWriter  # deferred: only for these event files

    writer = SummaryWriter(str(run / "tensorboard"))
    for epoch in range(epochs):
        writer.add_scalar("val/acc", 0.5 + epoch / 10, global_step=10 * (epoch + 1))
        writer.add_scalar("epoch", epoch, global_step=10 * (epoch + 1))
    writer.close()
    return next((run / "tensorboard").glob("events.out.tfevents.*"))


def test_report_and_sweep_name_a_truncated_and_an_empty_event_file_and_go_on(tmp_path):
    """TensorBoard's reader stops at a record cut short without a word (and reads nothing of an empty
    file): src.report and src.sweep name each damaged file in one warning line and keep the run, whose
    metrics.json is whole; the report's curve of the truncated run is what was read before the cut."""
    sweep = tmp_path / "sweep"
    for job, (pooling, acc) in enumerate([("max", 0.9), ("avg", 0.8), ("min", 0.7)]):
        write_event_file(fake_run(sweep, str(job), [f"pooling={pooling}"], acc))
    truncated = next((sweep / "1" / "tensorboard").glob("events.out.tfevents.*"))
    truncated.write_bytes(truncated.read_bytes()[:-7])  # the last record (epoch 3's `epoch`) cut short
    empty = next((sweep / "2" / "tensorboard").glob("events.out.tfevents.*"))
    empty.write_bytes(b"")

    report = run_cli("src.report", str(sweep))
    succeeded(report)
    size = truncated.stat().st_size
    assert warnings(report) == [
        f"warning: run 1: {truncated} is truncated at byte {size}: its record at byte {size - 36} needs 43 "
        "bytes; TensorBoard reads only the 8 records before it; its curves end there",
        f"warning: run 2: {empty} is empty (0 bytes): its writer stopped before writing a record; "
        "its curves end there",
    ]
    text = (sweep / "report.md").read_text()
    section = text.split("### Damaged event files (2)")[1].split("\n\n")[1].splitlines()
    assert [line.split(": ", 1)[0] for line in section] == ["- 1", "- 2"]
    assert f"{truncated} is truncated" in section[0] and f"{empty} is empty" in section[1]
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| 0", "| 1", "| 2"]  # all three in the table
    runs = {run.name: run for run in load_runs(sweep)}
    assert [epoch for epoch, _ in runs["0"].val_curve] == [1, 2, 3, 4]
    assert len(runs["1"].val_curve) == 4  # val/acc of epoch 4 came before the cut: its `epoch` did not
    assert runs["2"].val_curve == [] and runs["0"].event_problems == []

    summary = run_cli("src.sweep", str(sweep))
    succeeded(summary)
    jobs = json.loads((sweep / "summary.json").read_text())["runs"]
    assert [job["status"] for job in jobs] == ["ok", "ok", "ok"]
    assert "event_problems" not in jobs[0]
    assert [len(job["event_problems"]) for job in jobs[1:]] == [1, 1]
    assert [line.split(":", 2)[1] for line in warnings(summary)] == [" job 1", " job 2"]

    # scripts/screenshots.py photographs only runs whose event files are whole
    runs = f"screenshots.finished_runs_with_tensorboard(screenshots.Path({str(sweep)!r}))"
    code = f"import screenshots; print([run.path.name for run in {runs}])"
    shots = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT / "scripts",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert succeeded(shots) and shots.stdout.strip() == "['0']"
    assert [line.split(" is ")[0] for line in warnings(shots)] == [
        f"warning: {truncated}",
        f"warning: {empty}",
    ]


# ---------------------------------------------------------------------------------------- caches
def cache_line(output: str, what: str) -> list[str]:
    return [line.split("] - ", 1)[-1] for line in output.splitlines() if f"[WARNING] - {what}:" in line]


def test_mnist_cache_damaged_or_of_an_older_layout_is_rebuilt(tmp_path):
    data = make_tiny_mnist(tmp_path / "data")
    command = ["src.train", *fast_overrides(data, tmp_path), *QUIET, "debug=fast"]
    cached = tmp_path / "cache" / "MNIST" / "mnist-uint8.pt"
    assert cache_line(succeeded(run_cli(*command)), "MNIST") == [] and cached.is_file()

    truncate(cached)
    [line] = cache_line(succeeded(run_cli(*command)), "MNIST")
    assert line.startswith(f"MNIST: the cached copy {cached} cannot be read (")
    assert line.endswith("; rebuilding it from the source")
    state = torch.load(cached, weights_only=True)
    state["layout"] = cache.LAYOUT - 1  # written by an older version of the code
    torch.save(state, cached)
    assert cache_line(succeeded(run_cli(*command)), "MNIST") == [
        f"MNIST: the cached copy {cached} was written by an older version of this code; rebuilding it "
        "from the source"
    ]
    assert cache_line(succeeded(run_cli(*command)), "MNIST") == []  # whole again


def test_cifar10_cache_damaged_or_of_an_older_layout_is_rebuilt(tmp_path):
    data = make_tiny_cifar(tmp_path / "data")
    command = ["src.train", *fast_overrides(data, tmp_path), *QUIET, "data=cifar10", "data.val_size=20"]
    command.append("debug=fast")
    cached = tmp_path / "cache" / "cifar10" / "cifar10-uint8.pt"
    succeeded(run_cli(*command))
    state = torch.load(cached, weights_only=True)
    state["tensors"]["train_images"][3, 1, 4, 5] += 1  # one pixel changed, the file whole
    torch.save(state, cached)
    assert cache_line(succeeded(run_cli(*command)), "CIFAR-10") == [
        f"CIFAR-10: the cached copy {cached} is damaged (train_images fail their checksum); rebuilding it "
        "from the source",
    ]
    # An extracted folder beside the archive, with a truncated batch: the archive is read instead.
    with tarfile.open(data / "cifar-10-python.tar.gz") as tar:
        tar.extractall(data, filter="data")
    truncate(data / "cifar-10-batches-py" / "data_batch_3")
    lines = cache_line(succeeded(run_cli(*command)), "CIFAR-10")
    assert lines[0] == (
        f"CIFAR-10: the cached copy {cached} was built from other source files; rebuilding it from the source"
    )
    assert lines[1].startswith(f"CIFAR-10: cannot read CIFAR-10 from {data / 'cifar-10-batches-py'}: ")
    assert lines[1].endswith(f"; reading {data / 'cifar-10-python.tar.gz'} instead") and len(lines) == 2


# ------------------------------------------------------------------------------------- disk full
def test_a_checkpoint_write_out_of_room_ends_in_one_line_and_resume_goes_on(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    before = {path.name: md5(path) for path in (run / "checkpoints").glob("*.ckpt")}
    # No file may grow past 200 kB: the log, the cache (read only) are smaller, a checkpoint is 770 kB.
    limited = run_cli("tests.fsize_limit", "200000", "src.train", f"resume={run}", "trainer.max_epochs=3")
    line = one_line_error(limited)
    assert line == (
        f"error: cannot write {run / 'checkpoints' / 'epoch_002.ckpt'}: File too large (EFBIG); nothing was "
        f"written; free some space (or raise the file-size limit); then resume={run} continues from its "
        "last whole checkpoint"
    )
    assert {path.name: md5(path) for path in (run / "checkpoints").glob("*.ckpt")} == before
    assert not [path for path in run.rglob("*.tmp")]  # no half-written file left behind

    resumed = run_cli("src.train", f"resume={run}")  # trainer.max_epochs=3 is in the run's overrides now
    succeeded(resumed)
    assert warnings(resumed) == []  # last.ckpt was whole
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3


def test_a_metrics_json_write_out_of_room_ends_in_one_line_and_resume_writes_it(trained, tmp_path):
    overrides = [*fast_overrides(trained / "data", tmp_path), *QUIET, "trainer.max_epochs=1"]
    run = tmp_path / "run"
    limited = run_cli("tests.fsize_limit", "100", "--at-metrics", "src.train", *overrides)
    assert one_line_error(limited) == (
        f"error: cannot write {run / 'metrics.json'}: File too large (EFBIG); nothing was written; free some "
        f"space (or raise the file-size limit); then resume={run} continues from its last whole checkpoint"
    )
    assert not (run / "metrics.json").exists()

    succeeded(run_cli("src.train", f"resume={run}"))  # nothing left to train: validated, tested, written
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 1
    assert {"val/acc", "val/acc_best", "test/acc"} <= set(metrics["metrics"])
    assert metrics["tested_checkpoint"] == str(run / "checkpoints" / "epoch_000.ckpt")


def test_a_cache_with_no_room_is_skipped_in_one_line_and_the_run_goes_on(tmp_path):
    data = make_tiny_mnist(tmp_path / "data")
    # The decoded tiny MNIST is 250 kB; without checkpoints nothing else comes near 100 kB.
    overrides = [o for o in fast_overrides(data, tmp_path) if not o.startswith("callbacks.")]
    command = ["src.train", *overrides, "callbacks=none", "logger=none", "debug=fast"]
    result = run_cli("tests.fsize_limit", "100000", *command)
    cached = tmp_path / "cache" / "MNIST" / "mnist-uint8.pt"
    lines = cache_line(succeeded(result), "MNIST")
    # Said each time the data is loaded (prepare_data, then setup): each time it is decoded again.
    assert set(lines) == {
        f"MNIST: not cached, cannot write {cached}: File too large (EFBIG); nothing was written; free some "
        "space (or raise the file-size limit)"
    }
    assert not cached.exists() and not list((tmp_path / "cache").rglob("*.tmp"))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]["test/acc"] >= 0


def test_flowers17_cache_damaged_is_rebuilt(tmp_path):
    data = make_tiny_flowers(tmp_path / "data")
    Flowers17(data, cache_dir=tmp_path / "cache")  # decoded into the cache here: quicker than a first run
    cached = tmp_path / "cache" / "flowers17" / "17flowers-256px.pt"
    truncate(cached)
    overrides = [o for o in fast_overrides(data, tmp_path) if not o.startswith("data.val_size")]
    lines = cache_line(
        succeeded(run_cli("src.train", *overrides, *QUIET, "data=flowers17", "debug=fast")), "Flowers-17"
    )
    assert len(lines) == 1 and lines[0].startswith(f"Flowers-17: the cached copy {cached} cannot be read (")
    assert lines[0].endswith("; rebuilding it from the source")
