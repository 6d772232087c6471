"""While an engine measures, the pg_cron jobs of the database it measures are paused; and the one
line of an error both engines quote."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psycopg

from ibcbench.db import connect
from ibcbench.errors import BenchmarkError, IbcbenchError, first_line


@contextlib.contextmanager
def paused_cron_jobs(dsn: str) -> Iterator[list[str]]:
    """Deactivate this database's pg_cron jobs for the duration; restores their previous state."""
    paused: list[tuple[int, str]] = []
    try:
        with connect(dsn, autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('cron.job')").fetchone()[0] is not None:  # type: ignore[index]
                paused = [
                    (jobid, name)
                    for jobid, name in conn.execute(
                        "SELECT jobid, jobname FROM cron.job WHERE active AND database = current_database()"
                    ).fetchall()
                ]
                for jobid, _ in paused:
                    conn.execute("SELECT cron.alter_job(%s, active := false)", (jobid,))
        yield [name for _, name in paused]
    finally:
        if paused:
            _resume_cron_jobs(dsn, paused)


def _resume_cron_jobs(dsn: str, paused: list[tuple[int, str]], tries: int = 5) -> None:
    """Reactivate the paused jobs; a server that is restarting gets a few seconds to come back."""
    for attempt in range(tries):
        try:
            with connect(dsn, autocommit=True) as conn:
                for jobid, _ in paused:
                    conn.execute("SELECT cron.alter_job(%s, active := true)", (jobid,))
            return
        except (psycopg.Error, IbcbenchError) as exc:
            if attempt == tries - 1:
                names = ", ".join(name for _, name in paused)
                raise BenchmarkError(
                    f"the pg_cron jobs paused for the run ({names}) are still paused: the server "
                    f"was unreachable ({first_line(exc)}); "
                    "reactivate them with SELECT cron.alter_job(jobid, active := true)"
                ) from exc
            time.sleep(1.0 + attempt)
