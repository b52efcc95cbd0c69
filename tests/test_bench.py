"""`make bench` (bench/__main__.py, bench/) on tiny MNIST: the suites run, time what they say, and write
their files."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bench import common, keras, speed, startup, steps, time_to_accuracy
from bench.__main__ import main as bench_main
from src.config.compose import PROJECT_ROOT
from src.utils.errors import UserError
from tests.tiny_data import make_tiny_cifar, make_tiny_mnist

TRAIN, TEST, VAL = 256, 64, 64


@pytest.fixture
def bench_dirs(tmp_path, monkeypatch) -> Path:
    """The measured runs' files under <tmp>/outputs; the results go to <tmp>/results (`run_suite`)."""
    monkeypatch.setenv("BENCH_OUTPUT_DIR", str(tmp_path / "outputs"))
    return tmp_path


def run_suite(dirs: Path, suite: str, *args: str) -> None:
    """`python -m bench <suite> --results-dir <dirs>/results <args>`, in this process."""
    bench_main([suite, "--results-dir", str(dirs / "results"), *args])


def overrides(tmp_path: Path) -> list[str]:
    data = make_tiny_mnist(tmp_path / "data", train=TRAIN, test=TEST)
    return [
        f"data.data_dir={data}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"data.val_size={VAL}",
        "data.batch_size=32",
        "data.download=false",
        "trainer.max_epochs=2",
    ]


def load_file(relative_path: str) -> Any:
    """A project file that is not in a package (bench/, scripts/), imported as a module."""
    path = PROJECT_ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accuracy_suite_counts_training_images_and_epochs_only(bench_dirs):
    run_suite(bench_dirs, "accuracy", "--experiment", "lenet5_mnist", *overrides(bench_dirs))
    run = json.loads((bench_dirs / "results" / "accuracy.json").read_text())["runs"][0]
    assert [row["epoch"] for row in run["per_epoch"]] == [1, 2]
    assert all(0.0 <= row["test_acc"] <= 1.0 for row in run["per_epoch"])
    # images/s over training images only: 2 epochs of the 192 training images, not val or test ones
    assert run["train_images"] == 2 * (TRAIN - VAL)
    assert set(run["seconds_to_test_acc"]) == {"99.0%", "99.2%", "99.3%"}
    markdown = (bench_dirs / "results" / "accuracy.md").read_text()
    assert markdown.startswith("| experiment | final test acc |") and "`lenet5_mnist`" in markdown


def test_time_to_accuracy_suite_tests_every_n_images_for_each_seed_and_variant(bench_dirs):
    """Tested every 96 training images (3 batches of 32) over 2 epochs of 192, for 2 seeds, the recipe, an
    EMA variant and the recipe in the bare loop: the points, the thresholds' rows, the table, the plot."""
    variant = ["--variant", "ema=callbacks=ema,callbacks.ema.decay=0.9"]
    run_suite(bench_dirs, "time_to_accuracy", "--experiment", "lenet5_mnist", "--seeds", "1", "2",
              "--every", "96", "--bare", *variant, *overrides(bench_dirs))  # fmt: skip
    result = json.loads((bench_dirs / "results" / "time_to_accuracy_lenet5_mnist.json").read_text())
    assert [row["variant"] for row in result["rows"]] == ["recipe", "ema", "bare loop"]
    assert set(result["runs"]) == {"recipe", "ema", "bare loop"} and [
        r["seed"] for r in result["runs"]["ema"]
    ] == [1, 2]
    for runs in result["runs"].values():
        for run in runs:
            assert [p["images"] for p in run["points"]] == [96, 192, 288, 384]
            seconds = [p["seconds"] for p in run["points"]]
            assert seconds == sorted(seconds) and seconds[0] > 0
            assert all(0 <= p["test_acc"] <= 1 for p in run["points"])
    recipe, ema, bare = result["rows"]
    assert bare["train_images"] == 384 and bare["overrides"] == []
    assert ema["overrides"] == ["callbacks=ema", "callbacks.ema.decay=0.9"] and recipe["train_images"] == 384
    finals = [run["points"][-1]["test_acc"] for run in result["runs"]["recipe"]]
    assert recipe["final_test_acc"][0] == pytest.approx(sum(finals) / 2)
    assert set(recipe) >= {"99.0%", "99.2%", "99.3%"} and recipe["99.0%"]["reached"] <= 2
    markdown = (bench_dirs / "results" / "time_to_accuracy_lenet5_mnist.md").read_text()
    assert (
        "| recipe |" in markdown
        and "| bare loop |" in markdown
        and "| ema (`callbacks=ema callbacks.ema.decay=0.9`) |" in markdown
    )
    assert (bench_dirs / "results" / "time_to_accuracy_lenet5_mnist.png").stat().st_size > 1000


