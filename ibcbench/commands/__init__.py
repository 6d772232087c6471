"""CLI command modules; each defines ``register(subparsers)``. Discovered by :mod:`ibcbench.cli`.

What the command modules share lives here, so that none of them imports the CLI that imports them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_dsn_argument(parser: argparse.ArgumentParser) -> None:
    """``--dsn``: an external server instead of the embedded one (default: DATABASE_URL, else
    libpq's variables, else the embedded server)."""
    parser.add_argument(
        "--dsn",
        default=None,
        help="connection URL or key=value conninfo of another server (default: $DATABASE_URL, "
        "else libpq's variables PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSFILE, PGSERVICE, "
        "PGSERVICEFILE, PGPASSWORD when any is set, as psql reads them, else the embedded server)",
    )


# ---- argument types: a bad value is refused by the parser, in one line, before any work -------------
#: the largest count any option takes (``--packets``: the generator's own limit)
MAX_COUNT = 2_000_000_000
#: the largest number of seconds an option takes (a day)
MAX_SECONDS = 86_400.0
#: the largest number an option takes otherwise (``--rate``, ``--days``)
MAX_NUMBER = 1_000_000.0
#: the largest seed (numpy's generators take 0 .. 2**32 - 1 from the notebooks)
MAX_SEED = 2**32 - 1


def count_at_most(maximum: int) -> Callable[[str], int]:
    """An argument type: an integer from 1 to ``maximum`` (``--rounds``, ``--clients``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number: give one from 1 to {maximum}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value} must be at least 1")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{value} must be at most {maximum}")
        return value

    parse.__name__ = "count"
    return parse


def positive_int(text: str) -> int:
    """An integer from 1 to :data:`MAX_COUNT` (``--packets``)."""
    return count_at_most(MAX_COUNT)(text)


def non_negative_int(text: str) -> int:
    """An integer from 0 to :data:`MAX_SEED` (``--seed``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number: give one of 0 or more"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} must be at most {MAX_SEED} (2**32 - 1)")
    return value


def _number(text: str, *, low: float, maximum: float, above: bool) -> float:
    import math

    rule = f"above {low:g}" if above else f"of {low:g} or more"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give one {rule}") from None
    if not math.isfinite(value) or value < low or (above and value == low):
        raise argparse.ArgumentTypeError(f"{text} must be a number {rule}")
    if value > maximum:
        raise argparse.ArgumentTypeError(f"{text} must be at most {maximum:g}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0, at most :data:`MAX_NUMBER` (``--rate``, ``--days``)."""
    return _number(text, low=0.0, maximum=MAX_NUMBER, above=True)


def seconds(text: str) -> float:
    """A finite number of seconds above 0, at most :data:`MAX_SECONDS` (``--duration``)."""
    return _number(text, low=0.0, maximum=MAX_SECONDS, above=True)


def non_negative_float(text: str) -> float:
    """A finite number of seconds of 0 or more, at most :data:`MAX_SECONDS` (``--warmup``)."""
    return _number(text, low=0.0, maximum=MAX_SECONDS, above=False)


#: the largest item of a comma-separated list of counts (``--sizes``, ``--clients``)
MAX_LIST_ITEM = 10_000


def positive_ints(text: str) -> tuple[int, ...]:
    """A comma-separated list of integers from 1 to :data:`MAX_LIST_ITEM` (``--sizes 1,2,4``)."""
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
        if value > MAX_LIST_ITEM:
            raise argparse.ArgumentTypeError(f"{value} in {text!r} must be at most {MAX_LIST_ITEM}")
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
