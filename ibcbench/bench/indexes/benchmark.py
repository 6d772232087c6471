"""The index strategies benchmark (:func:`benchmark_index_strategies`): each strategy applied in turn,
the read queries timed and their plans read, index usage, an ingest rate, and HypoPG's prediction
of the service's indexes compared with the measurement."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from data_gen.tables import PACKET_FLOW
from ibcbench.bench.indexes.result import IndexStrategyResult
from ibcbench.bench.indexes.strategies import (
    KIT_INDEXES,
    STRATEGIES,
    IndexStrategy,
    apply_strategy,
    hypertables,
)
from ibcbench.bench.timing import TimingPolicy, time_query
from ibcbench.bench.workload import Workload, default_workload, sample_parameters
from ibcbench.db import connect, resolve_dsn
from ibcbench.errors import BenchmarkError
from ibcbench.plans.model import Plan, plan_from_json

#: the tables of one run, each a list of rows: latency, plans, indexes, ingest, hypo, usage
_TABLES = ("latency", "plans", "indexes", "ingest", "hypo", "usage")

READ_QUERIES = (
    "wallet_history",
    "wallet_by_status",
    "stuck_packets_24h",
    "packet_by_channel_sequence",
    "network_stats_range",
    "relayer_leaderboard",
)


def _plan_facts(plan: Plan) -> dict[str, Any]:
    """Top scan, index names and buffer totals of an EXPLAIN (ANALYZE, BUFFERS) plan."""
    return {
        "top_scan": plan.top_scan,
        "indexes_used": ",".join(sorted(plan.indexes)),
        "shared_hit": plan.shared_hit,
        "shared_read": plan.shared_read,
        "execution_ms": float(plan.execution_ms or 0.0),
    }


def _ingest_rate(conn: psycopg.Connection, rows: int) -> float:
    """Rows/s inserting ``rows`` packets (copies of existing ones, new ids) in a rolled-back transaction."""
    max_id = conn.execute("SELECT max(id) FROM packet_flow").fetchone()[0]  # type: ignore[index]
    started = time.perf_counter()
    columns = [c for c, _ in PACKET_FLOW]
    statement = sql.SQL(
        "INSERT INTO packet_flow ({}) SELECT id + %s, {} FROM packet_flow ORDER BY id LIMIT %s"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns if c != "id"),
    )
    with conn.transaction(force_rollback=True):
        conn.execute(statement, (max_id, rows))
    return rows / (time.perf_counter() - started)


def _hypo_costs(
    conn: psycopg.Connection, strategy: IndexStrategy, queries: list[tuple[str, str, tuple]]
) -> dict[str, tuple[float, float]]:
    """Planner total cost of each query without, then with hypothetical indexes of ``strategy``."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'").fetchone() is None:
        return {}
    hyper = hypertables(conn)
    before = {n: _cost(conn, q, p) for n, q, p in queries}
    conn.execute("SELECT hypopg_reset()")
    for d in strategy.indexes:
        if d.table in hyper:
            continue  # hypopg indexes the parent only; hypertable chunks would not see them
        conn.execute(
            "SELECT hypopg_create_index(%s)", (f'CREATE INDEX ON "{d.table}" {d.definition}',)
        )
    after = {n: _cost(conn, q, p) for n, q, p in queries}
    conn.execute("SELECT hypopg_reset()")
    return {n: (before[n], after[n]) for n in before}


def _cost(conn: psycopg.Connection, query: str, params: tuple) -> float:
    row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(query), params).fetchone()
    assert row is not None  # EXPLAIN returns one row
    return plan_from_json(row[0]).root.total_cost


