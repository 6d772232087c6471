"""Connection pools with the seed's settings, on psycopg_pool.

The seed configured pgx/v5's ``pgxpool``; the same knobs map onto psycopg_pool like this:

=========================  ============================  ==============================================
pgx (pgxpool.Config)       PoolConfig                    psycopg_pool
=========================  ============================  ==============================================
MaxConns = 25              max_size = 25                 ConnectionPool(max_size=...)
MinConns = 5               min_size = 5                  ConnectionPool(min_size=...)
MaxConnLifetime = 1h       max_lifetime_s = 3600         max_lifetime (± 5% jitter, like pgx's jitter)
MaxConnIdleTime = 30m      max_idle_s = 1800             max_idle
HealthCheckPeriod = 1m     health_check_period_s = 60    a background thread calling pool.check()
(acquire ping)             check_on_checkout = False     check=ConnectionPool.check_connection
statement cache            prepare_threshold = 5,        Connection.prepare_threshold / prepared_max
 (QueryExecModeCache...)   prepared_max = 100            (None: no server-side prepared statements,
                                                         as pgx's QueryExecModeSimpleProtocol, for
                                                         PgBouncer in transaction mode)
BeforeAcquire/AfterRelease configure / reset callbacks   configure= / reset=
(tracer)                   slow_query_ms = 200           a cursor class timing every execute()
=========================  ============================  ==============================================
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ibcbench.db import resolve_dsn
from ibcbench.errors import ConfigError

logger = logging.getLogger("ibcbench.slow_query")


@dataclass(frozen=True, kw_only=True)
class PoolConfig:
    """Pool settings with the seed's defaults, validated when built."""

    min_size: int = 5
    max_size: int = 25
    max_lifetime_s: float = 60 * 60.0
    max_idle_s: float = 30 * 60.0
    health_check_period_s: float | None = 60.0
    check_on_checkout: bool = False
    timeout_s: float = 30.0
    prepare_threshold: int | None = 5
    prepared_max: int = 100
    slow_query_ms: float | None = 200.0
    redact_parameters: bool = True
    slow_log_size: int = 1000
    application_name: str = "ibcbench"
    name: str = "ibcbench"
    autocommit: bool = True  # like pgx: each statement its own transaction unless one is opened

    def __post_init__(self) -> None:
        if self.min_size < 0:
            raise ConfigError("min_size must be greater or equal than 0")
        if self.max_size < 1:
            raise ConfigError("max_size must be greater or equal than 1")
        if self.max_size < self.min_size:
            raise ConfigError("max_size must be greater or equal than min_size")
        if self.max_lifetime_s <= 0 or self.max_idle_s <= 0 or self.timeout_s <= 0:
            raise ConfigError("max_lifetime_s, max_idle_s and timeout_s must be greater than 0")
        if self.health_check_period_s is not None and self.health_check_period_s <= 0:
            raise ConfigError(
                "health_check_period_s must be greater than 0 (or None to turn it off)"
            )
        if self.prepare_threshold is not None and self.prepare_threshold < 0:
            raise ConfigError(
                "prepare_threshold must be greater or equal than 0 (or None to turn it off)"
            )
        if self.prepared_max < 1:
            raise ConfigError("prepared_max must be greater or equal than 1")
        if self.slow_query_ms is not None and self.slow_query_ms < 0:
            raise ConfigError(
                "slow_query_ms must be greater or equal than 0 (or None to turn it off)"
            )

    @classmethod
    def from_env(cls, prefix: str = "IBCBENCH_POOL_", **overrides: Any) -> PoolConfig:
        """Settings from ``IBCBENCH_POOL_MAX_SIZE=...`` style variables ('none' turns an option off)."""
        values: dict[str, Any] = {}
        for f in cls.__dataclass_fields__.values():
            raw = os.environ.get(prefix + f.name.upper())
            if raw is None:
                continue
            if raw.lower() == "none":
                values[f.name] = None
            elif f.type in ("int", "int | None"):
                values[f.name] = int(raw)
            elif f.type in ("float", "float | None"):
                values[f.name] = float(raw)
            elif f.type == "bool":
                values[f.name] = raw.lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = raw
        values.update(overrides)
        return cls(**values)

    def pgx_equivalent(self) -> dict[str, str]:
        """The same settings spelled as pgxpool's config, for comparing with a Go service."""
        return {
            "MaxConns": str(self.max_size),
            "MinConns": str(self.min_size),
            "MaxConnLifetime": f"{self.max_lifetime_s:g}s",
            "MaxConnIdleTime": f"{self.max_idle_s:g}s",
            "HealthCheckPeriod": "off"
            if self.health_check_period_s is None
            else f"{self.health_check_period_s:g}s",
            "DefaultQueryExecMode": "simple protocol"
            if self.prepare_threshold is None
            else "cache statement",
            "StatementCacheCapacity": str(self.prepared_max),
        }


