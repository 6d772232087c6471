"""TimescaleDB's columnstore (compression) on copies of packet_flow: ratio, queries, ingest, DML, policy.

The seed wants "a column store for analytics". This measures what the columnstore gives and costs on
the dataset's own packets, for several ``segmentby``/``orderby`` settings that the workload argues for:

- ``by_source_chain`` (segmentby ``source_chain``): the per-chain analytics (hourly stats, counts);
- ``by_channel`` (segmentby ``source_chain, source_channel``, orderby ``sequence``): the relayers'
  channel + sequence lookups;
- ``by_sender`` (segmentby ``sender``): wallet history.

Each setting gets its own hypertable copy in the kit's schema ``ibcbench_columnstore`` (the same chunk
interval, the service's indexes), every chunk but the newest converted to the columnstore; a copy left in
the rowstore is the baseline. Measured: bytes before and after per chunk and in total, the workload's
analytics and point queries (latency through :func:`ibcbench.bench.timing.time_query`, buffers and the
plan's columnar scan nodes through :mod:`ibcbench.plans.model`), ingest into a hypertable whose older
chunks are compressed (and a backfill into a compressed chunk), an UPDATE and a DELETE of a compressed
row, and a columnstore policy seen running as a job. The schema is dropped at the end: the dataset is
never changed. The columnstore needs the Community edition; under the Apache edition the result has
the same frames, empty, and says why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from data_gen.tables import TABLES
from ibcbench.bench.timescale import run_job_now
from ibcbench.bench.timing import TimingPolicy, time_once_ms, time_query
from ibcbench.data.ownership import create_kit_schema, drop_kit_schema
from ibcbench.db import connect, resolve_dsn, server_info
from ibcbench.errors import BenchmarkError
from ibcbench.plans.model import plan_from_json
from ibcbench.results.recorded import run_folder, save_figure
from ibcbench.results.runs import Run

SCHEMA = "ibcbench_columnstore"
#: name -> (segmentby, orderby): each argued for by a part of the workload (module docstring)
SETTINGS: dict[str, tuple[str, str]] = {
    "by_source_chain": ("source_chain", "created_at DESC"),
    "by_channel": ("source_chain, source_channel", "sequence DESC, created_at DESC"),
    "by_sender": ("sender", "created_at DESC"),
}
BASELINE = "rowstore"
#: the service's indexes on packet_flow, rebuilt on every copy
_INDEXES = (
    "(status, created_at DESC)",
    "(source_chain, source_channel, sequence)",
    "(sender, created_at DESC)",
)

#: (name, kind, sql with {t} for the table); parameters come from :func:`_parameters`
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


@dataclass(frozen=True)
class ColumnstoreResult:
    """Frames of one columnstore benchmark; ``available`` is ``"measured"`` or why not."""

    available: str
    settings: pd.DataFrame
    chunks: pd.DataFrame
    queries: pd.DataFrame
    ingest: pd.DataFrame
    dml: pd.DataFrame
    policy: dict[str, Any]
    recommendation: str
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.available == "measured"

    def speedups(self) -> pd.DataFrame:
        """Per query and setting: rowstore p50 / columnstore p50 (above 1: the columnstore is faster),
        with the interval the two p50 intervals allow (low = rowstore low / columnstore high); an
        interval that holds 1 is "no difference"."""
        cols = ["query", "kind", "setting", "speedup", "speedup_low", "speedup_high", "verdict"]
        if not self.measured:
            return pd.DataFrame(columns=cols)
        q = self.queries
        base = q[q.setting == BASELINE].set_index("query")
        rows = []
        for r in q[q.setting != BASELINE].itertuples():
            b = base.loc[r.query]
            low = _ratio(b.p50_ci_low_ms, r.p50_ci_high_ms)
            high = _ratio(b.p50_ci_high_ms, r.p50_ci_low_ms)
            verdict = (
                "faster"
                if low is not None and low > 1
                else "slower"
                if high is not None and high < 1
                else "no difference"
            )
            rows.append(
                {
                    "query": r.query,
                    "kind": r.kind,
                    "setting": r.setting,
                    "speedup": _ratio(b.p50_ms, r.p50_ms),
                    "speedup_low": low,
                    "speedup_high": high,
                    "verdict": verdict,
                }
            )
        return pd.DataFrame(rows, columns=cols)

    @property
    def recommended_setting(self) -> str | None:
        """The setting the recommendation names: the best analytics speed-up (geometric mean)."""
        return _best_setting(self.queries, "analytics") if self.measured else None

    def winners(self) -> pd.DataFrame:
        """The fastest setting per query (the rowstore included)."""
        if not self.measured:
            return pd.DataFrame(columns=["query", "kind", "setting", "p50_ms"])
        best = self.queries.loc[self.queries.groupby("query").p50_ms.idxmin()]
        return best[["query", "kind", "setting", "p50_ms"]].reset_index(drop=True)

    def key_numbers(self) -> dict[str, Any]:
        """The figures the report and ``report --baseline`` read; speed-ups and slow-downs are those of
        the recommended setting."""
        if not self.measured:
            return {"columnstore": self.available}
        best = self.recommended_setting
        s = self.speedups()
        mine = s[s.setting == best].set_index("query")
        ratios = dict(zip(self.settings.setting, self.settings.compression_ratio, strict=True))
        ing = self.ingest.set_index("scenario").rows_per_s
        return {
            "columnstore": "measured",
            "columnstore_setting": best,
            "compression_ratio": ratios,
            "compression_ratio_recommended": ratios[best],
            "analytics_speedup": {
                q: float(mine.speedup[q]) for q in mine.index if mine.kind[q] == "analytics"
            },
            "point_lookup_slowdown": {
                q: _ratio(1.0, float(mine.speedup[q]))
                for q in mine.index
                if mine.kind[q] == "point"
            },
            "ingest_rows_per_s_rowstore": float(ing["rowstore: new hour"]),
            "ingest_rows_per_s_columnstore": float(ing["columnstore: new hour"]),
            "backfill_rows_per_s_compressed_chunk": float(
                ing["columnstore: backfill into a compressed chunk"]
            ),
            "columnstore_policy_runs": self.policy.get("total_runs"),
            "columnstore_policy_failures": self.policy.get("total_failures"),
            "columnstore_recommendation": self.recommendation,
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write ``ts_columnstore_*`` (settings, chunks, queries, ingest, dml) and the figure."""
        run = run_folder(run_dir)
        if run is None:
            return
        for name in ("settings", "chunks", "queries", "ingest", "dml"):
            run.write_frame(f"ts_columnstore_{name}", getattr(self, name))
        if self.measured:
            save_figure(plot_columnstore(self), "05_columnstore", run, close=True)


