"""Running out of space: in a folder the kit writes, and on the database server during a load.

:func:`output_folder` is a new or empty folder a writer fills (``generate --out``): when writing
fails (a full filesystem, a file size limit, permission denied) or is interrupted, the files it wrote
are removed, and so is the folder if it made it, and an OSError becomes one :class:`LoadError` line
(``no space left on DIR after N MB: ...``). It never removes a file it did not write.

:func:`disk_full_message` turns PostgreSQL's ``DiskFull`` (SQLSTATE 53100, ``could not extend file
...: No space left on device``) into one line that says nothing was committed, what filled up (the
tablespace or the cluster's data directory) and what to do; the load's attempt
(:mod:`ibcbench.data.load`) uses it once the transaction is gone, after :func:`reclaim_space`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psycopg
import psycopg.errors
from psycopg import sql

from data_gen.tables import TABLES
from ibcbench.db import connect
from ibcbench.errors import IbcbenchError, LoadError, write_advice, write_failure


class OutputFolder:
    """The files a writer made in one folder (see :func:`output_folder`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._files: list[Path] = []
        self._handles: list[IO[Any]] = []

    def open(self, name: str) -> IO[bytes]:
        """A new file ``name`` for binary writing (never an existing one: mode ``xb``)."""
        path = self.path / name
        handle = open(path, "xb")  # noqa: SIM115 - closed by close() or remove()
        self._files.append(path)
        self._handles.append(handle)
        return handle

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        with open(path, "x") as handle:
            self._files.append(path)
            handle.write(text)
        return path

    def close(self) -> None:
        """Close every open file (a failing flush raises, after the others are closed)."""
        failure: OSError | None = None
        for handle in self._handles:
            try:
                handle.close()
            except OSError as exc:
                failure = failure or exc
        self._handles.clear()
        if failure is not None:
            raise failure

    @property
    def bytes_written(self) -> int:
        """Bytes of the writer's files on disk so far."""
        total = 0
        for path in self._files:
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def remove(self) -> None:
        """Close and remove the writer's files (only those)."""
        for handle in self._handles:
            with contextlib.suppress(OSError):
                handle.close()
        self._handles.clear()
        for path in reversed(self._files):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._files.clear()


@contextlib.contextmanager
def output_folder(path: Path | str, *, option: str = "--out") -> Iterator[OutputFolder]:
    """A new or empty folder to fill; on any failure inside, what was written in it goes.

    A folder that holds anything is refused before work starts. Missing folders (the folder and its
    missing parents) are made, and removed again on failure if they are empty. An OSError becomes a
    one-line :class:`LoadError` that says what happened, how much was written and what to do."""
    out = Path(path)
    made: list[Path] = []  # folders this call made, outermost first

    def unmake() -> None:
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # not empty: someone else wrote into it
                folder.rmdir()

    try:
        if out.is_dir():
            if any(out.iterdir()):
                raise LoadError(
                    f"{out} is not empty: choose a new folder (the kit never overwrites files it "
                    "did not write)"
                )
        elif out.exists():
            raise LoadError(f"{out} is not a folder: choose another {option}")
        else:
            missing: list[Path] = []
            folder = out
            while not folder.exists():
                missing.append(folder)
                folder = folder.parent
            for folder in reversed(missing):
                try:
                    folder.mkdir()
                except FileExistsError:
                    if not folder.is_dir():
                        raise LoadError(f"{folder} is a file: choose another {option}") from None
                    continue
                made.append(folder)
    except OSError as exc:
        unmake()
        raise LoadError(
            f"{write_failure(exc, out)}: {write_advice(exc)} or choose another {option}"
        ) from exc
    writer = OutputFolder(out)
    try:
        yield writer
        writer.close()
    except BaseException as exc:
        written = writer.bytes_written
        writer.remove()
        unmake()
        if isinstance(exc, OSError):
            kept = "its folder was removed" if made else "the files written were removed"
            raise LoadError(
                f"{write_failure(exc, out)} after {written / 1e6:.1f} MB ({kept}): "
                f"{write_advice(exc)} or choose another {option}"
            ) from exc
        raise


_FILE = re.compile(r'"([^"]+)"')
_COPY = re.compile(r"COPY (?:_load_)?(\w+)")
_TABLESPACE = re.compile(r"^pg_tblspc/(\d+)/")


def reclaim_space(dsn: str | None) -> bool:
    """VACUUM the kit's data tables after a rolled-back load: the pages the load added to tables
    that existed before it (a plain table's file grows in place) hold only dead rows, and stay on
    disk until a VACUUM truncates them. (New relations, the load's chunks, are truncated by the
    rollback itself.) Returns whether it ran; it never waits for a lock."""
    try:
        with connect(dsn, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '2s'")
            conn.execute(
                sql.SQL("VACUUM {}").format(
                    sql.SQL(", ").join(
                        sql.Identifier(t)
                        for t in (*TABLES, "ibcbench_loads", "ibcbench_incidents")
                        if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone() != (None,)
                    )
                )
            )
        return True
    except (psycopg.Error, IbcbenchError):
        return False


def disk_full_message(dsn: str | None, exc: psycopg.Error, *, reclaimed: bool = True) -> str:
    """``the server ran out of disk space ...: nothing was committed ...; free space ...``."""
    primary = (exc.diag.message_primary or str(exc)).strip().splitlines()[0]
    table = _COPY.search(exc.diag.context or "")
    file = _FILE.search(primary)
    dbname, where, advice = _where(dsn, file.group(1) if file else "")
    into = f" into database {dbname!r}" if dbname else ""
    loading = f" loading {table.group(1)}" if table else ""
    vacuum = "" if reclaimed else " (run VACUUM on its tables to return the space it took)"
    return (
        f"the server ran out of disk space{loading}{into}: {where} is full ({primary}); nothing "
        f"was committed, the load rolled back{vacuum}: {advice}, then run the load again"
    )


def _where(dsn: str | None, file: str) -> tuple[str | None, str, str]:
    """The database, what filled up and what to do, from the file PostgreSQL could not extend
    (a path relative to the data directory; ``pg_tblspc/OID/...`` in a tablespace)."""
    match = _TABLESPACE.match(file)
    dbname: str | None = None
    try:
        with connect(dsn, autocommit=True) as conn:
            dbname = conn.info.dbname
            if match:
                row = conn.execute(
                    "SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace WHERE oid = %s",
                    (int(match.group(1)),),
                ).fetchone()
                if row is not None:
                    return (
                        dbname,
                        f"tablespace {row[0]!r} ({row[1]})",
                        "free space on that filesystem or move the database to a larger "
                        "tablespace (ALTER DATABASE ... SET TABLESPACE)",
                    )
            else:
                row = conn.execute(
                    "SELECT setting FROM pg_settings WHERE name = 'data_directory'"
                ).fetchone()
                if row is not None and row[0]:
                    return (
                        dbname,
                        f"the server's data directory ({row[0]})",
                        "free space on that filesystem",
                    )
    except (psycopg.Error, IbcbenchError):
        pass
    if match:
        return dbname, "a tablespace", "free space on the tablespace's filesystem"
    return dbname, "the server's disk", "free space on the server's disk"
