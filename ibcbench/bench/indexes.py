"""Index strategies: apply them, measure them, and compare HypoPG's prediction with the measurement.

A strategy is a set of the kit's secondary indexes. ``apply_strategy`` makes the database hold exactly
that set (of the kit's index names; nothing else is touched): CREATE INDEX CONCURRENTLY on plain
tables; hypertables refuse CONCURRENTLY, so there TimescaleDB's ``transaction_per_chunk`` build is
used, which also avoids holding one lock over every chunk. Primary keys, unique constraints and
TimescaleDB's default ``created_at`` index stay in every strategy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from data_gen.tables import PACKET_FLOW
from ibcbench.bench.timing import TimingPolicy, time_query
from ibcbench.bench.workload import default_workload, sample_parameters
from ibcbench.db import connect, resolve_dsn
from ibcbench.errors import BenchmarkError
from ibcbench.plans.model import Plan, plan_from_json
from ibcbench.results.recorded import run_folder, save_figure
from ibcbench.results.runs import Run


@dataclass(frozen=True)
class IndexDef:
    name: str
    table: str
    definition: str  # everything after ON <table>: kit-owned SQL, never user input

    def create_sql(self, *, concurrently: bool, per_chunk: bool) -> str:
        using = self.definition
        suffix = ""
        if per_chunk:
            where = ""
            if " WHERE " in using:
                using, where = using.split(" WHERE ", 1)
                where = " WHERE " + where
            suffix = " WITH (timescaledb.transaction_per_chunk)" + where
            using = using
        conc = "CONCURRENTLY " if concurrently else ""
        return f'CREATE INDEX {conc}IF NOT EXISTS "{self.name}" ON "{self.table}" {using}{suffix}'


_SERVICE = (
    IndexDef(
        "idx_clearing_operations_wallet_created",
        "clearing_operations",
        "(wallet_address, created_at DESC)",
    ),
    IndexDef(
        "idx_clearing_operations_wallet_status", "clearing_operations", "(wallet_address, status)"
    ),
    IndexDef("idx_packet_flow_status_created", "packet_flow", "(status, created_at DESC)"),
    IndexDef(
        "idx_packet_flow_channel_sequence",
        "packet_flow",
        "(source_chain, source_channel, sequence)",
    ),
    IndexDef(
        "idx_network_stats_chain_date",
        "network_stats",
        "(chain_id, date DESC) INCLUDE (total_packets, successful_packets, failed_packets, success_rate, avg_clear_time_seconds)",
    ),
    IndexDef(
        "idx_relayer_performance_reputation",
        "relayer_performance",
        "(date DESC, reputation_score DESC)",
    ),
    IndexDef(
        "idx_packet_flow_stuck",
        "packet_flow",
        "(created_at DESC) INCLUDE (source_chain, source_channel, sequence) WHERE status = 'stuck'",
    ),
    IndexDef("idx_packet_flow_sender_created", "packet_flow", "(sender, created_at DESC)"),
    IndexDef(
        "idx_channel_performance_hour_congestion",
        "channel_performance",
        "(hour DESC, congestion_score DESC)",
    ),
    IndexDef(
        "idx_clearing_operations_open",
        "clearing_operations",
        "(created_at) WHERE deleted_at IS NULL AND status IN ('pending', 'stuck')",
    ),
)
_BY_NAME = {d.name: d for d in _SERVICE}
_COVERING = (
    IndexDef(
        "idx_clearing_operations_wallet_created_cover",
        "clearing_operations",
        "(wallet_address, created_at DESC) INCLUDE (id, operation_type, source_chain, destination_chain, amount,"
        " denom, status, deleted_at)",
    ),
    IndexDef(
        "idx_packet_flow_channel_sequence_cover",
        "packet_flow",
        "(source_chain, source_channel, sequence) INCLUDE (id, status, sender, receiver, amount, denom, relayer,"
        " created_at, acknowledged_at)",
    ),
)
_PARTIAL = (
    IndexDef(
        "idx_clearing_operations_wallet_created_live",
        "clearing_operations",
        "(wallet_address, created_at DESC) WHERE deleted_at IS NULL",
    ),
)
_BRIN = (IndexDef("idx_packet_flow_created_brin", "packet_flow", "USING brin (created_at)"),)


@dataclass(frozen=True)
class IndexStrategy:
    name: str
    description: str
    indexes: tuple[IndexDef, ...]


def _service_except(*names: str) -> tuple[IndexDef, ...]:
    return tuple(d for d in _SERVICE if d.name not in names)


STRATEGIES: dict[str, IndexStrategy] = {
    "none": IndexStrategy(
        "none", "no secondary indexes (keys and TimescaleDB's created_at index only)", ()
    ),
    "service": IndexStrategy(
        "service", "the schema's indexes (the service's named ones + composite/partial)", _SERVICE
    ),
    "covering": IndexStrategy(
        "covering",
        "service, with the wallet and channel+sequence indexes covering their queries (INCLUDE)",
        _service_except(
            "idx_clearing_operations_wallet_created", "idx_packet_flow_channel_sequence"
        )
        + _COVERING,
    ),
    "partial": IndexStrategy(
        "partial",
        "service, but status and wallet indexes only over live rows (stuck packets, not deleted)",
        _service_except("idx_packet_flow_status_created", "idx_clearing_operations_wallet_created")
        + _PARTIAL,
    ),
    "brin": IndexStrategy(
        "brin",
        "service, with the packet time index as BRIN on created_at instead of B-tree (status, created_at)",
        _service_except("idx_packet_flow_status_created") + _BRIN,
    ),
}
KIT_INDEXES = {d.name: d for s in STRATEGIES.values() for d in s.indexes}


@dataclass(frozen=True)
class ApplyResult:
    strategy: str
    created: list[str]
    dropped: list[str]
    build_s: dict[str, float]
    sizes: dict[str, int]


def _hypertables(conn: psycopg.Connection) -> set[str]:
    if conn.execute("SELECT to_regclass('timescaledb_information.hypertables')").fetchone() == (
        None,
    ):
        return set()
    return {
        r[0]
        for r in conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables"
        ).fetchall()
    }


def index_size(conn: psycopg.Connection, name: str, table: str, hypertables: set[str]) -> int:
    """Bytes of an index; on a hypertable, summed over its chunks."""
    if table in hypertables:
        row = conn.execute("SELECT hypertable_index_size(%s::regclass)", (name,)).fetchone()
        return int(row[0] or 0) if row else 0
    return int(conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0])  # type: ignore[index]


def present_kit_indexes(conn: psycopg.Connection) -> set[str]:
    """The kit's indexes present, each on the table the kit builds it on (a same-named index on
    another table is not the kit's, and is never dropped)."""
    rows = conn.execute(
        "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ANY(%s)",
        (list(KIT_INDEXES),),
    ).fetchall()
    return {r[0] for r in rows if KIT_INDEXES[r[0]].table == r[1]}


