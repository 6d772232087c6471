"""What both engines make of their per-request records: the result, the per-query summary and the
longest stretch without a successful request.

Both engines produce the same tidy frames: ``summary`` (one row per query: count, errors,
throughput, latency percentiles) and ``latencies`` (one row per measured execution).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ibcbench.bench.timing import latency_summary

#: open loop: a request sent more than this after its scheduled start is late
LATE_MS = 1.0
#: tries of a request in all (the first and its retries), as pgbench's --max-tries
MAX_TRIES = 3


def longest_gap_s(ends_s: Any, window_s: float) -> float:
    """The longest stretch of ``[0, window_s]`` in which no request ended successfully, given the
    end times (seconds from the window's start) of the successful ones."""
    ends = np.clip(np.sort(np.asarray(ends_s, dtype=float)), 0.0, window_s)
    edges = np.concatenate(([0.0], ends, [window_s]))
    return round(float(np.diff(edges).max()), 3)


@dataclass(frozen=True)
class WorkloadResult:
    summary: pd.DataFrame
    latencies: pd.DataFrame
    engine: str
    clients: int
    duration_s: float
    client_cpu_pct: float | None = None
    client_bound: bool | None = None
    #: closed loop only: SELECT 1 queries/s through the same pool and threads, and the workload's share
    client_floor_qps: float | None = None
    client_floor_share: float | None = None
    #: Python runner: psycopg_pool's counters over the measured window (not since the pool opened)
    pool_stats: dict[str, Any] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    #: open loop: scheduled, issued, not_issued, late, backlog_at_stop, drain_s
    open_loop: dict[str, Any] | None = None
    #: requests that failed after all their tries, and the retries made (the summary's ALL row)
    errors: int = 0
    retries: int = 0
    #: the longest stretch of the window without a successful request (Python runner), seconds
    unavailable_s: float | None = None

    @property
    def disturbed(self) -> bool:
        """Requests failed or were retried: the figures include an outage or failures."""
        return bool(self.errors or self.retries)

    def trouble(self) -> str | None:
        """One line on what disturbed the run (None: nothing did)."""
        if not self.disturbed:
            return None
        tries = self.manifest.get("max_tries", 1)
        parts = [f"{self.errors} requests failed ({tries} tries each at most)"]
        parts.append(f"{self.retries} retries")
        if self.unavailable_s is not None:
            parts.append(f"{self.unavailable_s:g} s without a successful request")
        return ", ".join(parts)

    def save(self, run: Any, name: str = "workload") -> None:
        run.write_frame(f"{name}_summary", self.summary)
        run.write_frame(f"{name}_latencies", self.latencies)
        run.update_manifest(**{name: self.manifest})


def summarize(
    latencies: pd.DataFrame, *, engine: str, clients: int, duration_s: float
) -> pd.DataFrame:
    """Per query: executions, errors, retries, throughput and latency percentiles (ms), plus an
    ALL row. ``count`` is the successful requests, ``errors`` the ones that failed after all their
    tries, ``retries`` the tries after the first (from a ``tries`` column; 0 without one).

    Where the frame has them (the Python runner), the parts of each latency get their own
    percentiles too: ``lag`` (open loop: scheduled start to sending), ``wait`` (for a pool
    connection) and ``exec`` (on the connection).
    """
    groups = [(name, g) for name, g in latencies.groupby("query", sort=True, observed=False)]
    groups.append(("ALL", latencies))
    parts = [c for c in ("lag_ms", "wait_ms", "exec_ms") if c in latencies.columns]
    rows = [
        _summary_row(name, g, parts, engine=engine, clients=clients, duration_s=duration_s)
        for name, g in groups
    ]
    return pd.DataFrame(rows)


def _summary_row(
    name: str,
    g: pd.DataFrame,
    parts: list[str],
    *,
    engine: str,
    clients: int,
    duration_s: float,
) -> dict[str, Any]:
    """One query's (or ALL's) row of :func:`summarize`."""
    # .loc with a boolean mask: an empty log's 'ok' column has dtype object, and g[...] would
    # take it as a list of column names
    ok = g.loc[g["ok"].astype(bool)]
    retries = int((g["tries"].astype(int) - 1).clip(lower=0).sum()) if "tries" in g else 0
    lat = ok.latency_ms.to_numpy()
    split = {}
    for column in parts:
        values = ok[column].to_numpy()
        for p in (50, 95, 99):
            split[f"{column[:-3]}_p{p}_ms"] = (
                round(float(np.percentile(values, p)), 3) if len(values) else np.nan
            )
    return {
        "query": name,
        "engine": engine,
        "clients": clients,
        "count": len(ok),
        "errors": int((~g["ok"].astype(bool)).sum()),
        "retries": retries,
        "throughput_qps": round(len(ok) / duration_s, 1) if duration_s > 0 else 0.0,
        **latency_summary(lat, digits=3),
        **split,
    }
