"""Loading generated traffic: binary COPY, overlapped with generation, one transaction per span.

Two ways in, TSBS-style:
- ``generate_dataset(params, out_dir)`` writes one binary COPY file per table plus ``manifest.json``,
  and ``load_dataset(dsn, out_dir)`` streams those files (load timings never include generation);
- ``load_dataset(dsn, params)`` generates and loads at once: a producer process generates and encodes
  batches into a bounded queue while this process COPYs them, so the server is not waiting on Python.

A span is loaded in one transaction and recorded in ``ibcbench_loads``: a failed load leaves nothing
behind, the same span is never loaded twice, and a span that overlaps the data is refused. Loading
``GenerationParams`` into a database that already holds packets continues it: the next span starts
after the newest packet, with the next ids and gapless sequences per channel.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from data_gen import GenerationParams, ResumeState, generate
from data_gen.tables import DERIVED_KEYS, FACT_TABLES, TABLES
from ibcbench.db import connect
from ibcbench.errors import LoadError
from ibcbench.pgcopy import HEADER, TRAILER, encode_batch

COPY_CHUNK = 8 * 1024 * 1024
_QUEUE_DEPTH = 4


@dataclass(frozen=True)
class TableLoad:
    table: str
    rows: int
    bytes: int
    seconds: float


@dataclass(frozen=True)
class LoadResult:
    """What one load did: rows and bytes per table, time, and the generator's manifest."""

    tables: list[TableLoad]
    elapsed_s: float
    manifest: dict[str, Any]
    span_start: datetime | None = None
    span_end: datetime | None = None
    skipped: bool = False

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def summary(self) -> pd.DataFrame:
        frame = pd.DataFrame(
            [
                {
                    "table": t.table,
                    "rows": t.rows,
                    "MB": round(t.bytes / 1e6, 1),
                    "copy_seconds": round(t.seconds, 2),
                }
                for t in self.tables
            ]
        )
        total = pd.DataFrame(
            [{"table": "total (wall)", "rows": self.rows, "MB": round(self.bytes / 1e6, 1),
              "copy_seconds": round(self.elapsed_s, 2)}]
        )  # fmt: skip
        out = pd.concat([frame, total], ignore_index=True)
        out["rows_per_s"] = (
            out["rows"] / out["copy_seconds"].where(out["copy_seconds"] > 0)
        ).round(0)
        return out


@dataclass(frozen=True)
class GenerateResult:
    out_dir: Path
    manifest: dict[str, Any]
    elapsed_s: float
    files: dict[str, int] = field(default_factory=dict)


# ---- checks against the server ----------------------------------------------------------------
_TYPE_ALIASES = {
    "timestamp with time zone": "timestamptz",
    "character varying": "text",
}


def check_schema(conn: psycopg.Connection) -> None:
    """The tables exist with the columns and types data_gen.tables expects, else one-line LoadError."""
    for table, columns in TABLES.items():
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (table,),
        ).fetchall()
        if not rows:
            raise LoadError(f"table {table} does not exist: run `ibcbench schema up` first")
        actual = {name: _TYPE_ALIASES.get(t, t).replace(", ", ",") for name, t in rows}
        for name, pg_type in columns:
            if name not in actual:
                raise LoadError(
                    f"{table}.{name} is missing: the schema is older than the generator; run `ibcbench schema up`"
                )
            if actual[name] != pg_type.replace(", ", ","):
                raise LoadError(
                    f"{table}.{name} is {actual[name]} on the server but the generator writes {pg_type}: "
                    "run `ibcbench schema up` or fix data_gen/tables.py"
                )
    if conn.execute("SELECT to_regclass('ibcbench_loads')").fetchone()[0] is None:  # type: ignore[index]
        raise LoadError("table ibcbench_loads does not exist: run `ibcbench schema up` first")


def resume_state(conn: psycopg.Connection) -> ResumeState | None:
    """Where the data in the database ends (None when packet_flow is empty)."""
    row = conn.execute("SELECT max(id), max(created_at) FROM packet_flow").fetchone()
    if row is None or row[0] is None:
        return None
    max_op = conn.execute("SELECT coalesce(max(id), 0) FROM clearing_operations").fetchone()[0]  # type: ignore[index]
    seqs = conn.execute(
        "SELECT source_chain, source_port, source_channel, max(sequence) FROM packet_flow GROUP BY 1, 2, 3"
    ).fetchall()
    return ResumeState(
        next_packet_id=int(row[0]) + 1,
        next_operation_id=int(max_op) + 1,
        next_sequence={(c, p, ch): int(s) + 1 for c, p, ch, s in seqs},
        start=row[1],
    )


