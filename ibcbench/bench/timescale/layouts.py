"""The same packets as a plain table, a daily-partitioned table and hypertables by chunk interval:
load time, size, and the service's queries with the partitions (chunks) each plan scanned."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import psycopg
from psycopg import sql

from ibcbench.bench.timescale.shared import (
    MAX_REPETITIONS,
    SCHEMA,
    bounds,
    copy_statement,
    create_layout,
    drop_schema,
    execute,
    has_timescaledb,
    kit_table,
)
from ibcbench.bench.timing import TimingPolicy, time_once_ms, time_query
from ibcbench.data.ownership import create_kit_schema
from ibcbench.db import connect, resolve_dsn
from ibcbench.inputs import check_chunk_interval, check_count, interval_name
from ibcbench.plans.model import plan_from_json
from ibcbench.results.metrics.metric import THROUGHPUT, Metric, informational
from ibcbench.results.recorded import run_folder, save_figure
from ibcbench.results.runs import Run

#: each layout's queries: the text (``{t}`` is the layout) and its parameters from one sampled
#: packet ``(source_chain, source_channel, sequence, created_at, sender)`` and the newest packet's time
_QUERIES: dict[str, tuple[str, Callable[[tuple, Any], tuple]]] = {
    "recent_2h_count": (
        "SELECT count(*) FROM {t} WHERE created_at > %s AND status = 'acknowledged'",
        lambda s, hi: (hi - pd.Timedelta(hours=2),),
    ),
    "hourly_last_day": (
        "SELECT date_trunc('hour', created_at), count(*) FROM {t} WHERE created_at > %s GROUP BY 1",
        lambda s, hi: (hi - pd.Timedelta(days=1),),
    ),
    "point_lookup": (
        "SELECT id, status FROM {t} WHERE source_chain = %s AND source_channel = %s"
        " AND sequence = %s",
        lambda s, hi: (s[0], s[1], s[2]),
    ),
    "point_lookup_time_bounded": (
        "SELECT id, status FROM {t} WHERE source_chain = %s AND"
        " source_channel = %s AND sequence = %s AND created_at BETWEEN %s AND %s",
        lambda s, hi: (
            s[0],
            s[1],
            s[2],
            s[3] - pd.Timedelta(minutes=10),
            s[3] + pd.Timedelta(minutes=10),
        ),
    ),
    "sender_recent": (
        "SELECT id FROM {t} WHERE sender = %s ORDER BY created_at DESC LIMIT 20",
        lambda s, hi: (s[4],),
    ),
}


@dataclass(frozen=True)
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

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational("most_chunks_layout", "", "the chunk interval with the most chunks (a name)"),
        informational("chunks_total", "chunks", "set by the data and the chunk interval"),
        Metric(
            "chunks_scanned_bounded",
            "lower",
            "chunks",
            note="a time-bounded lookup: more chunks means less exclusion",
        ),
        informational(
            "chunks_scanned_unbounded", "chunks", "an unbounded lookup scans every chunk by design"
        ),
        Metric(
            "point_lookup_ratio_many_chunks_vs_plain",
            "lower",
            "x",
            THROUGHPUT,
            note="point lookup latency, most chunks / plain table",
        ),
    )

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


@dataclass(frozen=True)
class _Layout:
    """One layout to build: its table name, kind and chunk interval (hypertables only)."""

    name: str
    kind: str
    interval: str | None


@dataclass(frozen=True)
class _Built:
    """A layout built and loaded: its row of the layouts table and the partitions it has."""

    row: dict[str, Any]
    partitions: int
    leaves: list[str]  # a partitioned table's leaf partitions (as EXPLAIN names them)


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
    drop_schema(target)
    layouts, rows = [], []
    try:
        with connect(target, autocommit=True) as conn:
            has_ts = has_timescaledb(conn)
            lo, hi = bounds(conn)
            count, sample = _sample(conn, repetitions)
            create_kit_schema(conn, SCHEMA)
            for layout in _layout_plan(has_ts, intervals):
                built = _build_layout(conn, layout, lo, hi, count)
                layouts.append(built.row)
                rows += _time_queries(conn, layout, built, sample, hi, policy)
    finally:
        if not keep:
            drop_schema(target)
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


def _sample(conn: psycopg.Connection, repetitions: int) -> tuple[int, list[tuple]]:
    """packet_flow's row count, and up to ``repetitions`` packets sampled (repeatably) for the
    queries' parameters."""
    count = execute(conn, "SELECT count(*) FROM packet_flow").fetchone()[0]
    sample = execute(
        conn,
        "SELECT source_chain, source_channel, sequence, created_at, sender FROM packet_flow"
        " TABLESAMPLE BERNOULLI (5) REPEATABLE (7) LIMIT %s",
        (repetitions,),
    ).fetchall()
    return count, sample