def test_time_to_accuracy_reports_the_one_view_accuracy_beside_the_flip_averaged_one(bench_dirs):
    """lenet5_cifar10 tests with data.flip_eval: each point also has the accuracy of the image alone, which
    is what the same weights score with flip_eval off; the table gets a "one view" column."""
    data = make_tiny_cifar(bench_dirs / "data")
    tiny = [f"data.data_dir={data}", f"paths.cache_dir={bench_dirs / 'cache'}", "data.val_size=20",
            "data.download=false", "data.batch_size=16", "trainer.max_epochs=1"]  # fmt: skip
    run_suite(
        bench_dirs, "time_to_accuracy", "--experiment", "lenet5_cifar10", "--seeds", "1", "--bare", *tiny
    )
    result = json.loads((bench_dirs / "results" / "time_to_accuracy_lenet5_cifar10.json").read_text())
    for runs in result["runs"].values():
        assert all(0 <= p["test_acc_one_view"] <= 1 for p in runs[0]["points"])
    assert [len(row["final_test_acc_one_view"]) for row in result["rows"]] == [2, 2]
    markdown = (bench_dirs / "results" / "time_to_accuracy_lenet5_cifar10.md").read_text()
    assert "| variant | final test acc | one view | images | train s |" in markdown

    cfg = common.bench_config("lenet5_cifar10", tiny, "one_view")
    datamodule, module, _ = common.prepare(cfg)
    cfg.data.flip_eval = False
    plain, _, _ = common.prepare(cfg)
    datamodule.setup("test"), plain.setup("test")
    accuracies = time_to_accuracy.test_accuracies(module, datamodule)
    assert accuracies["test_acc_one_view"] == common.evaluate(module, plain)[0]
    assert accuracies["test_acc"] == common.evaluate(module, datamodule)[0]
    assert "test_acc_one_view" not in time_to_accuracy.test_accuracies(module, plain)


def test_time_to_accuracy_recipes_name_real_experiments_with_rising_thresholds():
    """A RECIPES key that matches no conf/experiment file would silently never be used."""
    experiments = Path(__file__).parents[1] / "conf" / "experiment"
    for name, recipe in time_to_accuracy.RECIPES.items():
        assert (experiments / f"{name}.yaml").is_file(), name
        thresholds = list(recipe["thresholds"])
        assert thresholds == sorted(set(thresholds)) and 0 < thresholds[0] <= thresholds[-1] < 1, name
        assert recipe["every"] > 0, name


def test_time_to_accuracy_clock_leaves_the_tests_out(bench_dirs, monkeypatch):
    """Each test of the timeline sleeps 1.5 s: the training seconds stay below one such sleep."""
    real = time_to_accuracy.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(time_to_accuracy, "evaluate", slow_evaluate)
    run_suite(bench_dirs, "time_to_accuracy", "--seeds", "1", "--every", "192", *overrides(bench_dirs))
    result = json.loads((bench_dirs / "results" / "time_to_accuracy_lenet5_mnist.json").read_text())
    points = result["runs"]["recipe"][0]["points"]
    assert [p["images"] for p in points] == [192, 384] and points[-1]["seconds"] < 1.5


def test_epoch_clock_stops_before_validation(bench_dirs, monkeypatch):
    """Lightning validates before on_train_epoch_end: the clock must not count that time."""
    import time

    import lightning as L

    real_clock, skipped = time.perf_counter, [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: real_clock() + skipped[0])

    class SlowValidation(L.Callback):  # every validation "takes" 1000 s on the clock
        def on_validation_epoch_end(self, trainer, pl_module) -> None:
            skipped[0] += 1000.0

    cfg = common.bench_config("lenet5_mnist", overrides(bench_dirs), "clock")
    datamodule, module, trainer = common.prepare(cfg)
    clock = common.EpochClock()
    trainer.callbacks.extend([SlowValidation(), clock])
    trainer.fit(module, datamodule=datamodule)
    assert skipped[0] >= 2000.0 and len(clock.rows) == 2
    assert clock.trained_seconds < 1000.0, clock.rows


