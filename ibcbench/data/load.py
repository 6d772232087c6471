"""Loading generated traffic: binary COPY, overlapped with generation, one transaction per span.

Two ways in, TSBS-style:
- ``generate_dataset(params, out_dir)`` writes one binary COPY file per table plus ``manifest.json``,
  and ``load_dataset(dsn, out_dir)`` streams those files (load timings never include generation);
- ``load_dataset(dsn, params)`` generates and loads at once: a producer (a thread by default, or a
  forked process with ``overlap="process"``) generates and encodes batches into a bounded queue while
  this connection COPYs them, so the server is not waiting on Python.

A span is loaded in one transaction and recorded in ``ibcbench_loads``: a failed load leaves nothing
behind, the same folder is never loaded twice, and a span that overlaps the data is refused. Loading
``GenerationParams`` into a database that already holds packets continues it: the next span starts
after the newest packet, with the next ids and gapless sequences per channel. Loads into one
database are serialized by an advisory lock, so two at once cannot both continue the same data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import pickle
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from data_gen import GenerationParams, ResumeState, generate
from data_gen.tables import DERIVED_KEYS, FACT_TABLES, TABLES
from ibcbench.data.journal import LoadJournal, SettledAttempt
from ibcbench.data.pgcopy import HEADER, TRAILER, encode_rows_view
from ibcbench.data.space import disk_full_message, output_folder, reclaim_space
from ibcbench.db import connect
from ibcbench.errors import ConfigError, Interrupted, LoadError

COPY_CHUNK = 8 * 1024 * 1024
OVERLAP_MODES = ("process", "thread", "none")
_PIPE_BYTES = 1 << 20
_ENCODE_ROWS = 200_000  # rows encoded at once; more only adds peak memory
_QUEUE_DEPTH = 4  # encoded batches waiting for COPY (about 40 MB each at the default batch size)
_LOAD_LOCK = 0x1BCBE4C0  # pg_advisory_xact_lock key: one load at a time per database


@dataclass(frozen=True)
class TableLoad:
    """One table's share of a load: rows, COPY bytes, and the seconds spent in its COPYs."""

    table: str
    rows: int
    bytes: int
    seconds: float


@dataclass(frozen=True)
class LoadResult:
    """What one load did: rows and bytes per table, time, and the generator's manifest.

    ``elapsed_s`` runs from the first COPY to the end of COMMIT (``ibcbench_loads.elapsed_s``, written
    inside the transaction, stops before COMMIT)."""

    tables: list[TableLoad]
    elapsed_s: float
    manifest: dict[str, Any]
    span_start: datetime | None = None
    span_end: datetime | None = None
    skipped: bool = False
    #: earlier attempts this load found cut off (killed) and settled in the load journal
    settled: tuple[SettledAttempt, ...] = ()
    #: this load's row in ibcbench_load_attempts
    attempt_id: int | None = None

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
        """One row per table plus the wall-clock total: rows, MB, seconds, rows/s, MB/s."""
        records = [(t.table, t.rows, t.bytes, t.seconds) for t in self.tables]
        records.append(("total (wall)", self.rows, self.bytes, self.elapsed_s))
        frame = pd.DataFrame(records, columns=["table", "rows", "bytes", "seconds"])
        seconds = frame["seconds"].where(frame["seconds"] > 0)
        return pd.DataFrame(
            {
                "table": frame["table"],
                "rows": frame["rows"],
                "MB": (frame["bytes"] / 1e6).round(1),
                "seconds": frame["seconds"].round(2),
                "rows_per_s": (frame["rows"] / seconds).round(0).astype("Int64"),
                "MB_per_s": (frame["bytes"] / 1e6 / seconds).round(1),
            }
        )


