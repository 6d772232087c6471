"""The columnstore benchmark's queries: their parameters, one query timed on one copy, and whether two
copies gave the same answer."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import psycopg

from ibcbench.bench.columnstore.copies import SCHEMA, execute
from ibcbench.bench.timing import TimingPolicy, time_query
from ibcbench.errors import BenchmarkError
from ibcbench.plans.model import plan_from_json

#: (name, kind, sql with {t} for the table); parameters come from :func:`sample_query_parameters`
QUERIES: tuple[tuple[str, str, str], ...] = (
    (
        "hourly_stats_last_day",
        "analytics",
        "SELECT time_bucket('1 hour', created_at) AS hour, source_chain, count(*) AS packet_count,"
        " avg(clear_time_seconds) AS avg_clear_time FROM {t} WHERE created_at > %s GROUP BY 1, 2",
    ),
    (
        "per_chain_counts",
        "analytics",
        "SELECT source_chain, count(*), count(*) FILTER (WHERE status = 'acknowledged') FROM {t} GROUP BY 1",
    ),
    (
        "time_bounded_scan",
        "analytics",
        "SELECT count(*), avg(clear_time_seconds), max(amount) FROM {t}"
        " WHERE created_at BETWEEN %s AND %s AND status = 'acknowledged'",
    ),
    (
        "wallet_history",
        "point",
        "SELECT id, source_chain, amount, denom, status, created_at FROM {t}"
        " WHERE sender = %s ORDER BY created_at DESC LIMIT 20",
    ),
    (
        "packet_by_channel_sequence",
        "point",
        "SELECT id, status, clear_time_seconds FROM {t}"
        " WHERE source_chain = %s AND source_channel = %s AND sequence = %s",
    ),
)


def sample_query_parameters(
    conn: psycopg.Connection, hi: Any, samples: int
) -> dict[str, list[tuple]]:
    picked = execute(
        conn,
        "SELECT sender, source_chain, source_channel, sequence FROM packet_flow"
        " TABLESAMPLE BERNOULLI (5) REPEATABLE (11) LIMIT %s",
        (samples,),
    ).fetchall()
    if not picked:
        raise BenchmarkError(
            "packet_flow has too few rows to sample parameters: load a dataset first"
        )
    end = pd.Timestamp(hi)
    return {
        "hourly_stats_last_day": [(end - pd.Timedelta(days=1),)],
        "per_chain_counts": [()],
        "time_bounded_scan": [(end - pd.Timedelta(hours=6), end)],
        "wallet_history": [(r[0],) for r in picked],
        "packet_by_channel_sequence": [(r[1], r[2], r[3]) for r in picked],
    }


def measure_query(
    conn: psycopg.Connection,
    name: str,
    qname: str,
    kind: str,
    template: str,
    params: dict[str, list[tuple]],
    policy: TimingPolicy,
) -> dict[str, Any]:
    query = template.format(t=f"{SCHEMA}.{name}")
    timing = time_query(conn, query, params[qname], policy=policy)
    plan = plan_from_json(
        execute(
            conn, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, params[qname][0]
        ).fetchone()[0]
    )
    return {
        "setting": name,
        "query": qname,
        "kind": kind,
        **timing.as_row(),
        "shared_buffers": plan.shared_hit + plan.shared_read,
        "columnar_scans": plan.columnar_scans,
        "chunks_scanned": plan.chunks_scanned,
        "answer": answer(conn, query, params[qname][0]),
    }


def answer(conn: psycopg.Connection, query: str, params: tuple) -> list[tuple]:
    """The query's rows in a fixed order (the comparison is :func:`same_rows`)."""
    return sorted(execute(conn, query, params).fetchall(), key=lambda r: tuple(map(str, r)))


def same_rows(a: list[tuple], b: list[tuple]) -> bool:
    """Equal rows, floats to a relative 1e-9: aggregates over the columnstore may sum in another order."""

    def same(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
        return x == y

    return len(a) == len(b) and all(
        len(r) == len(q) and all(same(x, y) for x, y in zip(r, q, strict=True))
        for r, q in zip(a, b, strict=True)
    )