# The speed suite on a fake clock: each image through the network "takes" a known time, and the real time
# of these tiny runs is scaled down to nothing, so what the suite reports is known exactly.
TRAIN_COST, EVAL_COST = 1e-3, 2.5e-4  # fake seconds per image: training (a forward in train mode), evaluation
LIGHTNING_FACTOR = 2.0  # the src.train path's images cost twice what the bare loop's cost


class FakeClock:
    """time.perf_counter() = real time x 1e-6 + the fake seconds charged so far."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import time

        self.charged, self.factor = 0.0, 1.0
        real = time.perf_counter
        monkeypatch.setattr(time, "perf_counter", lambda: real() * 1e-6 + self.charged)

    def costing(self, function, factor: float):
        """`function`, during which every image costs `factor` times its price."""

        def with_factor(*args, **kwargs):
            self.factor = factor
            try:
                return function(*args, **kwargs)
            finally:
                self.factor = 1.0

        return with_factor

    def charging(self, forward):
        """A network's forward that charges the fake clock for the images it is given."""

        def charged(model, x):
            self.charged += (TRAIN_COST if model.training else EVAL_COST) * self.factor * len(x)
            return forward(model, x)

        return charged


def on_the_fake_clock(monkeypatch: pytest.MonkeyPatch, suite) -> None:
    """A FakeClock that LeNet-5 charges for every image, and `suite`'s two paths priced: src.train's
    (`lightning_training`) images LIGHTNING_FACTOR times the bare loop's (`bare_training`)."""
    from src.models.lenet5 import LeNet5

    clock = FakeClock(monkeypatch)
    monkeypatch.setattr(LeNet5, "forward", clock.charging(LeNet5.forward))
    for name, factor in (("lightning_training", LIGHTNING_FACTOR), ("bare_training", 1.0)):
        monkeypatch.setattr(suite, name, clock.costing(getattr(suite, name), factor))


def test_speed_suite_reports_the_time_its_images_took(bench_dirs, monkeypatch):
    on_the_fake_clock(monkeypatch, speed)
    run_suite(bench_dirs, "speed", "--repeats", "2", *overrides(bench_dirs))
    result = json.loads((bench_dirs / "results" / "speed.json").read_text())
    rows = result["rows"]
    # our recipe at three batch sizes and the study sheet's recipe (here all at the tiny data's batch 32)
    assert [row["experiment"] for row in rows] == [e for e, _ in speed.SPEED_ROWS]
    assert [row["overrides"][0] for row in rows[:3]] == [f"data.batch_size={b}" for b in (64, 128, 256)]
    train, evaluation = 1 / TRAIN_COST, 1 / EVAL_COST  # images/s of the bare loop
    for row in rows:
        # training: the warm epoch's training images only; evaluation: the validation and test images
        assert row["train_images_per_second"] == {
            "lightning": pytest.approx(train / LIGHTNING_FACTOR, abs=1),
            "bare": pytest.approx(train, abs=1),
        }
        for kind in ("eval", "test"):
            assert row[f"{kind}_images_per_second"] == {
                "lightning": pytest.approx(evaluation / LIGHTNING_FACTOR, abs=1),
                "bare": pytest.approx(evaluation, abs=1),
            }, kind
            assert row[f"{kind}_ratio"] == pytest.approx(1 / LIGHTNING_FACTOR, abs=2e-3), kind
        assert row["train_ratio"] == pytest.approx(1 / LIGHTNING_FACTOR, abs=2e-3)
        assert row["train_ratio_per_pair"] == pytest.approx([1 / LIGHTNING_FACTOR] * 2, abs=2e-3)
        # the whole trainer.test call: the 64 test images, and (next to them) nothing else
        assert row["test_call_seconds"] == pytest.approx(TEST * EVAL_COST * LIGHTNING_FACTOR, abs=1e-3)
    assert result["machine"]["cores"] >= 1 and result["machine"]["torch"]
    markdown = (bench_dirs / "results" / "speed.md").read_text()
    assert markdown.count("| `lenet5_mnist` | 32 | 500 | 1,000 | 0.500 | 0.500, 0.500 |") == 3
    assert (
        "| `sheet_lenet5_mnist` | 32 | 2,000 | 4,000 | 0.500 | 2,000 | 4,000 | 0.500 | 0.03 s |" in markdown
    )