@dataclass(frozen=True)
class GenerateResult:
    """A generated folder: its manifest, the time it took, and each table file's size in bytes."""

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
    from ibcbench.migrate import Migrator

    version, dirty = Migrator._read_version(conn)
    if dirty:
        raise LoadError(
            f"the schema of database {conn.info.dbname!r} is dirty at version {version} (a migration "
            "failed): nothing was loaded; run `ibcbench schema up` to see which version to force"
        )
    for table, columns in TABLES.items():
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (table,),
        ).fetchall()
        if not rows:
            raise LoadError(f"table {table} does not exist: run `ibcbench schema up` first")
        actual = {name: _TYPE_ALIASES.get(t, t or "").replace(", ", ",") for name, t in rows}
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
    for log in ("ibcbench_loads", "ibcbench_load_attempts"):
        if conn.execute("SELECT to_regclass(%s)", (log,)).fetchone()[0] is None:  # type: ignore[index]
            raise LoadError(f"table {log} does not exist: run `ibcbench schema up` first")


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


def _lock(conn: psycopg.Connection) -> None:
    """Serialize loads into this database until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))


def _check_span(conn: psycopg.Connection, span_start: datetime, first_packet_id: int) -> None:
    """Refuse a span that starts inside the data already loaded, or reuses its packet ids."""
    newest, max_id = conn.execute("SELECT max(created_at), max(id) FROM packet_flow").fetchone()  # type: ignore[misc]
    if newest is not None and span_start <= newest:
        raise LoadError(
            f"the data to load starts at {span_start.isoformat()} but the database already holds packets "
            f"up to {newest.isoformat()}: load GenerationParams to continue it (`ibcbench seed` appends), "
            "or use a fresh database"
        )
    if max_id is not None and first_packet_id <= max_id:
        raise LoadError(
            f"the data to load starts at packet id {first_packet_id} but the database already holds ids up "
            f"to {max_id}: generate it as a continuation (`ibcbench generate --dsn ...`) or use a fresh database"
        )
    if conn.execute(
        "SELECT 1 FROM ibcbench_loads WHERE span_start <= %s AND span_end > %s",
        (span_start, span_start),
    ).fetchone():
        raise LoadError(
            f"a loaded span already covers {span_start.isoformat()}: use a fresh database"
        )


# ---- generation into batches of COPY tuples ----------------------------------------------------
@dataclass(frozen=True)
class EncodedBatch:
    """One generated batch as binary COPY tuples (no header or trailer)."""

    table: str
    rows: int
    body: bytes | memoryview


def encoded_batches(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    """Generate and encode; the last item is the generator's manifest (with span end and next ids)."""
    gen = generate(params)
    for batch in gen:
        # a span's derived tables come in one batch (565k channel hours for 10M packets): encode
        # them in slices so peak memory stays that of a packet batch
        for lo in range(0, max(batch.rows, 1), _ENCODE_ROWS):
            hi = min(lo + _ENCODE_ROWS, batch.rows)
            columns = batch.columns if hi - lo == batch.rows else _rows(batch.columns, lo, hi)
            yield EncodedBatch(
                batch.table, hi - lo, encode_rows_view(TABLES[batch.table], columns, hi - lo)
            )
    manifest = gen.manifest()
    state = gen.next_state
    assert state is not None and state.start is not None
    manifest["span_start"] = params.start_time.isoformat()
    manifest["span_end"] = state.start.isoformat()
    manifest["first_packet_id"] = params.resume.next_packet_id if params.resume else 1
    manifest["next_packet_id"] = state.next_packet_id
    yield manifest


def _rows(columns: Mapping[str, Any], lo: int, hi: int) -> dict[str, Any]:
    """Rows lo..hi of a batch's columns (numpy arrays, Categoricals and ScaledInts all slice)."""
    return {name: values[lo:hi] for name, values in columns.items()}


class _Stopped(Exception):
    """The loading side stopped reading: the filling thread ends quietly."""


def _produce(params: GenerationParams, put: Callable[[Any], None]) -> None:
    """Generate into ``put``; a failure travels as a LoadError, the end as None."""
    try:
        for item in encoded_batches(params):
            put(item)
    except _Stopped:
        return
    except BaseException as exc:  # handed to the loading side, which raises it
        put(LoadError(f"generation failed: {type(exc).__name__}: {exc}"))
        return
    put(None)


