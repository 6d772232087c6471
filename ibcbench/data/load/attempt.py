"""One load attempt in the load journal, and the one line for whatever stops it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from ibcbench.data.journal import LoadJournal, SettledAttempt
from ibcbench.data.space import disk_full_message, reclaim_space
from ibcbench.db import connect
from ibcbench.errors import Interrupted, LoadError


class Attempt:
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
            self._end("failed", f"{type(exc).__name__}: {first_line(exc)}")
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
        detail = first_line(exc)
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


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
