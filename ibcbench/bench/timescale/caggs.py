"""Continuous aggregates on a hypertable copy of the rollups' source (Community edition).

Real-time and materialized-only hourly aggregates are built and refreshed, then a span of new
packets arrives after the last refresh: how stale each answer is, what its incremental refresh
costs, and the read latency; a daily aggregate over the hourly one (a dashboard's rollup), checked
against it; the refresh policy run as a job. Every name here is the kit's own, in its schema.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg

from data_gen.tables import PACKET_FLOW
from ibcbench.bench.timescale.shared import (
    COLUMNS,
    SCHEMA,
    RollupSource,
    execute,
    run_job_now,
    stale_rows,
)
from ibcbench.bench.timing import time_once_ms

#: the two hourly aggregates: their mode (as the rows name it) and ``materialized_only``
_MODES = (("real-time", "false"), ("materialized-only", "true"))


def cagg_rows(
    source: RollupSource, new_packets: int, policy_wait_s: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The continuous aggregates' rows (one per hourly mode, one hierarchical) and the refresh
    policy's run, with ``hierarchical_matches_hourly``."""
    conn = source.conn
    hyper = _hypertable_copy(conn, source.src)
    views = _build_hourly(conn, hyper)
    newest = _insert_after_refresh(conn, hyper, new_packets)
    rows = [
        _hourly_row(source, hyper, mode, view, full_ms, newest)
        for mode, (view, full_ms) in views.items()
    ]
    daily, mismatched = _hierarchical_row(source, views["materialized-only"][0])
    rows.append(daily)
    policy = _refresh_policy(conn, views["real-time"][0], policy_wait_s)
    policy["hierarchical_matches_hourly"] = mismatched == 0
    return rows, policy


def _hypertable_copy(conn: psycopg.Connection, src: str) -> str:
    """``src`` copied into a hypertable of daily chunks; its name."""
    hyper = f"{SCHEMA}.src_hyper"
    execute(conn, f"CREATE TABLE {hyper} (LIKE {src})")
    execute(
        conn, "SELECT create_hypertable(%s, by_range('created_at', interval '1 day'))", (hyper,)
    )
    execute(conn, f"INSERT INTO {hyper} SELECT * FROM {src}")
    return hyper


def _build_hourly(conn: psycopg.Connection, hyper: str) -> dict[str, tuple[str, float]]:
    """The real-time and the materialized-only hourly aggregate, each refreshed in full: by mode,
    the view and that refresh in ms."""
    views = {}
    for mode, only in _MODES:
        view = f"{SCHEMA}.cagg_{'rt' if only == 'false' else 'mo'}"
        execute(
            conn,
            f"CREATE MATERIALIZED VIEW {view} WITH (timescaledb.continuous, timescaledb.materialized_only = {only}) AS"
            f" SELECT time_bucket('1 hour', created_at) AS bucket, source_chain, count(*) AS packet_count FROM {hyper}"
            " GROUP BY 1, 2 WITH NO DATA",
        )
        views[mode] = (
            view,
            time_once_ms(conn, "CALL refresh_continuous_aggregate(%s, NULL, NULL)", (view,)),
        )
    return views


def _insert_after_refresh(conn: psycopg.Connection, hyper: str, new_packets: int) -> Any:
    """New packets stream in after the last refresh: the newest ``new_packets`` again, two hours
    later; returns the newest packet's time before them (where the incremental refresh starts)."""
    newest = execute(conn, f"SELECT max(created_at) FROM {hyper}").fetchone()[0]
    moved = ", ".join(
        "id + 2000000000" if c == "id" else f"{c} + interval '2 hours'" if k == "timestamptz" else c
        for c, k in PACKET_FLOW
    )
    execute(
        conn,
        f"INSERT INTO {hyper} ({COLUMNS}) SELECT {moved} FROM {hyper} ORDER BY created_at DESC LIMIT %s",
        (new_packets,),
    )
    return newest


def _hourly_row(
    source: RollupSource, hyper: str, mode: str, view: str, full_ms: float, newest: Any
) -> dict[str, Any]:
    """One hourly aggregate after the insert: how stale, its read, then its incremental refresh."""
    stale = stale_rows(source.conn, hyper, view)
    read = source.latency(f"SELECT * FROM {view} WHERE source_chain = %s AND bucket > %s")
    refresh = time_once_ms(
        source.conn,
        "CALL refresh_continuous_aggregate(%s, %s::timestamptz, NULL)",
        (view, newest),
    )
    return {
        "method": f"continuous aggregate ({mode})",
        **read,
        "refresh_ms": round(refresh, 1),
        "stale_rows_after_insert": stale,
        "note": f"incremental refresh of the new buckets (full build {full_ms:.0f} ms); "
        + (
            "unmaterialized rows added at read time"
            if mode == "real-time"
            else "reads only what was refreshed"
        ),
    }


def _hierarchical_row(source: RollupSource, hourly: str) -> tuple[dict[str, Any], int]:
    """A daily aggregate over the (materialized-only) hourly one, refreshed, compared with the
    hourly sums and read; the row and the number of days that differ."""
    conn = source.conn
    daily = f"{SCHEMA}.cagg_daily"
    execute(
        conn,
        f"CREATE MATERIALIZED VIEW {daily} WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS"
        f" SELECT time_bucket('1 day', bucket) AS day, source_chain, sum(packet_count) AS packet_count FROM {hourly}"
        " GROUP BY 1, 2 WITH NO DATA",
    )
    daily_ms = time_once_ms(conn, "CALL refresh_continuous_aggregate(%s, NULL, NULL)", (daily,))
    mismatched = execute(
        conn,
        f"SELECT count(*) FROM (SELECT time_bucket('1 day', bucket) AS day, source_chain, sum(packet_count) AS n"
        f" FROM {hourly} GROUP BY 1, 2 EXCEPT SELECT day, source_chain, packet_count FROM {daily}) d",
    ).fetchone()[0]
    row = {
        "method": "hierarchical: daily over hourly",
        **source.latency(
            f"SELECT day, packet_count FROM {daily} WHERE source_chain = %s AND day > %s"
        ),
        "refresh_ms": round(daily_ms, 1),
        "stale_rows_after_insert": np.nan,
        "note": "a dashboard's daily rollup read from the hourly aggregate"
        + (
            "; equals the hourly sums"
            if mismatched == 0
            else f"; {mismatched} days differ from the hourly sums"
        ),
    }
    return row, mismatched


def _refresh_policy(conn: psycopg.Connection, view: str, wait_s: float) -> dict[str, Any]:
    """add_continuous_aggregate_policy on ``view``, run now by the scheduler (:func:`run_job_now`)."""
    job_id = execute(
        conn,
        "SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => NULL,"
        " end_offset => interval '1 hour', schedule_interval => interval '1 hour')",
        (view,),
    ).fetchone()[0]
    return run_job_now(conn, job_id, wait_s)
