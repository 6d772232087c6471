"""The columnstore benchmark's copies of packet_flow in the kit's schema: the settings, building a copy,
converting its chunks, their sizes, and a columnstore policy run as a job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from ibcbench.bench.timescale import run_job_now
from ibcbench.bench.timing import time_once_ms
from ibcbench.data.ownership import drop_kit_schema
from ibcbench.db import connect

SCHEMA = "ibcbench_columnstore"
#: name -> (segmentby, orderby): each argued for by a part of the workload (``ibcbench.bench.columnstore``'s docstring)
SETTINGS: dict[str, tuple[str, str]] = {
    "by_source_chain": ("source_chain", "created_at DESC"),
    "by_channel": ("source_chain, source_channel", "sequence DESC, created_at DESC"),
    "by_sender": ("sender", "created_at DESC"),
}
BASELINE = "rowstore"
#: the service's indexes on packet_flow, rebuilt on every copy
_INDEXES = (
    "(status, created_at DESC)",
    "(source_chain, source_channel, sequence)",
    "(sender, created_at DESC)",
)


def execute(
    conn: psycopg.Connection, statement: str | sql.Composable, params: Sequence[Any] = ()
) -> Any:
    return conn.execute(statement, params)  # type: ignore[arg-type]


def drop_schema(dsn: str) -> None:
    with connect(dsn, autocommit=True) as conn:
        drop_kit_schema(conn, SCHEMA)  # the kit's own only: a same-named user schema is refused


def chunk_interval(lo: Any, hi: Any) -> str:
    """About twelve chunks over the data's span, whole hours, between 1 hour and 1 day."""
    hours = (pd.Timestamp(hi) - pd.Timestamp(lo)).total_seconds() / 3600
    return f"{int(min(24, max(1, round(hours / 12))))} hours"


def create_copy(conn: psycopg.Connection, name: str, interval: str, columns: str) -> float:
    """A hypertable copy of packet_flow with the service's indexes; returns the INSERT's ms."""
    table = f"{SCHEMA}.{name}"
    execute(
        conn,
        f"CREATE TABLE {table} (LIKE public.packet_flow INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    )
    execute(
        conn,
        "SELECT create_hypertable(%s, by_range('created_at', %s::interval))",
        (table, interval),
    )
    execute(conn, f"ALTER TABLE {table} ADD PRIMARY KEY (id, created_at)")
    for i, cols in enumerate(_INDEXES):
        execute(conn, f"CREATE INDEX {name}_idx{i} ON {table} {cols}")
    ms = time_once_ms(conn, f"INSERT INTO {table} ({columns}) SELECT {columns} FROM packet_flow")
    execute(conn, f"ANALYZE {table}")
    return ms


def _columnstore_on(table: str, segmentby: str, orderby: str) -> sql.Composable:
    """``ALTER TABLE ... SET (timescaledb.enable_columnstore ...)`` with the settings as literals."""
    schema, name = table.split(".")
    return sql.SQL(
        "ALTER TABLE {} SET (timescaledb.enable_columnstore = true,"
        " timescaledb.segmentby = {}, timescaledb.orderby = {})"
    ).format(sql.Identifier(schema, name), sql.Literal(segmentby), sql.Literal(orderby))


def compress(
    conn: psycopg.Connection, name: str, segmentby: str, orderby: str
) -> tuple[float, int]:
    """Enable the columnstore and convert every chunk but the newest; (ms, chunks converted)."""
    table = f"{SCHEMA}.{name}"
    execute(
        conn,
        _columnstore_on(table, segmentby, orderby),
    )
    chunks = [
        r[0]
        for r in execute(
            conn,
            "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks"
            " WHERE hypertable_schema = %s AND hypertable_name = %s ORDER BY range_end DESC OFFSET 1",
            (SCHEMA, name),
        ).fetchall()
    ]
    ms = 0.0
    for chunk in chunks:
        ms += time_once_ms(conn, "SELECT compress_chunk(%s::regclass)", (chunk,))
    execute(conn, f"ANALYZE {table}")
    return ms, len(chunks)


def chunk_sizes(conn: psycopg.Connection, name: str, setting: str) -> list[dict[str, Any]]:
    rows = execute(
        conn,
        "SELECT chunk_name, compression_status, before_compression_total_bytes,"
        " after_compression_total_bytes FROM chunk_columnstore_stats(%s::regclass) ORDER BY chunk_name",
        (f"{SCHEMA}.{name}",),
    ).fetchall()
    return [
        {
            "setting": setting,
            "chunk": chunk,
            "status": status,
            "before_bytes": before,
            "after_bytes": after,
            "ratio": round(before / after, 2) if before and after else None,
        }
        for chunk, status, before, after in rows
    ]


def run_policy(conn: psycopg.Connection, name: str, wait_s: float) -> dict[str, Any]:
    """A columnstore policy on the rowstore copy, run now by the job scheduler (:func:`run_job_now`)."""
    table = f"{SCHEMA}.{name}"
    segmentby, orderby = SETTINGS["by_source_chain"]
    execute(
        conn,
        _columnstore_on(table, segmentby, orderby),
    )
    execute(
        conn, "CALL add_columnstore_policy(%s::regclass, after => %s::interval)", (table, "1 hour")
    )
    job_id = execute(
        conn,
        "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_schema = %s"
        " AND hypertable_name = %s AND proc_name = 'policy_compression'",
        (SCHEMA, name),
    ).fetchone()[0]
    compressed_before = compressed_chunks(conn, table)
    run = run_job_now(conn, job_id, wait_s)
    return {
        **run,
        "chunks_compressed_by_the_job": compressed_chunks(conn, table) - compressed_before,
    }


def compressed_chunks(conn: psycopg.Connection, table: str) -> int:
    return int(
        execute(
            conn,
            "SELECT count(*) FROM chunk_columnstore_stats(%s::regclass)"
            " WHERE compression_status = 'Compressed'",
            (table,),
        ).fetchone()[0]
    )
