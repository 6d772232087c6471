"""The service's query patterns as a named, versioned workload, with parameters sampled from the data.

Reads are the seed's patterns; writes (packet inserts, status updates, network_stats upserts) run in
a transaction that is rolled back, so the dataset never changes: their timings include the work and
the WAL they generate but not the commit's flush.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import psycopg

from data_gen.tables import PACKET_FLOW
from ibcbench.errors import BenchmarkError

WORKLOAD_NAME = "ibc-seed"
WORKLOAD_VERSION = "1"


@dataclass(frozen=True)
class WorkloadQuery:
    name: str
    sql: str  # psycopg %s placeholders
    kind: str  # "read" or "write"
    weight: float
    description: str
    tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workload:
    name: str
    version: str
    queries: tuple[WorkloadQuery, ...]

    def query(self, name: str) -> WorkloadQuery:
        for q in self.queries:
            if q.name == name:
                return q
        raise BenchmarkError(
            f"workload {self.name!r} has no query {name!r}: use one of {', '.join(self.names)}"
        )

    @property
    def names(self) -> list[str]:
        return [q.name for q in self.queries]

    def subset(self, names: Iterable[str] | None = None, *, kind: str | None = None) -> Workload:
        chosen = [self.query(n) for n in names] if names is not None else list(self.queries)
        if kind is not None:
            chosen = [q for q in chosen if q.kind == kind]
        return Workload(self.name, self.version, tuple(chosen))

    def with_weights(self, weights: dict[str, float]) -> Workload:
        unknown = set(weights) - set(self.names)
        if unknown:
            raise BenchmarkError(f"unknown queries in the mix: {', '.join(sorted(unknown))}")
        return Workload(
            self.name,
            self.version,
            tuple(
                WorkloadQuery(
                    q.name, q.sql, q.kind, weights.get(q.name, 0.0), q.description, q.tables
                )
                for q in self.queries
                if weights.get(q.name, 0.0) > 0
            ),
        )


#: packet_flow's columns but updated_at (its default fills it), in the table's order
PACKET_COLUMNS = ", ".join(name for name, _ in PACKET_FLOW if name != "updated_at")

QUERIES: tuple[WorkloadQuery, ...] = (
    WorkloadQuery(
        "wallet_history",
        "SELECT id, operation_type, source_chain, destination_chain, amount, denom, status, created_at"
        " FROM clearing_operations WHERE wallet_address = %s AND deleted_at IS NULL"
        " ORDER BY created_at DESC LIMIT 50",
        "read",
        20,
        "a wallet's latest operations",
        ("clearing_operations",),
    ),
    WorkloadQuery(
        "wallet_by_status",
        "SELECT id, amount, denom, created_at FROM clearing_operations"
        " WHERE wallet_address = %s AND status = %s AND deleted_at IS NULL",
        "read",
        10,
        "a wallet's operations in one status",
        ("clearing_operations",),
    ),
    WorkloadQuery(
        "stuck_packets_24h",
        "SELECT source_chain, source_channel, sequence, sender, created_at FROM packet_flow"
        " WHERE status = 'stuck' AND created_at > %s ORDER BY created_at DESC LIMIT 100",
        "read",
        5,
        "stuck packets of the last 24 hours of data",
        ("packet_flow",),
    ),
    WorkloadQuery(
        "packet_by_channel_sequence",
        "SELECT id, status, sender, receiver, amount, denom, relayer, created_at, acknowledged_at FROM packet_flow"
        " WHERE source_chain = %s AND source_channel = %s AND sequence = %s",
        "read",
        25,
        "one packet by its channel end and sequence",
        ("packet_flow",),
    ),
    WorkloadQuery(
        "network_stats_range",
        "SELECT date, total_packets, successful_packets, failed_packets, success_rate, avg_clear_time_seconds"
        " FROM network_stats WHERE chain_id = %s AND date BETWEEN %s AND %s ORDER BY date",
        "read",
        8,
        "a chain's daily figures over a date range",
        ("network_stats",),
    ),
    WorkloadQuery(
        "relayer_leaderboard",
        "SELECT relayer_name, relayer_address, reputation_score, packets_relayed, frontrun_wins, frontrun_losses"
        " FROM relayer_performance WHERE date = %s ORDER BY reputation_score DESC LIMIT 20",
        "read",
        4,
        "the day's relayer reputation leaderboard",
        ("relayer_performance",),
    ),
    WorkloadQuery(
        "user_statistics",
        "SELECT * FROM mv_user_statistics WHERE wallet_address = %s",
        "read",
        8,
        "a wallet's aggregate statistics (materialized view)",
        ("mv_user_statistics",),
    ),
    WorkloadQuery(
        "hourly_packet_stats",
        "SELECT hour, packet_count, acknowledged_count, avg_clear_time FROM hourly_packet_stats"
        " WHERE src_chain_id = %s AND hour >= %s ORDER BY hour",
        "read",
        5,
        "a chain's hourly packet figures for its last day",
        ("hourly_packet_stats",),
    ),
    WorkloadQuery(
        "packet_insert",
        f"INSERT INTO packet_flow ({PACKET_COLUMNS}) SELECT %s, operation_id, source_chain, destination_chain,"
        " source_port, source_channel, destination_port, destination_channel, %s, 'pending', sender, receiver,"
        " amount, denom, NULL, timeout_revision, timeout_height, timeout_timestamp, NULL, NULL, NULL, %s"
        " FROM packet_flow WHERE id = %s AND created_at = %s",
        "write",
        8,
        "a new packet on an existing channel (rolled back)",
        ("packet_flow",),
    ),
    WorkloadQuery(
        "packet_status_update",
        "UPDATE packet_flow SET status = 'acknowledged', received_at = created_at + interval '20 seconds',"
        " acknowledged_at = created_at + interval '60 seconds', clear_time_seconds = 60, updated_at = now()"
        " WHERE id = %s AND created_at = %s",
        "write",
        5,
        "a packet acknowledged (rolled back)",
        ("packet_flow",),
    ),
    WorkloadQuery(
        "network_stats_upsert",
        "INSERT INTO network_stats (chain_id, date, total_packets, successful_packets, failed_packets)"
        " VALUES (%s, %s, %s, %s, 0) ON CONFLICT (chain_id, date) DO UPDATE SET"
        " total_packets = network_stats.total_packets + EXCLUDED.total_packets,"
        " successful_packets = network_stats.successful_packets + EXCLUDED.successful_packets",
        "write",
        2,
        "a chain's daily counters bumped (rolled back)",
        ("network_stats",),
    ),
)


def default_workload() -> Workload:
    """The seed's query patterns, version 1."""
    return Workload(WORKLOAD_NAME, WORKLOAD_VERSION, QUERIES)


