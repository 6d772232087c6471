"""One run at a time per server: the lock ``ibcbench run`` and ``ibcbench run-all`` hold while they work.

Notebooks change what they share on the server: the dataset databases (``ibcbench_<scale>_s<seed>``,
whose indexes notebook 02 drops and rebuilds, and which notebook 01 may drop and build again), the
embedded PgBouncer's mode, the standby of notebook 07 and its scratch database, the pg_cron jobs.
Two runs at once broke each other's notebooks and left INVALID indexes behind. So a run holds a
session advisory lock on the server for its whole duration, and a second run waits for it (a line on
stderr says which run it waits for) or, with ``--no-wait``, refuses in one line before any work.

Why a server lock and not a lock file: what the runs share lives on the server, and two kit homes (or
two machines pointing ``DATABASE_URL`` at one server) share it just the same; a lock file would only see
runs of one home. Why in the ``postgres`` database: advisory locks are per database, and every role may
connect to ``postgres`` by default, whichever database its DSN names (the DSN's own database when it
may not). The session is idle while it holds the lock, and a waiter polls with ``pg_try_advisory_lock``
from an idle session, so neither holds a snapshot a ``CREATE INDEX CONCURRENTLY`` would wait for. The
holder names itself in ``application_name`` (``ibcbench run <id> (pid N)``), which is what a waiter
prints. When the server restarts mid-run the lock goes with the session and the run goes on (a run
waiting at that moment may then start beside it); a waiter that loses its session says so in one line.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import psycopg

from ibcbench.db import connect, resolve_dsn
from ibcbench.dsn import with_database
from ibcbench.errors import ConfigError, ConnectionFailed, first_line
from ibcbench.locks import RUN_LOCK_KEY
from ibcbench.signals import restopped

#: how a holder names itself in pg_stat_activity
APPLICATION_PREFIX = "ibcbench run"


class RunLockBusy(ConfigError):
    """Another run holds the lock and the caller would not wait."""


class RunLock:
    """The held lock: :meth:`name_run` puts the run's id into what waiters see."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def name_run(self, run_id: str) -> None:
        _set_name(self._conn, f"{APPLICATION_PREFIX} {run_id} (pid {os.getpid()})")


def _set_name(conn: psycopg.Connection, name: str) -> None:
    conn.execute("SELECT set_config('application_name', %s, false)", (name[:63],))


def _lock_connection(dsn: str | None) -> psycopg.Connection:
    base = resolve_dsn(dsn)
    try:
        return connect(with_database(base, "postgres"), autocommit=True)
    except ConnectionFailed:
        return connect(base, autocommit=True)


def holder(conn: psycopg.Connection) -> str | None:
    """Who holds the run lock: ``run <id> (pid N)`` as it named itself, or None when nobody does."""
    row = conn.execute(
        "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
        " (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1",
        (RUN_LOCK_KEY,),
    ).fetchone()
    if row is None:
        return None
    name, backend = row
    if name and str(name).startswith(APPLICATION_PREFIX):
        return "run" + str(name)[len(APPLICATION_PREFIX) :]
    return f"a session of server pid {backend} ({name or 'no application_name'})"


def _take(
    conn: psycopg.Connection,
    *,
    wait: bool,
    on_wait: Callable[[str], None] | None,
    poll_s: float,
) -> None:
    _set_name(conn, f"{APPLICATION_PREFIX} (starting, pid {os.getpid()})")
    told = False
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,)).fetchone()[0]:  # type: ignore[index]
        who = holder(conn) or "another run"
        if not wait:
            raise RunLockBusy(
                f"{who} holds the run lock of this server: nothing was started; wait for it to "
                "finish, or run without --no-wait to wait for it"
            )
        if not told and on_wait is not None:
            on_wait(
                f"ibcbench: waiting for {who} to finish (one run at a time per server; "
                "Ctrl-C to give up)"
            )
            told = True
        time.sleep(poll_s)


@contextlib.contextmanager
def run_lock(
    dsn: str | None = None,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    poll_s: float = 0.5,
) -> Iterator[RunLock]:
    """Hold the server's run lock for the ``with`` block.

    Taken at once when it is free. Else, with ``wait``, ``on_wait`` gets one line naming the holder
    and the lock is polled until it is free; without ``wait``, :class:`RunLockBusy` says who holds it.
    """
    conn = _lock_connection(dsn)
    try:
        try:
            _take(conn, wait=wait, on_wait=on_wait, poll_s=poll_s)
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP while it waited
            raise restopped(exc, "nothing was started (it waited for the run lock)") from None
        except psycopg.OperationalError as exc:  # the server restarted, or ended the session
            first = first_line(exc)
            raise ConnectionFailed(
                f"the connection to the server was lost while taking the run lock ({first}): "
                "nothing was started; check the server (`ibcbench db status`) and run the command again"
            ) from exc
        yield RunLock(conn)
    finally:
        with contextlib.suppress(psycopg.Error):  # a server restarted mid-run took the lock with it
            conn.close()