def apply_strategy(dsn: str | None, name: str) -> ApplyResult:
    """Leave exactly the strategy's kit indexes in place; idempotent."""
    if name not in STRATEGIES:
        raise BenchmarkError(
            f"index strategy {name!r} is unknown: use one of {', '.join(STRATEGIES)}"
        )
    target = {d.name for d in STRATEGIES[name].indexes}
    created, dropped, build, sizes = [], [], {}, {}
    with connect(dsn, autocommit=True) as conn:
        hyper = _hypertables(conn)
        present = present_kit_indexes(conn)
        for idx in sorted(present - target):
            table = KIT_INDEXES[idx].table
            conc = "" if table in hyper else "CONCURRENTLY "
            conn.execute(f'DROP INDEX {conc}IF EXISTS "{idx}"')
            dropped.append(idx)
        for d in STRATEGIES[name].indexes:
            if d.name in present:
                continue
            per_chunk = d.table in hyper
            started = time.perf_counter()
            conn.execute(d.create_sql(concurrently=not per_chunk, per_chunk=per_chunk))
            build[d.name] = round(time.perf_counter() - started, 3)
            created.append(d.name)
        for d in STRATEGIES[name].indexes:
            sizes[d.name] = index_size(conn, d.name, d.table, hyper)
    return ApplyResult(name, created, dropped, build, sizes)


# ---- measuring ----------------------------------------------------------------------------------
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
    hyper = _hypertables(conn)
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


