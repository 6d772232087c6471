"""Values and tables as the report's templates show them: formatted text, number cells marked."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ibcbench.results.runs import Run

#: result tables shown open in the report (the fault table: its verdicts are the point)
OPEN_RESULTS = {"faults"}


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if 0 < abs(value) < 0.01:  # small ratios keep their digits: 0.000231, not 0
            return f"{value:.3g}"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return "–" if value is None else str(value)


def table(
    rows: list[dict[str, Any]] | pd.DataFrame, *, limit: int = 40, classes: list[str] | None = None
) -> dict[str, Any]:
    """A table for the template: column names and rows of (text, is_number) cells."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    frame = frame.head(limit)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = [(fmt(v), isinstance(v, (int, float)) and not isinstance(v, bool)) for v in row]
        body.append({"cls": classes[i] if classes else "", "cells": cells})
    return {"columns": [str(c) for c in frame.columns], "rows": body}


def result_table(run: Run, name: str) -> tuple[str, dict[str, Any], bool]:
    """A result table for the template: its name, the table, and whether it is shown open."""
    frame = run.read_frame(name)
    if name not in OPEN_RESULTS:
        return name, table(frame), False
    classes = (
        ["regression" if v != "survived" else "" for v in frame["verdict"]]
        if "verdict" in frame.columns
        else None
    )
    return name, table(frame, limit=len(frame), classes=classes), True