def _queued(fill: Callable[[Callable[[Any], None]], None]) -> Generator[Any, None, None]:
    """Run ``fill(put)`` in a thread feeding a bounded queue; yield what it puts until None.

    An exception put in the queue is raised here. When this side stops early the thread's next
    ``put`` raises _Stopped, so it never blocks forever.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_DEPTH)
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def run() -> None:
        with contextlib.suppress(_Stopped):
            fill(put)

    worker = threading.Thread(target=run, name="ibcbench-producer", daemon=True)
    worker.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)


def _from_thread(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    """Batches from a producer thread (numpy and Arrow release the GIL for much of the work)."""
    return _queued(lambda put: _produce(params, put))


def _from_process(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    """Batches from a forked producer process: generation runs free of this process's GIL.

    The bodies cross a pipe as raw bytes (no pickling); the manifest, an error and the end travel
    as small pickled frames. A thread here reads the pipe into the bounded queue, so the producer
    keeps generating while this side COPYs.
    """
    import fcntl  # Linux only, like fork

    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # a larger pipe: fewer wake-ups
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    proc = mp.get_context("fork").Process(
        target=_pipe_producer,
        args=(params, read_fd, write_fd),
        daemon=True,
        name="ibcbench-generate",
    )
    proc.start()
    os.close(write_fd)
    pipe = open(read_fd, "rb", buffering=0)  # noqa: SIM115 - closed below, after the reader
    items = _queued(lambda put: _read_frames(pipe, put))
    try:
        for item in items:  # noqa: UP028 - the producer must end before the reader is joined
            yield item
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=10)
        items.close()
        pipe.close()


def _pipe_producer(params: GenerationParams, read_fd: int, write_fd: int) -> None:
    """The forked process: generate, encode and write frames to the pipe."""
    os.close(read_fd)

    def send(data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]

    def put(item: Any) -> None:
        if isinstance(item, EncodedBatch):
            header = pickle.dumps(("batch", item.table, item.rows, len(item.body)))
        else:
            header = pickle.dumps(("item", item))
        send(len(header).to_bytes(4, "big") + header)
        if isinstance(item, EncodedBatch):
            send(item.body)

    try:
        _produce(params, put)
    except BrokenPipeError:  # the loading side stopped reading
        pass
    finally:
        os.close(write_fd)


def _read_frames(pipe: Any, put: Callable[[Any], None]) -> None:
    """Turn the producer's frames back into batches, the manifest, an error or the end."""
    try:
        while True:
            header = pickle.loads(_read_exact(pipe, int.from_bytes(_read_exact(pipe, 4), "big")))
            if header[0] == "batch":
                _, table, rows, size = header
                put(EncodedBatch(table, rows, _read_exact(pipe, size)))
            else:
                put(header[1])
                if header[1] is None or isinstance(header[1], Exception):
                    return
    except (OSError, ValueError, EOFError) as exc:
        put(LoadError(f"the generating process ended early ({exc}): try overlap='thread'"))


def _read_exact(pipe: Any, size: int) -> memoryview:
    view = memoryview(bytearray(size))
    got = 0
    while got < size:
        n = pipe.readinto(view[got:])
        if not n:
            raise EOFError(f"pipe closed after {got} of {size} bytes")
        got += n
    return view


def overlapped_batches(
    params: GenerationParams, overlap: str = "thread"
) -> Iterator[EncodedBatch | dict[str, Any]]:
    """``encoded_batches(params)`` produced ahead of the consumer by a process, a thread, or inline."""
    if overlap not in OVERLAP_MODES:
        raise ConfigError(f"overlap must be one of {', '.join(OVERLAP_MODES)}, not {overlap!r}")
    if overlap == "process" and sys.platform != "linux":
        overlap = "thread"  # fork is only dependable on Linux
    if overlap == "process":
        return _from_process(params)
    if overlap == "thread":
        return _from_thread(params)
    return _inline(params)


