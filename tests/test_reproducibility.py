"""scripts/reproducibility.py: runs of one cell under each condition, compared with the first one."""

from __future__ import annotations

from tests.test_bench import load_file


def test_a_run_is_identical_only_when_every_figure_is():
    script = load_file("scripts/reproducibility.py")
    first = {"condition": "1 thread", "test/acc": 0.6822, "test/loss": 0.91, "val/acc": 0.69}
    rows = [
        first,
        {**first, "condition": "again"},
        {**first, "condition": "2 threads", "test/loss": 0.9100001},
    ]
    lines = script.markdown(rows)
    assert lines[2].endswith("| yes |") and lines[3].endswith("| yes |")
    assert lines[4].startswith("| 2 threads | 68.22% |") and lines[4].endswith("| no |")


def test_the_conditions_repeat_the_first_run_once_and_change_one_thing_each():
    script = load_file("scripts/reproducibility.py")
    overrides = [extra for _, extra in script.CONDITIONS]
    assert overrides[0] == overrides[1] == ["threads=1"]
    assert ["threads=2"] in overrides and ["threads=1", "trainer.deterministic=true"] in overrides
