"""Recorded results: a notebook's key numbers and figures, written where the report reads them.

A notebook records its key numbers in its last cell with :func:`record`; they travel inside the
executed notebook as a display output of MIME type ``application/vnd.ibcbench.record+json``, so a test,
the report or a person can read them back from the ``.ipynb`` alone (:func:`read_recorded`). Figures go
to ``<run_dir>/figures/`` (:func:`save_figure`), which the report embeds; result tables to
``<run_dir>/results/`` (:func:`save_frame`).

Each benchmark result knows its key numbers (``key_numbers() -> dict``) and writes what the report
reads (``save(run_dir)``, a no-op with ``run_dir=None`` as in JupyterLab); a notebook's last cell is
``record_results(a, b, ...)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from ibcbench.errors import RunError
from ibcbench.inputs import check_name, safe_child
from ibcbench.results.runs import Run

RECORD_MIME = "application/vnd.ibcbench.record+json"


def _jsonable(value: Any) -> Any:
    """Plain JSON values from numpy/pandas scalars, containers and frames."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return [_jsonable(r) for r in value.to_dict(orient="records")]
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def record(**values: Any) -> dict[str, Any]:
    """Record a notebook's key numbers: shown as a table, and readable from the executed notebook."""
    clean = _jsonable(values)
    try:
        from IPython.display import display
    except ImportError:  # outside IPython: nothing to display
        return clean
    width = max((len(k) for k in clean), default=0)
    text = "\n".join(f"{k:<{width}}  {v}" for k, v in clean.items())
    display({RECORD_MIME: clean, "text/plain": text}, raw=True)
    return clean


class HasKeyNumbers(Protocol):
    def key_numbers(self) -> dict[str, Any]: ...


def record_results(*results: HasKeyNumbers, **values: Any) -> dict[str, Any]:
    """Record the key numbers of every result, plus ``values``; a key given twice is an error (one
    result given twice, as a skipped part's result stands for several, is recorded once)."""
    merged: dict[str, Any] = {}
    once = list({id(r): r for r in results}.values())
    for source in [*(r.key_numbers() for r in once), values]:
        twice = sorted(set(merged) & set(source))
        if twice:
            raise RunError(
                f"key number {twice[0]!r} is recorded twice: rename it in one of the results"
            )
        merged.update(source)
    return record(**merged)


def run_folder(run_dir: str | Path | Run | None) -> Run | None:
    """The run folder ``run_dir`` names (None: no run folder, as in JupyterLab)."""
    if run_dir is None or isinstance(run_dir, Run):
        return run_dir
    return Run(Path(run_dir))


def save_frame(frame: pd.DataFrame, name: str, run_dir: str | Path | Run | None) -> Path | None:
    """Save a result table as ``<run_dir>/results/<name>.parquet`` (+ ``.csv``); no-op without a run folder.

    The report lists every result table of the run folder under the notebook whose prefix it has.
    """
    run = run_folder(run_dir)
    return None if run is None else run.write_frame(name, frame)


def read_recorded(notebook: Path | str) -> dict[str, Any]:
    """Every value recorded by :func:`record` in an executed notebook (later records win)."""
    path = Path(notebook)
    try:
        nb = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RunError(f"notebook {path} does not exist") from exc
    values: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            data = output.get("data") or {}
            if RECORD_MIME in data:
                payload = data[RECORD_MIME]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                values.update(payload)
    return values


def figure_title(fig: Any) -> str:
    """The figure's title: its suptitle, else its first axes' titles joined."""
    sup = getattr(fig, "_suptitle", None)
    if sup is not None and sup.get_text():
        return str(sup.get_text())
    return "; ".join(t for ax in fig.axes[:1] if (t := ax.get_title()))


def save_figure(
    fig: Any, name: str, run_dir: str | Path | Run | None, *, close: bool = False
) -> Path | None:
    """Save a matplotlib figure as ``<run_dir>/figures/<name>.png`` (no-op without a run folder).

    The report embeds every figure of the run folder; in JupyterLab (``run_dir=None``) it only shows.
    ``close=True`` closes the figure afterwards (a result's ``save`` draws figures only to write them).
    """
    run = run_folder(run_dir)
    path = None
    if run is not None:
        path = safe_child(run.subdir("figures"), f"{check_name(name, 'figure name')}.png")
        # the title goes into the PNG's Title text too: the report shows it as the caption
        fig.savefig(
            path, dpi=110, bbox_inches="tight", metadata={"Title": figure_title(fig) or name}
        )
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path