def _refuse_overlap(
    conn: psycopg.Connection, span_start: datetime, first_packet_id: int, checksums: dict[str, str]
) -> bool:
    """True when this exact span was loaded already; raises when it would overlap or collide."""
    same = conn.execute(
        "SELECT id FROM ibcbench_loads WHERE checksums = %s::jsonb",
        (json.dumps(checksums, sort_keys=True),),
    ).fetchone()
    if same:
        return True
    row = conn.execute("SELECT max(created_at), max(id) FROM packet_flow").fetchone()
    if row and row[0] is not None:
        if span_start <= row[0]:
            raise LoadError(
                f"the data to load starts at {span_start.isoformat()} but the database already holds packets "
                f"up to {row[0].isoformat()}: load GenerationParams to continue it (`ibcbench seed` appends), "
                "or use a fresh database"
            )
        if first_packet_id <= row[1]:
            raise LoadError(
                f"the data to load starts at packet id {first_packet_id} but the database already holds ids up "
                f"to {row[1]}: generate it as a continuation (`ibcbench generate --dsn ...`) or use a fresh database"
            )
    return False


# ---- generation into batches of COPY bytes ----------------------------------------------------
@dataclass(frozen=True)
class EncodedBatch:
    table: str
    rows: int
    payload: bytes  # header + tuples + trailer


def _encoded_batches(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    """Generate and encode; the last item is the generator's manifest (with span and next ids)."""
    gen = generate(params)
    for batch in gen:
        yield EncodedBatch(
            batch.table, batch.rows, encode_batch(TABLES[batch.table], batch.columns, batch.rows)
        )
    manifest = gen.manifest()
    state = gen.next_state
    assert state is not None
    manifest["span_end"] = state.start.isoformat() if state.start else None
    manifest["next_packet_id"] = state.next_packet_id
    yield manifest


def _producer(params: GenerationParams, queue: Any) -> None:
    try:
        for item in _encoded_batches(params):
            queue.put(item)
    except BaseException as exc:  # hand the error to the loading side, which raises it
        queue.put(LoadError(f"generation failed: {type(exc).__name__}: {exc}"))
    queue.put(None)


def _overlapped(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    """Batches from a producer process (fork), so generation runs on the other core."""
    if sys.platform != "linux" or os.environ.get("IBCBENCH_NO_FORK"):
        yield from _encoded_batches(params)
        return
    ctx = mp.get_context("fork")
    queue = ctx.Queue(maxsize=_QUEUE_DEPTH)
    proc = ctx.Process(target=_producer, args=(params, queue), daemon=True)
    proc.start()
    try:
        while True:
            item = queue.get()
            if item is None:
                break
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=10)


# ---- writing -----------------------------------------------------------------------------------
def _copy(
    cur: psycopg.Cursor, table: str, payload: bytes | Iterator[bytes], *, into: str | None = None
) -> int:
    columns = [c for c, _ in TABLES[table]]
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(into or table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    written = 0
    with cur.copy(stmt) as copy:
        if isinstance(payload, bytes):
            for i in range(0, len(payload), COPY_CHUNK):
                copy.write(payload[i : i + COPY_CHUNK])
            written = len(payload)
        else:
            for chunk in payload:
                copy.write(chunk)
                written += len(chunk)
    return written


def _upsert_derived(cur: psycopg.Cursor, table: str, payload: bytes | Iterator[bytes]) -> int:
    """COPY into a temp table, then merge on the natural key: counts add up (a day split across two
    spans), rates and averages are recomputed, distinct counts keep the larger value."""
    temp = f"_load_{table}"
    cols = [c for c, _ in TABLES[table]]
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(temp),
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.Identifier(table),
        )
    )
    written = _copy(cur, table, payload, into=temp)
    keys = DERIVED_KEYS[table]
    merge = _MERGE[table]
    cur.execute(
        sql.SQL(
            "INSERT INTO {t} ({cols}) SELECT {cols} FROM {tmp} ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        ).format(
            t=sql.Identifier(table),
            cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
            tmp=sql.Identifier(temp),
            keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
            sets=sql.SQL(merge),
        )
    )
    return written


