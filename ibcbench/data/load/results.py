"""What a load or a generation did: rows, bytes and seconds per table, and the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ibcbench.data.journal import SettledAttempt


@dataclass(frozen=True)
class TableLoad:
    """One table's share of a load: rows, COPY bytes, and the seconds spent in its COPYs."""

    table: str
    rows: int
    bytes: int
    seconds: float


@dataclass(frozen=True)
class LoadResult:
    """What one load did: rows and bytes per table, time, and the generator's manifest.

    ``elapsed_s`` runs from the first COPY to the end of COMMIT (``ibcbench_loads.elapsed_s``, written
    inside the transaction, stops before COMMIT)."""

    tables: list[TableLoad]
    elapsed_s: float
    manifest: dict[str, Any]
    span_start: datetime | None = None
    span_end: datetime | None = None
    skipped: bool = False
    #: earlier attempts this load found cut off (killed) and settled in the load journal
    settled: tuple[SettledAttempt, ...] = ()
    #: this load's row in ibcbench_load_attempts
    attempt_id: int | None = None

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def summary(self) -> pd.DataFrame:
        """One row per table plus the wall-clock total: rows, MB, seconds, rows/s, MB/s."""
        records = [(t.table, t.rows, t.bytes, t.seconds) for t in self.tables]
        records.append(("total (wall)", self.rows, self.bytes, self.elapsed_s))
        frame = pd.DataFrame(records, columns=["table", "rows", "bytes", "seconds"])
        seconds = frame["seconds"].where(frame["seconds"] > 0)
        return pd.DataFrame(
            {
                "table": frame["table"],
                "rows": frame["rows"],
                "MB": (frame["bytes"] / 1e6).round(1),
                "seconds": frame["seconds"].round(2),
                "rows_per_s": (frame["rows"] / seconds).round(0).astype("Int64"),
                "MB_per_s": (frame["bytes"] / 1e6 / seconds).round(1),
            }
        )


@dataclass(frozen=True)
class GenerateResult:
    """A generated folder: its manifest, the time it took, and each table file's size in bytes."""

    out_dir: Path
    manifest: dict[str, Any]
    elapsed_s: float
    files: dict[str, int] = field(default_factory=dict)