def test_steps_suite_puts_each_cost_in_its_part(bench_dirs, monkeypatch):
    """On the fake clock, with costs only src.train's steps have, each charged in a known part."""
    import lightning as L

    from src.models.lenet5 import LeNet5

    clock = FakeClock(monkeypatch)
    monkeypatch.setattr(LeNet5, "forward", clock.charging(LeNet5.forward))  # both sides' forward

    class Charge(L.Callback):  # milliseconds: 2 before the step, 7 in backward, 3 after the optimizer;
        def on_train_batch_start(self, *args) -> None:  # 1 a validation batch, 5 a test batch
            clock.charged += 2e-3

        def on_after_backward(self, *args) -> None:
            clock.charged += 7e-3

        def on_train_batch_end(self, *args) -> None:
            clock.charged += 3e-3

        def on_validation_batch_start(self, *args) -> None:
            clock.charged += 1e-3

        def on_test_batch_end(self, *args) -> None:
            clock.charged += 5e-3

    real_prepare = steps.prepare

    def prepare_with_charge(cfg):
        datamodule, module, trainer = real_prepare(cfg)
        trainer.callbacks.append(Charge())  # before the suite's StepParts, like any other callback
        return datamodule, module, trainer

    monkeypatch.setattr(steps, "prepare", prepare_with_charge)
    eval_batch = 16  # 4 batches a split, 3 of them timed each run (not a run's first)
    variant = bench_dirs / "variant"  # --results-dir: a variant's figures beside the default ones
    argv = ["steps", "--experiment", "lenet5_mnist", "--results-dir", str(variant), "--repeats", "2"]
    bench_main([*argv, *overrides(bench_dirs), f"data.eval_batch_size={eval_batch}"])
    assert not (bench_dirs / "results").exists()
    row = json.loads((variant / "steps.json").read_text())["rows"][0]
    assert row["batch_size"] == 32 and row["steps"] == (TRAIN - VAL) // 32 - 1  # epoch 2, after its first
    light, bare = row["median_ms"]["lightning"], row["median_ms"]["bare"]
    forward = 32 * TRAIN_COST * 1000
    expected_extra = {"data": 2.0, "before": 0.0, "forward": 0.0, "backward": 7.0, "optimizer": 3.0}
    for part, extra in expected_extra.items():
        assert bare[part] == pytest.approx(forward if part == "forward" else 0.0, abs=0.01), part
        assert light[part] == pytest.approx(bare[part] + extra, abs=0.01), part
    assert row["median_step_ms"] == {
        "lightning": pytest.approx(forward + 12.0, abs=0.01),
        "bare": pytest.approx(forward, abs=0.01),
    }
    assert row["step_ratio"] == pytest.approx(forward / (forward + 12.0), abs=1e-3)
    # the plain LightningModule has none of the charges: as fast as its bare twin
    assert row["plain"]["steps"] == row["steps"]
    assert row["plain"]["median_step_ms"] == {
        "lightning": pytest.approx(forward, abs=0.01),
        "bare": pytest.approx(forward, abs=0.01),
    }
    assert row["plain"]["step_ratio"] == 1.0 and row["over_plain"] == row["step_ratio"]
    assert row["over_plain_per_pair"] == [row["step_ratio"]] * 2  # two src.train fits, two plain ones
    # evaluation: validation in both epochs of the fit and 3 trainer.validate calls, 3 trainer.test calls
    evaluation = 1000 * eval_batch * EVAL_COST
    for stage, runs, extra in (("val", 2 + 3, 1.0), ("test", 3, 5.0)):
        timed = row["eval"][stage]
        assert timed["batches"] == runs * (VAL // eval_batch - 1), stage
        assert timed["median_batch_ms"] == {
            "lightning": pytest.approx(evaluation + extra, abs=0.01),
            "bare": pytest.approx(evaluation, abs=0.01),
        }, stage
        assert timed["ratio"] == pytest.approx(evaluation / (evaluation + extra), abs=1e-3), stage
    markdown = (variant / "steps.md").read_text()
    cells = "2.000 / 0.000 | 0.000 / 0.000 | 32.000 / 32.000 | 7.000 / 0.000 | 3.000 / 0.000"
    assert f"| `lenet5_mnist` | 32 | {cells} | 44.000 / 32.000 | 0.727 |" in markdown
    assert "| `lenet5_mnist` | 32 | 32.000 / 32.000 | 1.000 | 0.727 | 0.727 | 0.727, 0.727 |" in markdown
    assert "| `lenet5_mnist` | 32 | 5.000 / 4.000 | 0.800 | 9.000 / 4.000 | 0.444 |" in markdown


def test_the_bare_loop_does_the_recipes_work(bench_dirs):
    """Same loss (label smoothing) and, for a one-cycle recipe, a schedule stepped after every batch."""
    cfg = common.bench_config("lenet5_mnist", overrides(bench_dirs), "bare")
    datamodule, module, _ = common.prepare(cfg)
    optimizer = torch.optim.Adam(module.model.parameters())
    scheduler = speed.bare_schedule(cfg, optimizer, total_steps=12)
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR) and scheduler.total_steps == 12
    steps = len(datamodule.train_dataloader())
    speed.bare_training_epoch(module.model, datamodule, optimizer, scheduler=scheduler)
    assert scheduler.last_epoch == steps
    seed = common.bench_config("sheet_lenet5_mnist", overrides(bench_dirs), "bare_seed")
    assert speed.bare_schedule(seed, optimizer, total_steps=12) is None  # constant learning rate