def benchmark_index_strategies(
    dsn: str | None,
    *,
    strategies: tuple[str, ...] = ("none", "service", "covering", "partial", "brin"),
    queries: tuple[str, ...] = READ_QUERIES,
    repetitions: int = 200,
    ingest_rows: int = 5_000,
    seed: int = 42,
    timing: TimingPolicy | None = None,
) -> IndexStrategyResult:
    """Apply each strategy in turn and measure; the service strategy is restored at the end, even on failure.

    Each query is timed with :func:`~ibcbench.bench.timing.time_query` (``timing``, default
    :class:`~ibcbench.bench.timing.TimingPolicy`): ``repetitions`` is the most measured executions per
    query and strategy; a loop stops earlier once its p50 is precise to ±5% (``stopped_by``, ``n``).
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise BenchmarkError(
            f"unknown index strategies: {', '.join(unknown)}; use {', '.join(STRATEGIES)}"
        )
    policy = (timing or TimingPolicy()).with_max_runs(repetitions)
    target = resolve_dsn(dsn)
    wl = default_workload().subset(queries)
    with connect(target) as conn:
        params = sample_parameters(conn, wl, n=max(20, repetitions), seed=seed)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in _TABLES}
    try:
        for strategy in strategies:
            measured = _measure_strategy(
                target, strategy, wl, params, policy, ingest_rows, hypo="service" in strategies
            )
            for name, new in measured.items():
                rows[name] += new
    finally:
        apply_strategy(target, "service")
    latency = pd.DataFrame(rows["latency"])
    hypo = pd.DataFrame(rows["hypo"])
    if not hypo.empty and {"none", "service"} <= set(strategies):
        hypo["measured_ratio"] = _measured_ratios(latency, hypo["query"])
    return IndexStrategyResult(
        latency=latency,
        plans=pd.DataFrame(rows["plans"]),
        indexes=pd.DataFrame(rows["indexes"]),
        ingest=pd.DataFrame(rows["ingest"]),
        hypo=hypo,
        usage=pd.DataFrame(rows["usage"]),
        manifest={
            "strategies": list(strategies),
            "queries": list(queries),
            "repetitions": repetitions,
            "ingest_rows": ingest_rows,
            "seed": seed,
            "ingest": "INSERT ... SELECT, rolled back",
            "timing": asdict(policy),
        },
    )


def _measure_strategy(
    target: str,
    strategy: str,
    wl: Workload,
    params: dict[str, list[tuple]],
    policy: TimingPolicy,
    ingest_rows: int,
    *,
    hypo: bool,
) -> dict[str, list[dict[str, Any]]]:
    """Apply ``strategy`` and measure it: rows for each table of :data:`_TABLES`; the HypoPG
    prediction is taken under ``none`` when ``hypo`` (the service strategy is measured too)."""
    applied = apply_strategy(target, strategy)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in _TABLES}
    for name, size in applied.sizes.items():
        out["indexes"].append(
            {
                "strategy": strategy,
                "index": name,
                "table": KIT_INDEXES[name].table,
                "size_bytes": size,
                "build_s": applied.build_s.get(name),
            }
        )
    with connect(target, autocommit=True) as conn:
        conn.execute("ANALYZE packet_flow, clearing_operations, network_stats, relayer_performance")
        before = _index_scans(conn)
        if strategy == "none" and hypo:
            out["hypo"] = _hypo_rows(conn, wl, params)
        for q in wl.queries:
            timed = time_query(conn, q.sql, params[q.name], policy=policy)
            out["latency"].append({"strategy": strategy, "query": q.name, **timed.as_row()})
            plan = conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + sql.SQL(q.sql),
                params[q.name][0],
            ).fetchone()[0]  # type: ignore[index]
            out["plans"].append(
                {"strategy": strategy, "query": q.name, **_plan_facts(plan_from_json(plan))}
            )
        after = _index_scans(conn)
        for idx, scans in after.items():
            out["usage"].append(
                {"strategy": strategy, "index": idx, "scans": scans - before.get(idx, 0)}
            )
        out["ingest"].append(
            {
                "strategy": strategy,
                "rows": ingest_rows,
                "rows_per_s": round(_ingest_rate(conn, ingest_rows)),
            }
        )
    return out


def _hypo_rows(
    conn: psycopg.Connection, wl: Workload, params: dict[str, list[tuple]]
) -> list[dict[str, Any]]:
    """Per query, the planner's cost without indexes and with the service's as hypothetical ones."""
    reps = [(q.name, q.sql, params[q.name][0]) for q in wl.queries]
    return [
        {
            "query": qname,
            "cost_none": c0,
            "cost_service_hypothetical": c1,
            "predicted_ratio": round(c1 / c0, 4) if c0 else np.nan,
        }
        for qname, (c0, c1) in _hypo_costs(conn, STRATEGIES["service"], reps).items()
    ]


def _measured_ratios(latency: pd.DataFrame, queries: pd.Series) -> list[float]:
    """Per query, p50 with the service's indexes / p50 without."""

    def p50(strategy: str, q: str) -> float:
        sel = latency[(latency.strategy == strategy) & (latency["query"] == q)]
        return float(sel.p50_ms.iloc[0])

    return [round(p50("service", q) / p50("none", q), 4) for q in queries]


def _index_scans(conn: psycopg.Connection) -> dict[str, int]:
    """Scans per kit index, chunk indexes of hypertables folded into their parent's name."""
    rows = conn.execute("SELECT indexrelname, idx_scan FROM pg_stat_user_indexes").fetchall()
    out: dict[str, int] = {}
    for name, scans in rows:
        for kit in KIT_INDEXES:
            if name == kit or name.endswith("_" + kit):
                out[kit] = out.get(kit, 0) + int(scans)
    return out
