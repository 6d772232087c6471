"""``ibcbench bench load``: how fast the kit loads, and how close generate+load gets to COPY alone.

The same packets (and their operations) go in every scenario: once generated and encoded in memory
for the COPY ceiling (binary COPY of pre-generated rows: no Python in the way), and once generated
while loading (end to end). Each scenario loads into a fresh scratch database ``ibcbench_bench_load``
that the benchmark creates and drops; the fact tables only, in one transaction each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from data_gen import GenerationParams
from data_gen.tables import FACT_TABLES
from ibcbench.datasets import with_database
from ibcbench.db import connect, resolve_dsn
from ibcbench.load import EncodedBatch, _copy, _encoded_batches, _overlapped
from ibcbench.migrate import Migrator, default_migrations_dir

SCRATCH_DB = "ibcbench_bench_load"


@dataclass(frozen=True)
class LoadBenchResult:
    frame: pd.DataFrame
    packets: int
    ratio_end_to_end: float
    ceiling_packet_flow_rows_per_s: float
    manifest: dict[str, Any]


def _fresh(admin_dsn: str, layout: str, indexes: bool) -> str:
    with connect(admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DB))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SCRATCH_DB)))
    dsn = with_database(admin_dsn, SCRATCH_DB)
    Migrator(dsn).up(3 if layout == "hypertable" else 2)
    if indexes:
        ddl = (default_migrations_dir() / "000004_create_indexes.up.sql").read_text()
        with connect(dsn, autocommit=True) as conn:
            conn.execute(ddl.encode())  # type: ignore[arg-type]
    return dsn


def _drop(admin_dsn: str) -> None:
    with connect(admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DB))
        )


def _copy_all(dsn: str, batches: Any, tables: tuple[str, ...]) -> tuple[int, int, float]:
    rows = size = 0
    with psycopg.connect(dsn) as conn:
        conn.execute("SET synchronous_commit = on")
        started = time.perf_counter()
        with conn.cursor() as cur:
            for item in batches:
                if isinstance(item, dict) or item.table not in tables:
                    continue
                size += _copy(cur, item.table, item.payload)
                rows += item.rows
        conn.commit()
        elapsed = time.perf_counter() - started
    return rows, size, elapsed


def run_load_benchmark(
    dsn: str | None = None, *, packets: int = 1_000_000, seed: int = 42
) -> LoadBenchResult:
    """Run every scenario and return a frame of rows/s and MB/s, plus the end-to-end / ceiling ratio."""
    admin = with_database(resolve_dsn(dsn), "postgres")
    params = GenerationParams(seed=seed, scale="default", packets=packets)
    gen_started = time.perf_counter()
    encoded = [
        b
        for b in _encoded_batches(params)
        if isinstance(b, EncodedBatch) and b.table in FACT_TABLES
    ]
    generate_s = time.perf_counter() - gen_started
    scenarios = [
        ("COPY ceiling (pre-generated)", "plain", False, "memory", FACT_TABLES),
        ("generate + load (overlapped)", "plain", False, "generate", FACT_TABLES),
        ("COPY ceiling, packet_flow only", "plain", False, "memory", ("packet_flow",)),
        ("COPY ceiling (pre-generated)", "hypertable", False, "memory", FACT_TABLES),
        ("generate + load (overlapped)", "hypertable", False, "generate", FACT_TABLES),
        ("COPY ceiling (pre-generated)", "plain", True, "memory", FACT_TABLES),
        ("COPY ceiling (pre-generated)", "hypertable", True, "memory", FACT_TABLES),
        ("generate + load (overlapped)", "hypertable", True, "generate", FACT_TABLES),
    ]
    records = []
    try:
        for name, layout, indexes, source, tables in scenarios:
            target = _fresh(admin, layout, indexes)
            batches = encoded if source == "memory" else _overlapped(params)
            rows, size, elapsed = _copy_all(target, batches, tables)
            records.append(
                {
                    "scenario": name,
                    "layout": layout,
                    "secondary_indexes": indexes,
                    "tables": "+".join(tables),
                    "rows": rows,
                    "seconds": round(elapsed, 2),
                    "rows_per_s": round(rows / elapsed),
                    "MB_per_s": round(size / 1e6 / elapsed, 1),
                }
            )
    finally:
        _drop(admin)
    frame = pd.DataFrame(records)

    def rate(
        scenario: str, layout: str, indexes: bool, tables: str = "+".join(FACT_TABLES)
    ) -> float:
        sel = frame[(frame.scenario == scenario) & (frame.layout == layout) & (frame.secondary_indexes == indexes)
                    & (frame.tables == tables)]  # fmt: skip
        return float(sel.rows_per_s.iloc[0])

    ratio = rate("generate + load (overlapped)", "plain", False) / rate(
        "COPY ceiling (pre-generated)", "plain", False
    )
    frame["ratio_to_ceiling"] = [
        round(r.rows_per_s / rate("COPY ceiling (pre-generated)", r.layout, r.secondary_indexes, r.tables), 3)
        if r.tables == "+".join(FACT_TABLES) else None
        for r in frame.itertuples()
    ]  # fmt: skip
    return LoadBenchResult(
        frame=frame,
        packets=packets,
        ratio_end_to_end=round(ratio, 3),
        ceiling_packet_flow_rows_per_s=rate(
            "COPY ceiling, packet_flow only", "plain", False, "packet_flow"
        ),
        manifest={"seed": seed, "packets": packets, "generate_and_encode_s": round(generate_s, 2)},
    )


def format_load_benchmark(result: LoadBenchResult) -> str:
    lines = [
        f"load benchmark: {result.packets:,} packets (+ their operations), seed {result.manifest['seed']}; "
        f"generating + encoding them alone took {result.manifest['generate_and_encode_s']} s",
        result.frame.to_string(index=False),
        "",
        f"end-to-end / ceiling (plain, no secondary indexes): {result.ratio_end_to_end:.3f}",
        f"binary COPY into plain packet_flow without secondary indexes: {result.ceiling_packet_flow_rows_per_s:,.0f} rows/s",
    ]
    return "\n".join(lines)
