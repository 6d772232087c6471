"""Retention: everything older than a cutoff removed from copies of packet_flow by DELETE, by
DETACH + DROP of hourly partitions, by drop_chunks, and (Community edition) by a retention policy
run as a job; the time and the WAL each takes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import psycopg
from psycopg import sql

from ibcbench.bench.timescale.shared import (
    SCHEMA,
    bounds,
    copy_packets,
    create_layout,
    create_partitioned,
    drop_schema,
    execute,
    has_timescaledb,
    kit_table,
    run_job_now,
    wal_lsn,
    wal_since,
)
from ibcbench.data.ownership import create_kit_schema
from ibcbench.db import connect, resolve_dsn, server_info
from ibcbench.inputs import check_count
from ibcbench.results.metrics.metric import TIMING, Metric
from ibcbench.results.recorded import save_frame
from ibcbench.results.runs import Run


@dataclass(frozen=True)
class RetentionResult:
    frame: pd.DataFrame

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        Metric("retention_ms", "lower", "ms", TIMING, 5.0, note="retention time per method"),
        Metric(
            "retention_wal_bytes",
            "lower",
            "bytes",
            1.0,
            8192.0,
            note="WAL written by retention per method; full-page images after a checkpoint moved it x1.5",
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        """Notebook 05's retention numbers: time and WAL per method."""
        f = self.frame
        return {
            "retention_ms": dict(zip(f.method, f.elapsed_ms, strict=True)),
            "retention_wal_bytes": dict(zip(f.method, f.wal_bytes, strict=True)),
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        save_frame(self.frame, "ts_retention", run_dir)


@dataclass(frozen=True)
class _Method:
    """One way to remove old packets: its label (the row's ``method``), the copy's kind (plain,
    partitioned, hypertable or policy: a hypertable whose retention policy runs as a job) and the
    chunk interval of a hypertable."""

    label: str
    kind: str
    interval: str | None


def benchmark_retention(
    dsn: str | None, *, keep_hours: int = 6, policy_wait_s: float = 30.0
) -> RetentionResult:
    """Remove everything older than the newest packet minus ``keep_hours`` three ways, and on the
    Community edition a fourth, ``add_retention_policy`` run by the job scheduler: time and WAL."""
    check_count(keep_hours, "keep_hours", maximum=24 * 3650)
    target = resolve_dsn(dsn)
    drop_schema(target)
    rows = []
    try:
        with connect(target, autocommit=True) as conn:
            has_ts = has_timescaledb(conn)
            jobs = server_info(conn).has_continuous_aggregates  # the Community edition's jobs
            lo, hi = bounds(conn)
            cutoff = (pd.Timestamp(hi) - pd.Timedelta(hours=keep_hours)).floor("h")
            create_kit_schema(conn, SCHEMA)
            for method in _retention_methods(has_ts, jobs):
                name = f"ret_{method.kind}"
                _build_copy(conn, name, method, lo, hi)
                rows.append(_measure_removal(conn, name, method, cutoff, policy_wait_s))
    finally:
        drop_schema(target)
    return RetentionResult(pd.DataFrame(rows))


def _retention_methods(has_ts: bool, jobs: bool) -> list[_Method]:
    """The methods in the order they run: drop_chunks where TimescaleDB is installed, the policy
    where its jobs are (the Community edition)."""
    methods = [
        _Method("DELETE on a plain table", "plain", None),
        _Method("DETACH + DROP partitions", "partitioned", None),
    ]
    if has_ts:
        methods.append(_Method("drop_chunks on a hypertable", "hypertable", "1 hour"))
    if jobs:
        methods.append(_Method("add_retention_policy (a job)", "policy", "1 hour"))
    return methods


def _build_copy(conn: psycopg.Connection, name: str, method: _Method, lo: Any, hi: Any) -> None:
    """The copy ``name`` for ``method`` (hourly partitions for DETACH + DROP), every packet in it."""
    if method.kind == "partitioned":
        create_partitioned(conn, name, lo, hi, hours=1)
    else:
        kind = "hypertable" if method.kind == "policy" else method.kind
        create_layout(conn, name, kind, method.interval, lo, hi)
    copy_packets(conn, kit_table(name))


def _measure_removal(
    conn: psycopg.Connection, name: str, method: _Method, cutoff: Any, policy_wait_s: float
) -> dict[str, Any]:
    """Remove what is older than ``cutoff`` from ``name`` after a checkpoint: the rows removed and
    kept, the time and the WAL written."""
    count = sql.SQL("SELECT count(*) FROM {}").format(kit_table(name))
    before = execute(conn, count).fetchone()[0]
    execute(conn, "CHECKPOINT")
    lsn = wal_lsn(conn)
    started = time.perf_counter()
    note = _remove_older(conn, name, method.kind, cutoff, policy_wait_s)
    elapsed = (time.perf_counter() - started) * 1000
    wal = wal_since(conn, lsn)
    after = execute(conn, count).fetchone()[0]
    return {
        "method": method.label,
        "rows_removed": int(before - after),
        "rows_kept": int(after),
        "elapsed_ms": round(elapsed, 1),
        "wal_bytes": wal,
        "note": note,
    }


def _remove_older(
    conn: psycopg.Connection, name: str, kind: str, cutoff: Any, policy_wait_s: float
) -> str:
    """The removal itself, the way ``kind`` does it; a note on it (the policy job's outcome)."""
    table = kit_table(name)
    if kind == "policy":
        return _retention_job(conn, f"{SCHEMA}.{name}", cutoff, policy_wait_s)
    if kind == "plain":
        execute(conn, sql.SQL("DELETE FROM {} WHERE created_at < %s").format(table), (cutoff,))
    elif kind == "hypertable":
        execute(
            conn,
            "SELECT drop_chunks(%s::regclass, older_than => %s::timestamptz)",
            (f"{SCHEMA}.{name}", cutoff),
        )
    else:
        _detach_and_drop(conn, name, cutoff)
    return ""


def _detach_and_drop(conn: psycopg.Connection, name: str, cutoff: Any) -> None:
    """Detach and drop each hourly partition of ``name`` that ends at or before ``cutoff``."""
    table = kit_table(name)
    old = execute(
        conn,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) IS NOT NULL",
        (f"{SCHEMA}.{name}",),
    ).fetchall()
    for (part,) in old:
        stamp = (
            pd.Timestamp(part.rsplit("_", 1)[1] + "00", tz="UTC")
            if part.rsplit("_", 1)[1].isdigit()
            else None
        )
        if stamp is not None and stamp + pd.Timedelta(hours=1) <= cutoff:
            execute(
                conn, sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(table, kit_table(part))
            )
            execute(conn, sql.SQL("DROP TABLE {}").format(kit_table(part)))


def _retention_job(conn: psycopg.Connection, table: str, cutoff: Any, wait_s: float) -> str:
    """``add_retention_policy`` dropping what is older than ``cutoff`` (as an interval before now),
    run now by the scheduler; the outcome in words (elapsed time includes the scheduler's pick-up)."""
    job_id = execute(
        conn,
        "SELECT add_retention_policy(%s::regclass, drop_after => now() - %s::timestamptz)",
        (table, cutoff),
    ).fetchone()[0]
    run = run_job_now(conn, job_id, wait_s)
    status, error = run["last_run_status"], run["last_error"]
    return f"job {job_id}: {status}" + (f" ({error})" if status != "Success" and error else "")
