"""The columnstore benchmark itself, phase by phase: check the arguments and the edition, build and
convert the copies, time the queries on each, ingest and DML in rounds, a policy as a job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import psycopg

from data_gen.tables import TABLES
from ibcbench.bench.columnstore.copies import (
    BASELINE,
    SCHEMA,
    SETTINGS,
    chunk_interval,
    chunk_sizes,
    compress,
    create_copy,
    drop_schema,
    execute,
    run_policy,
)
from ibcbench.bench.columnstore.queries import (
    QUERIES,
    measure_query,
    same_rows,
    sample_query_parameters,
)
from ibcbench.bench.columnstore.result import ColumnstoreResult, empty_result, recommend
from ibcbench.bench.columnstore.rounds import measure_rounds
from ibcbench.bench.timing import TimingPolicy
from ibcbench.data.ownership import create_kit_schema
from ibcbench.db import ServerInfo, connect, resolve_dsn, server_info
from ibcbench.errors import BenchmarkError


def benchmark_columnstore(
    dsn: str | None,
    *,
    settings: Sequence[str] = tuple(SETTINGS),
    repetitions: int = 50,
    ingest_rows: int = 5_000,
    rounds: int = 3,
    policy_wait_s: float = 30.0,
    seed: int = 42,
    keep: bool = False,
) -> ColumnstoreResult:
    """The columnstore on copies of packet_flow, one per setting in ``settings`` (see :data:`SETTINGS`);
    ``repetitions`` caps each query's measured executions (fewer when its p50 is precise first).
    ``keep`` leaves the schema and its copies for inspection (the next run drops it)."""
    _check_arguments(settings, repetitions, ingest_rows, rounds)
    target = resolve_dsn(dsn)
    with connect(target) as conn:
        info = server_info(conn)
    reason = _unavailable(info)
    if reason:
        return empty_result(reason)
    columns = ", ".join(name for name, _ in TABLES["packet_flow"])
    drop_schema(target)
    try:
        with connect(target, autocommit=True) as conn:
            lo, hi = execute(
                conn, "SELECT min(created_at), max(created_at) FROM packet_flow"
            ).fetchone()
            if lo is None:
                raise BenchmarkError("packet_flow is empty: load a dataset first")
            interval = chunk_interval(lo, hi)
            params = sample_query_parameters(conn, hi, samples=50)
            create_kit_schema(conn, SCHEMA)
            # 1. every copy built first, so that what is compared is measured in the same rounds
            setting_rows, chunk_rows = _build_copies(conn, settings, interval, columns)
            # 2. each query on every copy in turn (the order rotated per query)
            policy_t = TimingPolicy().with_max_runs(repetitions)
            query_rows = _measure_queries(conn, settings, params, policy_t)
            # 3. ingest and DML in interleaved rounds; 4. the policy as a job
            ingest, dml = measure_rounds(
                conn, settings, columns, interval, ingest_rows, rounds, seed
            )
            policy = run_policy(conn, BASELINE, policy_wait_s)
    finally:
        if not keep:
            drop_schema(target)
    settings_frame, queries_frame = pd.DataFrame(setting_rows), pd.DataFrame(query_rows)
    return ColumnstoreResult(
        "measured",
        settings_frame,
        pd.DataFrame(chunk_rows),
        queries_frame,
        ingest,
        dml,
        policy,
        recommend(settings_frame, queries_frame),
        {
            "settings": list(settings),
            "repetitions": repetitions,
            "ingest_rows": ingest_rows,
            "rounds": rounds,
            "chunk_interval": interval,
            "timescaledb": info.timescaledb_version,
        },
    )


def _check_arguments(
    settings: Sequence[str], repetitions: int, ingest_rows: int, rounds: int
) -> None:
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise BenchmarkError(
            f"unknown columnstore setting {unknown[0]!r}: choose from {', '.join(SETTINGS)}"
        )
    if repetitions < 1 or ingest_rows < 1 or rounds < 1:
        raise BenchmarkError("repetitions, ingest_rows and rounds must be at least 1")


def _unavailable(info: ServerInfo) -> str | None:
    """Why the server has no columnstore (the result says so instead of measuring), or None."""
    if info.timescaledb_version is None:
        return f"unavailable: TimescaleDB is not installed in this database ({info.edition_label})"
    if not info.has_continuous_aggregates:
        return f"unavailable on this server ({info.edition_label}): the columnstore needs the Community edition"
    return None


def _build_copies(
    conn: psycopg.Connection, settings: Sequence[str], interval: str, columns: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rowstore baseline and one converted copy per setting; (a row per setting, a row per chunk)."""
    create_copy(conn, BASELINE, interval, columns)
    setting_rows: list[dict[str, Any]] = []
    chunk_rows: list[dict[str, Any]] = []
    for setting in settings:
        segmentby, orderby = SETTINGS[setting]
        create_copy(conn, setting, interval, columns)
        table = f"{SCHEMA}.{setting}"
        before = execute(conn, "SELECT hypertable_size(%s::regclass)", (table,)).fetchone()[0]
        ms, converted = compress(conn, setting, segmentby, orderby)
        after = execute(conn, "SELECT hypertable_size(%s::regclass)", (table,)).fetchone()[0]
        chunks = chunk_sizes(conn, setting, setting)
        chunk_rows += chunks
        data_before = sum(c["before_bytes"] for c in chunks if c["before_bytes"])
        data_after = sum(c["after_bytes"] for c in chunks if c["before_bytes"])
        setting_rows.append(
            {
                "setting": setting,
                "segmentby": segmentby,
                "orderby": orderby,
                "chunk_interval": interval,
                "chunks_converted": converted,
                "compress_s": round(ms / 1000, 2),
                "compressed_chunks_before_bytes": data_before,
                "compressed_chunks_after_bytes": data_after,
                "compression_ratio": round(data_before / data_after, 2) if data_after else None,
                "table_before_bytes": int(before),
                "table_after_bytes": int(after),
            }
        )
    return setting_rows, chunk_rows


def _measure_queries(
    conn: psycopg.Connection,
    settings: Sequence[str],
    params: dict[str, list[tuple]],
    policy: TimingPolicy,
) -> list[dict[str, Any]]:
    """Each query on every copy, the order rotated per query; each row says whether its answer is
    the rowstore's."""
    names = [BASELINE, *settings]
    rows = []
    for i, (qname, kind, template) in enumerate(QUERIES):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            rows.append(measure_query(conn, name, qname, kind, template, params, policy))
    answers = {(r["setting"], r["query"]): r.pop("answer") for r in rows}
    for r in rows:
        r["same_answer_as_rowstore"] = same_rows(
            answers[(r["setting"], r["query"])], answers[(BASELINE, r["query"])]
        )
    return rows