def test_manual_optimization_variants_train_the_same_weights(bench_dirs):
    """scripts/manual_optimization_ab.py compares equal work: from one seed, Lightning's automatic
    optimization, manual optimization and the raw optimizer end with the same weights and schedule."""
    manual_ab = load_file("scripts/manual_optimization_ab.py")
    cfg = common.bench_config("lenet5_mnist", overrides(bench_dirs), "manual_ab")
    datamodule = common.prepare(cfg)[0]
    trained, made = {}, []
    for name, module_class in manual_ab.VARIANTS.items():

        class Kept(module_class):  # keeps the module plain_fit makes
            def __init__(self, *args) -> None:
                super().__init__(*args)
                made.append(self)

        assert 0 < manual_ab.fit(cfg, datamodule, Kept) < 2  # a ratio of two timed steps
        module = made[-1]
        optimizer = module.trainer.optimizers[0]
        trained[name] = [*(p.detach().clone() for p in module.parameters()), optimizer.param_groups[0]["lr"]]
        assert optimizer.state[next(module.parameters())]["step"] == 2 * len(datamodule.train_dataloader())
    for name in ("manual", "raw"):
        for automatic, other in zip(trained["automatic"], trained[name], strict=True):
            torch.testing.assert_close(other, automatic, msg=name)


def test_startup_suite_times_answers_and_first_batch(bench_dirs, monkeypatch):
    monkeypatch.setattr(startup, "MISTAKES", startup.MISTAKES[:2])
    monkeypatch.setattr(startup, "IMPORTS", (("import json", "import json"),))
    monkeypatch.setattr(
        startup, "importtime_top", lambda *args, **kwargs: [{"module": "json", "seconds": 0.01}]
    )
    data = make_tiny_mnist(bench_dirs / "data", train=TRAIN, test=TEST)
    monkeypatch.setenv("DATA_DIR", str(data))
    run_suite(bench_dirs, "startup", "--repeats", "1", "--label", "before", "data.val_size=64")
    result = json.loads((bench_dirs / "results" / "startup_before.json").read_text())
    assert set(result["errors"]) == {"unknown group choice", "unknown key"}
    assert result["errors"]["unknown group choice"]["answer"].startswith(
        "error: pooling=median is not a choice"
    )
    assert result["missing_data"]["answer"].startswith("error: MNIST not found")
    fast = result["train_fast_dev_run"]
    assert 0 < fast["first_batch_seconds"] < fast["seconds"]
    assert result["summary"]["seconds"] > 0 and result["commit"]
    # a second label becomes a second column of the same table
    (bench_dirs / "results" / "startup_after.json").write_text(json.dumps({**result, "commit": "abc1234"}))
    startup.save_startup("after", result, bench_dirs / "results")
    markdown = (bench_dirs / "results" / "startup.md").read_text()
    assert markdown.startswith("| what the user runs | before (`")
    assert "| `python -m src.train pooling=median` (unknown group choice) |" in markdown
    assert "- src.train debug=fast, after: `json` 0.01" in markdown


