import itertools
import re

import pytest
from hydra.utils import instantiate

from src.config.check import group_file_arguments, group_file_precisions
from src.config.compose import CONFIG_DIR, RENAMED_CHOICES, check_choices, choices, default_choice
from src.config.schema import config_problems
from src.models.geometry import PADDING_MODES, POOLING_MODES
from src.utils.errors import ConfigError
from tests.conftest import compose_train_config, run_cli

POOLINGS, PADDINGS = ("max", "avg", "min"), ("valid", "same", "paper")


def test_groups_list_their_options():
    assert choices("pooling") == ["avg", "max", "min"]
    assert choices("padding") == ["paper", "same", "valid"]
    for group in ("model", "data", "trainer", "logger", "callbacks", "paths", "hydra", "experiment"):
        assert choices(group), group


def test_the_pooling_and_padding_files_are_the_modes_the_layers_know():
    """conf/pooling/ and conf/padding/ hold one file per mode of src/models/geometry.py, `name: <mode>`,
    each with a comment saying what it does; no Python registers a group (the folders are the groups)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    for group, modes in (("pooling", POOLING_MODES), ("padding", PADDING_MODES)):
        assert choices(group) == sorted(modes), group
        for mode in modes:
            path = CONFIG_DIR / group / f"{mode}.yaml"
            assert OmegaConf.to_container(OmegaConf.load(path)) == {"name": mode}, path
            assert path.read_text().startswith("# "), f"{path}: a comment first"
    assert not {"pooling", "padding"} & set(ConfigStore.instance().repo)


@pytest.mark.parametrize("pooling,padding", itertools.product(POOLINGS, PADDINGS))
def test_every_pooling_and_padding_composes_into_the_model(tmp_path, pooling, padding):
    cfg = compose_train_config([f"pooling={pooling}", f"padding={padding}"], tmp_path)
    model = instantiate(cfg.model)
    assert (cfg.model.pooling, cfg.model.padding) == (pooling, padding)
    assert (
        type(model.features.pool1).__name__
        == {"max": "MaxPool2d", "avg": "AvgPool2d", "min": "MinPool2d"}[pooling]
    )


def test_trainer_choices_compose(tmp_path):
    assert compose_train_config(["trainer=gpu"], tmp_path).trainer.accelerator == "gpu"
    assert compose_train_config(["trainer=default"], tmp_path).trainer.accelerator == "cpu"
    assert compose_train_config([], tmp_path).trainer.accelerator == "cpu"


RENAMED = [
    (
        "experiment=seed_lenet5_mnist",
        "experiment=seed_lenet5_mnist was renamed: use experiment=sheet_lenet5_mnist",
    ),
    (
        "experiment=seed_lenet5_cifar10",
        "experiment=seed_lenet5_cifar10 was renamed: use experiment=sheet_lenet5_cifar10",
    ),
    (
        "experiment=seed_alexnet_bn_flowers17",
        "experiment=seed_alexnet_bn_flowers17 was renamed: use experiment=sheet_alexnet_bn_flowers17",
    ),
    ("trainer=cpu", "trainer=cpu was renamed: use trainer=default (the default)"),
]


def test_the_renamed_table_names_only_gone_choices_and_existing_ones():
    """Each old name of RENAMED_CHOICES is no file of conf/ (else its hint would hide it), each new one is."""
    assert {f"{group}={old}" for group, names in RENAMED_CHOICES.items() for old in names} == {
        override for override, _ in RENAMED
    }
    for group, names in RENAMED_CHOICES.items():
        for old, new in names.items():
            assert old not in choices(group) and new in choices(group), (group, old, new)
    assert default_choice("trainer") == "default" and default_choice("experiment") is None


@pytest.mark.parametrize(("override", "message"), RENAMED)
def test_a_renamed_choice_is_one_line_naming_the_new_one(override, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check_choices([override])
    group, old = override.split("=")
    new = RENAMED_CHOICES[group][old]
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):  # in a multirun's list too
        check_choices(["-m", f"{group}={new},{old}"])


def test_bad_choice_is_one_line_listing_the_options():
    with pytest.raises(ConfigError, match=r"^pooling=median is not a choice; allowed: avg, max, min$"):
        check_choices(["pooling=median"])
    with pytest.raises(ConfigError, match=r"padding=full"):
        check_choices(["-m", "pooling=max,min", "padding=valid,full"])
    check_choices(["pooling=max,avg,min", "model.pooling=whatever", "trainer.max_epochs=1"])  # not groups


CLI_CASES = [
    (["pooling=median"], "error: pooling=median is not a choice; allowed: avg, max, min"),
    (["model=lenet"], "error: model=lenet is not a choice; allowed: alexnet, alexnet_bn, lenet5"),
    (["model.activation_fn=swish"], "error: activation='swish' is not supported; choose one of:"),
    *[([override], f"error: {message}") for override, message in RENAMED],
]


def test_cli_bad_choices_exit_non_zero_with_one_line():
    def run(args, fresh=False):
        env = {"DATA_DIR": "/nonexistent"}
        return run_cli("src.train", *args, "data.download=false", env=env, fresh=fresh)

    results = [run(args) for args, _ in CLI_CASES]
    # The CLI tests run as forks of a warm interpreter (tests/fork_server.py): one case also in a fresh
    # `python -m src.train`, which must end the same way.
    fresh = run(CLI_CASES[0][0], fresh=True)
    assert (fresh.returncode, fresh.stdout, fresh.stderr) == (
        results[0].returncode,
        results[0].stdout,
        results[0].stderr,
    )
    for (args, message), result in zip(CLI_CASES, results, strict=True):
        assert result.returncode == 2, (args, result.stderr[-2000:])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith(message), (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr


def test_profiler_choices_instantiate(tmp_path):
    for name, cls in (
        ("simple", "SimpleProfiler"),
        ("advanced", "AdvancedProfiler"),
        ("pytorch", "PyTorchProfiler"),
    ):
        cfg = compose_train_config([f"profiler={name}"], tmp_path)
        assert type(instantiate(cfg.trainer.profiler)).__name__ == cls


def test_every_optimizer_and_scheduler_config_only_sets_arguments_its_class_takes(tmp_path):
    for optimizer, scheduler in itertools.product(choices("optimizer"), choices("scheduler")):
        cfg = compose_train_config([f"optimizer={optimizer}", f"scheduler={scheduler}"], tmp_path)
        assert config_problems(cfg) == [], (optimizer, scheduler)
    # An experiment's scheduler settings do not carry over to another scheduler class:
    cfg = compose_train_config(["experiment=alexnet_flowers17", "scheduler=cosine"], tmp_path)
    assert config_problems(cfg) == [
        "scheduler.patience=8 is not an argument of torch.optim.lr_scheduler.CosineAnnealingLR: "
        "its arguments are T_max, eta_min, last_epoch (drop it with ~scheduler.patience)"
    ]
    swapped = ["experiment=alexnet_flowers17", "scheduler=cosine", "~scheduler.patience"]
    cfg = compose_train_config(swapped, tmp_path)
    assert config_problems(cfg) == []


def test_the_config_check_trusts_only_the_keys_conf_sets_for_each_class(tmp_path):
    """validate_command_line skips importing an optimizer/scheduler class (and torch) for the keys conf/'s
    group files set for it: the test above checks those against the classes."""
    known = group_file_arguments()
    assert known["torch.optim.Adam"] == {"lr", "weight_decay", "fused"}
    assert known["torch.optim.lr_scheduler.OneCycleLR"] == {"max_lr", "pct_start"}  # a `_global_` file
    assert "patience" in known["torch.optim.lr_scheduler.ReduceLROnPlateau"]
    cfg = compose_train_config(["experiment=alexnet_flowers17", "scheduler=cosine"], tmp_path)
    assert config_problems(cfg, known) == config_problems(cfg)  # patience: not known for cosine
    assert len(config_problems(cfg, known)) == 1


def test_the_precisions_conf_sets_are_lightnings(tmp_path):
    """validate_command_line asks Lightning only about a precision conf/trainer/ never sets."""
    from src.lightning_ext.precision import precision_values

    assert group_file_precisions() == {"32-true", "bf16-mixed"}
    assert group_file_precisions() <= set(precision_values())
    cfg = compose_train_config(["trainer.precision=32"], tmp_path)
    assert config_problems(cfg, known_precisions=group_file_precisions()) == []
    cfg = compose_train_config(["trainer.precision=17"], tmp_path)
    allowed = ", ".join(precision_values())
    assert config_problems(cfg) == [f"trainer.precision=17 is not a choice; allowed: {allowed}"]


def test_train_on_val_needs_the_last_checkpoint_and_no_early_stopping(tmp_path):
    final = ["experiment=alexnet_bn_flowers17", "data.train_on_val=true"]
    problems = config_problems(compose_train_config(final, tmp_path))
    assert problems == [
        "data.train_on_val=true needs test_checkpoint=last: the best val/acc checkpoint selects nothing "
        "when the network trains on the validation images",
        "data.train_on_val=true cannot stop early on the validation split it trains on: "
        "drop it with ~callbacks.early_stopping",
    ]
    fixed = [*final, "test_checkpoint=last", "~callbacks.early_stopping"]
    assert config_problems(compose_train_config(fixed, tmp_path)) == []


# The BatchNorm recipes as they were run: the paper-like experiment plus overrides.
BN_RUN = ["experiment=alexnet_flowers17", "model.norm=batch", "scheduler=cosine", "~scheduler.patience"]
RECIPE_RUN = [*BN_RUN, "data.min_crop_area=0.35", "module.label_smoothing=0.1", "trainer.max_epochs=120"]
FINAL_RUN = [*RECIPE_RUN, "data.train_on_val=true", "test_checkpoint=last", "~callbacks.early_stopping",
             "trainer.max_epochs=90"]  # fmt: skip


# docs/results.md's commands for the first two BatchNorm runs: today's recipe without its later additions.
FIXED_CROPS = ["experiment=alexnet_bn_flowers17", "data.min_crop_area=null", "module.label_smoothing=0"]


@pytest.mark.parametrize(
    ("readme_command", "measured"),
    [
        (["experiment=alexnet_bn_flowers17"], RECIPE_RUN),
        (["experiment=alexnet_bn_flowers17_final"], FINAL_RUN),
        ([*FIXED_CROPS, "trainer.max_epochs=90"], [*BN_RUN, "trainer.max_epochs=90"]),
        ([*FIXED_CROPS, "trainer.max_epochs=110"], [*BN_RUN, "trainer.max_epochs=110"]),
    ],
)
def test_readme_commands_compose_the_measured_runs(tmp_path, readme_command, measured):
    """docs/results.md: each BatchNorm AlexNet row names a command that composes the config of the run."""
    from pathlib import Path

    from omegaconf import OmegaConf

    results = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text(encoding="utf-8")
    assert [o for o in readme_command if o not in results] == [], "docs/results.md no longer names these"

    def resolved(overrides: list[str]) -> dict:
        composed = compose_train_config([*overrides, "task_name=x"], tmp_path)
        cfg = OmegaConf.to_container(composed, resolve=True)
        cfg.pop("hydra")
        cfg["callbacks"] = {k: v for k, v in cfg["callbacks"].items() if v is not None}  # null = removed
        return cfg

    assert resolved(readme_command) == resolved(measured)