def _inline(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    try:
        yield from encoded_batches(params)
    except Exception as exc:  # the same error as from a producer thread or process
        raise LoadError(f"generation failed: {type(exc).__name__}: {exc}") from exc


# ---- writing -----------------------------------------------------------------------------------
def copy_stream(
    cur: psycopg.Cursor,
    table: str,
    stream: Iterable[bytes | memoryview],
    *,
    into: str | None = None,
) -> int:
    """COPY a complete binary stream (header, tuples, trailer) into ``table``'s generated columns."""
    columns = [c for c, _ in TABLES[table]]
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(into or table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    written = 0
    with cur.copy(stmt) as copy:
        for chunk in stream:
            copy.write(chunk)  # psycopg slices a memoryview for libpq without copying it
            written += len(chunk)
    return written


def batch_stream(body: bytes | memoryview) -> tuple[bytes, memoryview, bytes]:
    """The complete COPY stream of one batch's tuples."""
    return (HEADER, memoryview(body), TRAILER)


def _upsert_derived(
    cur: psycopg.Cursor, table: str, stream: Iterable[bytes | memoryview]
) -> tuple[int, int]:
    """COPY into a temp table, then merge on the natural key: counts add up (a day split across two
    spans), rates and averages are recomputed, distinct counts keep the larger value. Returns the
    bytes written and the rows the COPY took."""
    temp = f"_load_{table}"
    cols = [c for c, _ in TABLES[table]]
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(temp),
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.Identifier(table),
        )
    )
    written = copy_stream(cur, table, stream, into=temp)
    copied = cur.rowcount
    keys = DERIVED_KEYS[table]
    cur.execute(
        sql.SQL(
            "INSERT INTO {t} ({cols}) SELECT {cols} FROM {tmp} ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        ).format(
            t=sql.Identifier(table),
            cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
            tmp=sql.Identifier(temp),
            keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
            sets=sql.SQL(_MERGE[table]),
        )
    )
    cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(temp)))
    return written, copied


_MERGE = {
    "network_stats": """
        total_packets = network_stats.total_packets + EXCLUDED.total_packets,
        successful_packets = network_stats.successful_packets + EXCLUDED.successful_packets,
        failed_packets = network_stats.failed_packets + EXCLUDED.failed_packets,
        success_rate = round(100.0 * (network_stats.successful_packets + EXCLUDED.successful_packets)
            / nullif(network_stats.successful_packets + EXCLUDED.successful_packets
                     + network_stats.failed_packets + EXCLUDED.failed_packets, 0), 2),
        total_volume_usd = network_stats.total_volume_usd + EXCLUDED.total_volume_usd,
        avg_clear_time_seconds = (coalesce(network_stats.avg_clear_time_seconds, 0) * network_stats.successful_packets
            + coalesce(EXCLUDED.avg_clear_time_seconds, 0) * EXCLUDED.successful_packets)
            / nullif(network_stats.successful_packets + EXCLUDED.successful_packets, 0),
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


def _progress(total: int | None, quiet: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit=" rows",
        unit_scale=True,
        desc=desc,
        disable=quiet or not sys.stderr.isatty(),
        smoothing=0.1,
        dynamic_ncols=True,
    )


def _check_incident_table(conn: psycopg.Connection, wanted: bool) -> None:
    """Data with planted incidents needs the table that keeps them (migration 000012)."""
    if wanted and conn.execute("SELECT to_regclass('ibcbench_incidents')").fetchone()[0] is None:  # type: ignore[index]
        raise LoadError(
            "table ibcbench_incidents does not exist (the data has planted incidents): run "
            "`ibcbench schema up` first"
        )


#: the manifest's fields of a planted incident, as ibcbench_incidents stores them (with its times)
INCIDENT_FIELDS = (
    "kind",
    "chain_id",
    "channel_id",
    "counterparty_chain_id",
    "counterparty_channel_id",
    "relayer",
)


def _record(
    cur: psycopg.Cursor, manifest: dict[str, Any], elapsed_s: float, attempt_id: int | None = None
) -> None:
    """The span in ibcbench_loads, and its planted incidents (the manifest's list) in ibcbench_incidents."""
    cur.execute(
        "INSERT INTO ibcbench_loads (seed, scale, span_start, span_end, first_packet_id, last_packet_id, rows,"
        " checksums, params, elapsed_s, attempt_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            manifest["seed"],
            manifest["scale"],
            manifest["span_start"],
            manifest["span_end"],
            manifest["first_packet_id"],
            manifest["next_packet_id"] - 1,
            json.dumps(manifest["rows"]),
            json.dumps(manifest["checksums"], sort_keys=True),
            json.dumps(manifest["params"], default=str),
            elapsed_s,
            attempt_id,
        ),
    )
    load_id = cur.fetchone()[0]  # type: ignore[index]
    incidents = manifest.get("incidents") or []
    if incidents:
        cur.executemany(
            "INSERT INTO ibcbench_incidents (load_id, kind, chain_id, channel_id, counterparty_chain_id,"
            " counterparty_channel_id, relayer, started_at, ended_at, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    load_id,
                    *(i.get(c) for c in INCIDENT_FIELDS),
                    i["start"],
                    i["end"],
                    json.dumps(
                        {k: v for k, v in i.items() if k not in (*INCIDENT_FIELDS, "start", "end")}
                    ),
                )
                for i in incidents
            ],
        )