def test_importtime_top_reads_the_top_level_imports():
    top = startup.importtime_top([sys.executable, "-c", "import json, email.parser"], PROJECT_ROOT, top=50)
    names = [entry["module"] for entry in top]
    assert "json" in names and "email.parser" in names and "json.decoder" not in names  # nested: not top
    assert all(entry["seconds"] >= 0 for entry in top)


FAKE_KERAS = """
import json, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
cifar = args.get("--dataset") == "cifar10"
seed = int(args.get("--seed", 0))
json.dump({"images_per_second": 500 + seed if cifar else 1000, "keras": "3.x", "tensorflow": "2.x",
           "test_acc_after_epochs": 0.4 + seed / 100, "argv": sys.argv[1:]}, open(args["--out"], "w"))
"""


def test_keras_suite_compares_against_the_keras_figure(bench_dirs, monkeypatch):
    """Against a stand-in for bench/keras_lenet5.py (TensorFlow is not installed in the test environment)
    that reports 1000 images/s on MNIST, 500 + seed on CIFAR-10; the src.train path and the bare loop on
    the fake clock (src.train's images twice the price)."""
    on_the_fake_clock(monkeypatch, keras)
    fake = bench_dirs / "fake_keras.py"
    fake.write_text(FAKE_KERAS)
    monkeypatch.setattr(keras, "KERAS_COMMAND", [sys.executable, str(fake)])
    args = overrides(bench_dirs)
    make_tiny_cifar(bench_dirs / "data")  # beside the tiny MNIST: the CIFAR-10 rows run too
    run_suite(bench_dirs, "keras", *args, "trainer.max_epochs=1")
    result = json.loads((bench_dirs / "results" / "keras.json").read_text())
    rows = result["rows"]
    assert [r["framework"].split(" ")[0] for r in rows] == ["Keras", "bare", "src.train", "src.train"]
    train = 1 / TRAIN_COST  # the bare loop's images/s on the fake clock
    expected = [1000, train, train / LIGHTNING_FACTOR, train / LIGHTNING_FACTOR]
    assert [r["images_per_second"] for r in rows] == pytest.approx(expected, abs=1)
    assert [r["vs_keras"] for r in rows] == pytest.approx([v / 1000 for v in expected], abs=1e-3)

    cifar = result["cifar10"]
    keras_row, ours_row = cifar["rows"]
    assert cifar["seeds"] == [42, 1, 2] and cifar["epochs"] == 1 and cifar["batch_size"] == 32
    # Keras got the same data, epochs, batch and seeds as src.train
    assert [run["argv"][run["argv"].index("--seed") + 1] for run in cifar["keras_runs"]] == ["42", "1", "2"]
    for run in cifar["keras_runs"]:
        argv = " ".join(run["argv"])
        assert f"--data-dir {bench_dirs / 'data'} " in argv
        assert "--dataset cifar10 --epochs 1 --batch-size 32" in argv
    assert (
        keras_row["test_acc"] == pytest.approx([0.82, 0.41, 0.42]) and keras_row["images_per_second"] == 542
    )
    assert keras_row["test_acc_mean"] == pytest.approx(np.mean([0.82, 0.41, 0.42]), abs=1e-4)
    assert keras_row["test_acc_std"] == pytest.approx(np.std([0.82, 0.41, 0.42], ddof=1), abs=1e-4)
    assert len(ours_row["test_acc"]) == 3 and all(0 <= a <= 1 for a in ours_row["test_acc"])
    # a whole src.train fit of the study sheet's CIFAR-10 recipe, its last epoch timed: the bare rate here
    assert ours_row["images_per_second"] == pytest.approx(train, abs=1)
    assert ours_row["vs_keras"] == pytest.approx(train / 542, abs=1e-3)
    markdown = (bench_dirs / "results" / "keras.md").read_text()
    assert "| src.train `experiment=sheet_lenet5_cifar10` |" in markdown
    assert "| test acc (mean ± std) |" in markdown


