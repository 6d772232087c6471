"""The load journal: every load attempt in ``ibcbench_load_attempts``, outside the load's transaction.

``ibcbench_loads`` holds committed loads only (its row goes in with the data), so a load that was
interrupted, failed or killed left no trace. The journal writes on an autocommit connection of its
own: one statement when the load starts (its row, ``running``, with the load's backend pid and start
time) and one when it ends (``committed``, ``skipped``, ``failed`` with the one-line reason, or
``interrupted``). A load killed outright (SIGKILL, a crash) cannot write its end: the first
statement of the next load finds ``running`` rows whose backend is gone and marks them
``abandoned`` (none of their rows were committed), or ``committed`` when ``ibcbench_loads`` holds the
attempt's row (cut off after COMMIT, before its end was written).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ibcbench.db import connect

#: the states of an attempt (the table's CHECK constraint holds the same list)
STATUSES = ("running", "committed", "skipped", "failed", "interrupted", "abandoned")
ABANDONED_MESSAGE = "cut off: none of its rows were committed"
LATE_COMMIT_MESSAGE = "cut off after COMMIT: its rows were committed, its end was not recorded"

# one statement: settle the attempts whose backend is gone, and start this one
_START = """
WITH cut AS (
    UPDATE ibcbench_load_attempts t
    SET status = CASE WHEN c.committed THEN 'committed' ELSE 'abandoned' END,
        ended_at = now(),
        message = CASE WHEN c.committed THEN %(late)s ELSE %(abandoned)s END
    FROM (SELECT a.id, EXISTS (SELECT 1 FROM ibcbench_loads l WHERE l.attempt_id = a.id) AS committed
          FROM ibcbench_load_attempts a
          WHERE a.status = 'running' AND NOT EXISTS (
              SELECT 1 FROM pg_stat_activity s
              WHERE s.pid = a.backend_pid AND s.backend_start IS NOT DISTINCT FROM a.backend_start)
         ) c
    WHERE c.id = t.id
    RETURNING t.id, t.started_at, t.source, t.status
), started AS (
    INSERT INTO ibcbench_load_attempts (source, checksums, backend_pid, backend_start)
    SELECT %(source)s, %(checksums)s::jsonb, %(pid)s,
           (SELECT backend_start FROM pg_stat_activity WHERE pid = %(pid)s)
    RETURNING id
)
SELECT (SELECT id FROM started),
       (SELECT coalesce(json_agg(json_build_array(id, started_at, source, status) ORDER BY id), '[]')
        FROM cut)
"""

_END = """
UPDATE ibcbench_load_attempts
SET status = %s, ended_at = now(), message = %s, checksums = coalesce(%s::jsonb, checksums)
WHERE id = %s
"""


@dataclass(frozen=True)
class SettledAttempt:
    """An earlier attempt whose load was cut off, settled by this load's start."""

    id: int
    started_at: datetime
    source: str
    status: str  # abandoned, or committed (cut off after COMMIT)


def settled_line(settled: list[SettledAttempt]) -> str | None:
    """One line about the earlier attempts a load found cut off (None when there were none)."""
    if not settled:
        return None
    abandoned = [a for a in settled if a.status == "abandoned"]
    late = [a for a in settled if a.status != "abandoned"]
    parts = []
    if abandoned:
        ids = ", ".join(str(a.id) for a in abandoned)
        parts.append(
            f"{len(abandoned)} earlier load attempt{'s' if len(abandoned) > 1 else ''} ({ids}, "
            f"from {abandoned[0].started_at:%Y-%m-%d %H:%M:%S}) "
            f"{'were' if len(abandoned) > 1 else 'was'} cut off: none of its rows were committed; "
            "marked abandoned in ibcbench_load_attempts"
        )
    if late:
        ids = ", ".join(str(a.id) for a in late)
        parts.append(f"attempt {ids} was cut off after COMMIT: marked committed")
    return "; ".join(parts)


class LoadJournal:
    """The journal row of one load attempt, on its own autocommit connection."""

    def __init__(self, conn: psycopg.Connection, attempt_id: int, settled: list[SettledAttempt]):
        self._conn = conn
        self.attempt_id = attempt_id
        self.settled = settled
        self.ended = False

    @classmethod
    def start(
        cls,
        dsn: str | None,
        load_conn: psycopg.Connection,
        source: str,
        checksums: dict[str, Any] | None = None,
    ) -> LoadJournal:
        """Settle the cut-off attempts and write this one's row, for ``load_conn``'s backend."""
        conn = connect(dsn, autocommit=True)
        try:
            row = conn.execute(
                _START,
                {
                    "abandoned": ABANDONED_MESSAGE,
                    "late": LATE_COMMIT_MESSAGE,
                    "source": source,
                    "checksums": json.dumps(checksums, sort_keys=True) if checksums else None,
                    "pid": load_conn.info.backend_pid,
                },
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        assert row is not None
        settled = [
            SettledAttempt(int(i), datetime.fromisoformat(str(t)), str(s), str(st))
            for i, t, s, st in row[1]
        ]
        return cls(conn, int(row[0]), settled)

    def end(
        self, status: str, message: str | None = None, checksums: dict[str, Any] | None = None
    ) -> None:
        """Write the attempt's end (once; a lost connection leaves it ``running``, for the next
        load to settle) and close the journal's connection."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"an attempt cannot end as {status!r}")
        if self.ended:
            return
        self.ended = True
        try:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute(
                    _END,
                    (
                        status,
                        message,
                        json.dumps(checksums, sort_keys=True) if checksums else None,
                        self.attempt_id,
                    ),
                )
        finally:
            self._conn.close()
