"""src/data/cache.py: a decoded dataset is built once, loaded while whole, rebuilt when it is not."""

from __future__ import annotations

import torch

from src.data import cache
from src.data.cache import load_or_build


def builder(calls: list[int]):
    def build() -> dict[str, torch.Tensor]:
        calls.append(1)
        return {"images": torch.arange(4096, dtype=torch.int64).to(torch.uint8).view(4, 1, 32, 32),
                "labels": torch.arange(4)}  # fmt: skip

    return build


def test_built_once_then_loaded(tmp_path):
    calls: list[int] = []
    path = tmp_path / "set.pt"
    first = load_or_build(path, "src:1:2", builder(calls), "Set")
    second = load_or_build(path, "src:1:2", builder(calls), "Set")
    assert calls == [1]
    assert torch.equal(first["images"], second["images"]) and torch.equal(first["labels"], second["labels"])


def damage_flip_a_byte(path):
    state = torch.load(path, weights_only=True)
    state["tensors"]["images"][2, 0, 5, 7] += 1  # one pixel changed, everything else intact
    torch.save(state, path)


def damage_truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def damage_older_layout(path):
    state = torch.load(path, weights_only=True)
    state["layout"] = cache.LAYOUT - 1
    torch.save(state, path)


def damage_garbage(path):
    path.write_bytes(b"\0" * 1000)


def test_every_kind_of_damage_is_rebuilt_with_one_line(tmp_path, caplog):
    reasons = {
        damage_flip_a_byte: "is damaged (images fail their checksum)",
        damage_truncate: "cannot be read",
        damage_older_layout: "was written by an older version of this code",
        damage_garbage: "cannot be read",
    }
    for damage, reason in reasons.items():
        calls: list[int] = []
        path = tmp_path / f"{damage.__name__}.pt"
        expected = load_or_build(path, "src", builder(calls), "Set")
        damage(path)
        caplog.clear()
        with caplog.at_level("WARNING"):
            rebuilt = load_or_build(path, "src", builder(calls), "Set")
        assert calls == [1, 1], damage.__name__
        assert torch.equal(rebuilt["images"], expected["images"])
        [line] = caplog.messages
        assert line == f"Set: the cached copy {path} {reason}; rebuilding it from the source" or (
            reason == "cannot be read" and line.startswith(f"Set: the cached copy {path} cannot be read (")
        ), line
        load_or_build(path, "src", builder(calls), "Set")
        assert calls == [1, 1]  # the rebuilt copy is whole


def test_another_source_is_rebuilt(tmp_path, caplog):
    calls: list[int] = []
    path = tmp_path / "set.pt"
    load_or_build(path, "archive:100:1", builder(calls), "Set")
    with caplog.at_level("WARNING"):
        load_or_build(path, "archive:100:2", builder(calls), "Set")
    assert calls == [1, 1] and "was built from other source files" in caplog.text
