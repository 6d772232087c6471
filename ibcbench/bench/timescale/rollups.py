"""hourly_packet_stats four ways: raw GROUP BY, plain materialized view, incremental rollup with a
watermark, and (Community edition) continuous aggregates (:mod:`~ibcbench.bench.timescale.caggs`)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import psycopg

from ibcbench.bench.timescale.caggs import cagg_rows
from ibcbench.bench.timescale.shared import (
    COLUMNS,
    MAX_REPETITIONS,
    SCHEMA,
    RollupSource,
    bounds,
    drop_schema,
    execute,
    stale_rows,
)
from ibcbench.bench.timing import TimingPolicy, time_once_ms
from ibcbench.data.ownership import create_kit_schema
from ibcbench.db import ServerInfo, connect, resolve_dsn, server_info
from ibcbench.inputs import check_count
from ibcbench.results.metrics.metric import TIMING, Metric, informational
from ibcbench.results.recorded import save_frame
from ibcbench.results.runs import Run

_ROLLUP_SELECT = (
    "SELECT date_trunc('hour', created_at) AS bucket, source_chain, count(*) AS packet_count,"
    " count(*) FILTER (WHERE status = 'acknowledged') AS acknowledged_count,"
    " count(*) FILTER (WHERE status IN ('error', 'timeout')) AS failed_count,"
    " avg(clear_time_seconds) AS avg_clear_time_seconds FROM {src} {where} GROUP BY 1, 2"
)


@dataclass(frozen=True)
class RollupResult:
    frame: pd.DataFrame
    rollup_matches_raw: bool
    continuous_aggregates: str
    manifest: dict[str, Any] = field(default_factory=dict)
    #: the continuous aggregate's refresh policy run as a job (Community edition; empty otherwise)
    cagg_policy: dict[str, Any] = field(default_factory=dict)

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational(
            "caggs_available", "", "whether the server's edition has continuous aggregates"
        ),
        informational(
            "cagg_policy_error",
            "",
            "the refresh policy job's last job_errors message (text)",
            optional=True,
        ),
        Metric(
            "rollup_matches_raw",
            "higher",
            "",
            note="True expected: the rollup equals the raw GROUP BY",
        ),
        Metric("refresh_ms", "lower", "ms", TIMING, 5.0, note="rollup refresh time per method"),
        informational(
            "cagg_stale_rows_materialized_only",
            "rows",
            "new packets a materialized-only answer misses: by design",
            optional=True,
        ),
        Metric(
            "cagg_stale_rows_real_time",
            "lower",
            "rows",
            note="0 expected: real-time aggregation adds the new rows",
            optional=True,
        ),
        Metric(
            "cagg_hierarchical_matches_hourly",
            "higher",
            "",
            note="True expected: the daily aggregate sums the hourly",
            optional=True,
        ),
        informational(
            "cagg_policy_runs", "runs", "runs of the refresh policy job seen", optional=True
        ),
        Metric(
            "cagg_policy_failures",
            "lower",
            "runs",
            note="failed runs of the refresh policy job",
            optional=True,
        ),
        informational(
            "cagg_policy_status", "", "the policy job's last run status (text)", optional=True
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        """Notebook 05's rollup numbers: does the rollup match the raw GROUP BY, refresh costs, and
        on the Community edition how stale a materialized-only answer is and the policy's runs."""
        numbers: dict[str, Any] = {
            "caggs_available": self.continuous_aggregates == "measured",
            "rollup_matches_raw": self.rollup_matches_raw,
            "refresh_ms": dict(zip(self.frame.method, self.frame.refresh_ms, strict=True)),
        }
        if self.continuous_aggregates == "measured":
            f = self.frame.set_index("method")
            numbers |= {
                "cagg_stale_rows_materialized_only": int(
                    f.stale_rows_after_insert["continuous aggregate (materialized-only)"]
                ),
                "cagg_stale_rows_real_time": int(
                    f.stale_rows_after_insert["continuous aggregate (real-time)"]
                ),
                "cagg_hierarchical_matches_hourly": self.cagg_policy["hierarchical_matches_hourly"],
                "cagg_policy_runs": self.cagg_policy["total_runs"],
                "cagg_policy_failures": self.cagg_policy["total_failures"],
                "cagg_policy_status": self.cagg_policy["last_run_status"],
                "cagg_policy_error": self.cagg_policy.get("last_error"),
            }
        return numbers

    def save(self, run_dir: str | Path | Run | None) -> None:
        save_frame(self.frame, "ts_rollups", run_dir)