@dataclass
class IndexStrategyResult:
    latency: pd.DataFrame
    plans: pd.DataFrame
    indexes: pd.DataFrame
    ingest: pd.DataFrame
    hypo: pd.DataFrame
    usage: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def winners(self) -> pd.DataFrame:
        best = self.latency.loc[self.latency.groupby("query").p50_ms.idxmin()]
        return best[["query", "strategy", "p50_ms"]].reset_index(drop=True)

    def p50(self, strategy: str, query: str) -> float:
        sel = self.latency[(self.latency.strategy == strategy) & (self.latency["query"] == query)]
        return float(sel.p50_ms.iloc[0])

    def strategies(self) -> list[str]:
        """The strategies measured, in the order they ran."""
        return list(dict.fromkeys(self.latency.strategy))

    def speedup(self, query: str, *, before: str = "none", after: str = "service") -> float | None:
        """p50 under ``before`` / p50 under ``after`` (None unless both were measured)."""
        measured = set(self.strategies())
        if not {before, after} <= measured:
            return None
        return self.p50(before, query) / self.p50(after, query)

    def index_cost(self) -> pd.DataFrame:
        """Per strategy: the kit's index bytes and build seconds, summed over its indexes."""
        return self.indexes.groupby("strategy")[["size_bytes", "build_s"]].sum()

    def used_indexes(self) -> pd.DataFrame:
        """Index scans per index (rows) and strategy (columns), indexes that were scanned only."""
        used = self.usage[self.usage.scans > 0]
        return used.pivot(index="index", columns="strategy", values="scans")

    def key_numbers(self) -> dict[str, Any]:
        """What notebook 02 records: the service strategy's wallet and packet-lookup speed-ups, winners, ingest."""
        measured = set(self.strategies())
        winners = self.winners()
        return {
            "wallet_history_p50_ms_none": self.p50("none", "wallet_history")
            if "none" in measured
            else None,
            "wallet_history_p50_ms_service": self.p50("service", "wallet_history")
            if "service" in measured
            else None,
            "wallet_history_speedup": self.speedup("wallet_history"),
            "packet_lookup_speedup": self.speedup("packet_by_channel_sequence"),
            "winners": dict(zip(winners["query"], winners.strategy, strict=True)),
            "ingest_rows_per_s": dict(
                zip(self.ingest.strategy, self.ingest.rows_per_s, strict=True)
            ),
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write the result tables (``index_*``), the manifest entry and the two figures."""
        run = run_folder(run_dir)
        if run is None:
            return
        for name in ("latency", "plans", "indexes", "ingest", "hypo", "usage"):
            run.write_frame(f"index_{name}", getattr(self, name))
        run.update_manifest(index_strategies=self.manifest)
        save_figure(plot_latency(self), "02_latency_by_strategy", run, close=True)
        save_figure(plot_cost(self), "02_cost_by_strategy", run, close=True)


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
    lat_rows, plan_rows, idx_rows, ingest_rows_out, usage_rows = [], [], [], [], []
    hypo_rows: list[dict[str, Any]] = []
    try:
        for strategy in strategies:
            applied = apply_strategy(target, strategy)
            for name, size in applied.sizes.items():
                idx_rows.append(
                    {
                        "strategy": strategy,
                        "index": name,
                        "table": KIT_INDEXES[name].table,
                        "size_bytes": size,
                        "build_s": applied.build_s.get(name),
                    }
                )
            with connect(target, autocommit=True) as conn:
                conn.execute(
                    "ANALYZE packet_flow, clearing_operations, network_stats, relayer_performance"
                )
                before = _index_scans(conn)
                if strategy == "none" and "service" in strategies:
                    reps = [(q.name, q.sql, params[q.name][0]) for q in wl.queries]
                    for qname, (c0, c1) in _hypo_costs(conn, STRATEGIES["service"], reps).items():
                        hypo_rows.append(
                            {
                                "query": qname,
                                "cost_none": c0,
                                "cost_service_hypothetical": c1,
                                "predicted_ratio": round(c1 / c0, 4) if c0 else np.nan,
                            }
                        )
                for q in wl.queries:
                    timed = time_query(conn, q.sql, params[q.name], policy=policy)
                    lat_rows.append({"strategy": strategy, "query": q.name, **timed.as_row()})
                    plan = conn.execute(
                        sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + sql.SQL(q.sql),
                        params[q.name][0],
                    ).fetchone()[0]  # type: ignore[index]
                    plan_rows.append(
                        {"strategy": strategy, "query": q.name, **_plan_facts(plan_from_json(plan))}
                    )
                after = _index_scans(conn)
                for idx, scans in after.items():
                    usage_rows.append(
                        {"strategy": strategy, "index": idx, "scans": scans - before.get(idx, 0)}
                    )
                ingest_rows_out.append(
                    {
                        "strategy": strategy,
                        "rows": ingest_rows,
                        "rows_per_s": round(_ingest_rate(conn, ingest_rows)),
                    }
                )
    finally:
        apply_strategy(target, "service")
    latency = pd.DataFrame(lat_rows)
    hypo = pd.DataFrame(hypo_rows)
    if not hypo.empty and {"none", "service"} <= set(strategies):
        hypo["measured_ratio"] = [
            round(
                float(
                    latency[(latency.strategy == "service") & (latency["query"] == q)].p50_ms.iloc[
                        0
                    ]
                )
                / float(
                    latency[(latency.strategy == "none") & (latency["query"] == q)].p50_ms.iloc[0]
                ),
                4,
            )
            for q in hypo["query"]
        ]
    return IndexStrategyResult(
        latency=latency,
        plans=pd.DataFrame(plan_rows),
        indexes=pd.DataFrame(idx_rows),
        ingest=pd.DataFrame(ingest_rows_out),
        hypo=hypo,
        usage=pd.DataFrame(usage_rows),
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


def _index_scans(conn: psycopg.Connection) -> dict[str, int]:
    """Scans per kit index, chunk indexes of hypertables folded into their parent's name."""
    rows = conn.execute("SELECT indexrelname, idx_scan FROM pg_stat_user_indexes").fetchall()
    out: dict[str, int] = {}
    for name, scans in rows:
        for kit in KIT_INDEXES:
            if name == kit or name.endswith("_" + kit):
                out[kit] = out.get(kit, 0) + int(scans)
    return out


# ---- figures ------------------------------------------------------------------------------------
def plot_latency(result: IndexStrategyResult) -> Any:
    """Grouped bars of p50 per query and strategy (log scale), each query's winner outlined."""
    import matplotlib.pyplot as plt

    lat = result.latency
    queries = list(dict.fromkeys(lat["query"]))
    strategies = list(dict.fromkeys(lat.strategy))
    width = 0.8 / len(strategies)
    fig, ax = plt.subplots(figsize=(12, 5))
    winners = dict(zip(result.winners()["query"], result.winners().strategy, strict=True))
    for j, s in enumerate(strategies):
        values = [
            float(lat[(lat.strategy == s) & (lat["query"] == q)].p50_ms.iloc[0]) for q in queries
        ]
        bars = ax.bar(np.arange(len(queries)) + j * width, values, width, label=s)
        for k, q in enumerate(queries):
            if winners[q] == s:
                bars[k].set_edgecolor("black")
                bars[k].set_linewidth(2)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(queries)) + 0.4 - width / 2)
    ax.set_xticklabels(queries, rotation=20, ha="right")
    ax.set_ylabel("p50 latency (ms, log scale)")
    ax.set_title("Query latency by index strategy (winner outlined)")
    ax.legend(ncol=len(strategies))
    fig.tight_layout()
    return fig


def plot_cost(result: IndexStrategyResult) -> Any:
    """Index size against ingest rate per strategy: what each strategy costs."""
    import matplotlib.pyplot as plt

    size = result.indexes.groupby("strategy").size_bytes.sum() / 1e6
    ingest = result.ingest.set_index("strategy").rows_per_s
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in ingest.index:
        ax.scatter(size.get(s, 0.0), ingest[s], s=80)
        ax.annotate(s, (size.get(s, 0.0), ingest[s]), textcoords="offset points", xytext=(6, 4))
    ax.set_xlabel("kit index size (MB)")
    ax.set_ylabel("ingest (rows/s, INSERT ... SELECT)")
    ax.set_title("What each strategy costs")
    fig.tight_layout()
    return fig


def describe_strategies(names: Iterable[str]) -> dict[str, str]:
    """The description of each named strategy, in the kit's order (unknown names are left out)."""
    wanted = set(names)
    return {name: s.description for name, s in STRATEGIES.items() if name in wanted}
