"""docs/ screenshots of TensorBoard: serve a real run on loopback and capture pages with headless Chromium.

    uv run python scripts/screenshots.py [RUN_DIR] [--sweep SWEEP_DIR] [--out docs/img]
    make screenshots ARGS="outputs/train/runs/<run> --sweep outputs/train/multiruns/<sweep>"

RUN_DIR defaults to the newest run under outputs/ (a directory with metrics.json and tensorboard/).
With --sweep, a second TensorBoard serves every run of that sweep (each named after the overrides it
varied, e.g. `pooling=min padding=same`) for pages that compare them: the HParams table and one
feature map of every run side by side.
TensorBoard listens on 127.0.0.1 only, on a free port, and is stopped at the end. Chromium is the Debian
package `chromium` (`apt-get install -y chromium`); it runs headless with a throw-away profile and no
background networking. Each page is a TensorBoard URL whose fragment picks the dashboard (and a tag
filter), e.g. http://127.0.0.1:PORT/#images&tagFilter=feature_maps.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project's src/
from src.runs.events import event_file_problems  # noqa: E402
from src.runs.rundir import RunDir, find_runs  # noqa: E402

# file name -> (URL fragment, window width, window height); %7C is "|" (tag filters are regexes)
PAGES = {
    "tensorboard_scalars.png": (
        "scalars&_ignoreYOutliers=false&tagFilter=%5E(train%7Cval%7Ctest)%2F%7Clr",
        1600,
        1300,
    ),
    "tensorboard_feature_maps.png": ("images&tagFilter=feature_maps", 1600, 1500),
    "tensorboard_confusion_matrix.png": ("images&tagFilter=confusion_matrix%7Cmistakes", 1600, 930),
    "tensorboard_inputs_filters.png": ("images&tagFilter=inputs%7Cfilters", 1600, 900),
    "tensorboard_hparams.png": ("hparams", 2400, 600),
    "tensorboard_graph.png": ("graphs", 1600, 900),
}
# The HParams tab finds each run's final metrics only under a plain --logdir (runs named `0/tensorboard`,
# …; the table shows pooling and padding); the image page names the runs with --logdir_spec.
SWEEP_HPARAMS_PAGES = {"tensorboard_sweep_hparams.png": ("hparams", 2400, 600)}
SWEEP_PAGES = {"tensorboard_sweep_pool1.png": ("images&tagFilter=feature_maps%2F0%5B13%5D_", 1600, 1700)}


def whole_event_files(run: RunDir) -> bool:
    """False, after one warning line per damaged event file (src/runs/events.py), when the run has one:
    TensorBoard would show it cut short without a word."""
    problems = event_file_problems(run.tensorboard)
    for problem in problems:
        print(f"warning: {problem}; run left out", file=sys.stderr)
    return not problems


def finished_runs_with_tensorboard(root: Path) -> list[RunDir]:
    """Finished runs with TensorBoard logs whose event files are whole (the damaged: one warning each)."""
    runs = [run for run in find_runs(root) if run.metrics_file.is_file() and run.tensorboard.is_dir()]
    return [run for run in runs if whole_event_files(run)]


def newest_run(root: Path) -> Path:
    runs = finished_runs_with_tensorboard(root)
    if not runs:
        sys.exit(
            f"error: no run with metrics.json and tensorboard/ under {root}; train one first (make train)"
        )
    return max(runs, key=lambda run: run.metrics_file.stat().st_mtime).path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_run(port: int, timeout: float = 120) -> None:
    """Until TensorBoard has read the run's scalars and images (it loads event files in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/images/tags", timeout=5) as r:
                if any(tags for tags in json.loads(r.read()).values()):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("error: TensorBoard did not serve the run in time")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("error: chromium not found; install it: apt-get update && apt-get install -y chromium")


def capture(browser: str, url: str, path: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=60000",  # let TensorBoard fetch and draw before the capture
            f"--screenshot={path}",
            url,
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=180)


def sweep_logdir_spec(sweep: Path) -> str:
    """`name:path,...` for `tensorboard --logdir_spec`: each run named after the overrides it varied."""
    runs = finished_runs_with_tensorboard(sweep)
    if not runs:
        sys.exit(f"error: no runs with metrics.json and tensorboard/ under {sweep}")
    overrides = [run.read_metrics().get("overrides", []) for run in runs]
    common = set.intersection(*map(set, overrides))
    # names may not hold "," or ":" (the separators of the spec)
    names = [
        " ".join(o for o in own if o not in common).replace(",", ";").replace(":", "=") or run.path.name
        for run, own in zip(runs, overrides, strict=True)
    ]
    return ",".join(f"{name}:{run.tensorboard}" for name, run in zip(names, runs, strict=True))


def serve_and_capture(logdir_args: list[str], pages: dict, out: Path, only: list[str] | None) -> None:
    browser, port = chromium(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", *logdir_args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_run(port)
        for name, (fragment, width, height) in pages.items():
            if only and name not in only:
                continue
            capture(browser, f"http://127.0.0.1:{port}/#{fragment}", out / name, width, height)
            print(f"wrote {out / name}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a run directory (default: the newest)")
    parser.add_argument("--sweep", type=Path, help="a multirun directory: also capture the comparison pages")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=sorted(PAGES | SWEEP_HPARAMS_PAGES | SWEEP_PAGES),
        help="only these files",
    )
    args = parser.parse_args()
    run_dir = (args.run_dir or newest_run(ROOT / "outputs")).resolve()
    if args.run_dir:
        for problem in event_file_problems(RunDir(run_dir).tensorboard):  # the run asked for: taken anyway
            print(f"warning: {problem}; its pages show what TensorBoard reads before it", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    serve_and_capture(["--logdir", str(RunDir(run_dir).tensorboard)], PAGES, args.out, args.only)
    print(f"(run: {run_dir})")
    if args.sweep:
        serve_and_capture(["--logdir", str(args.sweep.resolve())], SWEEP_HPARAMS_PAGES, args.out, args.only)
        spec = sweep_logdir_spec(args.sweep.resolve())
        serve_and_capture(["--logdir_spec", spec], SWEEP_PAGES, args.out, args.only)
        print(f"(sweep: {args.sweep})")


if __name__ == "__main__":
    main()