def load_dataset(
    dsn: str | None,
    source: GenerationParams | Path | str,
    *,
    quiet: bool = False,
    overlap: str = "thread",
) -> LoadResult:
    """Load a generated folder, or generate ``GenerationParams`` and load them overlapped.

    Everything goes in one transaction, recorded in ``ibcbench_loads``. Parameters without an
    explicit ``resume`` continue the data already in the database. ``overlap`` says what produces
    the batches while this process COPYs them: a forked ``"process"``, a ``"thread"``, or ``"none"``.
    """
    if isinstance(source, GenerationParams):
        if overlap not in OVERLAP_MODES:
            raise ConfigError(f"overlap must be one of {', '.join(OVERLAP_MODES)}, not {overlap!r}")
        return _load_generated(dsn, source, quiet=quiet, overlap=overlap)
    return _load_folder(dsn, Path(source), quiet=quiet)


def _continue(conn: psycopg.Connection, params: GenerationParams) -> GenerationParams:
    """``params`` resumed after the data already loaded (unchanged into an empty database)."""
    if params.resume is not None:
        return params
    state = resume_state(conn)
    if state is None:
        return params
    if params.start is not None and params.start <= state.start:  # type: ignore[operator]
        raise LoadError(
            f"start {params.start.isoformat()} overlaps the data already loaded (up to "
            f"{state.start.isoformat()}): drop --start to append after it, or use a fresh database"  # type: ignore[union-attr]
        )
    return replace(params, resume=state)


