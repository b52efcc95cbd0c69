"""The study sheet's Keras LeNet-5 on MNIST or CIFAR-10, timed: what `python -m bench keras` compares
against.

TensorFlow is not a dependency of this project, so `bench keras` runs this file in a throw-away
environment next to it (the exact command is in bench/keras.py, KERAS_COMMAND):

    uv run --no-project --python 3.11 --with tensorflow-cpu==2.21.0 python bench/keras_lenet5.py \
        --data-dir $DATA_DIR --out outputs/bench/keras_raw.json

The network is the study sheet's: 32x32x1 input (MNIST's 28x28 zero-padded, as LeNet-5 expects) or CIFAR-10's
32x32x3 (`--dataset cifar10`), conv 6@5x5 tanh, average pool 2, conv 16@5x5 tanh, average pool 2,
dense 120-84 tanh, softmax over 10, Adam (lr 1e-3), batch 128, `model.fit` on in-memory NumPy arrays
(pixels / 255) with TensorFlow's default threads. Training images/s is the best of the warm epochs
(epoch 1 includes graph tracing), over the training images src.train uses: MNIST's 55,000; all
50,000 of CIFAR-10 (the study sheet validated on the test set, as `experiment=sheet_lenet5_cifar10` does).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np

MNIST_TRAIN_IMAGES = 55_000
CIFAR_ARCHIVE, CIFAR_FOLDER = "cifar-10-python.tar.gz", "cifar-10-batches-py"


def read_idx(raw: Path, name: str) -> np.ndarray:
    """An MNIST IDX file, plain or as the official .gz."""
    path = raw / name
    opener = open if path.is_file() else gzip.open
    if not path.is_file():
        path = raw / f"{name}.gz"
    if not path.is_file():
        raise SystemExit(f"error: {raw / name} (or .gz) not found; --data-dir holds MNIST/raw/")
    with opener(path, "rb") as file:
        data = file.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    raw = data_dir / "MNIST" / "raw"
    images = read_idx(raw, f"{prefix}-images-idx3-ubyte")
    labels = read_idx(raw, f"{prefix}-labels-idx1-ubyte")
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None].astype(np.float32) / 255.0
    return images, labels.astype(np.int64)


def cifar10_batches(data_dir: Path) -> dict[str, dict]:
    """The unpickled batches of CIFAR-10's python version, from the archive or an extracted folder."""
    folder, archive = data_dir / CIFAR_FOLDER, data_dir / CIFAR_ARCHIVE
    if folder.is_dir():
        return {p.name: pickle.loads(p.read_bytes(), encoding="latin1") for p in folder.glob("*_batch*")}
    if not archive.is_file():
        raise SystemExit(f"error: {archive} not found; --data-dir holds {CIFAR_ARCHIVE}")
    with tarfile.open(archive) as tar:
        return {
            Path(m.name).name: pickle.loads(tar.extractfile(m).read(), encoding="latin1")
            for m in tar
            if m.isfile() and "_batch" in m.name
        }


def load_cifar10(data_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """prefix "train": data_batch_1..5 (50,000 images); "test": test_batch. NHWC float32 in [0, 1]."""
    batches = cifar10_batches(data_dir)
    names = [f"data_batch_{k}" for k in range(1, 6)] if prefix == "train" else ["test_batch"]
    data = np.concatenate([batches[name]["data"] for name in names])
    labels = np.concatenate([batches[name]["labels"] for name in names])
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return images, labels.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", "data")))
    parser.add_argument("--dataset", choices=("mnist", "cifar10"), default="mnist")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="training images (tests use fewer)")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if args.dataset == "mnist":
        (train_x, train_y), test = load(args.data_dir, "train"), load(args.data_dir, "t10k")
        limit = args.limit or MNIST_TRAIN_IMAGES
    else:
        (train_x, train_y), test = load_cifar10(args.data_dir, "train"), load_cifar10(args.data_dir, "test")
        limit = args.limit or len(train_y)
    test_x, test_y = test
    train_x, train_y = train_x[:limit], train_y[:limit]
    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input(train_x.shape[1:]),
        keras.layers.Conv2D(6, 5, activation="tanh"),
        keras.layers.AveragePooling2D(2),
        keras.layers.Conv2D(16, 5, activation="tanh"),
        keras.layers.AveragePooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(120, activation="tanh"),
        keras.layers.Dense(84, activation="tanh"),
        keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])

    class EpochTimes(keras.callbacks.Callback):
        seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    fit_args = {"batch_size": args.batch_size, "epochs": args.epochs, "verbose": 0}
    model.fit(train_x, train_y, **fit_args, callbacks=[EpochTimes()])
    warm = EpochTimes.seconds[1:] or EpochTimes.seconds
    _, test_acc = model.evaluate(test_x, test_y, batch_size=1000, verbose=0)
    result = {
        "images_per_second": round(len(train_x) / min(warm)),
        "epoch_seconds": [round(s, 3) for s in EpochTimes.seconds],
        "test_acc_after_epochs": round(float(test_acc), 4),
        "dataset": args.dataset,
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_images": len(train_x),
        "params": model.count_params(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default (all cores)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    temporary.replace(args.out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
