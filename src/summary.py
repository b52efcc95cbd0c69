"""Per-layer shapes and parameters of a configured network: what pooling and padding do to the maps.

    python -m src.summary model=lenet5 padding=same pooling=min
    python -m src.summary model=alexnet data=flowers17
    python -m src.summary model=lenet5 --compare padding=valid,same

Takes the same overrides as src.train; builds only the network (no data is read) and runs one
example input through it, recording every layer's output shape.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hydra.utils import instantiate

from src.config.compose import compose_config
from src.models.shapes import layer_rows
from src.utils.cli import ArgumentParser
from src.utils.errors import user_errors

if TYPE_CHECKING:
    from src.models.layers import Network


def _shape(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape))


def _table(header: Sequence[str], body: Sequence[Sequence[str]], right_align: int | None = None) -> list[str]:
    """Plain-text columns, two spaces apart; column `right_align` (numbers) is right-aligned."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = (
            c.rjust(w) if i == right_align else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(cells).rstrip()

    return [line(header), "-" * len(line(header)), *map(line, body)]


def format_table(model: Network, title: str = "") -> str:
    """The per-layer table: layer, type, output shape, parameters, then `Total params: N`."""
    body = [(r.name, r.kind, _shape(r.shape), f"{r.params:,}") for r in layer_rows(model)]
    input_shape = f"input: {model.in_channels} x {model.input_size} x {model.input_size}"
    total = f"Total params: {sum(p.numel() for p in model.parameters()):,}"
    lines = [
        title,
        input_shape,
        *_table(("layer", "type", "output shape", "params"), body, right_align=3),
        total,
    ]
    return "\n".join(line for line in lines if line)


def format_comparison(overrides: Sequence[str], sweep: str) -> str:
    """Per-layer output shapes side by side for each value of one `key=a,b,...` override."""
    key, _, values = sweep.partition("=")
    columns = {}
    for value in values.split(","):
        model = instantiate(compose_config([*overrides, f"{key}={value}"]).model)
        columns[f"{key}={value}"] = (layer_rows(model), sum(p.numel() for p in model.parameters()))
    first_rows = next(iter(columns.values()))[0]
    body = [
        [row.name] + [_shape(rows[i].shape) if i < len(rows) else "-" for rows, _ in columns.values()]
        for i, row in enumerate(first_rows)
    ]
    body.append(["Total params"] + [f"{total:,}" for _, total in columns.values()])
    return "\n".join(_table(["layer", *columns], body))


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser("src.summary", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for src.train")
    parser.add_argument(
        "--compare", metavar="KEY=A,B", help="show shapes side by side, e.g. padding=valid,same"
    )
    args = parser.parse_args(argv)
    with user_errors():
        if args.compare:
            print(format_comparison(args.overrides, args.compare))
            return
        cfg = compose_config(args.overrides)
        model = instantiate(cfg.model)
        title = (
            f"{cfg.model._target_.rsplit('.', 1)[-1]}  pooling={cfg.pooling.name}  padding={cfg.padding.name}"
        )
        print(format_table(model, title))


if __name__ == "__main__":
    main(sys.argv[1:])