def _layout_plan(has_ts: bool, intervals: list[str]) -> list[_Layout]:
    """The layouts in the order they are built: hypertables only where TimescaleDB is installed."""
    plan = [_Layout("plain", "plain", None), _Layout("partitioned_1_day", "partitioned", None)]
    if has_ts:
        plan += [_Layout(f"hypertable_{interval_name(i)}", "hypertable", i) for i in intervals]
    return plan


def _build_layout(
    conn: psycopg.Connection, layout: _Layout, lo: Any, hi: Any, count: int
) -> _Built:
    """Create ``layout``, load every packet into it (timed), analyze it and count its partitions."""
    name, kind = layout.name, layout.kind
    create_layout(conn, name, kind, layout.interval, lo, hi)
    table = kit_table(name)
    load_ms = time_once_ms(conn, copy_statement(table))
    execute(conn, sql.SQL("ANALYZE {}").format(table))
    parts, leaves = 1, []
    if kind == "hypertable":
        parts = execute(
            conn,
            "SELECT count(*) FROM show_chunks(%s::regclass)",
            (f"{SCHEMA}.{name}",),
        ).fetchone()[0]
    elif kind == "partitioned":
        leaves = _leaf_partitions(conn, name)
        parts = len(leaves)
    row = {
        "layout": name,
        "kind": kind,
        "chunk_interval": layout.interval or ("1 day" if kind == "partitioned" else "-"),
        "partitions": int(parts),
        "load_ms": round(load_ms, 1),
        "load_rows_per_s": round(count / (load_ms / 1000)),
        "size_bytes": _layout_size(conn, name, kind),
    }
    return _Built(row, int(parts), leaves)


def _time_queries(
    conn: psycopg.Connection,
    layout: _Layout,
    built: _Built,
    sample: list[tuple],
    hi: Any,
    policy: TimingPolicy,
) -> list[dict[str, Any]]:
    """Each of :data:`_QUERIES` on one layout: timed over the sample, and one EXPLAIN ANALYZE of
    the first sampled packet's parameters for the partitions it scanned and excluded."""
    table = kit_table(layout.name)
    rows = []
    for qname, (text, args) in _QUERIES.items():
        query = sql.SQL(text).format(t=table)
        timed = time_query(conn, query, [args(s, hi) for s in sample], policy=policy)
        explained = plan_from_json(
            execute(
                conn, sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query, args(sample[0], hi)
            ).fetchone()[0]
        )
        rows.append(
            {
                "layout": layout.name,
                "query": qname,
                **timed.as_row(),
                "partitions_scanned": explained.partitions_scanned(built.leaves)
                if layout.kind != "plain"
                else 1,
                "partitions_total": built.partitions,
                "excluded_at_runtime": explained.chunks_excluded,
            }
        )
    return rows


def _layout_size(conn: psycopg.Connection, table: str, kind: str) -> int:
    if kind == "hypertable":
        return int(
            execute(
                conn, "SELECT hypertable_size(%s::regclass)", (f"{SCHEMA}.{table}",)
            ).fetchone()[0]
            or 0
        )
    if kind == "partitioned":
        return int(
            execute(
                conn,
                "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%s::regclass)",
                (f"{SCHEMA}.{table}",),
            ).fetchone()[0]
            or 0
        )
    return int(
        execute(
            conn, "SELECT pg_total_relation_size(%s::regclass)", (f"{SCHEMA}.{table}",)
        ).fetchone()[0]
    )


def _leaf_partitions(conn: psycopg.Connection, table: str) -> list[str]:
    """Relation names of a partitioned table's leaf partitions (as EXPLAIN names them)."""
    rows = execute(
        conn,
        "SELECT c.relname FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid"
        " WHERE t.isleaf",
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    return [r[0] for r in rows]


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
