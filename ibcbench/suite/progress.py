"""What a person sees while notebooks run, and how long the last run of each took.

On a terminal (the error stream is a TTY) one live line on stderr, redrawn in place with a carriage
return: the notebook, the cell it is in out of how many, the time so far and the estimate from the
last run of that notebook on the same server at the same scale. Anywhere else (a CI log) plain lines
on stdout, one when a notebook starts and one when it ends: no carriage returns, no updates. At the
end, :meth:`NotebookProgress.summary` is a table of every notebook: its time, status and estimate.

The cell hook is nbclient's ``on_cell_execute`` (its ``on_cell_start`` fires for markdown cells too),
which papermill hands to its notebook client.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

#: seconds between redraws of the live line (the elapsed time moves while a cell runs)
REFRESH_S = 1.0
_CLEAR = "\x1b[K"  # erase to the end of the line


@dataclass(frozen=True)
class Estimate:
    """How long a notebook took the last time it ran to its end: its time and the run it was in."""

    elapsed_s: float
    run_id: str


@dataclass(frozen=True)
class NotebookTime:
    """One row of the summary: a notebook that ran, how long, whether it was ok, its estimate."""

    notebook: str
    elapsed_s: float
    ok: bool
    estimate: Estimate | None


def clock_text(seconds: float) -> str:
    """``75.2`` -> ``1:15``; an hour or more -> ``1:02:03``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def code_cells(notebook: Path) -> int:
    """The cells nbclient runs: code cells with a source (papermill adds one for the parameters)."""
    try:
        cells = json.loads(notebook.read_text()).get("cells", [])
    except (OSError, json.JSONDecodeError):
        return 0
    count = 0
    for cell in cells:
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        count += cell.get("cell_type") == "code" and bool(text.strip())
    return count


def last_estimate(
    notebook: str,
    root: Path,
    *,
    target: str | None,
    scale: str | None,
    default_scale: str | None = None,
    exclude: str | None = None,
) -> Estimate | None:
    """The time ``notebook`` took in the newest run folder under ``root`` where it ran to its end
    (``ok``) against the same server (the manifest's ``target``) at the same scale (a manifest
    without one ran at ``default_scale``, the notebook's default); ``exclude`` is the run now under
    way. None when no earlier run fits."""
    if not root.is_dir():
        return None
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        if folder.name == exclude:
            continue
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(manifest, dict) or manifest.get("target") != target:
            continue
        if (manifest.get("scale") or default_scale) != scale:
            continue
        for entry in manifest.get("notebooks") or []:
            if not isinstance(entry, dict) or entry.get("notebook") != notebook:
                continue
            elapsed = entry.get("elapsed_s")
            if entry.get("ok") and isinstance(elapsed, int | float) and elapsed > 0:
                return Estimate(float(elapsed), folder.name)
    return None


class NotebookProgress:
    """Progress of notebooks, one at a time: :meth:`start`, :meth:`cell` per cell, :meth:`finish`.

    ``live`` (default: whether ``err`` is a terminal) draws the live line on ``err``; otherwise
    plain lines go to ``out``. ``clock`` is the time source (a test passes its own).
    """

    def __init__(
        self,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.live = _is_tty(self.err) if live is None else live
        self.clock = clock
        self.refresh_s = refresh_s
        self.rows: list[NotebookTime] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._name: str | None = None
        self._cells = 0
        self._cell = 0
        self._started = 0.0
        self._estimate: Estimate | None = None
        self._drawn = False  # the live line is on the terminal

    # ---- the notebook's life --------------------------------------------------------------

    def start(self, notebook: str, cells: int, estimate: Estimate | None) -> None:
        with self._lock:
            self._name, self._cells, self._cell = notebook, cells, 0
            self._started, self._estimate = self.clock(), estimate
        if not self.live:
            last = (
                f"; last run {estimate.elapsed_s:.1f} s ({estimate.run_id})"
                if estimate
                else "; no earlier run to go by"
            )
            self._say(f"running {notebook} ({cells} cells{last}) ...")
            return
        self._draw()
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="ibcbench-progress", daemon=True)
        self._ticker.start()

    def cell(self, index: int) -> None:
        """The notebook is now in its ``index``-th cell (from 1)."""
        with self._lock:
            self._cell = index
        if self.live:
            self._draw()

    def finish(self, elapsed_s: float, ok: bool, error: str | None = None) -> None:
        name, estimate = self._name, self._estimate
        self.close()
        if name is None:
            return
        self._name = None
        self.rows.append(NotebookTime(name, elapsed_s, ok, estimate))
        status = "ok" if ok else f"FAILED ({error})" if error else "FAILED"
        last = f" (last run {estimate.elapsed_s:.1f} s)" if estimate else ""
        self._say(f"  {name}: {status} in {elapsed_s:.1f} s{last}")

    def refused(self, notebook: str, error: str) -> None:
        """A notebook refused before it started (its dataset changed, or in use)."""
        self.rows.append(NotebookTime(notebook, 0.0, False, None))
        self._say(f"  {notebook}: FAILED ({error}) in 0.0 s")

    def close(self) -> None:
        """Stop redrawing and erase the live line (a notebook that ended, or was interrupted)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            if self._drawn:
                self.err.write("\r" + _CLEAR)
                self.err.flush()
                self._drawn = False

    def hooks(self) -> dict[str, Any]:
        """nbclient's cell hooks, for papermill's ``execute_notebook(**engine_kwargs)``."""
        count = {"n": 0}

        def on_cell_execute(cell: Any = None, cell_index: int = 0, **_: Any) -> None:
            count["n"] += 1
            self.cell(count["n"])

        return {"on_cell_execute": on_cell_execute}

    # ---- what is shown ----------------------------------------------------------------------

    def line(self) -> str:
        """The live line: notebook, cell k/N, time so far, and the estimate with what is left."""
        with self._lock:
            name, cell, cells = self._name, self._cell, self._cells
            elapsed = self.clock() - self._started
            estimate = self._estimate
        where = f"cell {cell}/{cells}" if cell else f"kernel starting ({cells} cells)"
        parts = [f"{name}", where, f"{clock_text(elapsed)} elapsed"]
        if estimate is None:
            parts.append("no earlier run to go by")
        else:
            left = estimate.elapsed_s - elapsed
            parts.append(
                f"last run {clock_text(estimate.elapsed_s)}, "
                + (f"~{clock_text(left)} left" if left >= 0 else f"{clock_text(-left)} over")
            )
        return " · ".join(parts)

    def summary(self) -> str:
        """Every notebook that ran: its time, status and the estimate it had (a text table)."""
        header = ("notebook", "time", "status", "estimate")
        rows = [
            (
                r.notebook,
                f"{r.elapsed_s:.1f} s",
                "ok" if r.ok else "FAILED",
                f"{r.estimate.elapsed_s:.1f} s ({r.estimate.run_id})" if r.estimate else "–",
            )
            for r in self.rows
        ]
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]
        )

    def _draw(self) -> None:
        text = self.line()
        width = shutil.get_terminal_size((100, 24)).columns
        with self._lock:
            self.err.write("\r" + text[: max(width - 1, 20)] + _CLEAR)
            self.err.flush()
            self._drawn = True

    def _tick(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self._draw()

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: no live line
        return False
