"""The kit's dataset databases on a server, as ``ibcbench db status`` lists them, read only.

Each database named ``ibcbench_<scale>_s<seed>`` is listed with its size, its rows per table (the
five data tables: exact from its marker's clean state, which the build took from ``ibcbench_loads``,
else estimates from the planner's statistics, and said which), packet_flow's chunks and compression,
and its state against the clean state. Nothing is repaired here: each dataset is read in a read-only
session and :func:`~ibcbench.data.datasets.check_dataset` runs without ``repair`` and without a row
count, so the state says whether the indexes match the marker's and what the next run would repair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg

from data_gen.tables import TABLES
from ibcbench.data.datasets import check_dataset, dataset_fingerprint, read_marker
from ibcbench.data.ownership import KIT_MARK
from ibcbench.db import connect, resolve_dsn
from ibcbench.dsn import with_database
from ibcbench.errors import IbcbenchError, first_line
from ibcbench.settings import ServerSettings

#: the name of a dataset database (:func:`~ibcbench.data.datasets.dataset_database_name`)
DATASET_NAME_RE = re.compile(r"^ibcbench_([a-z][a-z0-9]*)_s([0-9]+)$")


@dataclass(frozen=True)
class DatasetSummary:
    """One dataset database as it is now: what ``db status`` prints about it."""

    name: str
    size_bytes: int
    #: 'intact', 'damaged: <what the next run repairs>', 'half-built ...', 'built by other code ...',
    #: 'not the kit's ...', 'unreadable: ...'
    state: str
    scale: str | None = None
    seed: int | None = None
    rows: dict[str, int] = field(default_factory=dict)
    #: whether ``rows`` are the counts the build recorded (else the planner's estimates)
    rows_exact: bool = False
    indexes: int = 0
    #: packet_flow's chunks (None: not a hypertable here), and how many are compressed
    chunks: int | None = None
    compressed_chunks: int = 0
    #: 'off', or 'on (segmentby ..., orderby ...)'; None: not a hypertable
    compression: str | None = None


def list_datasets(
    dsn: str | None = None, settings: ServerSettings | None = None
) -> list[DatasetSummary]:
    """Every dataset database on the server of ``dsn`` (default: as every command resolves it)."""
    base = resolve_dsn(dsn, settings)
    with connect(base, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT datname, shobj_description(oid, 'pg_database'),"
            " CASE WHEN has_database_privilege(datname, 'CONNECT')"
            " THEN pg_database_size(oid) ELSE -1 END"
            " FROM pg_database WHERE datname ~ %s AND datallowconn ORDER BY datname",
            (DATASET_NAME_RE.pattern,),
        ).fetchall()
    return [
        _summary(with_database(base, name), name, comment, int(size))
        for name, comment, size in rows
    ]


def _summary(target: str, name: str, comment: str | None, size: int) -> DatasetSummary:
    try:
        with connect(target, autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = on")
            return _read(conn, name, comment, size)
    except (IbcbenchError, psycopg.Error) as exc:
        return DatasetSummary(name, size, f"unreadable: {first_line(exc, type(exc).__name__)}")


def _read(conn: psycopg.Connection, name: str, comment: str | None, size: int) -> DatasetSummary:
    marker = read_marker(conn)
    state, indexes = _state(conn, marker, comment)
    recorded: dict[str, int] = dict((marker or {}).get("rows") or {})
    exact = bool(recorded) and set(TABLES) <= set(recorded)
    rows = {t: int(recorded[t]) for t in TABLES} if exact else _estimates(conn)
    chunks, compressed, compression = _packet_flow_chunks(conn)
    match = DATASET_NAME_RE.match(name)
    return DatasetSummary(
        name=name,
        size_bytes=size,
        state=state,
        scale=match.group(1) if match else None,
        seed=int(match.group(2)) if match else None,
        rows=rows,
        rows_exact=exact,
        indexes=indexes,
        chunks=chunks,
        compressed_chunks=compressed,
        compression=compression,
    )


def _state(
    conn: psycopg.Connection, marker: dict[str, Any] | None, comment: str | None
) -> tuple[str, int]:
    """The dataset's state and its index count, without changing it."""
    if marker is None:
        if comment == KIT_MARK:
            return "half-built (no marker): the next run drops it and builds it again", 0
        return "not the kit's (no marker, no mark): runs refuse it; nothing is dropped", 0
    if marker["status"] != "complete":
        what = (
            "built by older code"
            if marker["status"] == "old"
            else f"half-built (marker {marker['status']})"
        )
        return f"{what}: the next run builds it again", 0
    if marker["fingerprint"] != dataset_fingerprint():
        return "built by other code (generator or schema changed): the next run builds it again", 0
    # rows={} : the indexes only, no count(*) of the tables (the rows come from the marker)
    found = check_dataset(conn, {**marker, "rows": {}}, repair=False, report=None)
    if found.state == "intact":
        return "intact (indexes match the marker's clean state)", found.indexes
    return f"damaged, the next run repairs it: {'; '.join(found.repairs)}", found.indexes


