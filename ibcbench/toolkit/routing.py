"""Read/write routing over a primary and its streaming standbys.

A :class:`RoutedPool` holds one pool (:func:`~ibcbench.toolkit.pool.create_pool`) on the primary and
one per replica. The caller says what a unit of work needs:

- ``pool.connection()`` (or ``pool.writer()``): the primary. Writes, and reads that must see every
  write made so far (read-your-writes inside one request), go here.
- ``pool.reader()``: a replica, round robin, unless every replica is too far behind
  (``max_lag_bytes``/``max_lag_s`` of :class:`RoutingConfig`): then the primary.
- ``pool.reader(after_write=lsn)``: a replica that has replayed at least ``lsn`` (read-your-writes
  across requests: take ``lsn`` from :meth:`RoutedPool.write_lsn` after the write commits), else the
  primary.

Lag is measured at most every ``lag_check_period_s``: bytes as the primary's ``pg_current_wal_lsn()``
minus the replica's ``pg_last_wal_replay_lsn()``, seconds as the time since the replica's last replayed
commit (0 when it has replayed everything it received). Every skipped replica is counted in
:meth:`RoutedPool.stats` by reason.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ibcbench.db import resolve_dsn
from ibcbench.dsn import describe_dsn
from ibcbench.errors import ConfigError
from ibcbench.toolkit.pool import KitPool, PoolConfig, create_pool


def parse_lsn(lsn: str) -> int:
    """A ``pg_lsn`` text (``16/B374D848``) as a byte position."""
    try:
        high, low = lsn.split("/")
        return (int(high, 16) << 32) + int(low, 16)
    except (AttributeError, ValueError) as exc:
        raise ConfigError(f"{lsn!r} is not an LSN: pass what write_lsn() returned") from exc


@dataclass(frozen=True, kw_only=True)
class RoutingConfig:
    """Where reads may go and how far behind a replica may be, validated when built."""

    replica_dsns: tuple[str, ...] = ()
    max_lag_bytes: int | None = 16 * 1024 * 1024
    max_lag_s: float | None = 5.0
    lag_check_period_s: float = 0.5
    pool: PoolConfig = field(default_factory=PoolConfig)
    replica_pool: PoolConfig | None = None  # default: the primary's settings

    def __post_init__(self) -> None:
        if isinstance(self.replica_dsns, str):
            raise ConfigError("replica_dsns must be a tuple of URLs, not one string")
        if self.max_lag_bytes is not None and self.max_lag_bytes < 0:
            raise ConfigError(
                "max_lag_bytes must be greater or equal than 0 (or None for no bound)"
            )
        if self.max_lag_s is not None and self.max_lag_s < 0:
            raise ConfigError("max_lag_s must be greater or equal than 0 (or None for no bound)")
        if self.lag_check_period_s < 0:
            raise ConfigError("lag_check_period_s must be greater or equal than 0")


@dataclass
class ReplicaLag:
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    lag_s: float | None = None
    checked_at: float = float("-inf")
    available: bool = True


@dataclass(frozen=True)
class RoutingStats:
    """Counters since the pool opened."""

    writes: int
    reads_replica: int
    reads_primary: int
    skipped_lagging: int
    skipped_behind_write: int
    skipped_unavailable: int
    lag_checks: int
    per_replica: dict[str, int]
    last_lag_bytes: dict[str, int | None]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RoutedPool:
    """A pool on the primary and one per replica; see the module's documentation."""

    def __init__(self, config: RoutingConfig, primary_dsn: str) -> None:
        self.config = config
        self.primary = create_pool(config.pool, primary_dsn)
        rcfg = config.replica_pool or config.pool
        self.replicas: list[KitPool] = []
        try:
            for dsn in config.replica_dsns:
                self.replicas.append(create_pool(rcfg, dsn, wait=False))
        except Exception:
            self.close()
            raise
        self.names = [describe_dsn(d) for d in config.replica_dsns]
        self._lag = [ReplicaLag() for _ in self.replicas]
        self._lock = threading.Lock()
        self._next = itertools.count()
        self._counts = dict.fromkeys(
            (
                "writes",
                "reads_replica",
                "reads_primary",
                "skipped_lagging",
                "skipped_behind_write",
                "skipped_unavailable",
                "lag_checks",
            ),
            0,
        )
        self._per_replica = [0] * len(self.replicas)

    # ---- lag -------------------------------------------------------------------------------------
    def _refresh(self, indexes: list[int], force: bool = False) -> None:
        now = time.monotonic()
        due = [
            i
            for i in indexes
            if force or now - self._lag[i].checked_at >= self.config.lag_check_period_s
        ]
        if not due:
            return
        with self.primary.connection() as conn:
            primary_lsn = parse_lsn(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
        for i in due:
            lag = ReplicaLag(checked_at=time.monotonic())
            try:
                with self.replicas[i].connection(timeout=2.0) as conn:
                    lsn, lag_s = conn.execute(
                        "SELECT pg_last_wal_replay_lsn()::text,"
                        " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
                        " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END"
                    ).fetchone()  # type: ignore[misc]
                if lsn is None:  # not a standby (or not yet replaying): never route reads there
                    lag.available = False
                else:
                    lag.replay_lsn = parse_lsn(lsn)
                    lag.lag_bytes = max(0, primary_lsn - lag.replay_lsn)
                    lag.lag_s = float(lag_s or 0.0)
            except Exception:  # down, restarting, or its pool cannot connect in time
                lag.available = False
            with self._lock:
                self._lag[i] = lag
                self._counts["lag_checks"] += 1

    def _too_far(self, lag: ReplicaLag) -> bool:
        c = self.config
        return (c.max_lag_bytes is not None and (lag.lag_bytes or 0) > c.max_lag_bytes) or (
            c.max_lag_s is not None and (lag.lag_s or 0.0) > c.max_lag_s
        )

    def _choose(self, after_lsn: int | None) -> int | None:
        """The replica for a read, or None for the primary; counts every skip by reason."""
        n = len(self.replicas)
        if n == 0:
            return None
        start = next(self._next)
        order = [(start + k) % n for k in range(n)]
        self._refresh(order)
        for i in order:
            lag = self._lag[i]
            if after_lsn is not None and lag.available and (lag.replay_lsn or 0) < after_lsn:
                self._refresh([i], force=True)  # it may have caught up since the last check
                lag = self._lag[i]
            reason = None
            if not lag.available:
                reason = "skipped_unavailable"
            elif self._too_far(lag):
                reason = "skipped_lagging"
            elif after_lsn is not None and (lag.replay_lsn or 0) < after_lsn:
                reason = "skipped_behind_write"
            if reason is None:
                return i
            with self._lock:
                self._counts[reason] += 1
        return None

    # ---- connections -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def connection(
        self, *, read_only: bool = False, after_lsn: str | None = None, timeout: float | None = None
    ) -> Iterator[psycopg.Connection]:
        """The primary, or with ``read_only=True`` a replica close enough (see the module)."""
        target = parse_lsn(after_lsn) if after_lsn is not None else None
        index = self._choose(target) if read_only else None
        with self._lock:
            if not read_only:
                self._counts["writes"] += 1
            elif index is None:
                self._counts["reads_primary"] += 1
            else:
                self._counts["reads_replica"] += 1
                self._per_replica[index] += 1
        pool = self.primary if index is None else self.replicas[index]
        with pool.connection(timeout=timeout) as conn:
            yield conn

    def reader(self, after_write: str | None = None, *, timeout: float | None = None) -> Any:
        """A connection for reads: a replica that is close enough (and has replayed ``after_write``)."""
        return self.connection(read_only=True, after_lsn=after_write, timeout=timeout)

    def writer(self, *, timeout: float | None = None) -> Any:
        """A connection to the primary."""
        return self.connection(timeout=timeout)

    @staticmethod
    def write_lsn(conn: psycopg.Connection) -> str:
        """The primary's WAL position after this connection's committed writes (for ``after_write``)."""
        return conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]

    def lag(self, *, refresh: bool = True) -> dict[str, ReplicaLag]:
        """Each replica's last measured lag."""
        if refresh:
            self._refresh(list(range(len(self.replicas))), force=True)
        return dict(zip(self.names, self._lag, strict=True))

    def stats(self) -> RoutingStats:
        with self._lock:
            return RoutingStats(
                **self._counts,
                per_replica=dict(zip(self.names, self._per_replica, strict=True)),
                last_lag_bytes={
                    n: lag.lag_bytes for n, lag in zip(self.names, self._lag, strict=True)
                },
            )

    def close(self) -> None:
        for pool in [getattr(self, "primary", None), *getattr(self, "replicas", [])]:
            if pool is not None:
                pool.close()

    def __enter__(self) -> RoutedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_routed_pool(
    config: RoutingConfig | None = None, dsn: str | None = None, *, replica_dsn: str | None = None
) -> RoutedPool:
    """A :class:`RoutedPool` on ``dsn`` (default: ``DATABASE_URL``, else the embedded server) and the
    replicas of ``config``; with none there, ``replica_dsn`` (comma-separated), ``REPLICA_URL``, or the
    running standbys of the embedded server, on ``dsn``'s database."""
    from ibcbench.infra.scaleout import replica_urls

    cfg = config or RoutingConfig()
    primary = resolve_dsn(dsn)
    if not cfg.replica_dsns:
        found = tuple(replica_urls(replica_dsn, dsn=dsn or primary))
        cfg = RoutingConfig(**{**cfg.__dict__, "replica_dsns": found})
    return RoutedPool(cfg, primary)
