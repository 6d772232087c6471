"""One request of the Python runner and its tries; the pool's figures over a window and the
client's round-trip floor.

A request that fails on a lost or refused connection (a server restart, a terminated backend, the
pool's timeout waiting for a connection) or on a serialization failure or deadlock is tried again, up
to ``max_tries`` in all, as pgbench's ``--max-tries`` does: the runner's reads are safe to repeat and
its writes roll back, so a retry never doubles a write. Its latency counts from its first try.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg


class _QuietPool(logging.Filter):
    """Keeps psycopg's warnings about a lost server (the pool's failed reconnections and discarded
    connections, a rollback that could not be sent) off stderr while a run counts its failures
    itself; logging's last resort would print each one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING


@contextlib.contextmanager
def quiet_pool_log() -> Iterator[None]:
    loggers = [
        logging.getLogger(name) for name in ("psycopg", "psycopg.pool", "psycopg.transaction")
    ]
    quiet = _QuietPool()
    for log in loggers:
        log.addFilter(quiet)
    try:
        yield
    finally:
        for log in loggers:
            log.removeFilter(quiet)


def retryable(exc: BaseException) -> bool:
    """Whether a failed try may be tried again: a lost, refused or timed-out connection (psycopg's
    ``OperationalError``, the pool's ``PoolTimeout`` among them), a serialization failure or a
    deadlock (``TransactionRollback``, an ``OperationalError`` too). A cancelled statement
    (``QueryCanceled``: a statement timeout) would only time out again."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, psycopg.errors.QueryCanceled
    )


def _execute(conn: psycopg.Connection, query: Any, params: tuple, write: bool) -> None:
    if write:
        with conn.transaction(force_rollback=True):
            conn.execute(query, params)
    else:
        conn.execute(query, params).fetchall()


@dataclass
class Tries:
    """One request's tries: how many, when the first was sent, when the last got a connection
    and when it ended."""

    count: int
    sent: float
    got: float
    done: float


def try_request(
    pool: Any, query: Any, values: tuple, write: bool, max_tries: int, retry_until: float
) -> tuple[bool, Tries]:
    """Execute one request, trying again after a :func:`retryable` failure (at most ``max_tries``
    tries; none starts after ``retry_until``)."""
    sent = time.perf_counter()
    tries = Tries(0, sent, sent, sent)
    while True:
        tries.count += 1
        tries.got = time.perf_counter()
        try:
            with pool.connection() as conn:
                tries.got = time.perf_counter()
                _execute(conn, query, values, write)
                tries.done = time.perf_counter()
            return True, tries
        except psycopg.Error as exc:
            tries.done = time.perf_counter()
            if tries.count >= max_tries or not retryable(exc) or tries.done >= retry_until:
                return False, tries
            if not isinstance(exc, psycopg.errors.TransactionRollback):
                # a lost connection: the idle ones likely went with it; check them, so that the
                # retry gets a live one or waits for the pool to make a new one
                with contextlib.suppress(Exception):
                    pool.check()


#: pool counters that accumulate from the pool's opening (the rest are gauges)
_POOL_COUNTERS = (
    "requests",
    "requests_queued",
    "wait_ms",
    "usage_ms",
    "request_errors",
    "returns_bad",
    "connections_opened",
    "connection_errors",
    "connections_lost",
    "slow_queries",
    "health_checks",
)


def window_pool_stats(at_start: dict[str, Any], at_end: dict[str, Any]) -> dict[str, Any]:
    """Pool statistics over a window: counters as end minus start, gauges as at the end."""
    out = dict(at_end)
    for key in _POOL_COUNTERS:
        if key in at_end:
            out[key] = at_end[key] - at_start.get(key, 0)
    queued = out.get("requests_queued", 0)
    out["mean_wait_ms"] = round(out.get("wait_ms", 0.0) / queued, 3) if queued else 0.0
    return out


class _RoundTrips:
    """One thread's ``SELECT 1`` loop until ``stop_at``; ``count`` is how many it made."""

    def __init__(self, pool: Any, stop_at: float) -> None:
        self.pool, self.stop_at = pool, stop_at
        self.count = 0

    def __call__(self) -> None:
        n = 0
        while time.perf_counter() < self.stop_at:
            with self.pool.connection() as conn:
                conn.execute("SELECT 1").fetchone()
            n += 1
        self.count = n


def round_trip_qps(pool: Any, clients: int, seconds: float) -> float:
    """``SELECT 1`` per second through ``pool`` with ``clients`` threads: this client's floor."""
    stop_at = time.perf_counter() + seconds
    loops = [_RoundTrips(pool, stop_at) for _ in range(clients)]
    threads = [threading.Thread(target=loop, daemon=True) for loop in loops]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(loop.count for loop in loops) / (time.perf_counter() - started)
