"""`python -m bench accuracy`: the recipe trained through src.train's own code, the test set evaluated
after every epoch (off the clock), and when its accuracy first reaches each target."""

from __future__ import annotations

from typing import Any

from bench.common import EpochClock, bench_config, evaluate, prepare

TARGETS = (0.99, 0.992, 0.993)


def run_accuracy(experiment: str, overrides: list[str]) -> dict[str, Any]:
    cfg = bench_config(experiment, ["callbacks.progress_bar=null", *overrides], f"accuracy_{experiment}")
    datamodule, module, trainer = prepare(cfg)
    clock = EpochClock(lambda m: round(evaluate(m, datamodule)[0], 4))
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    reached = {f"{t:.1%}": next((r["train_seconds"] for r in clock.rows if r["test_acc"] >= t), None)
               for t in TARGETS}  # fmt: skip
    return {
        "experiment": experiment,
        "overrides": overrides,
        "final_test_acc": clock.rows[-1]["test_acc"],
        "best_test_acc": max(r["test_acc"] for r in clock.rows),
        "epochs": len(clock.rows),
        "train_seconds": round(clock.trained_seconds, 2),
        "train_images_per_second": round(clock.trained_images / clock.trained_seconds),
        "train_images": clock.trained_images,
        "seconds_to_test_acc": reached,
        "per_epoch": clock.rows,
        "batch_size": cfg.data.batch_size,
    }


def accuracy_markdown(results: list[dict[str, Any]]) -> list[str]:
    header = "| experiment | final test acc | epochs | train time | images/s | training time to test acc |"
    lines = [header, "|---|---|---|---|---|---|"]
    for r in results:
        to_target = ", ".join(f"{k}: {v:.1f} s" if v is not None else f"{k}: not reached"
                              for k, v in r["seconds_to_test_acc"].items())  # fmt: skip
        lines.append(
            f"| `{r['experiment']}` | {r['final_test_acc']:.2%} | {r['epochs']} | "
            f"{r['train_seconds']:.1f} s | {r['train_images_per_second']:,} | {to_target} |"
        )
    return lines
