"""A notebook's time budget and what it bought: the time-related parameters it ran with, and the
widest confidence interval among the values it recorded and the result tables it wrote.

An interval is a pair of names ``<base>_ci_low[<unit>]`` / ``<base>_ci_high[<unit>]`` (``p50_ci_low_ms``
and ``p50_ci_high_ms``, the timing helper's interval of the median), in the recorded values or as
columns of a result table; its relative width is ``(high - low) / point``, the point being
``<base>[<unit>]`` (``p50_ms``) when there is one, else the interval's middle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

#: parameters that bound a notebook's time: seconds (``*_s``), repetitions and rounds
TIME_PARAMETER_RE = re.compile(r"(_s|repetitions|rounds)$")
_LOW_RE = re.compile(r"^(?P<base>.+)_ci_low(?P<unit>_[A-Za-z]+)?$")


def time_parameters(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any] | None:
    """The notebook's time-related parameters as it ran with them (given, else its default); None
    when it has none."""
    out = {}
    for name, default in defaults.items():
        if TIME_PARAMETER_RE.search(name):
            value = given.get(name, default)
            out[name] = value if isinstance(value, int | float | list) else None
    return out or None


def _pairs(names: Iterable[str]) -> list[tuple[str, str, str, str]]:
    """(label, low name, high name, point name) for each interval among ``names``."""
    names = set(names)
    pairs = []
    for name in sorted(names):
        match = _LOW_RE.match(name)
        if not match:
            continue
        base, unit = match["base"], match["unit"] or ""
        high = f"{base}_ci_high{unit}"
        if high in names:
            pairs.append((f"{base}{unit}", name, high, f"{base}{unit}"))
    return pairs


def _width(low: Any, high: Any, point: Any) -> float | None:
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        return None
    try:
        centre = float(point)
    except (TypeError, ValueError):
        centre = math.nan
    if not math.isfinite(centre) or centre <= 0:
        centre = (low + high) / 2
    return (high - low) / centre if centre > 0 else None


def widest_interval(
    recorded: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]
) -> dict[str, Any] | None:
    """The widest interval (by relative width) in ``recorded`` and ``tables`` (name -> frame):
    where it was, its value's name, low, high and relative width; None when there is none."""
    found: list[dict[str, Any]] = []
    for label, low, high, point in _pairs(recorded):
        width = _width(recorded[low], recorded[high], recorded.get(point))
        if width is not None:
            found.append(
                {"source": "recorded", "value": label, "low": recorded[low]}
                | {"high": recorded[high], "relative_width": round(width, 4)}
            )
    for table, frame in sorted(tables.items()):
        for label, low, high, point in _pairs(str(c) for c in frame.columns):
            for i, row in enumerate(frame.to_dict("records")):
                width = _width(row[low], row[high], row.get(point))
                if width is None:
                    continue
                where = [str(v) for k, v in row.items() if isinstance(v, str)][:3]
                found.append(
                    {"source": f"results/{table}", "value": label, "row": i}
                    | {"where": " / ".join(where), "low": row[low], "high": row[high]}
                    | {"relative_width": round(width, 4)}
                )
    return max(found, key=lambda f: f["relative_width"]) if found else None


def result_tables(folder: Path) -> dict[str, float]:
    """The result tables of a run folder's ``results/`` and when each was last written."""
    return {p.stem: p.stat().st_mtime for p in sorted(folder.glob("*.parquet"))}


def tables_written(folder: Path, before: Mapping[str, float]) -> dict[str, pd.DataFrame]:
    """The result tables written (new or changed) since ``before`` was taken, read back."""
    out = {}
    for name, mtime in result_tables(folder).items():
        if before.get(name) != mtime:
            try:
                out[name] = pd.read_parquet(folder / f"{name}.parquet")
            except (OSError, ValueError):  # a table half-written by a failed notebook
                continue
    return out
