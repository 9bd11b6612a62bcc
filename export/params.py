"""The option values of `segexport`, as click parameter types and plain parsers (torch-free).

Each parser raises `ExportError` naming the option. The click types call them while the
command line is parsed, so a bad value is reported (as the CLIs report every segkit error:
one `Error: --option: problem` line, exit code 2) before any work starts.
"""

from __future__ import annotations

import click

from export.errors import ExportError

Range = tuple[int, int, int]  # (min, opt, max)

DEFAULT_OPSET = 18
EXPORTERS = ("auto", "dynamo", "torchscript")


def parse_batch(text: str, option: str = "--batch") -> int | None:
    """`"dynamic"` -> None, `"8"` -> 8."""
    if text == "dynamic":
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ExportError(option, f"expected 'dynamic' or a batch size >= 1, got {text!r}")


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """`"64,96"` or `"64x96"` -> (64, 96): height, width."""
    parts = text.lower().replace("x", ",").split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ExportError(option, f"expected HEIGHT,WIDTH such as 64,96, got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_range(text: str, option: str) -> Range:
    """`"1:8:32"` -> (1, 8, 32); `"8"` -> (8, 8, 8). Requires 1 <= min <= opt <= max."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
        raise ExportError(
            option,
            f"expected MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX (or one number), got {text!r}",
        )
    return values[0], values[1], values[2]


class _Parsed(click.ParamType):
    """A click type around one of the parsers above."""

    def __init__(self, name: str, parse):
        self.name = name
        self._parse = parse

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value  # a default that is already converted
        option = param.opts[-1] if param is not None else self.name
        return self._parse(value, option)


BATCH = _Parsed("dynamic|N", parse_batch)
SIZE = _Parsed("H,W", parse_size)
RANGE = _Parsed("MIN:OPT:MAX", parse_range)

# The accuracy gate of `segexport quantize` (export.gate)
DEFAULT_MAX_DICE_DROP = 0.005  # with --val: Dice at native size, fp32 minus int8
DEFAULT_MIN_AGREEMENT = 0.995  # without: mask agreement with fp32 on held-back images