def benchmark_rollups(
    dsn: str | None,
    *,
    new_packets: int = 2_000,
    repetitions: int = 20,
    timing: TimingPolicy | None = None,
    policy_wait_s: float = 30.0,
) -> RollupResult:
    """hourly_packet_stats four ways: raw GROUP BY, plain MV, incremental rollup, continuous aggregate.

    ``repetitions``: the most measured executions of each read (fewer once its p50 is precise to ±5%).
    """
    check_count(repetitions, "repetitions", maximum=MAX_REPETITIONS)
    check_count(new_packets, "new_packets", maximum=10_000_000)
    policy = (timing or TimingPolicy()).with_max_runs(repetitions)
    target = resolve_dsn(dsn)
    drop_schema(target)
    rows: list[dict[str, Any]] = []
    try:
        with connect(target, autocommit=True) as conn:
            info = server_info(conn)
            source = _copy_source(conn, policy)
            rows.append(_raw_row(source))
            mv, create_ms = _build_materialized_view(source)
            roll, full_roll_ms = _build_incremental_rollup(source)
            _insert_new_packets(source, new_packets)
            rows.append(_materialized_view_row(source, mv, create_ms))
            incremental, matches = _incremental_row(source, roll, full_roll_ms)
            rows.append(incremental)
            cagg, cagg_state, cagg_policy = _continuous_aggregate_rows(
                source, info, new_packets, policy_wait_s
            )
            rows.extend(cagg)
    finally:
        drop_schema(target)
    return RollupResult(
        pd.DataFrame(rows),
        matches,
        cagg_state,
        {"new_packets": new_packets, "repetitions": repetitions, "timing": asdict(policy)},
        cagg_policy,
    )


