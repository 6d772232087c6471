"""The index strategies: the kit's index sets, and applying one (:func:`apply_strategy`).

How a strategy is applied: the package's docstring (``ibcbench.bench.indexes``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from ibcbench.db import connect
from ibcbench.errors import BenchmarkError


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


def hypertables(conn: psycopg.Connection) -> set[str]:
    """The names of the hypertables (none without TimescaleDB)."""
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
        hyper = hypertables(conn)
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


def describe_strategies(names: Iterable[str]) -> dict[str, str]:
    """The description of each named strategy, in the kit's order (unknown names are left out)."""
    wanted = set(names)
    return {name: s.description for name, s in STRATEGIES.items() if name in wanted}
