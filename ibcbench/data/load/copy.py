"""COPY streams: a batch or a file into a table, and the file's SHA-256 taken over the bytes sent."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from data_gen.tables import TABLES
from ibcbench.data.pgcopy import HEADER, TRAILER
from ibcbench.errors import LoadError

COPY_CHUNK = 8 * 1024 * 1024


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


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, as a generated folder's manifest records it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_stream(path: Path, digest: Any = None) -> Iterator[memoryview]:
    """A file in COPY_CHUNK pieces, read into one reused buffer (libpq copies each piece at once);
    ``digest`` (a hashlib object) is updated with each piece as it is handed out."""
    buffer = bytearray(COPY_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            if digest is not None:
                digest.update(view[:n])
            yield view[:n]


def check_streamed(path: Path, entry: dict[str, Any], digest: Any, streamed: int) -> None:
    """The bytes a COPY sent against the manifest's size and SHA-256 (the file may have changed
    since :func:`read_manifest` checked it): a mismatch is a LoadError, raised before COMMIT."""
    if streamed != entry["bytes"] or digest.hexdigest() != entry["sha256"]:
        raise LoadError(
            f"{path} changed while it was being loaded (the bytes sent to the server do not match "
            "its manifest's SHA-256): nothing was committed; put back the folder as generated (or "
            "generate it again), then load it again"
        )