class _Attempt:
    """One load attempt: its connection, its journal row, and one line for whatever stops it.

    A lost connection, a server error, Ctrl-C or a refusal ends the attempt in the journal
    (``failed`` with the line, ``interrupted``) and reaches the caller as one line: a LoadError, or
    an :class:`~ibcbench.errors.Interrupted` (exit 130) that says nothing was committed. The load's
    connection is closed, not rolled back, when anything goes wrong: the server drops the open
    transaction, and a COPY stuck on a dead socket cannot hang the rollback.
    """

    def __init__(self, dsn: str | None, source: str, *, again: str) -> None:
        self.dsn = dsn
        self.source = source
        self.again = again  # what to do next, after "nothing was committed; "
        self.journal: LoadJournal | None = None
        self.phase = "loading"  # then "committing", "committed"

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        conn = connect(self.dsn)
        try:
            with conn:
                try:
                    yield conn
                except BaseException:
                    conn.close()  # the server rolls the open transaction back
                    raise
        except KeyboardInterrupt:
            line = self._interrupted()
            self._end("interrupted", line)
            raise Interrupted(line) from None
        except LoadError as exc:
            self._end("failed", str(exc))
            raise
        except psycopg.Error as exc:
            error = self._server_error(exc, conn)
            self._end("failed", str(error))
            raise error from exc
        except BaseException as exc:
            self._end("failed", f"{type(exc).__name__}: {_first_line(exc)}")
            raise

    def start_journal(self, conn: psycopg.Connection, checksums: dict[str, Any] | None) -> None:
        self.journal = LoadJournal.start(self.dsn, conn, self.source, checksums)

    def commit(self, conn: psycopg.Connection) -> None:
        self.phase = "committing"
        conn.commit()
        self.phase = "committed"

    def _end(self, status: str, message: str | None, checksums: Any = None) -> None:
        if self.journal is not None:
            # what stops it after COMMIT returned does not undo the load
            self.journal.end(
                "committed" if self.phase == "committed" else status, message, checksums
            )

    def end(self, status: str, checksums: dict[str, Any] | None = None) -> None:
        self._end(status, None, checksums)

    @property
    def attempt_id(self) -> int | None:
        return self.journal.attempt_id if self.journal else None

    @property
    def settled(self) -> tuple[SettledAttempt, ...]:
        return tuple(self.journal.settled) if self.journal else ()

    def _kept(self, *, unknown: bool = True) -> str:
        """What was kept; ``unknown``: the stop came without the server's answer to COMMIT."""
        if self.phase == "committed":
            return "the load was committed before that"
        if self.phase == "committing" and unknown:
            return (
                "it happened during COMMIT, so the load may have been committed: see "
                f"ibcbench_loads, then {self.again}"
            )
        return f"nothing was committed; {self.again}"

    def _interrupted(self) -> str:
        return f"the load was interrupted: {self._kept()}"

    def _server_error(self, exc: psycopg.Error, conn: psycopg.Connection) -> LoadError:
        detail = _first_line(exc)
        if isinstance(exc, psycopg.errors.DiskFull):  # the connection is closed: rolled back
            return LoadError(disk_full_message(self.dsn, exc, reclaimed=reclaim_space(self.dsn)))
        if conn.broken or isinstance(exc, psycopg.InterfaceError):
            return LoadError(
                f"the connection to the server was lost during the load ({detail}): {self._kept()}"
            )
        name = type(exc).__name__
        if exc.sqlstate and exc.sqlstate.startswith("22"):  # a data exception: the input
            return LoadError(
                f"the server refused the data ({name}: {detail}): nothing was committed; "
                "the folder or generator output is damaged: generate it again"
            )
        # the server answered (a refused COMMIT rolls back)
        return LoadError(
            f"the load failed on the server ({name}: {detail}): {self._kept(unknown=False)}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _seed_source(params: GenerationParams) -> str:
    sizes = "".join(
        f", {name} {value}"
        for name, value in (("packets", params.packets), ("days", params.days))
        if value is not None
    )
    return f"generated: seed {params.seed}, scale {params.scale}{sizes}"


def _load_generated(
    dsn: str | None, params: GenerationParams, *, quiet: bool, overlap: str
) -> LoadResult:
    per_table = {t: [0, 0, 0.0] for t in TABLES}  # rows, bytes, seconds
    manifest: dict[str, Any] = {}
    attempt = _Attempt(
        dsn, _seed_source(params), again="run the seed again (it continues the data committed)"
    )
    with attempt.connection() as conn, conn.cursor() as cur:
        check_schema(conn)
        _check_incident_table(conn, params.incidents)
        attempt.start_journal(conn, None)
        _lock(conn)
        params = _continue(conn, params)
        _check_span(conn, params.start_time, params.resume.next_packet_id if params.resume else 1)
        started = time.perf_counter()
        with _progress(None, quiet, "load") as bar:
            for item in overlapped_batches(params, overlap):
                if isinstance(item, dict):
                    manifest = item
                    continue
                t0 = time.perf_counter()
                if item.table in FACT_TABLES:
                    written = copy_stream(cur, item.table, batch_stream(item.body))
                    bar.update(item.rows)
                else:
                    written, _ = _upsert_derived(cur, item.table, batch_stream(item.body))
                acc = per_table[item.table]
                acc[0] += item.rows
                acc[1] += written
                acc[2] += time.perf_counter() - t0
            _record(cur, manifest, time.perf_counter() - started, attempt.attempt_id)
        attempt.commit(conn)
        elapsed = time.perf_counter() - started  # the load's clock includes COMMIT
    attempt.end("committed", manifest.get("checksums"))
    tables = [TableLoad(t, int(v[0]), int(v[1]), float(v[2])) for t, v in per_table.items()]
    return LoadResult(
        tables,
        elapsed,
        manifest,
        datetime.fromisoformat(manifest["span_start"]),
        datetime.fromisoformat(manifest["span_end"]),
        settled=attempt.settled,
        attempt_id=attempt.attempt_id,
    )


# ---- folders (TSBS-style phases) -----------------------------------------------------------------
def generate_dataset(
    params: GenerationParams, out_dir: Path | str, *, quiet: bool = False
) -> GenerateResult:
    """Write one binary COPY file per table and ``manifest.json``; the same params give the same bytes.

    ``params.resume`` (see :func:`resume_state`) makes the folder a continuation of a database.
    """
    out = Path(out_dir)
    started = time.perf_counter()
    manifest: dict[str, Any] = {}
    # a full disk or an interrupt removes what was written (one LoadError line for an OSError)
    with output_folder(out) as folder:
        handles = {t: folder.open(f"{t}.pgcopy") for t in TABLES}
        for h in handles.values():
            h.write(HEADER)
        with _progress(None, quiet, "generate") as bar:
            for item in encoded_batches(params):
                if isinstance(item, dict):
                    manifest = item
                    continue
                handles[item.table].write(item.body)
                if item.table in FACT_TABLES:
                    bar.update(item.rows)
        for h in handles.values():
            h.write(TRAILER)
        folder.close()
        files: dict[str, dict[str, Any]] = {}
        for t in TABLES:
            path = out / f"{t}.pgcopy"
            files[t] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        manifest["files"] = files
        folder.write_text("manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return GenerateResult(
        out, manifest, time.perf_counter() - started, {t: f["bytes"] for t, f in files.items()}
    )


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, as a generated folder's manifest records it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_stream(path: Path, digest: Any = None) -> Iterator[memoryview]:
    """A file in COPY_CHUNK pieces, read into one reused buffer (libpq copies each piece at once);
    ``digest`` (a hashlib object) is updated with each piece as it is handed out."""
    buffer = bytearray(COPY_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            if digest is not None:
                digest.update(view[:n])
            yield view[:n]


def _check_streamed(path: Path, entry: dict[str, Any], digest: Any, streamed: int) -> None:
    """The bytes a COPY sent against the manifest's size and SHA-256 (the file may have changed
    since :func:`read_manifest` checked it): a mismatch is a LoadError, raised before COMMIT."""
    if streamed != entry["bytes"] or digest.hexdigest() != entry["sha256"]:
        raise LoadError(
            f"{path} changed while it was being loaded (the bytes sent to the server do not match "
            "its manifest's SHA-256): nothing was committed; put back the folder as generated (or "
            "generate it again), then load it again"
        )


#: what a folder's manifest must hold for a load, and the type of each
_MANIFEST_KEYS: dict[str, type | tuple[type, ...]] = {
    "seed": int,
    "scale": str,
    "span_start": str,
    "span_end": str,
    "first_packet_id": int,
    "next_packet_id": int,
    "rows": dict,
    "checksums": dict,
    "params": dict,
    "files": dict,
}


def read_manifest(folder: Path | str) -> dict[str, Any]:
    """A generated folder's manifest, after checking it is whole and every table file is the one it
    names: there, of its size and SHA-256, a binary COPY stream. Every problem is one LoadError,
    raised before any database work."""
    folder = Path(folder)
    again = "generate it again with `ibcbench generate --out NEW_FOLDER`"
    if not folder.is_dir():
        raise LoadError(
            f"{folder} is not a folder: generate one with `ibcbench generate --out {folder}`"
        )
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise LoadError(
            f"{folder} holds no manifest.json: generate it with `ibcbench generate --out {folder}`"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(f"{path} is not a JSON manifest ({_first_line(exc)}): {again}") from exc
    if not isinstance(manifest, dict):
        raise LoadError(f"{path} is not a manifest (a JSON object): {again}")
    for key, kind in _MANIFEST_KEYS.items():
        if key not in manifest:
            raise LoadError(f"{path} has no {key!r}: the folder is damaged; {again}")
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            raise LoadError(
                f"{path} has a {key!r} of the wrong type: the folder is damaged; {again}"
            )
    for key in ("span_start", "span_end"):
        try:
            datetime.fromisoformat(manifest[key])
        except ValueError as exc:
            raise LoadError(f"{path} has a {key!r} that is not a time: {again}") from exc
    for t in TABLES:
        rows = manifest["rows"].get(t)
        entry = manifest["files"].get(t)
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise LoadError(f"{path} has no row count for {t}: the folder is damaged; {again}")
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("sha256"), str)
        ):
            raise LoadError(
                f"{path} has no size and SHA-256 for {t}: the folder is damaged; {again}"
            )
    incidents = manifest.get("incidents") or []
    if not isinstance(incidents, list) or not all(
        isinstance(i, dict) and {"kind", "chain_id", "start", "end"} <= i.keys() for i in incidents
    ):
        raise LoadError(f"{path} has a damaged list of incidents: {again}")
    for t in TABLES:
        _check_file(folder / f"{t}.pgcopy", manifest["files"][t], again)
    return manifest


def _check_file(path: Path, entry: dict[str, Any], again: str) -> None:
    """One table file against its manifest entry: there, its size, a COPY stream, its SHA-256."""
    if not path.is_file():
        raise LoadError(f"{path} is missing: generate the folder again")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise LoadError(
            f"{path} has {size} bytes but the manifest says {entry['bytes']}: "
            "the folder is damaged; generate it again"
        )
    with open(path, "rb") as fh:
        head = fh.read(len(HEADER))
        fh.seek(max(size - len(TRAILER), 0))
        tail = fh.read()
    if head != HEADER or tail != TRAILER:
        raise LoadError(f"{path} is not a binary COPY file (no PGCOPY header and trailer): {again}")
    if file_sha256(path) != entry["sha256"]:
        raise LoadError(
            f"{path} is not the file its manifest names (its SHA-256 differs): the folder is "
            f"damaged or was edited; {again}"
        )


def _load_folder(dsn: str | None, folder: Path, *, quiet: bool) -> LoadResult:
    manifest = read_manifest(folder)
    span_start = datetime.fromisoformat(manifest["span_start"])
    span_end = datetime.fromisoformat(manifest["span_end"])
    tables = []
    attempt = _Attempt(
        dsn, f"folder {folder.resolve()}", again=f"run `ibcbench load {folder}` again"
    )
    with attempt.connection() as conn, conn.cursor() as cur:
        check_schema(conn)
        _check_incident_table(conn, bool(manifest.get("incidents")))
        attempt.start_journal(conn, manifest["checksums"])
        _lock(conn)
        if conn.execute(
            "SELECT 1 FROM ibcbench_loads WHERE checksums = %s::jsonb",
            (json.dumps(manifest["checksums"], sort_keys=True),),
        ).fetchone():
            conn.rollback()
            attempt.end("skipped")
            return LoadResult(
                [],
                0.0,
                manifest,
                span_start,
                span_end,
                skipped=True,
                settled=attempt.settled,
                attempt_id=attempt.attempt_id,
            )
        _check_span(conn, span_start, int(manifest["first_packet_id"]))
        started = time.perf_counter()
        with _progress(sum(manifest["rows"][t] for t in FACT_TABLES), quiet, "load") as bar:
            for t in TABLES:
                t0 = time.perf_counter()
                path = folder / f"{t}.pgcopy"
                # the hash is over the bytes sent, not the file as read_manifest saw it
                digest = hashlib.sha256()
                if t in FACT_TABLES:
                    written = copy_stream(cur, t, _file_stream(path, digest))
                    copied = cur.rowcount
                    bar.update(manifest["rows"][t])
                else:
                    written, copied = _upsert_derived(cur, t, _file_stream(path, digest))
                _check_streamed(path, manifest["files"][t], digest, written)
                if copied != manifest["rows"][t]:  # the transaction rolls back
                    raise LoadError(
                        f"the manifest says {manifest['rows'][t]:,} rows for {t} but the file holds "
                        f"{copied:,}: the folder is damaged; generate it again"
                    )
                tables.append(TableLoad(t, copied, written, time.perf_counter() - t0))
        _record(cur, manifest, time.perf_counter() - started, attempt.attempt_id)
        attempt.commit(conn)
        elapsed = time.perf_counter() - started  # the load's clock includes COMMIT
    attempt.end("committed")
    return LoadResult(
        tables,
        elapsed,
        manifest,
        span_start,
        span_end,
        settled=attempt.settled,
        attempt_id=attempt.attempt_id,
    )
