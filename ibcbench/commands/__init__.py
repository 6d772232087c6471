"""CLI command modules; each defines ``register(subparsers)``. Discovered by :mod:`ibcbench.cli`.

What the command modules share lives here, so that none of them imports the CLI that imports them.
"""

from __future__ import annotations

import argparse


def add_dsn_argument(parser: argparse.ArgumentParser) -> None:
    """``--dsn``: an external server instead of the embedded one (default: DATABASE_URL)."""
    parser.add_argument(
        "--dsn",
        default=None,
        help="connection URL of an external server (default: $DATABASE_URL, else the embedded server)",
    )


# ---- argument types: a bad value is refused by the parser, in one line, before any work -------------
def positive_int(text: str) -> int:
    """An integer of at least 1 (``--packets``, ``--clients``, ``--repeat``, ``--rounds``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number: give one of 1 or more"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """An integer of 0 or more (``--seed``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number: give one of 0 or more"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (``--duration``, ``--rate``, ``--days``)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give one above 0") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a number above 0")
    return value


def positive_ints(text: str) -> tuple[int, ...]:
    """A comma-separated list of integers of at least 1 (``--sizes 1,2,4``, ``--clients 1,4``)."""
    parts = [x.strip() for x in text.split(",") if x.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(
            f"{text!r} is empty: give comma-separated numbers, e.g. 1,4,8"
        )
    values = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r} in {text!r} is not a whole number: give comma-separated numbers, e.g. 1,4,8"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value} in {text!r} must be at least 1")
        values.append(value)
    return tuple(values)


def dataset_scale(text: str) -> str:
    """A dataset scale the generator knows (``--scale``)."""
    from data_gen import PRESETS

    if text not in PRESETS:
        raise argparse.ArgumentTypeError(
            f"scale {text!r} is unknown: use one of {', '.join(PRESETS)}"
        )
    return text


def iso_datetime(text: str) -> str:
    """An ISO 8601 date and time with a time zone (``--start``); kept as text, parsed by the command."""
    from datetime import datetime

    example = "e.g. 2026-01-01T00:00:00+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: give ISO 8601 with a time zone, {example}"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add one, {example}")
    return text
