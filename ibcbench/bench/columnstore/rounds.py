"""Ingest and DML on the columnstore benchmark's copies, in interleaved rounds."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import psycopg

from data_gen.tables import TABLES
from ibcbench.bench.columnstore.copies import BASELINE, SCHEMA, execute


def _ingest(
    conn: psycopg.Connection, name: str, columns: str, shift: str, rows_n: int, round_: int
) -> float:
    """INSERT ``rows_n`` of the newest packets into the copy, moved by ``shift`` in time and to ids of
    their own (one range per round), in one transaction; returns rows/s, COMMIT included."""
    table = f"{SCHEMA}.{name}"
    moved = {"id": f"id + {2_000_000_000 + round_ * 100_000_000}"}
    moved |= {
        c: f"{c} + interval '{shift}'" for c, kind in TABLES["packet_flow"] if kind == "timestamptz"
    }
    shifted = ", ".join(moved.get(c, c) for c in columns.split(", "))
    statement = (
        f"INSERT INTO {table} ({columns}) SELECT {shifted} FROM"
        f" (SELECT * FROM packet_flow ORDER BY created_at DESC LIMIT {int(rows_n)}) p"
    )
    started = time.perf_counter()
    with conn.transaction():
        conn.execute(statement)
    return rows_n / (time.perf_counter() - started)


def _dml_ms(conn: psycopg.Connection, name: str, operation: str, round_: int) -> float:
    """One UPDATE or DELETE of the ``round_``-th oldest row (in a compressed chunk, but in the
    rowstore copy), in its own transaction; ms, COMMIT included."""
    table = f"{SCHEMA}.{name}"
    target = execute(
        conn, f"SELECT id, created_at FROM {table} ORDER BY created_at OFFSET %s LIMIT 1", (round_,)
    ).fetchone()
    statement = (
        f"UPDATE {table} SET status = 'acknowledged' WHERE id = %s AND created_at = %s"
        if operation == "UPDATE"
        else f"DELETE FROM {table} WHERE id = %s AND created_at = %s"
    )
    started = time.perf_counter()
    with conn.transaction():
        conn.execute(statement, target)
    return (time.perf_counter() - started) * 1000


def measure_rounds(
    conn: psycopg.Connection,
    settings: Sequence[str],
    columns: str,
    interval: str,
    rows_n: int,
    rounds: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ingest and DML, in ``rounds`` rounds, the scenarios of a round in a shuffled order; each figure
    is the median over the rounds, with their spread."""
    rng = np.random.default_rng(seed)
    first = settings[0]
    scenarios = {
        "rowstore: new hour": (BASELINE, "{r} hours"),
        "columnstore: new hour": (first, "{r} hours"),
        "columnstore: backfill into a compressed chunk": (first, "-{back}"),
    }
    hours = int(interval.split()[0])
    ingest: dict[str, list[float]] = {k: [] for k in scenarios}
    dml: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        for i in rng.permutation(len(scenarios)):
            label = list(scenarios)[i]
            name, shift = scenarios[label]
            shift = shift.format(r=r + 1, back=f"{hours * (r + 1)} hours")
            ingest[label].append(_ingest(conn, name, columns, shift, rows_n, r))
        for i in rng.permutation(len(settings) + 1):
            name = ([BASELINE, *settings])[i]
            for op in ("UPDATE", "DELETE"):
                dml.setdefault((name, op), []).append(_dml_ms(conn, name, op, r))
    ingest_frame = pd.DataFrame(
        [
            {
                "scenario": k,
                "table": scenarios[k][0],
                "rows": rows_n,
                "rounds": len(v),
                "rows_per_s": round(float(np.median(v))),
                "spread_pct": round(100 * (max(v) - min(v)) / float(np.median(v)), 1),
            }
            for k, v in ingest.items()
        ]
    )
    dml_frame = pd.DataFrame(
        [
            {
                "setting": name,
                "operation": op,
                "rounds": len(v),
                "elapsed_ms": round(float(np.median(v)), 2),
                "min_ms": round(min(v), 2),
                "max_ms": round(max(v), 2),
            }
            for (name, op), v in dml.items()
        ]
    ).sort_values(["operation", "setting"], ignore_index=True)
    return ingest_frame, dml_frame