def _sample(
    conn: psycopg.Connection, table: str, columns: str, n: int, seed: int, where: str = ""
) -> list[tuple]:
    total = conn.execute(
        f"SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = '{table}'::regclass"
    ).fetchone()[0]  # type: ignore[index]
    if not total:
        total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    pct = min(100.0, max(0.01, 100.0 * n * 4 / max(total, 1)))
    rows = conn.execute(
        f"SELECT {columns} FROM {table} TABLESAMPLE BERNOULLI (%s) REPEATABLE (%s) {where} LIMIT %s",
        (pct, seed, n),
    ).fetchall()
    if len(rows) < min(n, 1):
        rows = conn.execute(f"SELECT {columns} FROM {table} {where} LIMIT %s", (n,)).fetchall()
    return rows


def sample_parameters(
    conn: psycopg.Connection, workload: Workload, *, n: int = 200, seed: int = 42
) -> dict[str, list[tuple]]:
    """Parameters for each query drawn from the loaded data (real wallets, channels, sequences, dates)."""
    bounds = conn.execute("SELECT max(created_at), max(id) FROM packet_flow").fetchone()
    if bounds is None or bounds[0] is None:
        raise BenchmarkError(
            "packet_flow is empty: load a dataset first (`ibcbench seed` or ensure_dataset)"
        )
    newest, max_id = bounds
    rng = np.random.default_rng(seed)
    wallets = _sample(conn, "clearing_operations", "wallet_address, status", n, seed)
    packets = _sample(
        conn, "packet_flow", "id, created_at, source_chain, source_channel, sequence", n, seed
    )
    last_seq = dict(
        ((c, ch), s)
        for c, ch, s in conn.execute(
            "SELECT source_chain, source_channel, max(sequence) FROM packet_flow GROUP BY 1, 2"
        ).fetchall()
    )
    days = conn.execute(
        "SELECT chain_id, min(date), max(date) FROM network_stats GROUP BY 1"
    ).fetchall()
    newest_day = conn.execute("SELECT max(date) FROM relayer_performance").fetchone()[0]  # type: ignore[index]
    chains = [d[0] for d in days] or ["osmosis-1"]
    out: dict[str, list[tuple]] = {}
    for q in workload.queries:
        if q.name == "wallet_history" or q.name == "user_statistics":
            out[q.name] = [(w,) for w, _ in wallets]
        elif q.name == "wallet_by_status":
            out[q.name] = [(w, s) for w, s in wallets]
        elif q.name == "stuck_packets_24h":
            out[q.name] = [(newest - timedelta(hours=24),)]
        elif q.name == "packet_by_channel_sequence":
            out[q.name] = [(c, ch, s) for _, _, c, ch, s in packets]
        elif q.name == "network_stats_range":
            rows = []
            for _ in range(n):
                chain, first, last = days[int(rng.integers(len(days)))]
                start = first + timedelta(days=int(rng.integers(0, (last - first).days + 1)))
                rows.append((chain, start, min(last, start + timedelta(days=7))))
            out[q.name] = rows
        elif q.name == "relayer_leaderboard":
            out[q.name] = [(newest_day,)]
        elif q.name == "hourly_packet_stats":
            out[q.name] = [(c, newest - timedelta(hours=24)) for c in chains]
        elif q.name == "packet_insert":
            out[q.name] = [
                (
                    max_id + 1 + i,
                    last_seq[(c, ch)] + 1,
                    newest - timedelta(seconds=300) + timedelta(milliseconds=i),
                    pid,
                    created,
                )
                for i, (pid, created, c, ch, _) in enumerate(packets)
            ]
        elif q.name == "packet_status_update":
            out[q.name] = [(pid, created) for pid, created, *_ in packets]
        elif q.name == "network_stats_upsert":
            out[q.name] = [(c, newest.date(), 10, 9) for c in chains]
        else:
            raise BenchmarkError(f"no parameter sampler for query {q.name!r}")
        if not out[q.name]:
            raise BenchmarkError(
                f"no data to sample parameters for {q.name!r}: load a dataset first"
            )
    return out


def workload_queries(
    conn: psycopg.Connection, names: Iterable[str] | None = None, *, seed: int = 42
) -> list[tuple[str, str, tuple]]:
    """One representative (name, sql, params) per query: for EXPLAIN capture and smoke tests."""
    wl = default_workload().subset(names)
    params = sample_parameters(conn, wl, n=20, seed=seed)
    return [(q.name, q.sql, params[q.name][0]) for q in wl.queries]
