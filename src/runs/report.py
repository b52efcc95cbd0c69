"""The report of `python -m src.report`: tables and plots comparing finished runs, with mean ± std over seeds.

A run is any directory below the given one that holds a `metrics.json` or a `.hydra/` folder; the report
reads each finished run's metrics.json and TensorBoard event files. Runs not finished are listed as
`running` (their lock is held, src/runs/rundir.py) or `stopped`, damaged ones as `damaged` with the
reason: never silently dropped. A finished run whose event file is damaged (src/runs/events.py) stays in
the tables and is named in a warning line and in "Damaged event files": its curve ends at the damage.
It writes `report.md` and figures into the given directory: settings
(runs differing only in `seed=`) as mean ± std, paired differences (`--pair KEY=A,B`, per `--by`, with
a paired t-test; or `report.pairs` in conf/experiment/pool_pad_study.yaml), and every run.
What each table and figure holds: docs/tensorboard.md.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from src.runs.events import event_file_problems
from src.runs.rundir import FINISHED, RunDir, RunFileError, find_runs, override_key
from src.utils.errors import UserError

ALPHA = 0.05  # a paired difference is "larger than the seed noise" when its two-sided p-value is below
DAMAGED = "damaged"  # a run whose files cannot be read (Run.problem says which and why)


@dataclass
class Run:
    path: Path
    name: str
    overrides: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    fit_seconds: float = 0.0
    params: int = 0
    status: str = FINISHED
    pooled_shapes: dict[str, list[int]] = field(default_factory=dict)
    val_curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, val/acc)
    problem: str | None = None  # why a DAMAGED run could not be read
    # damaged event files of a finished run (src/runs/events.py): it stays in the tables, metrics.json
    # being whole, but its curve ends where TensorBoard's reading of the file did
    event_problems: list[str] = field(default_factory=list)

    @property
    def test_acc(self) -> float | None:
        return self.metrics.get("test/acc")

    @property
    def setting(self) -> tuple[str, ...]:
        """The overrides that make this run what it is, bar its seed."""
        return tuple(o for o in self.overrides if override_key(o) != "seed")

    def value(self, key: str) -> str | None:
        return next((o.split("=", 1)[1] for o in self.overrides if override_key(o) == key), None)


# ------------------------------------------------------------------------------------------ reading
def val_accuracy_per_epoch(run: RunDir) -> list[tuple[int, float]]:
    """(epoch, val/acc) from the run's TensorBoard event files; epochs counted from 1.

    Lightning logs `val/acc` and `epoch` at the same global step, so the `epoch` scalar at that step
    names the epoch. Without event files (logger=none) the curve is empty.
    """
    log_dir = run.tensorboard
    if not any(log_dir.glob("events.out.tfevents.*")):
        return []
    # deferred: TensorBoard, only for a run with event files
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags().get("scalars", [])
    if "val/acc" not in tags:
        return []
    epoch_at = {e.step: int(e.value) for e in accumulator.Scalars("epoch")} if "epoch" in tags else {}
    curve = {}
    for index, event in enumerate(accumulator.Scalars("val/acc")):
        curve[epoch_at.get(event.step, index) + 1] = event.value  # a resumed run may repeat a step
    return sorted(curve.items())


def load_run(run: RunDir, root: Path, curves: bool = True) -> Run:
    """The run as the report shows it; DAMAGED, with the reason, when its files cannot be read."""
    name = str(run.path.relative_to(root)) if run.path != root else run.path.name
    try:
        return _read_run(run, name, curves)
    except RunFileError as error:
        return Run(run.path, name, [], status=DAMAGED, problem=str(error))


def _read_run(run: RunDir, name: str, curves: bool) -> Run:
    state = run.status()
    data = run.read_metrics() if state == FINISHED else None
    if data is None:
        return Run(run.path, name, run.read_overrides(), status=state)
    return Run(
        path=run.path,
        name=name,
        overrides=run.overrides(data),
        metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
        epochs=int(data.get("epochs") or 0),
        fit_seconds=float(data.get("fit_seconds") or 0.0),
        params=int(data.get("params") or 0),
        pooled_shapes=data.get("pooled_shapes") or {},
        val_curve=val_accuracy_per_epoch(run) if curves else [],
        event_problems=event_file_problems(run.tensorboard),
    )


def load_runs(root: Path, curves: bool = True) -> list[Run]:
    """Every run below `root`: finished ones by test accuracy (best first), then the unfinished."""
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; give a run directory or a multirun (sweep) directory")
    runs = [load_run(run, root, curves) for run in find_runs(root)]
    if not runs:
        raise UserError(
            f"no runs in {root}: no metrics.json or .hydra/ at any depth (has a run started there?)"
        )
    for run in runs:
        for problem in run.event_problems:
            print(f"warning: run {run.name}: {problem}; its curves end there", file=sys.stderr)
    return sorted(
        runs, key=lambda r: (r.status != FINISHED, r.test_acc is None, -(r.test_acc or 0.0), r.name)
    )


def finished(runs: Sequence[Run]) -> list[Run]:
    return [r for r in runs if r.status == FINISHED]


def split_overrides(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """Overrides every run shares, and each run's own (what the sweep varied)."""
    if len(runs) == 1:
        return [], [runs[0].overrides]
    common = [o for o in runs[0].overrides if all(o in r.overrides for r in runs[1:])]
    return common, [[o for o in r.overrides if o not in common] for r in runs]