_MERGE = {
    "network_stats": """
        total_packets = network_stats.total_packets + EXCLUDED.total_packets,
        successful_packets = network_stats.successful_packets + EXCLUDED.successful_packets,
        failed_packets = network_stats.failed_packets + EXCLUDED.failed_packets,
        success_rate = round(100.0 * (network_stats.successful_packets + EXCLUDED.successful_packets)
            / nullif(network_stats.successful_packets + EXCLUDED.successful_packets
                     + network_stats.failed_packets + EXCLUDED.failed_packets, 0), 2),
        total_volume_usd = network_stats.total_volume_usd + EXCLUDED.total_volume_usd,
        avg_clear_time_seconds = (coalesce(network_stats.avg_clear_time_seconds, 0) * network_stats.total_packets
            + coalesce(EXCLUDED.avg_clear_time_seconds, 0) * EXCLUDED.total_packets)
            / nullif(network_stats.total_packets + EXCLUDED.total_packets, 0),
        active_wallets = greatest(network_stats.active_wallets, EXCLUDED.active_wallets),
        active_channels = greatest(network_stats.active_channels, EXCLUDED.active_channels)""",
    "channel_performance": """
        packets_sent = EXCLUDED.packets_sent, packets_acknowledged = EXCLUDED.packets_acknowledged,
        packets_failed = EXCLUDED.packets_failed, packets_timed_out = EXCLUDED.packets_timed_out,
        packets_pending = EXCLUDED.packets_pending, avg_clear_time_seconds = EXCLUDED.avg_clear_time_seconds,
        p95_clear_time_seconds = EXCLUDED.p95_clear_time_seconds, success_rate = EXCLUDED.success_rate,
        congestion_score = EXCLUDED.congestion_score, active_relayers = EXCLUDED.active_relayers""",
    "relayer_performance": """
        packets_relayed = relayer_performance.packets_relayed + EXCLUDED.packets_relayed,
        frontrun_wins = relayer_performance.frontrun_wins + EXCLUDED.frontrun_wins,
        frontrun_losses = relayer_performance.frontrun_losses + EXCLUDED.frontrun_losses,
        fees_earned_usd = relayer_performance.fees_earned_usd + EXCLUDED.fees_earned_usd,
        gas_spent_usd = relayer_performance.gas_spent_usd + EXCLUDED.gas_spent_usd,
        avg_relay_time_seconds = (coalesce(relayer_performance.avg_relay_time_seconds, 0) * relayer_performance.packets_relayed
            + coalesce(EXCLUDED.avg_relay_time_seconds, 0) * EXCLUDED.packets_relayed)
            / nullif(relayer_performance.packets_relayed + EXCLUDED.packets_relayed, 0),
        channels_served = greatest(relayer_performance.channels_served, EXCLUDED.channels_served),
        reputation_score = round((relayer_performance.reputation_score * relayer_performance.packets_relayed
            + EXCLUDED.reputation_score * EXCLUDED.packets_relayed)
            / nullif(relayer_performance.packets_relayed + EXCLUDED.packets_relayed, 0), 2)""",
}


def _progress(total: int, quiet: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit=" rows", unit_scale=True, desc=desc, disable=quiet or not sys.stderr.isatty(),
        smoothing=0.1, dynamic_ncols=True,
    )  # fmt: skip


def _record(
    cur: psycopg.Cursor,
    manifest: dict[str, Any],
    span_start: datetime,
    span_end: str,
    first_id: int,
    last_id: int,
    elapsed: float,
) -> None:
    cur.execute(
        "INSERT INTO ibcbench_loads (seed, scale, span_start, span_end, first_packet_id, last_packet_id, rows,"
        " checksums, params, elapsed_s) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            manifest["seed"], manifest["scale"], span_start, span_end, first_id, last_id,
            json.dumps(manifest["rows"]), json.dumps(manifest["checksums"], sort_keys=True),
            json.dumps(manifest["params"], default=str), elapsed,
        ),
    )  # fmt: skip


def load_dataset(
    dsn: str | None, source: GenerationParams | Path | str, *, quiet: bool = False
) -> LoadResult:
    """Load a generated folder, or generate ``GenerationParams`` and load them overlapped."""
    if isinstance(source, GenerationParams):
        return _load_generated(dsn, source, quiet=quiet)
    return _load_folder(dsn, Path(source), quiet=quiet)


