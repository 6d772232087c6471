"""TimescaleDB features benchmarked on copies of packet_flow: layouts, rollups, retention, compression.

Everything is built in the kit's own schema ``ibcbench_layouts`` of the dataset database, copied from
packet_flow, and that schema is dropped at the end: the dataset itself is never changed. Continuous
aggregates and compression need TimescaleDB's Community license; on the Apache edition the results
say they are unavailable instead of pretending.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from data_gen.tables import PACKET_FLOW
from ibcbench.bench.timing import TimingPolicy, time_once_ms, time_query
from ibcbench.data.ownership import create_kit_schema, drop_kit_schema
from ibcbench.db import connect, resolve_dsn, server_info
from ibcbench.errors import BenchmarkError
from ibcbench.inputs import check_chunk_interval, check_count, check_name, interval_name
from ibcbench.plans.model import plan_from_json
from ibcbench.results.recorded import run_folder, save_figure, save_frame
from ibcbench.results.runs import Run

SCHEMA = "ibcbench_layouts"
_COLUMNS = ", ".join(name for name, _ in PACKET_FLOW)  # kit-owned names, in the table's order
_INDEXES = (
    "(status, created_at DESC)",
    "(source_chain, source_channel, sequence)",
    "(sender, created_at DESC)",
)


#: the most measured executions of one layout query
MAX_REPETITIONS = 100_000


def _x(conn: psycopg.Connection, statement: str | sql.Composable, params: tuple = ()) -> Any:
    return conn.execute(statement, params)  # type: ignore[arg-type]


def _t(name: str) -> sql.Composable:
    """The kit's table ``name`` in :data:`SCHEMA`, quoted (a layout name is also checked)."""
    return sql.Identifier(SCHEMA, check_name(name, "layout name"))


def _wal_lsn(conn: psycopg.Connection) -> str:
    return _x(conn, "SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]


def _wal_since(conn: psycopg.Connection, lsn: str) -> int:
    return int(
        _x(
            conn, "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", (lsn,)
        ).fetchone()[0]
    )


def _drop_schema(dsn: str) -> None:
    with connect(dsn, autocommit=True) as conn:
        drop_kit_schema(conn, SCHEMA)  # the kit's own only: a same-named user schema is refused


def _bounds(conn: psycopg.Connection) -> tuple[Any, Any]:
    lo, hi = _x(conn, "SELECT min(created_at), max(created_at) FROM packet_flow").fetchone()
    if lo is None:
        raise BenchmarkError("packet_flow is empty: load a dataset first")
    return lo, hi


def _layout_size(conn: psycopg.Connection, table: str, kind: str) -> int:
    if kind == "hypertable":
        return int(
            _x(conn, "SELECT hypertable_size(%s::regclass)", (f"{SCHEMA}.{table}",)).fetchone()[0]
            or 0
        )
    if kind == "partitioned":
        return int(
            _x(
                conn,
                "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%s::regclass)",
                (f"{SCHEMA}.{table}",),
            ).fetchone()[0]
            or 0
        )
    return int(
        _x(conn, "SELECT pg_total_relation_size(%s::regclass)", (f"{SCHEMA}.{table}",)).fetchone()[
            0
        ]
    )


def _create_partitioned(
    conn: psycopg.Connection, name: str, lo: Any, hi: Any, *, hours: int
) -> None:
    """A table range-partitioned on created_at, one partition per ``hours`` (named <name>_YYYYMMDDHH)."""
    _x(
        conn,
        sql.SQL(
            "CREATE TABLE {} (LIKE public.packet_flow INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)"
        ).format(_t(name)),
    )
    step = pd.Timedelta(hours=hours)
    start = pd.Timestamp(lo).floor("D" if hours == 24 else "h")
    while start <= pd.Timestamp(hi):
        _x(
            conn,
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                _t(f"{name}_{start:%Y%m%d%H}"),
                _t(name),
                sql.Literal(start.isoformat()),
                sql.Literal((start + step).isoformat()),
            ),
        )
        start += step


