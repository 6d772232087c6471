"""What the TimescaleDB benchmarks share: the kit's schema, its copies of packet_flow, WAL positions,
the rollups' source and staleness, TimescaleDB jobs run now, and the edition's features.

Everything lives in :data:`SCHEMA`, created with :func:`~ibcbench.data.ownership.create_kit_schema`
and dropped with :func:`drop_schema` (a same-named schema the kit did not create is refused).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from data_gen.tables import PACKET_FLOW
from ibcbench.bench.timing import TimingPolicy, time_query
from ibcbench.data.ownership import drop_kit_schema
from ibcbench.db import connect, server_info
from ibcbench.errors import BenchmarkError
from ibcbench.inputs import check_chunk_interval, check_name
from ibcbench.results.metrics.metric import Metric, informational

SCHEMA = "ibcbench_layouts"
COLUMNS = ", ".join(name for name, _ in PACKET_FLOW)  # kit-owned names, in the table's order
_INDEXES = (
    "(status, created_at DESC)",
    "(source_chain, source_channel, sequence)",
    "(sender, created_at DESC)",
)

#: the most measured executions of one layout query
MAX_REPETITIONS = 100_000


def execute(conn: psycopg.Connection, statement: str | sql.Composable, params: tuple = ()) -> Any:
    """``conn.execute`` for the kit's own statements (a ``str`` here is never composed of input)."""
    return conn.execute(statement, params)  # type: ignore[arg-type]


def kit_table(name: str) -> sql.Composable:
    """The kit's table ``name`` in :data:`SCHEMA`, quoted (a layout name is also checked)."""
    return sql.Identifier(SCHEMA, check_name(name, "layout name"))


def wal_lsn(conn: psycopg.Connection) -> str:
    return execute(conn, "SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]


def wal_since(conn: psycopg.Connection, lsn: str) -> int:
    return int(
        execute(
            conn, "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", (lsn,)
        ).fetchone()[0]
    )


def drop_schema(dsn: str) -> None:
    with connect(dsn, autocommit=True) as conn:
        drop_kit_schema(conn, SCHEMA)  # the kit's own only: a same-named user schema is refused


def bounds(conn: psycopg.Connection) -> tuple[Any, Any]:
    lo, hi = execute(conn, "SELECT min(created_at), max(created_at) FROM packet_flow").fetchone()
    if lo is None:
        raise BenchmarkError("packet_flow is empty: load a dataset first")
    return lo, hi


def has_timescaledb(conn: psycopg.Connection) -> bool:
    return server_info(conn).timescaledb_version is not None


def create_partitioned(
    conn: psycopg.Connection, name: str, lo: Any, hi: Any, *, hours: int
) -> None:
    """A table range-partitioned on created_at, one partition per ``hours`` (named <name>_YYYYMMDDHH)."""
    execute(
        conn,
        sql.SQL(
            "CREATE TABLE {} (LIKE public.packet_flow INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)"
        ).format(kit_table(name)),
    )
    step = pd.Timedelta(hours=hours)
    start = pd.Timestamp(lo).floor("D" if hours == 24 else "h")
    while start <= pd.Timestamp(hi):
        execute(
            conn,
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                kit_table(f"{name}_{start:%Y%m%d%H}"),
                kit_table(name),
                sql.Literal(start.isoformat()),
                sql.Literal((start + step).isoformat()),
            ),
        )
        start += step


def create_layout(
    conn: psycopg.Connection, name: str, kind: str, interval: str | None, lo: Any, hi: Any
) -> None:
    """An empty copy of packet_flow as ``kind`` (plain, partitioned by day, or a hypertable with
    chunks of ``interval``), with its primary key and the service's indexes; its name and chunk
    interval are checked before any statement."""
    kit_table(name)
    if kind == "hypertable":
        interval = check_chunk_interval(interval)
    if kind == "partitioned":
        create_partitioned(conn, name, lo, hi, hours=24)
    else:
        execute(
            conn,
            sql.SQL(
                "CREATE TABLE {} (LIKE public.packet_flow INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ).format(kit_table(name)),
        )
        if kind == "hypertable":
            execute(
                conn,
                "SELECT create_hypertable(%s::regclass, by_range('created_at', %s::interval))",
                (f"{SCHEMA}.{name}", interval),
            )
    execute(
        conn, sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id, created_at)").format(kit_table(name))
    )
    for i, cols in enumerate(_INDEXES):
        execute(
            conn,
            sql.SQL("CREATE INDEX {} ON {} " + cols).format(
                sql.Identifier(check_name(f"{name}_idx{i}", "index name")), kit_table(name)
            ),
        )