# ----------------------------------------------------------------------------------- statistics
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class Group:
    """The runs of one setting: the same overrides but for the seed."""

    setting: tuple[str, ...]
    runs: list[Run]

    @property
    def accuracies(self) -> list[float]:
        return [r.test_acc for r in self.runs if r.test_acc is not None]

    def value(self, key: str) -> str | None:
        return self.runs[0].value(key)


def group_by_setting(runs: Sequence[Run]) -> list[Group]:
    """Finished runs grouped by their overrides without `seed=`; best mean test accuracy first."""
    groups: dict[tuple[str, ...], list[Run]] = defaultdict(list)
    for run in finished(runs):
        groups[tuple(sorted(run.setting))].append(run)
    result = [Group(setting, members) for setting, members in groups.items()]
    return sorted(result, key=lambda g: -(mean_std(g.accuracies)[0] if g.accuracies else -1.0))


@dataclass
class PairedDifference:
    """Test accuracy of KEY=A minus KEY=B over runs that differ only in KEY, for one value of `by`."""

    key: str
    a: str
    b: str
    by: str  # e.g. "model.activation_fn=relu", or "all runs"
    differences: list[float]
    noise: float  # the seed-to-seed std of the settings involved (pooled)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences)

    @property
    def std(self) -> float:
        return statistics.stdev(self.differences) if len(self.differences) > 1 else 0.0

    @property
    def p_value(self) -> float | None:
        """Two-sided paired t-test of mean difference 0 (None with fewer than 2 pairs)."""
        n = len(self.differences)
        if n < 2:
            return None
        if self.std == 0:
            return 0.0 if self.mean != 0 else 1.0
        from scipy.stats import t as student_t  # deferred: scipy, only for a p-value

        statistic = self.mean / (self.std / math.sqrt(n))
        return float(2 * student_t.sf(abs(statistic), n - 1))

    @property
    def beyond_noise(self) -> bool:
        p = self.p_value
        return p is not None and p < ALPHA


def parse_pair(text: str) -> tuple[str, str, str]:
    key, _, values = text.partition("=")
    parts = values.split(",")
    if not key or len(parts) != 2 or not all(parts):
        raise UserError(f"--pair {text} is not KEY=A,B (e.g. pooling=min,max)")
    return key, parts[0], parts[1]


def paired_differences(runs: Sequence[Run], pair: str, by: str | None = None) -> list[PairedDifference]:
    """One PairedDifference per value of `by` (and one over all runs), for `pair` = "KEY=A,B"."""
    key, a, b = parse_pair(pair)
    matched: dict[tuple[str, ...], dict[str, Run]] = defaultdict(dict)
    for run in finished(runs):
        value = run.value(key)
        if value in (a, b) and run.test_acc is not None:
            matched[tuple(sorted(o for o in run.overrides if override_key(o) != key))][value] = run
    pairs = [(found[a], found[b]) for found in matched.values() if a in found and b in found]
    noise = {g.setting: mean_std(g.accuracies)[1] for g in group_by_setting(runs) if len(g.accuracies) > 1}

    def summarise(label: str, chosen: list[tuple[Run, Run]]) -> PairedDifference:
        settings = {tuple(sorted(r.setting)) for pair_runs in chosen for r in pair_runs}
        variances = [noise[s] ** 2 for s in settings if s in noise]
        pooled = math.sqrt(statistics.fmean(variances)) if variances else 0.0
        differences = [cast(float, ra.test_acc) - cast(float, rb.test_acc) for ra, rb in chosen]  # finished
        return PairedDifference(key, a, b, label, differences, pooled)

    results = []
    if by:
        for value in sorted({v for ra, _ in pairs if (v := ra.value(by)) is not None}):
            results.append(
                summarise(f"{by}={value}", [(ra, rb) for ra, rb in pairs if ra.value(by) == value])
            )
    if pairs:
        results.append(summarise("all runs", pairs))
    return results