def test_keras_suite_without_cifar10_says_so(bench_dirs, monkeypatch):
    fake = bench_dirs / "fake_keras.py"
    fake.write_text(FAKE_KERAS)
    monkeypatch.setattr(keras, "KERAS_COMMAND", [sys.executable, str(fake)])
    run_suite(bench_dirs, "keras", *overrides(bench_dirs), "trainer.max_epochs=1")
    result = json.loads((bench_dirs / "results" / "keras.json").read_text())
    assert result["cifar10"] == {"skipped": f"no CIFAR-10 in {bench_dirs / 'data'}"}
    assert (
        f"CIFAR-10: no CIFAR-10 in {bench_dirs / 'data'}."
        in (bench_dirs / "results" / "keras.md").read_text()
    )


def test_keras_suite_failure_is_one_clear_line(bench_dirs, monkeypatch):
    monkeypatch.setattr(keras, "KERAS_COMMAND", [sys.executable, "-c", "raise SystemExit('no tensorflow')"])
    with pytest.raises(UserError, match="the Keras benchmark failed .*: no tensorflow"):
        keras.keras_speed(str(bench_dirs), bench_dirs / "k.json")


def test_keras_script_reads_mnist_idx_plain_and_gz(tmp_path):
    keras_lenet5 = load_file("bench/keras_lenet5.py")  # NumPy only at import: TensorFlow in main()
    for compress in (False, True):
        data = make_tiny_mnist(tmp_path / str(compress), train=20, test=10, compress=compress)
        images, labels = keras_lenet5.load(data, "train")
        assert images.shape == (20, 32, 32, 1) and images.dtype == np.float32
        assert labels.shape == (20,) and images.min() >= 0.0 and images.max() <= 1.0
        assert np.all(images[:, :2] == 0)  # 28x28 zero-padded to LeNet-5's 32x32
    with pytest.raises(SystemExit, match="not found"):
        keras_lenet5.load(tmp_path / "nowhere", "train")


def test_keras_script_reads_cifar10_archive_as_src_train_does(tmp_path):
    keras_lenet5 = load_file("bench/keras_lenet5.py")
    from src.data.cifar10 import CIFAR10DataModule

    data = make_tiny_cifar(tmp_path / "data")
    images, labels = keras_lenet5.load_cifar10(data, "train")
    test_images, test_labels = keras_lenet5.load_cifar10(data, "test")
    assert images.shape == (100, 32, 32, 3) and test_images.shape == (30, 32, 32, 3)
    ours = CIFAR10DataModule(str(data), str(tmp_path / "cache"), 32, 3, val_size=0, download=False)
    ours.setup()
    # the same images, in the same order, with the same labels (NHWC / 255 there, uint8 NCHW here)
    expected = ours.splits["train"].images.permute(0, 2, 3, 1).numpy().astype(np.float32) / 255.0
    assert np.array_equal(images, expected) and np.array_equal(labels, ours.splits["train"].labels.numpy())
    assert np.array_equal(test_labels, ours.splits["test"].labels.numpy())
    with pytest.raises(SystemExit, match="not found"):
        keras_lenet5.load_cifar10(tmp_path / "nowhere", "train")


def test_the_cli_has_a_subcommand_per_suite_and_refuses_others(capsys):
    """`python -m bench --help` lists every suite; each suite has its own options; an unknown suite or an
    option of another suite exits 2 with argparse's one-line error."""
    with pytest.raises(SystemExit) as help_exit:
        bench_main(["--help"])
    listed = capsys.readouterr().out
    assert help_exit.value.code == 0
    assert all(
        suite in listed
        for suite in (
            "accuracy",
            "speed",
            "steps",
            "startup",
            "keras",
            "scaling",
            "time_to_accuracy",
            "all",
            "gpu",
        )
    )
    for argv, wrong in ((["speeed"], "invalid choice: 'speeed'"), (["keras", "--repeats", "2"], "--repeats")):
        with pytest.raises(SystemExit) as error:
            bench_main(argv)
        assert error.value.code == 2 and wrong in capsys.readouterr().err