def copy_packets(conn: psycopg.Connection, table: sql.Composable) -> None:
    """Every packet of packet_flow into the kit's copy ``table``."""
    execute(conn, copy_statement(table))


def copy_statement(table: sql.Composable) -> sql.Composed:
    """``INSERT INTO table (...) SELECT ... FROM packet_flow``, to run or to time."""
    return sql.SQL(f"INSERT INTO {{}} ({COLUMNS}) SELECT {COLUMNS} FROM packet_flow").format(table)


@dataclass(frozen=True)
class RollupSource:
    """The rollups' copy of packet_flow (``src``, a kit-owned name) and the read each method
    answers: one chain's hourly rows of the last day (``window``: the chain and the day's start)."""

    conn: psycopg.Connection
    src: str
    window: tuple
    policy: TimingPolicy

    def latency(self, query: str) -> dict[str, Any]:
        """``query`` (with the window's two placeholders) timed under the policy."""
        timed = time_query(self.conn, query, [self.window], policy=self.policy)
        return {
            "query_p50_ms": round(timed.p50_ms, 4),
            "query_n": timed.n,
            "query_stopped_by": timed.stopped_by,
        }


def stale_rows(conn: psycopg.Connection, src: str, rollup: str) -> int:
    """Packets of ``src`` that the rollup's ``packet_count`` does not count (yet)."""
    return int(
        execute(
            conn,
            f"SELECT (SELECT count(*) FROM {src}) - (SELECT coalesce(sum(packet_count), 0) FROM {rollup})",
        ).fetchone()[0]
    )


def run_job_now(conn: psycopg.Connection, job_id: int, wait_s: float) -> dict[str, Any]:
    """Start TimescaleDB job ``job_id`` now through its scheduler, wait up to ``wait_s`` for that run
    to finish, and return its ``job_stats`` and last ``job_errors`` message; the job is deleted."""
    execute(conn, "SELECT alter_job(%s, next_start => now())", (job_id,))
    deadline = time.monotonic() + wait_s
    stats: tuple = (None, None, None)
    while (
        time.monotonic() < deadline
    ):  # until the scheduler's run has finished, one way or the other
        stats = execute(
            conn,
            "SELECT total_runs, total_failures, last_run_status FROM timescaledb_information.job_stats"
            " WHERE job_id = %s",
            (job_id,),
        ).fetchone() or (None, None, None)
        if stats[2] is not None:
            break
        time.sleep(0.2)
    error = execute(
        conn,
        "SELECT err_message FROM timescaledb_information.job_errors WHERE job_id = %s"
        " ORDER BY start_time DESC LIMIT 1",
        (job_id,),
    ).fetchone()
    execute(conn, "SELECT delete_job(%s)", (job_id,))
    return {
        "job_id": job_id,
        "total_runs": stats[0],
        "total_failures": stats[1],
        "last_run_status": stats[2] or f"not finished within {wait_s:.0f} s",
        "last_error": error[0] if error else None,
    }


#: the metric of what notebook 05 records beside its results: ``compression=compression_status(dsn)``
METRICS: tuple[Metric, ...] = (
    informational("compression", "", "whether the server's edition has compression (text)"),
)


def compression_status(dsn: str | None) -> str:
    """Compression needs the Community edition; say so here rather than fail inside a notebook."""
    with connect(dsn) as conn:
        info = server_info(conn)
    if info.has_continuous_aggregates:
        return "available (Community edition)"
    return f"unavailable on this server ({info.edition_label}); run the Docker image (docker-compose.yml) for it"