def _x(
    conn: psycopg.Connection, statement: str | sql.Composable, params: Sequence[Any] = ()
) -> Any:
    return conn.execute(statement, params)  # type: ignore[arg-type]


def _drop_schema(dsn: str) -> None:
    with connect(dsn, autocommit=True) as conn:
        drop_kit_schema(conn, SCHEMA)  # the kit's own only: a same-named user schema is refused


def _chunk_interval(lo: Any, hi: Any) -> str:
    """About twelve chunks over the data's span, whole hours, between 1 hour and 1 day."""
    hours = (pd.Timestamp(hi) - pd.Timestamp(lo)).total_seconds() / 3600
    return f"{int(min(24, max(1, round(hours / 12))))} hours"


def _create_copy(conn: psycopg.Connection, name: str, interval: str, columns: str) -> float:
    """A hypertable copy of packet_flow with the service's indexes; returns the INSERT's ms."""
    table = f"{SCHEMA}.{name}"
    _x(
        conn,
        f"CREATE TABLE {table} (LIKE public.packet_flow INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    )
    _x(
        conn,
        "SELECT create_hypertable(%s, by_range('created_at', %s::interval))",
        (table, interval),
    )
    _x(conn, f"ALTER TABLE {table} ADD PRIMARY KEY (id, created_at)")
    for i, cols in enumerate(_INDEXES):
        _x(conn, f"CREATE INDEX {name}_idx{i} ON {table} {cols}")
    ms = time_once_ms(conn, f"INSERT INTO {table} ({columns}) SELECT {columns} FROM packet_flow")
    _x(conn, f"ANALYZE {table}")
    return ms


def _columnstore_on(table: str, segmentby: str, orderby: str) -> sql.Composable:
    """``ALTER TABLE ... SET (timescaledb.enable_columnstore ...)`` with the settings as literals."""
    schema, name = table.split(".")
    return sql.SQL(
        "ALTER TABLE {} SET (timescaledb.enable_columnstore = true,"
        " timescaledb.segmentby = {}, timescaledb.orderby = {})"
    ).format(sql.Identifier(schema, name), sql.Literal(segmentby), sql.Literal(orderby))


def _compress(
    conn: psycopg.Connection, name: str, segmentby: str, orderby: str
) -> tuple[float, int]:
    """Enable the columnstore and convert every chunk but the newest; (ms, chunks converted)."""
    table = f"{SCHEMA}.{name}"
    _x(
        conn,
        _columnstore_on(table, segmentby, orderby),
    )
    chunks = [
        r[0]
        for r in _x(
            conn,
            "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks"
            " WHERE hypertable_schema = %s AND hypertable_name = %s ORDER BY range_end DESC OFFSET 1",
            (SCHEMA, name),
        ).fetchall()
    ]
    ms = 0.0
    for chunk in chunks:
        ms += time_once_ms(conn, "SELECT compress_chunk(%s::regclass)", (chunk,))
    _x(conn, f"ANALYZE {table}")
    return ms, len(chunks)


def _chunk_sizes(conn: psycopg.Connection, name: str, setting: str) -> list[dict[str, Any]]:
    rows = _x(
        conn,
        "SELECT chunk_name, compression_status, before_compression_total_bytes,"
        " after_compression_total_bytes FROM chunk_columnstore_stats(%s::regclass) ORDER BY chunk_name",
        (f"{SCHEMA}.{name}",),
    ).fetchall()
    return [
        {
            "setting": setting,
            "chunk": chunk,
            "status": status,
            "before_bytes": before,
            "after_bytes": after,
            "ratio": round(before / after, 2) if before and after else None,
        }
        for chunk, status, before, after in rows
    ]


def _parameters(conn: psycopg.Connection, hi: Any, samples: int) -> dict[str, list[tuple]]:
    picked = _x(
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


def _measure_query(
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
        _x(conn, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, params[qname][0]).fetchone()[0]
    )
    return {
        "setting": name,
        "query": qname,
        "kind": kind,
        **timing.as_row(),
        "shared_buffers": plan.shared_hit + plan.shared_read,
        "columnar_scans": plan.columnar_scans,
        "chunks_scanned": plan.chunks_scanned,
        "answer": _answer(conn, query, params[qname][0]),
    }


def _answer(conn: psycopg.Connection, query: str, params: tuple) -> list[tuple]:
    """The query's rows in a fixed order (the comparison is :func:`_same_rows`)."""
    return sorted(_x(conn, query, params).fetchall(), key=lambda r: tuple(map(str, r)))


def _same_rows(a: list[tuple], b: list[tuple]) -> bool:
    """Equal rows, floats to a relative 1e-9: aggregates over the columnstore may sum in another order."""

    def same(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
        return x == y

    return len(a) == len(b) and all(
        len(r) == len(q) and all(same(x, y) for x, y in zip(r, q, strict=True))
        for r, q in zip(a, b, strict=True)
    )


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
    target = _x(
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


def _rounds(
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


def _policy(conn: psycopg.Connection, name: str, wait_s: float) -> dict[str, Any]:
    """A columnstore policy on the rowstore copy, run now by the job scheduler (:func:`run_job_now`)."""
    table = f"{SCHEMA}.{name}"
    segmentby, orderby = SETTINGS["by_source_chain"]
    _x(
        conn,
        _columnstore_on(table, segmentby, orderby),
    )
    _x(conn, "CALL add_columnstore_policy(%s::regclass, after => %s::interval)", (table, "1 hour"))
    job_id = _x(
        conn,
        "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_schema = %s"
        " AND hypertable_name = %s AND proc_name = 'policy_compression'",
        (SCHEMA, name),
    ).fetchone()[0]
    compressed_before = _compressed_chunks(conn, table)
    run = run_job_now(conn, job_id, wait_s)
    return {
        **run,
        "chunks_compressed_by_the_job": _compressed_chunks(conn, table) - compressed_before,
    }


def _compressed_chunks(conn: psycopg.Connection, table: str) -> int:
    return int(
        _x(
            conn,
            "SELECT count(*) FROM chunk_columnstore_stats(%s::regclass)"
            " WHERE compression_status = 'Compressed'",
            (table,),
        ).fetchone()[0]
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b or pd.isna(a) or pd.isna(b) else round(a / b, 3)


def _geomean_speedups(queries: pd.DataFrame, kind: str) -> pd.Series:
    """Per setting, the geometric mean over the queries of ``kind`` of rowstore p50 / its p50."""
    base = queries[queries.setting == BASELINE].set_index("query").p50_ms
    part = queries[(queries.kind == kind) & (queries.setting != BASELINE)]
    logs = np.log([base[q] / p for q, p in zip(part["query"], part.p50_ms, strict=True)])
    return pd.Series(logs, index=part.setting.values).groupby(level=0).mean().pipe(np.exp)


def _best_setting(queries: pd.DataFrame, kind: str) -> str:
    return str(_geomean_speedups(queries, kind).idxmax())


def _recommend(settings: pd.DataFrame, queries: pd.DataFrame) -> str:
    setting = _best_setting(queries, "analytics")
    gain = float(_geomean_speedups(queries, "analytics")[setting])
    point = float(_geomean_speedups(queries, "point")[setting])
    chosen = settings.set_index("setting").loc[setting]
    ratio, seg, order = float(chosen.compression_ratio), chosen.segmentby, chosen.orderby
    worst = settings.sort_values("compression_ratio").iloc[0]
    cost = (
        f"point lookups take x{1 / point:.2f} the rowstore's time"
        if point < 1
        else f"point lookups keep up (x{point:.2f} the rowstore's speed)"
    )
    text = (
        f"For an analytics-heavy mix: segmentby '{seg}', orderby '{order}' ({setting}): "
        f"{ratio:.1f}x smaller, analytics queries x{gain:.2f} faster (geometric mean over the "
        f"analytics queries); the cost: {cost}. Keep the newest chunk in the rowstore (a columnstore "
        "policy whose 'after' is past the ingest window) so inserts and updates of recent packets stay cheap."
    )
    if worst.compression_ratio is not None and worst.compression_ratio < 1:
        text += (
            f" Avoid segmentby '{worst.segmentby}': too few rows per segment, the chunks grow "
            f"(x{worst.compression_ratio:.2f})."
        )
    return text


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
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise BenchmarkError(
            f"unknown columnstore setting {unknown[0]!r}: choose from {', '.join(SETTINGS)}"
        )
    if repetitions < 1 or ingest_rows < 1 or rounds < 1:
        raise BenchmarkError("repetitions, ingest_rows and rounds must be at least 1")
    target = resolve_dsn(dsn)
    columns = ", ".join(name for name, _ in TABLES["packet_flow"])
    with connect(target) as conn:
        info = server_info(conn)
    empty = _empty_result
    if info.timescaledb_version is None:
        return empty(
            f"unavailable: TimescaleDB is not installed in this database ({info.edition_label})"
        )
    if not info.has_continuous_aggregates:
        return empty(
            f"unavailable on this server ({info.edition_label}): the columnstore needs the Community edition"
        )
    policy_t = TimingPolicy().with_max_runs(repetitions)
    _drop_schema(target)
    setting_rows: list[dict[str, Any]] = []
    chunk_rows: list[dict[str, Any]] = []
    query_rows: list[dict[str, Any]] = []
    try:
        with connect(target, autocommit=True) as conn:
            lo, hi = _x(conn, "SELECT min(created_at), max(created_at) FROM packet_flow").fetchone()
            if lo is None:
                raise BenchmarkError("packet_flow is empty: load a dataset first")
            interval = _chunk_interval(lo, hi)
            params = _parameters(conn, hi, samples=50)
            create_kit_schema(conn, SCHEMA)
            # 1. every copy built first, so that what is compared is measured in the same rounds
            _create_copy(conn, BASELINE, interval, columns)
            for setting in settings:
                segmentby, orderby = SETTINGS[setting]
                _create_copy(conn, setting, interval, columns)
                table = f"{SCHEMA}.{setting}"
                before = _x(conn, "SELECT hypertable_size(%s::regclass)", (table,)).fetchone()[0]
                ms, converted = _compress(conn, setting, segmentby, orderby)
                after = _x(conn, "SELECT hypertable_size(%s::regclass)", (table,)).fetchone()[0]
                chunks = _chunk_sizes(conn, setting, setting)
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
                        "compression_ratio": round(data_before / data_after, 2)
                        if data_after
                        else None,
                        "table_before_bytes": int(before),
                        "table_after_bytes": int(after),
                    }
                )
            # 2. each query on every copy in turn (the order rotated per query)
            names = [BASELINE, *settings]
            for i, (qname, kind, template) in enumerate(QUERIES):
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    query_rows.append(
                        _measure_query(conn, name, qname, kind, template, params, policy_t)
                    )
            answers = {(r["setting"], r["query"]): r.pop("answer") for r in query_rows}
            for r in query_rows:
                r["same_answer_as_rowstore"] = _same_rows(
                    answers[(r["setting"], r["query"])], answers[(BASELINE, r["query"])]
                )
            # 3. ingest and DML in interleaved rounds; 4. the policy as a job
            ingest, dml = _rounds(conn, settings, columns, interval, ingest_rows, rounds, seed)
            policy = _policy(conn, BASELINE, policy_wait_s)
    finally:
        if not keep:
            _drop_schema(target)
    settings_frame, queries_frame = pd.DataFrame(setting_rows), pd.DataFrame(query_rows)
    return ColumnstoreResult(
        "measured",
        settings_frame,
        pd.DataFrame(chunk_rows),
        queries_frame,
        ingest,
        dml,
        policy,
        _recommend(settings_frame, queries_frame),
        {
            "settings": list(settings),
            "repetitions": repetitions,
            "ingest_rows": ingest_rows,
            "rounds": rounds,
            "chunk_interval": interval,
            "timescaledb": info.timescaledb_version,
        },
    )


def _empty_result(reason: str) -> ColumnstoreResult:
    return ColumnstoreResult(
        reason,
        pd.DataFrame(
            columns=[
                "setting",
                "segmentby",
                "orderby",
                "chunk_interval",
                "chunks_converted",
                "compress_s",
                "compressed_chunks_before_bytes",
                "compressed_chunks_after_bytes",
                "compression_ratio",
                "table_before_bytes",
                "table_after_bytes",
            ]
        ),
        pd.DataFrame(
            columns=["setting", "chunk", "status", "before_bytes", "after_bytes", "ratio"]
        ),
        pd.DataFrame(
            columns=[
                "setting",
                "query",
                "kind",
                "n",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "mean_ms",
                "p50_ci_low_ms",
                "p50_ci_high_ms",
                "stopped_by",
                "warmup_runs",
                "shared_buffers",
                "columnar_scans",
                "chunks_scanned",
                "same_answer_as_rowstore",
            ]
        ),
        pd.DataFrame(columns=["scenario", "rows", "elapsed_ms", "rows_per_s"]),
        pd.DataFrame(columns=["setting", "operation", "elapsed_ms"]),
        {},
        reason,
    )


def plot_columnstore(result: ColumnstoreResult) -> Any:
    """Compression ratio per setting, and per-query speed-up against the rowstore (log scale); None
    when the columnstore was not measured (the Apache edition)."""
    if not result.measured:
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    s = result.settings.set_index("setting").compression_ratio
    s.plot.bar(ax=axes[0], rot=0, color="#2f5d9b")
    axes[0].set_ylabel("bytes before / after")
    axes[0].set_title("Compression ratio (compressed chunks)")
    sp = result.speedups().pivot(index="query", columns="setting", values="speedup")
    sp.plot.barh(ax=axes[1], logx=True)
    axes[1].axvline(1, color="#5c6679", lw=1)
    axes[1].set_xlabel("rowstore p50 / columnstore p50 (log; right of 1 is faster)")
    axes[1].set_title("Speed-up per query")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