def _create_layout(
    conn: psycopg.Connection, name: str, kind: str, interval: str | None, lo: Any, hi: Any
) -> None:
    """Create the layout table ``name`` of ``kind``; its name and chunk interval are checked before
    any statement."""
    _t(name)
    if kind == "hypertable":
        interval = check_chunk_interval(interval)
    if kind == "partitioned":
        _create_partitioned(conn, name, lo, hi, hours=24)
    else:
        _x(
            conn,
            sql.SQL(
                "CREATE TABLE {} (LIKE public.packet_flow INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ).format(_t(name)),
        )
        if kind == "hypertable":
            _x(
                conn,
                "SELECT create_hypertable(%s::regclass, by_range('created_at', %s::interval))",
                (f"{SCHEMA}.{name}", interval),
            )
    _x(conn, sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id, created_at)").format(_t(name)))
    for i, cols in enumerate(_INDEXES):
        _x(
            conn,
            sql.SQL("CREATE INDEX {} ON {} " + cols).format(
                sql.Identifier(check_name(f"{name}_idx{i}", "index name")), _t(name)
            ),
        )


def _has_timescaledb(conn: psycopg.Connection) -> bool:
    return server_info(conn).timescaledb_version is not None


def _leaf_partitions(conn: psycopg.Connection, table: str) -> list[str]:
    """Relation names of a partitioned table's leaf partitions (as EXPLAIN names them)."""
    rows = _x(
        conn,
        "SELECT c.relname FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid"
        " WHERE t.isleaf",
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    return [r[0] for r in rows]


@dataclass
class LayoutResult:
    layouts: pd.DataFrame
    queries: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def latency(self, layout: str, query: str) -> float:
        q = self.queries
        return float(q[(q.layout == layout) & (q["query"] == query)].p50_ms.iloc[0])

    def partitions_scanned(self, layout: str, query: str) -> int:
        """Partitions (chunks) one query's plan visited on one layout."""
        q = self.queries
        return int(q[(q.layout == layout) & (q["query"] == query)].partitions_scanned.iloc[0])

    def most_chunks_layout(self) -> str:
        """The layout with the most partitions (the last of a tie, in the order they were built)."""
        return str(self.queries.sort_values("partitions_total", kind="stable").iloc[-1]["layout"])

    def key_numbers(self) -> dict[str, Any]:
        """Notebook 05's layout numbers: chunk exclusion on the layout with the most chunks."""
        many = self.most_chunks_layout()
        return {
            "most_chunks_layout": many,
            "chunks_total": int(self.layouts.partitions.max()),
            "chunks_scanned_bounded": self.partitions_scanned(many, "point_lookup_time_bounded"),
            "chunks_scanned_unbounded": self.partitions_scanned(many, "point_lookup"),
            "point_lookup_ratio_many_chunks_vs_plain": self.latency(many, "point_lookup")
            / self.latency("plain", "point_lookup"),
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write ``ts_layouts``, ``ts_layout_queries`` and the layouts figure."""
        run = run_folder(run_dir)
        if run is None:
            return
        run.write_frame("ts_layouts", self.layouts)
        run.write_frame("ts_layout_queries", self.queries)
        save_figure(plot_layouts(self), "05_layouts", run, close=True)


def benchmark_layouts(
    dsn: str | None,
    *,
    chunk_intervals: tuple[str, ...] = ("1 hour", "1 day", "7 days"),
    repetitions: int = 30,
    keep: bool = False,
    timing: TimingPolicy | None = None,
) -> LayoutResult:
    """The same packets as a plain table, a daily-partitioned table and hypertables at several chunk intervals.

    Each query is timed with :func:`~ibcbench.bench.timing.time_query`: ``repetitions`` is its most
    measured executions (fewer once the p50 is precise to ±5%); chunk counts follow
    :mod:`ibcbench.plans.model`'s definition of scanned and excluded chunks.
    """
    intervals = [check_chunk_interval(i) for i in chunk_intervals]
    check_count(repetitions, "repetitions", maximum=MAX_REPETITIONS)
    policy = (timing or TimingPolicy()).with_max_runs(repetitions)
    target = resolve_dsn(dsn)
    _drop_schema(target)
    layouts, rows = [], []
    try:
        with connect(target, autocommit=True) as conn:
            has_ts = _has_timescaledb(conn)
            lo, hi = _bounds(conn)
            count = _x(conn, "SELECT count(*) FROM packet_flow").fetchone()[0]
            sample = _x(
                conn,
                "SELECT source_chain, source_channel, sequence, created_at, sender FROM packet_flow"
                " TABLESAMPLE BERNOULLI (5) REPEATABLE (7) LIMIT %s",
                (repetitions,),
            ).fetchall()
            create_kit_schema(conn, SCHEMA)
            plan: list[tuple[str, str, str | None]] = [
                ("plain", "plain", None),
                ("partitioned_1_day", "partitioned", None),
            ]
            if has_ts:
                plan += [(f"hypertable_{interval_name(i)}", "hypertable", i) for i in intervals]
            for name, kind, interval in plan:
                _create_layout(conn, name, kind, interval, lo, hi)
                table = _t(name)
                load_ms = time_once_ms(
                    conn,
                    sql.SQL(
                        f"INSERT INTO {{}} ({_COLUMNS}) SELECT {_COLUMNS} FROM packet_flow"
                    ).format(table),
                )
                _x(conn, sql.SQL("ANALYZE {}").format(table))
                parts, leaves = 1, []
                if kind == "hypertable":
                    parts = _x(
                        conn,
                        "SELECT count(*) FROM show_chunks(%s::regclass)",
                        (f"{SCHEMA}.{name}",),
                    ).fetchone()[0]
                elif kind == "partitioned":
                    leaves = _leaf_partitions(conn, name)
                    parts = len(leaves)
                layouts.append(
                    {
                        "layout": name,
                        "kind": kind,
                        "chunk_interval": interval or ("1 day" if kind == "partitioned" else "-"),
                        "partitions": int(parts),
                        "load_ms": round(load_ms, 1),
                        "load_rows_per_s": round(count / (load_ms / 1000)),
                        "size_bytes": _layout_size(conn, name, kind),
                    }
                )
                queries = {
                    "recent_2h_count": (
                        "SELECT count(*) FROM {t} WHERE created_at > %s AND status = 'acknowledged'",
                        lambda s: (hi - pd.Timedelta(hours=2),),
                    ),
                    "hourly_last_day": (
                        "SELECT date_trunc('hour', created_at), count(*) FROM {t}"
                        " WHERE created_at > %s GROUP BY 1",
                        lambda s: (hi - pd.Timedelta(days=1),),
                    ),
                    "point_lookup": (
                        "SELECT id, status FROM {t} WHERE source_chain = %s AND source_channel = %s"
                        " AND sequence = %s",
                        lambda s: (s[0], s[1], s[2]),
                    ),
                    "point_lookup_time_bounded": (
                        "SELECT id, status FROM {t} WHERE source_chain = %s AND"
                        " source_channel = %s AND sequence = %s AND created_at BETWEEN %s AND %s",
                        lambda s: (
                            s[0],
                            s[1],
                            s[2],
                            s[3] - pd.Timedelta(minutes=10),
                            s[3] + pd.Timedelta(minutes=10),
                        ),
                    ),
                    "sender_recent": (
                        "SELECT id FROM {t} WHERE sender = %s ORDER BY created_at DESC LIMIT 20",
                        lambda s: (s[4],),
                    ),
                }
                for qname, (text, args) in queries.items():
                    query = sql.SQL(text).format(t=table)
                    timed = time_query(conn, query, [args(s) for s in sample], policy=policy)
                    explained = plan_from_json(
                        _x(
                            conn,
                            sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query,
                            args(sample[0]),
                        ).fetchone()[0]
                    )
                    rows.append(
                        {
                            "layout": name,
                            "query": qname,
                            **timed.as_row(),
                            "partitions_scanned": explained.partitions_scanned(leaves)
                            if kind != "plain"
                            else 1,
                            "partitions_total": int(parts),
                            "excluded_at_runtime": explained.chunks_excluded,
                        }
                    )
    finally:
        if not keep:
            _drop_schema(target)
    return LayoutResult(
        pd.DataFrame(layouts),
        pd.DataFrame(rows),
        {
            "chunk_intervals": list(chunk_intervals),
            "repetitions": repetitions,
            "timescaledb": has_ts,
            "timing": asdict(policy),
        },
    )


# ---- rollups --------------------------------------------------------------------------------------
_ROLLUP_SELECT = (
    "SELECT date_trunc('hour', created_at) AS bucket, source_chain, count(*) AS packet_count,"
    " count(*) FILTER (WHERE status = 'acknowledged') AS acknowledged_count,"
    " count(*) FILTER (WHERE status IN ('error', 'timeout')) AS failed_count,"
    " avg(clear_time_seconds) AS avg_clear_time_seconds FROM {src} {where} GROUP BY 1, 2"
)


@dataclass
class RollupResult:
    frame: pd.DataFrame
    rollup_matches_raw: bool
    continuous_aggregates: str
    manifest: dict[str, Any] = field(default_factory=dict)
    #: the continuous aggregate's refresh policy run as a job (Community edition; empty otherwise)
    cagg_policy: dict[str, Any] = field(default_factory=dict)

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
    _drop_schema(target)
    rows: list[dict[str, Any]] = []
    try:
        with connect(target, autocommit=True) as conn:
            info = server_info(conn)
            _, hi = _bounds(conn)
            create_kit_schema(conn, SCHEMA)
            _x(conn, f"CREATE TABLE {SCHEMA}.src AS SELECT {_COLUMNS} FROM packet_flow")
            _x(conn, f"CREATE INDEX ON {SCHEMA}.src (created_at)")
            _x(conn, f"CREATE INDEX ON {SCHEMA}.src (updated_at)")
            src = f"{SCHEMA}.src"
            chain = _x(
                conn, f"SELECT source_chain FROM {src} GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ).fetchone()[0]
            q_raw = _ROLLUP_SELECT.format(
                src=src, where="WHERE source_chain = %s AND created_at > %s"
            )
            window = (chain, hi - pd.Timedelta(days=1))

            def latency(query: str, params: tuple) -> dict[str, Any]:
                timed = time_query(conn, query, [params], policy=policy)
                return {
                    "query_p50_ms": round(timed.p50_ms, 4),
                    "query_n": timed.n,
                    "query_stopped_by": timed.stopped_by,
                }

            # 1. raw GROUP BY
            rows.append(
                {
                    "method": "raw GROUP BY",
                    **latency(q_raw, window),
                    "refresh_ms": 0.0,
                    "stale_rows_after_insert": 0,
                    "note": "always fresh; pays the aggregation on every read",
                }
            )
            # 2. plain materialized view
            mv = f"{SCHEMA}.hourly_mv"
            create_ms = time_once_ms(
                conn,
                f"CREATE MATERIALIZED VIEW {mv} AS " + _ROLLUP_SELECT.format(src=src, where=""),
            )
            _x(conn, f"CREATE UNIQUE INDEX ON {mv} (bucket, source_chain)")
            # 3. incremental rollup with a watermark
            roll = f"{SCHEMA}.hourly_rollup"
            _x(
                conn,
                f"CREATE TABLE {roll} (bucket timestamptz, source_chain text, packet_count bigint, acknowledged_count bigint,"
                " failed_count bigint, clear_sum double precision, clear_n bigint, PRIMARY KEY (bucket, source_chain))",
            )
            _x(conn, f"CREATE TABLE {SCHEMA}.watermark (at timestamptz NOT NULL)")
            _x(conn, f"INSERT INTO {SCHEMA}.watermark SELECT max(updated_at) FROM {src}")
            full_roll_ms = _incremental_refresh(conn, src, roll, full=True)
            # new data arrives: packets in the hour after the data
            _x(
                conn,
                f"INSERT INTO {src} ({_COLUMNS}) SELECT id + 1000000000, operation_id, source_chain, destination_chain,"
                " source_port, source_channel, destination_port, destination_channel, sequence + 1000000, status, sender,"
                " receiver, amount, denom, relayer, timeout_revision, timeout_height, timeout_timestamp, received_at"
                " + interval '1 hour', acknowledged_at + interval '1 hour', clear_time_seconds, created_at + interval '1 hour',"
                f" now() FROM {src} ORDER BY created_at DESC LIMIT %s",
                (new_packets,),
            )
            stale_mv = _stale_rows(conn, src, mv)
            refresh_mv_ms = time_once_ms(conn, f"REFRESH MATERIALIZED VIEW CONCURRENTLY {mv}")
            rows.append(
                {
                    "method": "plain materialized view",
                    **latency(
                        f"SELECT * FROM {mv} WHERE source_chain = %s AND bucket > %s", window
                    ),
                    "refresh_ms": round(refresh_mv_ms, 1),
                    "stale_rows_after_insert": stale_mv,
                    "note": f"full refresh each time (first build {create_ms:.0f} ms)",
                }
            )
            stale_roll = _stale_rows(conn, src, roll)
            incr_ms = _incremental_refresh(conn, src, roll, full=False)
            matches = _rollup_equals_raw(conn, src, roll)
            rows.append(
                {
                    "method": "incremental rollup (watermark)",
                    **latency(
                        f"SELECT bucket, packet_count, acknowledged_count, clear_sum / nullif(clear_n, 0) FROM {roll}"
                        " WHERE source_chain = %s AND bucket > %s",
                        window,
                    ),
                    "refresh_ms": round(incr_ms, 1),
                    "stale_rows_after_insert": stale_roll,
                    "note": f"re-aggregates touched buckets only (full build {full_roll_ms:.0f} ms)",
                }
            )
            # 4. continuous aggregate, where licensed
            cagg_policy: dict[str, Any] = {}
            if info.has_continuous_aggregates:
                cagg_rows, cagg_policy = _cagg_rows(
                    conn, src, window, latency, new_packets, policy_wait_s
                )
                rows.extend(cagg_rows)
                cagg_state = "measured"
            else:
                cagg_state = (
                    f"unavailable on this server ({info.edition_label}): continuous aggregates need the Community"
                    " edition (docker-compose.yml)"
                )
                rows.append(
                    {
                        "method": "continuous aggregate",
                        "query_p50_ms": np.nan,
                        "refresh_ms": np.nan,
                        "stale_rows_after_insert": np.nan,
                        "note": cagg_state,
                    }
                )
    finally:
        _drop_schema(target)
    return RollupResult(
        pd.DataFrame(rows),
        matches,
        cagg_state,
        {"new_packets": new_packets, "repetitions": repetitions, "timing": asdict(policy)},
        cagg_policy,
    )


def _incremental_refresh(conn: psycopg.Connection, src: str, roll: str, *, full: bool) -> float:
    """Re-aggregate only the buckets touched since the watermark, in one transaction; returns ms."""
    since = "" if full else f" WHERE updated_at > (SELECT at FROM {SCHEMA}.watermark)"
    started = time.perf_counter()
    with conn.transaction():
        _x(
            conn,
            f"CREATE TEMP TABLE touched ON COMMIT DROP AS SELECT DISTINCT date_trunc('hour', created_at) AS bucket"
            f" FROM {src}{since}",
        )
        _x(conn, f"DELETE FROM {roll} r USING touched t WHERE r.bucket = t.bucket")
        _x(
            conn,
            f"INSERT INTO {roll} SELECT date_trunc('hour', s.created_at), s.source_chain, count(*),"
            " count(*) FILTER (WHERE s.status = 'acknowledged'), count(*) FILTER (WHERE s.status IN ('error', 'timeout')),"
            f" sum(s.clear_time_seconds), count(s.clear_time_seconds) FROM {src} s"
            " WHERE date_trunc('hour', s.created_at) IN (SELECT bucket FROM touched) GROUP BY 1, 2",
        )
        _x(conn, f"UPDATE {SCHEMA}.watermark SET at = (SELECT max(updated_at) FROM {src})")
    return (time.perf_counter() - started) * 1000


def _stale_rows(conn: psycopg.Connection, src: str, rollup: str) -> int:
    return int(
        _x(
            conn,
            f"SELECT (SELECT count(*) FROM {src}) - (SELECT coalesce(sum(packet_count), 0) FROM {rollup})",
        ).fetchone()[0]
    )


def _rollup_equals_raw(conn: psycopg.Connection, src: str, roll: str) -> bool:
    raw = (
        f"SELECT date_trunc('hour', created_at), source_chain, count(*), count(*) FILTER (WHERE status = 'acknowledged'),"
        f" count(*) FILTER (WHERE status IN ('error', 'timeout')), count(clear_time_seconds) FROM {src} GROUP BY 1, 2"
    )
    rolled = f"SELECT bucket, source_chain, packet_count, acknowledged_count, failed_count, clear_n FROM {roll}"
    diff = _x(conn, f"SELECT count(*) FROM (({raw}) EXCEPT ({rolled})) a").fetchone()[0]
    diff += _x(conn, f"SELECT count(*) FROM (({rolled}) EXCEPT ({raw})) b").fetchone()[0]
    return diff == 0


def _cagg_rows(
    conn: psycopg.Connection,
    src: str,
    window: tuple,
    latency: Any,
    new_packets: int,
    policy_wait_s: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Continuous aggregates on a hypertable copy (Community edition): real-time and materialized-only
    built and refreshed, then a span of ``new_packets`` arrives after the last refresh: how stale each
    answer is, what its incremental refresh costs, and the read latency; a daily aggregate over the
    hourly one (a dashboard's rollup), checked against it; the refresh policy run as a job."""
    hyper = f"{SCHEMA}.src_hyper"
    _x(conn, f"CREATE TABLE {hyper} (LIKE {src})")
    _x(conn, "SELECT create_hypertable(%s, by_range('created_at', interval '1 day'))", (hyper,))
    _x(conn, f"INSERT INTO {hyper} SELECT * FROM {src}")
    views = {}
    for mode, only in (("real-time", "false"), ("materialized-only", "true")):
        view = f"{SCHEMA}.cagg_{'rt' if only == 'false' else 'mo'}"
        _x(
            conn,
            f"CREATE MATERIALIZED VIEW {view} WITH (timescaledb.continuous, timescaledb.materialized_only = {only}) AS"
            f" SELECT time_bucket('1 hour', created_at) AS bucket, source_chain, count(*) AS packet_count FROM {hyper}"
            " GROUP BY 1, 2 WITH NO DATA",
        )
        views[mode] = (
            view,
            time_once_ms(conn, "CALL refresh_continuous_aggregate(%s, NULL, NULL)", (view,)),
        )
    # new packets stream in after the last refresh: the newest hour again, two hours later
    newest = _x(conn, f"SELECT max(created_at) FROM {hyper}").fetchone()[0]
    moved = ", ".join(
        "id + 2000000000" if c == "id" else f"{c} + interval '2 hours'" if k == "timestamptz" else c
        for c, k in PACKET_FLOW
    )
    _x(
        conn,
        f"INSERT INTO {hyper} ({_COLUMNS}) SELECT {moved} FROM {hyper} ORDER BY created_at DESC LIMIT %s",
        (new_packets,),
    )
    rows = []
    for mode, (view, full_ms) in views.items():
        stale = _stale_rows(conn, hyper, view)
        read = latency(f"SELECT * FROM {view} WHERE source_chain = %s AND bucket > %s", window)
        refresh = time_once_ms(
            conn, "CALL refresh_continuous_aggregate(%s, %s::timestamptz, NULL)", (view, newest)
        )
        rows.append(
            {
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
        )
    # hierarchical: daily over the materialized-only hourly aggregate
    hourly = views["materialized-only"][0]
    daily = f"{SCHEMA}.cagg_daily"
    _x(
        conn,
        f"CREATE MATERIALIZED VIEW {daily} WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS"
        f" SELECT time_bucket('1 day', bucket) AS day, source_chain, sum(packet_count) AS packet_count FROM {hourly}"
        " GROUP BY 1, 2 WITH NO DATA",
    )
    daily_ms = time_once_ms(conn, "CALL refresh_continuous_aggregate(%s, NULL, NULL)", (daily,))
    mismatched = _x(
        conn,
        f"SELECT count(*) FROM (SELECT time_bucket('1 day', bucket) AS day, source_chain, sum(packet_count) AS n"
        f" FROM {hourly} GROUP BY 1, 2 EXCEPT SELECT day, source_chain, packet_count FROM {daily}) d",
    ).fetchone()[0]
    rows.append(
        {
            "method": "hierarchical: daily over hourly",
            **latency(
                f"SELECT day, packet_count FROM {daily} WHERE source_chain = %s AND day > %s",
                window,
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
    )
    policy = _refresh_policy(conn, views["real-time"][0], policy_wait_s)
    policy["hierarchical_matches_hourly"] = mismatched == 0
    return rows, policy


def run_job_now(conn: psycopg.Connection, job_id: int, wait_s: float) -> dict[str, Any]:
    """Start TimescaleDB job ``job_id`` now through its scheduler, wait up to ``wait_s`` for that run
    to finish, and return its ``job_stats`` and last ``job_errors`` message; the job is deleted."""
    _x(conn, "SELECT alter_job(%s, next_start => now())", (job_id,))
    deadline = time.monotonic() + wait_s
    stats: tuple = (None, None, None)
    while (
        time.monotonic() < deadline
    ):  # until the scheduler's run has finished, one way or the other
        stats = _x(
            conn,
            "SELECT total_runs, total_failures, last_run_status FROM timescaledb_information.job_stats"
            " WHERE job_id = %s",
            (job_id,),
        ).fetchone() or (None, None, None)
        if stats[2] is not None:
            break
        time.sleep(0.2)
    error = _x(
        conn,
        "SELECT err_message FROM timescaledb_information.job_errors WHERE job_id = %s"
        " ORDER BY start_time DESC LIMIT 1",
        (job_id,),
    ).fetchone()
    _x(conn, "SELECT delete_job(%s)", (job_id,))
    return {
        "job_id": job_id,
        "total_runs": stats[0],
        "total_failures": stats[1],
        "last_run_status": stats[2] or f"not finished within {wait_s:.0f} s",
        "last_error": error[0] if error else None,
    }


def _refresh_policy(conn: psycopg.Connection, view: str, wait_s: float) -> dict[str, Any]:
    """add_continuous_aggregate_policy on ``view``, run now by the scheduler (:func:`run_job_now`)."""
    job_id = _x(
        conn,
        "SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => NULL,"
        " end_offset => interval '1 hour', schedule_interval => interval '1 hour')",
        (view,),
    ).fetchone()[0]
    return run_job_now(conn, job_id, wait_s)


# ---- retention ------------------------------------------------------------------------------------
@dataclass
class RetentionResult:
    frame: pd.DataFrame

    def key_numbers(self) -> dict[str, Any]:
        """Notebook 05's retention numbers: time and WAL per method."""
        f = self.frame
        return {
            "retention_ms": dict(zip(f.method, f.elapsed_ms, strict=True)),
            "retention_wal_bytes": dict(zip(f.method, f.wal_bytes, strict=True)),
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        save_frame(self.frame, "ts_retention", run_dir)


def benchmark_retention(
    dsn: str | None, *, keep_hours: int = 6, policy_wait_s: float = 30.0
) -> RetentionResult:
    """Remove everything older than the newest packet minus ``keep_hours`` three ways, and on the
    Community edition a fourth, ``add_retention_policy`` run by the job scheduler: time and WAL."""
    check_count(keep_hours, "keep_hours", maximum=24 * 3650)
    target = resolve_dsn(dsn)
    _drop_schema(target)
    rows = []
    try:
        with connect(target, autocommit=True) as conn:
            has_ts = _has_timescaledb(conn)
            jobs = server_info(conn).has_continuous_aggregates  # the Community edition's jobs
            lo, hi = _bounds(conn)
            cutoff = (pd.Timestamp(hi) - pd.Timedelta(hours=keep_hours)).floor("h")
            create_kit_schema(conn, SCHEMA)
            methods: list[tuple[str, str, str | None]] = [
                ("DELETE on a plain table", "plain", None),
                ("DETACH + DROP partitions", "partitioned", None),
            ]
            if has_ts:
                methods.append(("drop_chunks on a hypertable", "hypertable", "1 hour"))
            if jobs:
                methods.append(("add_retention_policy (a job)", "policy", "1 hour"))
            for label, kind, interval in methods:
                name = f"ret_{kind}"
                if kind == "partitioned":
                    _create_partitioned(conn, name, lo, hi, hours=1)
                else:
                    _create_layout(
                        conn, name, "hypertable" if kind == "policy" else kind, interval, lo, hi
                    )
                table = _t(name)
                _x(
                    conn,
                    sql.SQL(
                        f"INSERT INTO {{}} ({_COLUMNS}) SELECT {_COLUMNS} FROM packet_flow"
                    ).format(table),
                )
                count = sql.SQL("SELECT count(*) FROM {}").format(table)
                before = _x(conn, count).fetchone()[0]
                _x(conn, "CHECKPOINT")
                lsn = _wal_lsn(conn)
                started = time.perf_counter()
                note = ""
                if kind == "policy":
                    note = _retention_job(conn, f"{SCHEMA}.{name}", cutoff, policy_wait_s)
                elif kind == "plain":
                    _x(
                        conn,
                        sql.SQL("DELETE FROM {} WHERE created_at < %s").format(table),
                        (cutoff,),
                    )
                elif kind == "hypertable":
                    _x(
                        conn,
                        "SELECT drop_chunks(%s::regclass, older_than => %s::timestamptz)",
                        (f"{SCHEMA}.{name}", cutoff),
                    )
                else:
                    old = _x(
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
                            _x(
                                conn,
                                sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                                    table, _t(part)
                                ),
                            )
                            _x(conn, sql.SQL("DROP TABLE {}").format(_t(part)))
                elapsed = (time.perf_counter() - started) * 1000
                wal = _wal_since(conn, lsn)
                after = _x(conn, count).fetchone()[0]
                rows.append(
                    {
                        "method": label,
                        "rows_removed": int(before - after),
                        "rows_kept": int(after),
                        "elapsed_ms": round(elapsed, 1),
                        "wal_bytes": wal,
                        "note": note,
                    }
                )
    finally:
        _drop_schema(target)
    return RetentionResult(pd.DataFrame(rows))


def _retention_job(conn: psycopg.Connection, table: str, cutoff: Any, wait_s: float) -> str:
    """``add_retention_policy`` dropping what is older than ``cutoff`` (as an interval before now),
    run now by the scheduler; the outcome in words (elapsed time includes the scheduler's pick-up)."""
    job_id = _x(
        conn,
        "SELECT add_retention_policy(%s::regclass, drop_after => now() - %s::timestamptz)",
        (table, cutoff),
    ).fetchone()[0]
    run = run_job_now(conn, job_id, wait_s)
    status, error = run["last_run_status"], run["last_error"]
    return f"job {job_id}: {status}" + (f" ({error})" if status != "Success" and error else "")


def compression_status(dsn: str | None) -> str:
    """Compression needs the Community edition; say so here rather than fail inside a notebook."""
    with connect(dsn) as conn:
        info = server_info(conn)
    if info.has_continuous_aggregates:
        return "available (Community edition)"
    return f"unavailable on this server ({info.edition_label}); run the Docker image (docker-compose.yml) for it"


def plot_layouts(result: LayoutResult) -> Any:
    import matplotlib.pyplot as plt

    q = result.queries.pivot(index="query", columns="layout", values="p50_ms")
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    q.plot.bar(ax=axes[0], logy=True, rot=15)
    axes[0].set_ylabel("p50 (ms, log)")
    axes[0].set_title("Query latency by layout")
    scanned = result.queries.pivot(index="query", columns="layout", values="partitions_scanned")
    scanned.plot.bar(ax=axes[1], rot=15)
    axes[1].set_title("Partitions / chunks scanned")
    fig.tight_layout()
    return fig