def _copy_source(conn: psycopg.Connection, policy: TimingPolicy) -> RollupSource:
    """The kit's schema with a copy of packet_flow, indexed on its two times; the window read is the
    busiest chain over the last day of the data."""
    _, hi = bounds(conn)
    create_kit_schema(conn, SCHEMA)
    execute(conn, f"CREATE TABLE {SCHEMA}.src AS SELECT {COLUMNS} FROM packet_flow")
    execute(conn, f"CREATE INDEX ON {SCHEMA}.src (created_at)")
    execute(conn, f"CREATE INDEX ON {SCHEMA}.src (updated_at)")
    src = f"{SCHEMA}.src"
    chain = execute(
        conn, f"SELECT source_chain FROM {src} GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()[0]
    return RollupSource(conn, src, (chain, hi - pd.Timedelta(days=1)), policy)


def _raw_row(source: RollupSource) -> dict[str, Any]:
    """1. the raw GROUP BY, read before anything else exists."""
    q_raw = _ROLLUP_SELECT.format(
        src=source.src, where="WHERE source_chain = %s AND created_at > %s"
    )
    return {
        "method": "raw GROUP BY",
        **source.latency(q_raw),
        "refresh_ms": 0.0,
        "stale_rows_after_insert": 0,
        "note": "always fresh; pays the aggregation on every read",
    }


def _build_materialized_view(source: RollupSource) -> tuple[str, float]:
    """2. a plain materialized view (unique-indexed for a concurrent refresh); its build in ms."""
    mv = f"{SCHEMA}.hourly_mv"
    create_ms = time_once_ms(
        source.conn,
        f"CREATE MATERIALIZED VIEW {mv} AS " + _ROLLUP_SELECT.format(src=source.src, where=""),
    )
    execute(source.conn, f"CREATE UNIQUE INDEX ON {mv} (bucket, source_chain)")
    return mv, create_ms


def _build_incremental_rollup(source: RollupSource) -> tuple[str, float]:
    """3. a rollup table with a watermark at the newest ``updated_at``, built in full; in ms."""
    conn, src = source.conn, source.src
    roll = f"{SCHEMA}.hourly_rollup"
    execute(
        conn,
        f"CREATE TABLE {roll} (bucket timestamptz, source_chain text, packet_count bigint, acknowledged_count bigint,"
        " failed_count bigint, clear_sum double precision, clear_n bigint, PRIMARY KEY (bucket, source_chain))",
    )
    execute(conn, f"CREATE TABLE {SCHEMA}.watermark (at timestamptz NOT NULL)")
    execute(conn, f"INSERT INTO {SCHEMA}.watermark SELECT max(updated_at) FROM {src}")
    return roll, _incremental_refresh(conn, src, roll, full=True)


def _insert_new_packets(source: RollupSource, new_packets: int) -> None:
    """New data arrives: ``new_packets`` packets in the hour after the data, updated now."""
    src = source.src
    execute(
        source.conn,
        f"INSERT INTO {src} ({COLUMNS}) SELECT id + 1000000000, operation_id, source_chain, destination_chain,"
        " source_port, source_channel, destination_port, destination_channel, sequence + 1000000, status, sender,"
        " receiver, amount, denom, relayer, timeout_revision, timeout_height, timeout_timestamp, received_at"
        " + interval '1 hour', acknowledged_at + interval '1 hour', clear_time_seconds, created_at + interval '1 hour',"
        f" now() FROM {src} ORDER BY created_at DESC LIMIT %s",
        (new_packets,),
    )


def _materialized_view_row(source: RollupSource, mv: str, create_ms: float) -> dict[str, Any]:
    """How stale the view is after the insert, its full concurrent refresh, then its read."""
    stale_mv = stale_rows(source.conn, source.src, mv)
    refresh_mv_ms = time_once_ms(source.conn, f"REFRESH MATERIALIZED VIEW CONCURRENTLY {mv}")
    return {
        "method": "plain materialized view",
        **source.latency(f"SELECT * FROM {mv} WHERE source_chain = %s AND bucket > %s"),
        "refresh_ms": round(refresh_mv_ms, 1),
        "stale_rows_after_insert": stale_mv,
        "note": f"full refresh each time (first build {create_ms:.0f} ms)",
    }


def _incremental_row(
    source: RollupSource, roll: str, full_roll_ms: float
) -> tuple[dict[str, Any], bool]:
    """How stale the rollup is, its incremental refresh, whether it then equals the raw GROUP BY,
    and its read."""
    conn, src = source.conn, source.src
    stale_roll = stale_rows(conn, src, roll)
    incr_ms = _incremental_refresh(conn, src, roll, full=False)
    matches = _rollup_equals_raw(conn, src, roll)
    row = {
        "method": "incremental rollup (watermark)",
        **source.latency(
            f"SELECT bucket, packet_count, acknowledged_count, clear_sum / nullif(clear_n, 0) FROM {roll}"
            " WHERE source_chain = %s AND bucket > %s"
        ),
        "refresh_ms": round(incr_ms, 1),
        "stale_rows_after_insert": stale_roll,
        "note": f"re-aggregates touched buckets only (full build {full_roll_ms:.0f} ms)",
    }
    return row, matches


def _continuous_aggregate_rows(
    source: RollupSource, info: ServerInfo, new_packets: int, policy_wait_s: float
) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    """4. continuous aggregates where licensed: their rows, ``"measured"`` and the refresh policy's
    run; elsewhere one row and the state saying why they are unavailable."""
    if info.has_continuous_aggregates:
        rows, cagg_policy = cagg_rows(source, new_packets, policy_wait_s)
        return rows, "measured", cagg_policy
    cagg_state = (
        f"unavailable on this server ({info.edition_label}): continuous aggregates need the Community"
        " edition (docker-compose.yml)"
    )
    row = {
        "method": "continuous aggregate",
        "query_p50_ms": np.nan,
        "refresh_ms": np.nan,
        "stale_rows_after_insert": np.nan,
        "note": cagg_state,
    }
    return [row], cagg_state, {}


def _incremental_refresh(conn: psycopg.Connection, src: str, roll: str, *, full: bool) -> float:
    """Re-aggregate only the buckets touched since the watermark, in one transaction; returns ms."""
    since = "" if full else f" WHERE updated_at > (SELECT at FROM {SCHEMA}.watermark)"
    started = time.perf_counter()
    with conn.transaction():
        execute(
            conn,
            f"CREATE TEMP TABLE touched ON COMMIT DROP AS SELECT DISTINCT date_trunc('hour', created_at) AS bucket"
            f" FROM {src}{since}",
        )
        execute(conn, f"DELETE FROM {roll} r USING touched t WHERE r.bucket = t.bucket")
        execute(
            conn,
            f"INSERT INTO {roll} SELECT date_trunc('hour', s.created_at), s.source_chain, count(*),"
            " count(*) FILTER (WHERE s.status = 'acknowledged'), count(*) FILTER (WHERE s.status IN ('error', 'timeout')),"
            f" sum(s.clear_time_seconds), count(s.clear_time_seconds) FROM {src} s"
            " WHERE date_trunc('hour', s.created_at) IN (SELECT bucket FROM touched) GROUP BY 1, 2",
        )
        execute(conn, f"UPDATE {SCHEMA}.watermark SET at = (SELECT max(updated_at) FROM {src})")
    return (time.perf_counter() - started) * 1000


def _rollup_equals_raw(conn: psycopg.Connection, src: str, roll: str) -> bool:
    raw = (
        f"SELECT date_trunc('hour', created_at), source_chain, count(*), count(*) FILTER (WHERE status = 'acknowledged'),"
        f" count(*) FILTER (WHERE status IN ('error', 'timeout')), count(clear_time_seconds) FROM {src} GROUP BY 1, 2"
    )
    rolled = f"SELECT bucket, source_chain, packet_count, acknowledged_count, failed_count, clear_n FROM {roll}"
    diff = execute(conn, f"SELECT count(*) FROM (({raw}) EXCEPT ({rolled})) a").fetchone()[0]
    diff += execute(conn, f"SELECT count(*) FROM (({rolled}) EXCEPT ({raw})) b").fetchone()[0]
    return diff == 0