def _estimates(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per data table from the planner's statistics (packet_flow: over its chunks)."""
    out: dict[str, int] = {}
    has_approx = conn.execute("SELECT to_regproc('approximate_row_count')").fetchone()
    for table in TABLES:
        regclass = conn.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone()
        if regclass is None or regclass[0] is None:
            continue
        if has_approx and has_approx[0] is not None:
            query = "SELECT approximate_row_count(%s::regclass)"
        else:
            query = "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass"
        row = conn.execute(query, (f"public.{table}",)).fetchone()
        out[table] = max(int(row[0] or 0), 0) if row else 0
    return out


def _packet_flow_chunks(conn: psycopg.Connection) -> tuple[int | None, int, str | None]:
    """packet_flow's chunk count, compressed chunks and compression settings; (None, 0, None)
    when it is no hypertable here."""
    if conn.execute("SELECT to_regclass('timescaledb_information.chunks')").fetchone() == (None,):
        return None, 0, None
    head = conn.execute(
        "SELECT num_chunks, compression_enabled FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = 'public' AND hypertable_name = 'packet_flow'"
    ).fetchone()
    if head is None:
        return None, 0, None
    compressed = conn.execute(
        "SELECT count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks"
        " WHERE hypertable_schema = 'public' AND hypertable_name = 'packet_flow'"
    ).fetchone()
    return int(head[0] or 0), int(compressed[0] if compressed else 0), _compression(conn, head[1])


def _compression(conn: psycopg.Connection, enabled: bool) -> str:
    if not enabled:
        return "off"
    view = "timescaledb_information.hypertable_compression_settings"
    if conn.execute("SELECT to_regclass(%s)", (view,)).fetchone() == (None,):
        return "on"
    row = conn.execute(
        "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings"
        " WHERE hypertable = 'public.packet_flow'::regclass"
    ).fetchone()
    if row is None:
        return "on"
    parts = [f"segmentby {row[0]}" if row[0] else "", f"orderby {row[1]}" if row[1] else ""]
    detail = ", ".join(p for p in parts if p)
    return f"on ({detail})" if detail else "on"


def _size(n: int) -> str:
    if n < 0:
        return "size unknown (no CONNECT)"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


def format_datasets(datasets: list[DatasetSummary]) -> str:
    """The datasets as lines for ``ibcbench db status``."""
    if not datasets:
        return "datasets:     none yet (a run builds ibcbench_<scale>_s<seed> on first use)"
    lines = [f"datasets:     {len(datasets)}"]
    for d in datasets:
        lines.append(f"  {d.name}: {_size(d.size_bytes)}, {d.indexes} indexes, {d.state}")
        if d.rows:
            kind = "as loaded (marker)" if d.rows_exact else "estimates"
            lines.append(f"    rows, {kind}: " + ", ".join(f"{t} {n:,}" for t, n in d.rows.items()))
        if d.chunks is not None:
            lines.append(
                f"    packet_flow: {d.chunks} chunks, {d.compressed_chunks} compressed,"
                f" compression {d.compression}"
            )
    return "\n".join(lines)