@dataclass(frozen=True)
class SlowQuery:
    statement: str
    duration_ms: float
    parameters: str
    at: float


class SlowQueryLog:
    """The last slow statements of a pool (thread-safe), also sent to the ``ibcbench.slow_query`` logger."""

    def __init__(
        self, threshold_ms: float | None, *, redact: bool = True, size: int = 1000
    ) -> None:
        self.threshold_ms = threshold_ms
        self.redact = redact
        self._records: deque[SlowQuery] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.count = 0

    def observe(self, statement: Any, params: Any, duration_ms: float) -> None:
        if self.threshold_ms is None or duration_ms < self.threshold_ms:
            return
        text = statement.as_string(None) if hasattr(statement, "as_string") else str(statement)
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        shown = "<redacted>" if self.redact and params else repr(params)
        record = SlowQuery(" ".join(text.split()), round(duration_ms, 3), shown, time.time())
        with self._lock:
            self._records.append(record)
            self.count += 1
        logger.warning(
            "slow query (%.1f ms): %s; parameters: %s", duration_ms, record.statement, shown
        )

    def records(self) -> list[SlowQuery]:
        with self._lock:
            return list(self._records)


class TimedCursor(psycopg.Cursor):
    """A cursor that reports every execute() slower than the threshold to its connection's log."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TimedCursor:
        started = time.perf_counter()
        try:
            return super().execute(query, params, **kwargs)
        finally:
            log = getattr(self.connection, "slow_log", None)
            if log is not None:
                log.observe(query, params, (time.perf_counter() - started) * 1000)


class TimedAsyncCursor(psycopg.AsyncCursor):
    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TimedAsyncCursor:
        started = time.perf_counter()
        try:
            return await super().execute(query, params, **kwargs)
        finally:
            log = getattr(self.connection, "slow_log", None)
            if log is not None:
                log.observe(query, params, (time.perf_counter() - started) * 1000)


class KitConnection(psycopg.Connection):
    """A connection that carries its pool's slow-query log."""

    slow_log: SlowQueryLog | None = None


class KitAsyncConnection(psycopg.AsyncConnection):
    slow_log: SlowQueryLog | None = None


class KitPool(ConnectionPool):
    """psycopg_pool's ConnectionPool plus a background health check and a slow-query log."""

    def __init__(
        self, conninfo: str, *, config: PoolConfig, slow_log: SlowQueryLog, **kwargs: Any
    ) -> None:
        self.config = config
        self.slow_log = slow_log
        self._health_stop = threading.Event()
        self._health_thread: threading.Thread | None = None
        self.health_checks = 0
        super().__init__(conninfo, **kwargs)

    def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        super().open(wait=wait, timeout=timeout)
        period = self.config.health_check_period_s
        if period is not None and self._health_thread is None:
            self._health_stop.clear()
            self._health_thread = threading.Thread(
                target=self._health_loop, args=(period,), name=f"{self.name}-health", daemon=True
            )
            self._health_thread.start()

    def _health_loop(self, period: float) -> None:
        while not self._health_stop.wait(period):
            try:
                self.check()
                self.health_checks += 1
            except Exception:  # the pool may be closing; the next round tries again
                logger.debug("health check failed", exc_info=True)

    def close(self, timeout: float = 5.0) -> None:
        self._health_stop.set()
        if self._health_thread is not None:
            self._health_thread.join(timeout)
            self._health_thread = None
        super().close(timeout=timeout)

    def stats(self) -> PoolStats:
        return PoolStats.from_pool(self)