def _load_generated(dsn: str | None, params: GenerationParams, *, quiet: bool) -> LoadResult:
    with connect(dsn) as conn:
        check_schema(conn)
        if params.resume is None:
            state = resume_state(conn)
            if state is not None:
                if params.start is not None and params.start <= state.start:  # type: ignore[operator]
                    raise LoadError(
                        f"start {params.start.isoformat()} overlaps the data already loaded (up to "
                        f"{state.start.isoformat()}): drop --start to append after it, or use a fresh database"  # type: ignore[union-attr]
                    )
                params = replace(params, resume=state)
        conn.commit()
        first_id = params.resume.next_packet_id if params.resume else 1
        span_start = params.start_time
        started = time.perf_counter()
        per_table: dict[str, list[float]] = {t: [0, 0, 0.0] for t in TABLES}
        expected = params.total_packets * 2
        manifest: dict[str, Any] = {}
        with conn.cursor() as cur, _progress(expected, quiet, "load") as bar:
            if conn.execute(
                "SELECT 1 FROM ibcbench_loads WHERE span_start <= %s AND span_end > %s",
                (span_start, span_start),
            ).fetchone():
                raise LoadError(
                    f"a loaded span already covers {span_start.isoformat()}: use a fresh database"
                )
            for item in _overlapped(params):
                if isinstance(item, dict):
                    manifest = item
                    continue
                t0 = time.perf_counter()
                if item.table in FACT_TABLES:
                    written = _copy(cur, item.table, item.payload)
                else:
                    written = _upsert_derived(cur, item.table, item.payload)
                acc = per_table[item.table]
                acc[0] += item.rows
                acc[1] += written
                acc[2] += time.perf_counter() - t0
                if item.table in FACT_TABLES:
                    bar.update(item.rows)
            elapsed = time.perf_counter() - started
            _record(
                cur,
                manifest,
                span_start,
                manifest["span_end"],
                first_id,
                manifest["next_packet_id"] - 1,
                elapsed,
            )
        conn.commit()
    tables = [TableLoad(t, int(v[0]), int(v[1]), v[2]) for t, v in per_table.items()]
    return LoadResult(
        tables, elapsed, manifest, span_start, datetime.fromisoformat(manifest["span_end"])
    )


# ---- folders (TSBS-style phases) -----------------------------------------------------------------
def generate_dataset(
    params: GenerationParams, out_dir: Path | str, *, quiet: bool = False
) -> GenerateResult:
    """Write one binary COPY file per table and ``manifest.json``; the same params give the same bytes."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise LoadError(
            f"{out} is not empty: choose a new folder (the kit never overwrites files it did not write)"
        )
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    handles = {t: open(out / f"{t}.pgcopy", "wb") for t in TABLES}  # noqa: SIM115
    try:
        for h in handles.values():
            h.write(HEADER)
        manifest: dict[str, Any] = {}
        with _progress(params.total_packets * 2, quiet, "generate") as bar:
            for item in _encoded_batches(params):
                if isinstance(item, dict):
                    manifest = item
                    continue
                handles[item.table].write(item.payload[len(HEADER) : -len(TRAILER)])
                if item.table in FACT_TABLES:
                    bar.update(item.rows)
        for h in handles.values():
            h.write(TRAILER)
    finally:
        for h in handles.values():
            h.close()
    files = {}
    for t in TABLES:
        path = out / f"{t}.pgcopy"
        files[t] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest["files"] = files
    manifest["span_start"] = params.start_time.isoformat()
    manifest["first_packet_id"] = params.resume.next_packet_id if params.resume else 1
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return GenerateResult(
        out, manifest, time.perf_counter() - started, {t: f["bytes"] for t, f in files.items()}
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(COPY_CHUNK), b"")


def _load_folder(dsn: str | None, folder: Path, *, quiet: bool) -> LoadResult:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError as exc:
        raise LoadError(
            f"{folder} holds no manifest.json: generate it with `ibcbench generate --out {folder}`"
        ) from exc
    for t in TABLES:
        if not (folder / f"{t}.pgcopy").exists():
            raise LoadError(f"{folder}/{t}.pgcopy is missing: generate the folder again")
    span_start = datetime.fromisoformat(manifest["span_start"])
    with connect(dsn) as conn:
        check_schema(conn)
        with conn.cursor() as cur:
            if _refuse_overlap(
                conn, span_start, int(manifest["first_packet_id"]), manifest["checksums"]
            ):
                conn.rollback()
                return LoadResult([], 0.0, manifest, span_start, None, skipped=True)
            started = time.perf_counter()
            tables = []
            with _progress(sum(manifest["rows"][t] for t in FACT_TABLES), quiet, "load") as bar:
                for t in TABLES:
                    t0 = time.perf_counter()
                    path = folder / f"{t}.pgcopy"
                    if t in FACT_TABLES:
                        written = _copy(cur, t, _file_chunks(path))
                        bar.update(manifest["rows"][t])
                    else:
                        written = _upsert_derived(cur, t, _file_chunks(path))
                    tables.append(
                        TableLoad(t, int(manifest["rows"][t]), written, time.perf_counter() - t0)
                    )
            elapsed = time.perf_counter() - started
            _record(cur, manifest, span_start, manifest["span_end"], int(manifest["first_packet_id"]),
                    int(manifest["next_packet_id"]) - 1, elapsed)  # fmt: skip
        conn.commit()
    return LoadResult(
        tables, elapsed, manifest, span_start, datetime.fromisoformat(manifest["span_end"])
    )
