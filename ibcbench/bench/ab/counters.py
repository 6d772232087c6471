"""Exact work counters of an A/B: one EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) per query and side.

Timing on a shared machine is noisy; the work a plan does is not. After the rounds, each query runs
under :func:`~ibcbench.plans.capture.capture_plan` on each side (once to warm, once to keep; in a
transaction that is rolled back, with WAL figures for writes) with the same parameters, and the
counters are: the plan's shape (node types, indexes, join methods), shared hit + read blocks, rows,
the planner's total cost and the WAL bytes a write made.

TimescaleDB plans name chunks (``_hyper_1_1_chunk``) and chunk indexes
(``_hyper_1_1_chunk_idx_packet_flow_channel_sequence``); the counters name the hypertable and the
hypertable's index instead, so a change reads ``Index Scan using idx_packet_flow_channel_sequence on
packet_flow -> Seq Scan on packet_flow``. The plan change is the one ``ibcbench plans diff`` names
(:attr:`~ibcbench.plans.diff.PlanDiff.explanation`: the first structural change).

Whatever the timing says, a query's counters make it a regression when its buffers (shared hit +
read) grow by at least x:data:`BUFFERS_RATIO` and by at least :data:`BUFFERS_FLOOR` blocks (a
query reading 3 blocks that reads 4 is not one), or when a relation the base side read through an
index is read by a sequential scan on the head side.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ibcbench.plans.capture import capture_plan
from ibcbench.plans.diff import STRUCTURAL, diff_plans
from ibcbench.plans.model import Plan

BUFFERS_RATIO = 1.2
BUFFERS_FLOOR = 8
_INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
_CHUNK_INDEX_RE = re.compile(r"_hyper_\d+_\d+_chunk_(\w+)")
_CHUNK_RE = re.compile(r"_hyper_\d+_\d+_chunk")


def chunk_tables(conn: psycopg.Connection) -> dict[str, str]:
    """Chunk name -> its hypertable's name ({} without TimescaleDB)."""
    try:
        with conn.transaction():
            rows = conn.execute(
                "SELECT chunk_name, hypertable_name FROM timescaledb_information.chunks"
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        return {}
    return {chunk: table for chunk, table in rows}


def normalize(text: str, chunks: dict[str, str]) -> str:
    """``text`` with chunk indexes named as their hypertable's index and chunks as the hypertable."""
    text = _CHUNK_INDEX_RE.sub(r"\1", text)
    return _CHUNK_RE.sub(lambda m: chunks.get(m.group(0), m.group(0)), text)


@dataclass(frozen=True)
class WorkCounters:
    """One query on one side: what its plan did."""

    node_types: tuple[str, ...]
    indexes: tuple[str, ...]
    joins: tuple[str, ...]
    buffers: int
    rows: float
    cost: float
    wal_bytes: int | None
    index_reads: frozenset[str]
    seq_reads: frozenset[str]

    def as_row(self, side: str) -> dict[str, Any]:
        return {
            f"{side}_buffers": self.buffers,
            f"{side}_rows": self.rows,
            f"{side}_cost": round(self.cost, 2),
            f"{side}_wal_bytes": self.wal_bytes,
            f"{side}_nodes": " > ".join(self.node_types),
            f"{side}_indexes": ", ".join(self.indexes),
            f"{side}_joins": ", ".join(self.joins),
        }


def counters_of(plan: Plan, chunks: dict[str, str]) -> WorkCounters:
    nodes = plan.nodes()
    wal = plan.root.raw.get("WAL Bytes")
    return WorkCounters(
        node_types=tuple(n.node_type for n in nodes),
        indexes=tuple(sorted({normalize(n.index, chunks) for n in nodes if n.index})),
        joins=tuple(
            n.node_type for n in nodes if "Join" in n.node_type or n.node_type == "Nested Loop"
        ),
        buffers=plan.shared_hit + plan.shared_read,
        rows=float(plan.root.actual_rows or 0.0),
        cost=plan.root.total_cost,
        wal_bytes=None if wal is None else int(wal),
        index_reads=frozenset(
            normalize(n.relation, chunks)
            for n in nodes
            if n.relation and n.node_type in _INDEX_SCANS
        ),
        seq_reads=frozenset(
            normalize(n.relation, chunks) for n in nodes if n.relation and n.node_type == "Seq Scan"
        ),
    )


@dataclass(frozen=True)
class QueryCounters:
    """Both sides' counters of one query, the plan change and whether the counters regressed."""

    query: str
    base: WorkCounters
    head: WorkCounters
    plan_change: str | None
    regression: str | None

    @property
    def buffers_ratio(self) -> float:
        return self.head.buffers / max(self.base.buffers, 1)

    def as_row(self) -> dict[str, Any]:
        return {
            "query": self.query,
            **self.base.as_row("base"),
            **self.head.as_row("head"),
            "buffers_ratio": round(self.buffers_ratio, 3),
            "plan_change": self.plan_change,
            "counters_regression": self.regression,
        }


def judge(base: WorkCounters, head: WorkCounters, plan_change: str | None) -> str | None:
    """Why the counters make a regression (None: they do not): a sequential scan replacing an index
    read, or buffers up by x:data:`BUFFERS_RATIO` and :data:`BUFFERS_FLOOR` blocks."""
    reasons = []
    replaced = sorted((base.index_reads & head.seq_reads) - base.seq_reads)
    if replaced:
        reasons.append(
            f"plan: {plan_change}" if plan_change else f"seq scan on {', '.join(replaced)}"
        )
    grew = head.buffers - base.buffers
    if grew >= BUFFERS_FLOOR and head.buffers >= BUFFERS_RATIO * max(base.buffers, 1):
        reasons.append(f"buffers x{head.buffers / max(base.buffers, 1):.1f}")
    return "; ".join(reasons) or None


def plan_change(before: Plan, after: Plan, chunks: dict[str, str]) -> str | None:
    """The first structural change ``ibcbench plans diff`` names, as ``before -> after`` (None: none)."""
    diff = diff_plans(before, after)
    structural = [c for c in diff.changes if c.kind in STRUCTURAL]
    if not structural:
        return None
    c = structural[0]
    if c.kind in ("added", "removed"):
        return normalize(f"{c.kind} {c.after or c.before}", chunks)
    return normalize(f"{c.before} -> {c.after}", chunks)


def capture_counters(
    conns: dict[str, psycopg.Connection],
    queries: Sequence[tuple[str, str, Sequence[Any]]],
) -> list[QueryCounters]:
    """Each (name, sql, params) EXPLAINed on both sides (a warming run first), compared."""
    chunks = {side: chunk_tables(conn) for side, conn in conns.items()}
    out = []
    for name, query, params in queries:
        plans = {}
        for side, conn in conns.items():
            capture_plan(conn, query, params)
            plans[side] = capture_plan(conn, query, params)
        base = counters_of(plans["base"], chunks["base"])
        head = counters_of(plans["head"], chunks["head"])
        change = plan_change(plans["base"], plans["head"], {**chunks["base"], **chunks["head"]})
        out.append(QueryCounters(name, base, head, change, judge(base, head, change)))
    return out