class KitAsyncPool(AsyncConnectionPool):
    def __init__(
        self, conninfo: str, *, config: PoolConfig, slow_log: SlowQueryLog, **kwargs: Any
    ) -> None:
        self.config = config
        self.slow_log = slow_log
        self._health_task: asyncio.Task[None] | None = None
        self.health_checks = 0
        super().__init__(conninfo, **kwargs)

    async def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        await super().open(wait=wait, timeout=timeout)
        period = self.config.health_check_period_s
        if period is not None and self._health_task is None:
            self._health_task = asyncio.create_task(self._health_loop(period))

    async def _health_loop(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            await self.check()
            self.health_checks += 1

    async def close(self, timeout: float = 5.0) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            self._health_task = None
        await super().close(timeout=timeout)

    def stats(self) -> PoolStats:
        return PoolStats.from_pool(self)


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of a pool's counters (cumulative since the pool opened)."""

    size: int
    available: int
    waiting: int
    min_size: int
    max_size: int
    requests: int
    requests_queued: int
    wait_ms: float
    usage_ms: float
    request_errors: int
    returns_bad: int
    connections_opened: int
    connection_errors: int
    connections_lost: int
    slow_queries: int
    health_checks: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_wait_ms(self) -> float:
        return self.wait_ms / self.requests_queued if self.requests_queued else 0.0

    @classmethod
    def from_pool(cls, pool: Any) -> PoolStats:
        s = pool.get_stats()
        return cls(
            size=s.get("pool_size", 0),
            available=s.get("pool_available", 0),
            waiting=s.get("requests_waiting", 0),
            min_size=s.get("pool_min", 0),
            max_size=s.get("pool_max", 0),
            requests=s.get("requests_num", 0),
            requests_queued=s.get("requests_queued", 0),
            wait_ms=float(s.get("requests_wait_ms", 0)),
            usage_ms=float(s.get("usage_ms", 0)),
            request_errors=s.get("requests_errors", 0),
            returns_bad=s.get("returns_bad", 0),
            connections_opened=s.get("connections_num", 0),
            connection_errors=s.get("connections_errors", 0),
            connections_lost=s.get("connections_lost", 0),
            slow_queries=pool.slow_log.count if getattr(pool, "slow_log", None) else 0,
            health_checks=getattr(pool, "health_checks", 0),
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d["mean_wait_ms"] = round(self.mean_wait_ms, 3)
        return d


def _callbacks(
    config: PoolConfig,
    slow_log: SlowQueryLog,
    configure: Callable[[Any], Any] | None,
    cursor_factory: type,
) -> Callable[[Any], None]:
    def setup(conn: Any) -> None:
        conn.prepare_threshold = config.prepare_threshold
        conn.prepared_max = config.prepared_max
        conn.cursor_factory = cursor_factory
        conn.slow_log = slow_log
        if configure is not None:
            configure(conn)

    return setup


def _pool_arguments(cfg: PoolConfig) -> dict[str, Any]:
    """The psycopg_pool arguments both pool kinds take from a PoolConfig."""
    return {
        "kwargs": {"application_name": cfg.application_name, "autocommit": cfg.autocommit},
        "min_size": cfg.min_size,
        "max_size": cfg.max_size,
        "max_lifetime": cfg.max_lifetime_s,
        "max_idle": cfg.max_idle_s,
        "timeout": cfg.timeout_s,
        "name": cfg.name,
    }


def create_pool(
    config: PoolConfig | None = None,
    dsn: str | None = None,
    *,
    configure: Callable[[psycopg.Connection], None] | None = None,
    reset: Callable[[psycopg.Connection], None] | None = None,
    open: bool = True,
    wait: bool = True,
) -> KitPool:
    """A ConnectionPool with ``config`` (default: the seed's 25/5 settings) on ``dsn``."""
    cfg = config or PoolConfig()
    slow_log = SlowQueryLog(cfg.slow_query_ms, redact=cfg.redact_parameters, size=cfg.slow_log_size)
    pool = KitPool(
        resolve_dsn(dsn),
        config=cfg,
        slow_log=slow_log,
        connection_class=KitConnection,
        **_pool_arguments(cfg),
        configure=_callbacks(cfg, slow_log, configure, TimedCursor),
        reset=reset,
        check=ConnectionPool.check_connection if cfg.check_on_checkout else None,
        open=False,
    )
    if open:
        pool.open(wait=wait and cfg.min_size > 0, timeout=cfg.timeout_s)
    return pool


async def create_async_pool(
    config: PoolConfig | None = None,
    dsn: str | None = None,
    *,
    configure: Callable[[psycopg.AsyncConnection], Any] | None = None,
    reset: Callable[[psycopg.AsyncConnection], Any] | None = None,
) -> KitAsyncPool:
    """The asyncio twin of :func:`create_pool` (opened, with the same settings)."""
    cfg = config or PoolConfig()
    slow_log = SlowQueryLog(cfg.slow_query_ms, redact=cfg.redact_parameters, size=cfg.slow_log_size)
    sync_setup = _callbacks(cfg, slow_log, None, TimedAsyncCursor)

    async def setup(conn: psycopg.AsyncConnection) -> None:
        sync_setup(conn)
        if configure is not None:
            await configure(conn)

    pool = KitAsyncPool(
        resolve_dsn(dsn),
        config=cfg,
        slow_log=slow_log,
        connection_class=KitAsyncConnection,
        **_pool_arguments(cfg),
        configure=setup,
        reset=reset,
        check=AsyncConnectionPool.check_connection if cfg.check_on_checkout else None,
        open=False,
    )
    await pool.open(wait=cfg.min_size > 0, timeout=cfg.timeout_s)
    return pool
