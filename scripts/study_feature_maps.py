"""One picture of what pooling passes on, taken from a study sweep's own TensorBoard images.

    python scripts/study_feature_maps.py outputs/pool_pad_study_mnist/multiruns/<time> \
        --layer pool1 --out docs/img/study_mnist_pool1.png

For each activation (rows) and pooling (columns) it takes the sweep's run with `padding=valid` and the
given seed, reads the last `feature_maps/NN_<layer>` image that the FeatureMaps callback wrote into the
run's TensorBoard event file (the same first validation image in every run), and titles it with the
run's measured test/<layer>_zeros and test/<layer>_mean (FeatureMapStatistics, over the whole test set).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the project's src/

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator  # noqa: E402

from src.runs.report import first_config, load_runs  # noqa: E402
from src.runs.rundir import RunDir  # noqa: E402


def last_image(run_dir: Path, layer: str) -> Image.Image | None:
    """The last feature_maps image of `layer` in the run's event files; None without one."""
    log_dir = RunDir(run_dir).tensorboard
    accumulator = EventAccumulator(str(log_dir), size_guidance={IMAGES: 0})
    accumulator.Reload()
    tags = [
        t for t in accumulator.Tags()["images"] if t.startswith("feature_maps/") and t.endswith(f"_{layer}")
    ]
    if not tags:
        return None
    event = accumulator.Images(tags[0])[-1]
    return Image.open(io.BytesIO(event.encoded_image_string))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--layer", default="pool1")
    parser.add_argument("--seed", default="1")
    parser.add_argument("--padding", default="valid")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    runs = [r for r in load_runs(args.sweep, curves=False) if r.test_acc is not None]
    activations, poolings = ("relu", "tanh"), ("max", "avg", "min")
    figure, axes = plt.subplots(len(activations), len(poolings), figsize=(4 * len(poolings), 4.4 * 2))
    for row, activation in enumerate(activations):
        for column, pooling in enumerate(poolings):
            wanted = {f"model.activation_fn={activation}", f"pooling={pooling}", f"padding={args.padding}"}
            wanted.add(f"seed={args.seed}")
            run = next((r for r in runs if wanted <= set(r.overrides)), None)
            axis = axes[row][column]
            axis.axis("off")
            if run is None:
                axis.set_title(f"{activation} + {pooling} pooling: no run")
                continue
            for problem in run.event_problems:  # TensorBoard reads the file only up to the damage
                print(f"warning: {problem}; its image may be missing", file=sys.stderr)
            zeros = run.metrics.get(f"test/{args.layer}_zeros")
            mean = run.metrics.get(f"test/{args.layer}_mean")
            image = last_image(run.path, args.layer)
            if image is None:  # a run logged without FeatureMaps, or whose event file is cut short
                print(f"warning: no feature_maps/..._{args.layer} image in {run.path}", file=sys.stderr)
                axis.set_title(f"{activation} + {pooling} pooling: no {args.layer} image")
                continue
            axis.imshow(image)
            numbers = "" if zeros is None else f"\n{zeros:.0%} zeros, mean {mean:+.2f} (test set)"
            axis.set_title(f"{activation} + {pooling} pooling: {args.layer}{numbers}", fontsize=10)
    name = first_config(runs).get("task_name") or args.sweep.name
    figure.suptitle(
        f"{name}: {args.layer} of the same validation image, padding={args.padding}, seed {args.seed}"
    )
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
