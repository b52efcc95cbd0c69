"""How far one figure holds: the same recipe and seed trained again, on 1 and 2 torch threads and with
`trainer.deterministic=true`, each in a fresh process; which test accuracies come out identical.

    uv run python scripts/reproducibility.py                      # the CIFAR-10 study cell, 5 runs
    uv run python scripts/reproducibility.py --cell "experiment=pool_pad_study_mnist pooling=max ..."

Writes bench/results/reproducibility/reproducibility.{json,md} (or --results-dir). Each run is
`python -m src.train <cell> threads=N [trainer.deterministic=true]` into its own directory; the figures
are read from its metrics.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS_DIR, machine, machine_line  # noqa: E402
from src.utils.files import write_json_atomically  # noqa: E402

CELL = "experiment=pool_pad_study_cifar10 pooling=max padding=same model.activation_fn=relu seed=1"
# (label, extra overrides): the first two are the same run twice, the exact-repeat check.
CONDITIONS = [
    ("1 thread", ["threads=1"]),
    ("1 thread, again", ["threads=1"]),
    ("2 threads", ["threads=2"]),
    ("1 thread, deterministic", ["threads=1", "trainer.deterministic=true"]),
    ("2 threads, deterministic", ["threads=2", "trainer.deterministic=true"]),
]
QUIET = ["logger=none", "callbacks.progress_bar=null"]


def run(cell: list[str], extra: list[str], root: Path) -> dict[str, float]:
    out = root / f"run{len(list(root.iterdir()))}"
    command = [sys.executable, "-m", "src.train", *cell, *extra, *QUIET, f"hydra.run.dir={out}"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: metrics["metrics"][k] for k in ("test/acc", "test/loss", "val/acc")} | {
        "fit_seconds": metrics.get("fit_seconds")
    }


def markdown(rows: list[dict]) -> list[str]:
    first = rows[0]
    lines = [
        "| condition | test acc | test loss | val acc | identical to the first run |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        same = all(row[k] == first[k] for k in ("test/acc", "test/loss", "val/acc"))
        lines.append(f"| {row['condition']} | {row['test/acc']:.2%} | {row['test/loss']:.6f} | "
                     f"{row['val/acc']:.2%} | {'yes' if same else 'no'} |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default=CELL, help="the overrides of the run to repeat")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR / "reproducibility")
    args = parser.parse_args()
    cell = args.cell.split()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in CONDITIONS:
            rows.append({"condition": label, "overrides": extra, **run(cell, extra, Path(tmp))})
            print(rows[-1], flush=True)
    command = "python scripts/reproducibility.py " + " ".join(sys.argv[1:])
    result = {"cell": cell, "rows": rows, "machine": machine(), "command": command}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(result, args.results_dir / "reproducibility.json")
    text = "\n".join([f"`{args.cell}`:", "", *markdown(rows), "", machine_line(result["machine"], command)])
    (args.results_dir / "reproducibility.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