# -------------------------------------------------------------------------------------- markdown
def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(mean: float, std: float) -> str:
    return f"{mean:.2%} ± {std:.2%}"


def _shape(shapes: dict[str, list[int]]) -> str:
    """The last pooling layer's output, e.g. `pool2 16×5×5`."""
    if not shapes:
        return "-"
    name, shape = list(shapes.items())[-1]
    return f"{name.rsplit('.', 1)[-1]} {'×'.join(map(str, shape))}"


def groups_table(groups: Sequence[Group], common: Sequence[str]) -> str:
    header = (
        "| setting | seeds | test acc (mean ± std) | best val acc (mean) | params | feature map | epochs |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---|---:|"]
    for group in groups:
        own = [o for o in group.setting if o not in common]
        accs = group.accuracies
        found = [r.metrics.get("val/acc_best", r.metrics.get("val/acc")) for r in group.runs]
        vals = [v for v in found if v is not None]
        first = group.runs[0]
        cells = [
            f"`{' '.join(own)}`" if own else "(none)",
            str(len(group.runs)),
            _percent(*mean_std(accs)) if accs else "-",
            f"{statistics.fmean(vals):.2%}" if vals else "-",
            f"{first.params:,}",
            _shape(first.pooled_shapes),
            str(first.epochs),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def map_statistics_table(groups: Sequence[Group], common: Sequence[str]) -> str | None:
    """What each activation / pooling layer passes on (src.training.insight.FeatureMapStatistics: the
    fraction of exact zeros and the mean value over the test set), averaged over each setting's seeds."""
    names = sorted(
        {
            k.split("/", 1)[1].rsplit("_", 1)[0]
            for g in groups
            for r in g.runs
            for k in r.metrics
            if k.endswith("_zeros")
        },
        key=lambda name: (name[-1], not name.startswith("act")),  # act1, pool1, act2, pool2
    )
    if not names:
        return None
    header = ["setting", *(f"{n} {what}" for n in names for what in ("zeros", "mean"))]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for group in groups:
        own = [o for o in group.setting if o not in common]
        cells = [f"`{' '.join(own)}`" if own else "(none)"]
        for name in names:
            for what, form in (("zeros", "{:.1%}"), ("mean", "{:+.3f}")):
                values = [
                    r.metrics[f"test/{name}_{what}"] for r in group.runs if f"test/{name}_{what}" in r.metrics
                ]
                cells.append(form.format(statistics.fmean(values)) if values else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def differences_table(differences: Sequence[PairedDifference]) -> str:
    header = (
        "| difference | runs | pairs | mean (points) | std of the differences | seed-to-seed std | "
        "p (paired t) | larger than the seed noise? |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---|"]
    for d in differences:
        p = d.p_value
        verdict = "-" if p is None else ("**yes**" if d.beyond_noise else "no")
        cells = [
            f"{d.key}={d.a} − {d.key}={d.b}",
            d.by,
            str(len(d.differences)),
            f"{d.mean * 100:+.2f}",
            f"{d.std * 100:.2f}",
            f"{d.noise * 100:.2f}",
            "-" if p is None else f"{p:.3g}",
            verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def runs_table(runs: Sequence[Run], common: Sequence[str]) -> str:
    header = ["run", "overrides", "params", "test acc", "best val acc", "epochs", "wall time (s)", "images/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * 5) + "|"]
    for run in runs:
        own = [o for o in run.overrides if o not in common]
        images = run.metrics.get("train/images_per_second")
        cells = [
            run.name,
            f"`{' '.join(own)}`" if own else "(none)",
            f"{run.params:,}",
            _fmt(run.test_acc),
            _fmt(run.metrics.get("val/acc_best", run.metrics.get("val/acc"))),
            str(run.epochs),
            f"{run.fit_seconds:.1f}",
            "-" if images is None else f"{images:,.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def unfinished_lines(runs: Sequence[Run]) -> list[str]:
    what = {"running": "still running", "stopped": "stopped before it finished (failed or killed)"}
    return [f"- {r.name}: {what.get(r.status, r.status)}; `{' '.join(r.overrides)}`" for r in runs]


def damaged_lines(runs: Sequence[Run]) -> list[str]:
    return [f"- {r.name}: {r.problem}" for r in runs]


def event_problem_lines(runs: Sequence[Run]) -> list[str]:
    return [f"- {r.name}: {problem}" for r in runs for problem in r.event_problems]


def markdown(runs: Sequence[Run], pairs: Sequence[str] = (), by: str | None = None) -> str:
    done = finished(runs)
    common, _ = split_overrides(done or runs)
    parts = [f"Common overrides: `{' '.join(common)}`"] if common and len(done) > 1 else []
    groups = group_by_setting(done)
    if any(len(g.runs) > 1 for g in groups):
        parts += ["### Mean ± std over seeds", groups_table(groups, common)]
        maps = map_statistics_table(groups, common)
        if maps:
            parts += ["### What each layer passes on (test set, mean over seeds)", maps]
    differences = [d for pair in pairs for d in paired_differences(done, pair, by)]
    if differences:
        parts += ["### Paired differences (same seed, everything else equal)", differences_table(differences)]
    unfinished = [r for r in runs if r.status not in (FINISHED, DAMAGED)]
    if unfinished:
        parts += [f"### Not finished ({len(unfinished)})", "\n".join(unfinished_lines(unfinished))]
    damaged = [r for r in runs if r.status == DAMAGED]
    if damaged:
        parts += [f"### Damaged, left out ({len(damaged)})", "\n".join(damaged_lines(damaged))]
    partial = [r for r in runs if r.event_problems]
    if partial:
        title = (
            f"### Damaged event files ({len(partial)}): in the tables, metrics.json being whole; curves cut"
        )
        parts += [title, "\n".join(event_problem_lines(partial))]
    if done:
        parts += ["### Every run" if len(parts) > 1 else "", runs_table(done, common)]
    return "\n\n".join(part for part in parts if part)


# ---------------------------------------------------------------------------------------- plots
def pyplot():
    import matplotlib  # deferred: matplotlib, only for a figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: pyplot, after the Agg backend is set

    return plt


def plot(runs: Sequence[Run], path: Path) -> None:
    """report.png: validation accuracy per epoch (one line per run) and test accuracy (bars)."""
    plt = pyplot()
    _, own = split_overrides(runs)
    labels = [" ".join(o) or r.name for r, o in zip(runs, own, strict=True)]
    height = max(4.0, 0.35 * len(runs) + 2)
    figure, (curves, bars) = plt.subplots(1, 2, figsize=(13, height), gridspec_kw={"width_ratios": [3, 2]})
    for run, label in zip(runs, labels, strict=True):
        if run.val_curve:
            epochs, values = zip(*run.val_curve, strict=True)
            curves.plot(epochs, values, marker="o", label=label)
    curves.set_xlabel("epoch")
    curves.set_ylabel("validation accuracy")
    curves.set_title("val/acc per epoch")
    curves.grid(alpha=0.3)
    if any(r.val_curve for r in runs):
        if len(runs) <= 12:
            curves.legend(fontsize=8)
        curves.xaxis.get_major_locator().set_params(integer=True)
    tested = [(label, r.test_acc) for r, label in zip(runs, labels, strict=True) if r.test_acc is not None]
    if tested:
        names, values = zip(*reversed(tested), strict=True)  # best on top
        bars.barh(range(len(values)), values, color="tab:blue")
        bars.set_yticks(range(len(values)), names, fontsize=8)
        low = min(values)
        bars.set_xlim(max(0.0, low - (1 - low) * 0.5 - 0.01), 1.0)
        for index, value in enumerate(values):
            bars.text(value, index, f" {value:.4f}", va="center", fontsize=8)
    bars.set_xlabel("test accuracy")
    bars.set_title("test/acc")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def groups_figure(groups: Sequence[Group], common: Sequence[str], by: str | None, title: str):
    """Mean test accuracy per setting with ±1 std error bars; bars coloured by the value of `by`."""
    plt = pyplot()
    values = {v for g in groups if by and (v := g.value(by)) is not None}
    colour_values: list[str | None] = [*sorted(values)] or [None]

    def label(group: Group) -> str:
        return " ".join(o for o in group.setting if o not in common and (not by or override_key(o) != by))

    positions = sorted({label(g) for g in groups})
    width = 0.8 / len(colour_values)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(positions) * len(colour_values)), 4.5))
    lowest = 1.0
    for index, colour in enumerate(colour_values):
        chosen = {label(g): g for g in groups if colour is None or (by and g.value(by) == colour)}
        xs = [
            i + (index - (len(colour_values) - 1) / 2) * width for i, p in enumerate(positions) if p in chosen
        ]
        stats = [mean_std(chosen[p].accuracies) for p in positions if p in chosen]
        if not stats:
            continue
        means, stds = zip(*stats, strict=True)
        lowest = min(lowest, *(m - s for m, s in stats))
        axes.bar(xs, means, width, yerr=stds, capsize=4, label=f"{by}={colour}" if colour else None)
    axes.set_xticks(range(len(positions)), [p.replace(" ", "\n") for p in positions], fontsize=8)
    highest = max(statistics.fmean(g.accuracies) + mean_std(g.accuracies)[1] for g in groups if g.accuracies)
    margin = max(0.005, (highest - lowest) * 0.6)  # differences of tenths of a point stay visible
    axes.set_ylim(max(0.0, lowest - margin), min(1.0, highest + margin))
    axes.set_ylabel("test accuracy (mean ± std over seeds)")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    if colour_values != [None]:
        axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def log_figure_to_tensorboard(figure, log_dir: Path, tag: str) -> None:
    """The figure as an image in `log_dir`'s TensorBoard event file (so `tensorboard --logdir` shows it)."""
    from torch.utils.tensorboard import SummaryWriter  # deferred: torch and TensorBoard, only for a figure

    writer = SummaryWriter(str(log_dir))
    try:
        writer.add_figure(tag, figure, global_step=0, close=False)
    finally:
        writer.close()


# ------------------------------------------------------------------------------------- the report
def first_config(runs: Sequence[Run]) -> DictConfig:
    """The saved config of the first finished run that has one (an empty config if none has)."""
    for run in finished(runs):
        saved = RunDir(run.path)
        if saved.config_file.is_file():
            try:
                return saved.read_config()
            except RunFileError:  # a damaged config.yaml: the next run's will do
                continue
    return OmegaConf.create({})


def report_settings(runs: Sequence[Run]) -> dict[str, Any]:
    """`report:` of the first finished run's config.yaml (an experiment's pairs / by), or {}."""
    settings = first_config(runs).get("report")
    return cast(dict[str, Any], OmegaConf.to_container(settings)) if isinstance(settings, DictConfig) else {}


def report(root: Path, pairs: Sequence[str] | None = None, by: str | None = None) -> str:
    """Write report.md, report.png and (for groups) report_groups.png into `root`; return the text."""
    runs = load_runs(root)
    settings = report_settings(runs)
    pairs = list(pairs) if pairs else list(settings.get("pairs") or [])
    by = by or settings.get("by")
    text = markdown(runs, pairs, by)
    done = finished(runs)
    images = []
    if done:
        plot(done, root / "report.png")
        images.append("![report](report.png)")
    groups = group_by_setting(done)
    if any(len(g.runs) > 1 for g in groups):
        common, _ = split_overrides(done)
        name = first_config(runs).get("task_name") or root.name
        figure = groups_figure(groups, common, by, f"{name}: test accuracy, mean ± std over seeds")
        figure.savefig(root / "report_groups.png", dpi=110)
        log_figure_to_tensorboard(figure, root / "tensorboard_report", "report/test_acc_mean_std")
        pyplot().close(figure)
        images.insert(0, "![mean ± std](report_groups.png)")
    (root / "report.md").write_text(f"# Report: {root}\n\n{text}\n\n" + "\n\n".join(images) + "\n")
    return text
