"""A card for each dataset, declared once and without torch: its classes, its images, and the options its
datamodule takes, with their limits.

Three readers, one source:
- the datamodules (src/data/mnist.py, cifar10.py, flowers17.py, synthetic.py) take their class names and
  channels from their card (the class attribute `card`) and check their options against its rules
  when they are built, so a datamodule made in Python answers as the command line does;
- the config: a network's `num_classes` and `in_channels` are `${dataset:num_classes}` and
  `${dataset:image_channels}` (conf/model/*.yaml), read from the card of `data._target_`
  (src/config/compose.py registers that resolver);
- the config check (src/config/schema.py) asks the same card for its rules and its largest input,
  before torch is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from src.utils.errors import ConfigError
from src.utils.rules import Rule, broken_rules, is_int

# The options every in-memory datamodule takes (src/data/base.py: InMemoryDataModule).
COMMON_RULES = (
    Rule("data.batch_size", "int", "an integer >= 1", lambda v: v >= 1),
    Rule("data.eval_batch_size", "int", "an integer >= 1", lambda v: v >= 1),
    Rule("data.split_seed", "int", "an integer"),
    Rule("data.flip_eval", "bool", "true or false"),
    Rule(
        "data.shift_eval",
        "int",
        "an integer from 0 to 8 (pixels; 0: no shifted views)",
        lambda v: 0 <= v <= 8,
    ),
    Rule("data.download", "bool", "true or false"),
    Rule("data.keep_on_device", "bool", "true or false"),
)
# Datasets that hold `val_size` training images out for validation (MNIST, CIFAR-10); the upper limit, the
# number of training images found, is checked when they are read (base.py: holdout_splits).
VAL_SIZE = Rule("data.val_size", "int", "an integer >= 0 (0: validate on the test set)", lambda v: v >= 0)
AUGMENTATION = Rule("data.augmentation", "bool", "true or false")
CROP_PADDING = Rule("data.crop_padding", "int", "an integer from 0 to 16", lambda v: 0 <= v <= 16)
# The final fit of a chosen recipe: train on the training and validation images together.
TRAIN_ON_VAL = Rule("data.train_on_val", "bool", "true or false")
FLOWERS17_RULES = (
    Rule("data.split_index", "int", "1, 2, 3 or null", lambda v: v in (1, 2, 3), nullable=True),
    AUGMENTATION,
    Rule("data.ten_crop_test", "bool", "true or false"),
    Rule(
        "data.min_crop_area", "number", "0 < min_crop_area <= 1 or null", lambda v: 0 < v <= 1, nullable=True
    ),
    TRAIN_ON_VAL,
)


@dataclass(frozen=True)
class DatasetCard:
    """What a dataset is; `name` is its choice in conf/data/ (for messages)."""

    name: str
    class_names: tuple[str, ...]
    image_channels: int
    image_size: int  # the side of the images as its datamodule holds them
    rules: tuple[Rule, ...] = COMMON_RULES
    # Set where the model's input is cut out of the image (no larger than it, then): why it is that size.
    cropped_input_note: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def problems(self, options: Mapping[str, Any], input_size: Any = None) -> list[str]:
        """One clause per option (a datamodule argument, e.g. `batch_size`) that breaks a rule, and one
        when `input_size` (the model's) is larger than the images."""
        clauses = broken_rules(self.rules, {f"data.{name}": value for name, value in options.items()})
        if options.get("ten_crop_test") is True and options.get("flip_eval") is True:
            clauses.append(  # the ten crops are five crops and their mirror images already
                "data.flip_eval=true and data.ten_crop_test=true cannot be combined: the ten crops already "
                "hold each crop's mirror image; choose one"
            )
        shift = options.get("shift_eval")
        if options.get("ten_crop_test") is True and is_int(shift) and shift != 0:
            clauses.append(  # the four corner crops are shifted views already
                f"data.shift_eval={shift} and data.ten_crop_test=true cannot be combined: the ten crops "
                "already hold shifted views (the corners); choose one"
            )
        too_large = is_int(input_size) and input_size > self.image_size
        if self.cropped_input_note and too_large:
            clauses.append(
                f"model.input_size={input_size} is too large for data={self.name}: must be <= "
                f"{self.image_size} ({self.cropped_input_note})"
            )
        return clauses

    def check(self, options: Mapping[str, Any], input_size: Any = None) -> None:
        """Raise one ConfigError listing every problem of `problems`."""
        clauses = self.problems(options, input_size)
        if clauses:
            raise ConfigError("; ".join(clauses))


MNIST = DatasetCard(
    "mnist",
    tuple(str(digit) for digit in range(10)),
    image_channels=1,
    image_size=28,
    rules=(*COMMON_RULES, VAL_SIZE, TRAIN_ON_VAL),
)
CIFAR10 = DatasetCard(
    "cifar10",
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    image_channels=3,
    image_size=32,
    rules=(*COMMON_RULES, VAL_SIZE, TRAIN_ON_VAL, AUGMENTATION, CROP_PADDING),
)
# Oxford Flowers-17's classes, in the order of its images' numbers (80 a class).
FLOWERS17_CLASSES = (
    "daffodil", "snowdrop", "lily valley", "bluebell", "crocus", "iris", "tigerlily", "tulip", "fritillary",
    "sunflower", "daisy", "colts' foot", "dandelion", "cowslip", "buttercup", "windflower", "pansy",
)  # fmt: skip
FLOWERS17 = DatasetCard(
    "flowers17",
    FLOWERS17_CLASSES,
    image_channels=3,
    image_size=256,  # decoded once to 256x256, as in the AlexNet paper (src/data/flowers17.py)
    rules=(*COMMON_RULES, *FLOWERS17_RULES),
    cropped_input_note="the images are decoded to 256x256",
)
SYNTHETIC = DatasetCard(
    "synthetic",
    tuple(f"class {k}" for k in range(FLOWERS17.num_classes)),
    image_channels=3,
    image_size=FLOWERS17.image_size,
    rules=FLOWERS17.rules,
    cropped_input_note="the images are made at Flowers-17's decoded 256x256",
)

# The datamodules of src/data by class name (tests/test_catalog.py checks each class against its card).
DATASETS: dict[str, DatasetCard] = {
    "MNISTDataModule": MNIST,
    "CIFAR10DataModule": CIFAR10,
    "Flowers17DataModule": FLOWERS17,
    "SyntheticDataModule": SYNTHETIC,
}


def dataset_for_target(target: str) -> DatasetCard | None:
    """The card of a Hydra `_target_` naming one of src/data's datamodules, else None."""
    module, _, name = target.rpartition(".")
    if name in DATASETS and module.startswith("src.data."):
        return DATASETS[name]
    return None
