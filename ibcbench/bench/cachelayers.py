"""The cache layers of :mod:`ibcbench.bench.cache`: none, the in-process ``QueryCache`` and a
shared Redis whose read path falls back to the database when Redis is away.

Redis holds each result as tagged JSON (numbers, text, ``Decimal``, dates and timestamps keep their
types, so a cached answer equals the database's), under ``ibcbench:cache:q:<sha256>`` with the TTL,
and each table's keys in a set ``ibcbench:cache:t:<table>`` for explicit invalidation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Any, Protocol

import psycopg

from ibcbench.errors import BenchmarkError, ConfigError
from ibcbench.infra.redis import describe_redis_url, redis_target
from ibcbench.toolkit.cache import QueryCache

PREFIX = "ibcbench:cache:"


def _rows(conn: psycopg.Connection, query: str, values: tuple) -> list[tuple]:
    return [tuple(r) for r in conn.execute(query, values).fetchall()]


class Layer(Protocol):
    def read(self, conn: psycopg.Connection, query: str, values: tuple, tables: Any) -> bool:
        """Read through the layer; whether it was a hit."""
        ...

    def rows(self, conn: psycopg.Connection, query: str, values: tuple, tables: Any) -> list:
        """The rows as the layer answers them."""
        ...

    def invalidate(self, table: str) -> None: ...


class NoCache:
    """Every read goes to the database."""

    def read(self, conn: psycopg.Connection, query: str, values: tuple, tables: Any) -> bool:
        _rows(conn, query, values)
        return False

    def rows(self, conn: psycopg.Connection, query: str, values: tuple, tables: Any) -> list:
        return _rows(conn, query, values)

    def invalidate(self, table: str) -> None:
        return None


class ProcessCache:
    """One application instance's ``QueryCache``."""

    def __init__(self, ttl_s: float, maxsize: int = 4096) -> None:
        self.cache = QueryCache(ttl_s, maxsize=maxsize)

    def read(self, conn: psycopg.Connection, query: str, values: tuple, tables: Any) -> bool:
        return self._through(conn, query, values, tables)[1]

    def rows(self, conn: psycopg.Connection, query: str, values: tuple, tables: Any) -> list:
        return self._through(conn, query, values, tables)[0]

    def _through(
        self, conn: psycopg.Connection, query: str, values: tuple, tables: Any
    ) -> tuple[list, bool]:
        missed: list[bool] = []

        def run() -> list[tuple]:
            missed.append(True)
            return _rows(conn, query, values)

        result = self.cache.get_or_run(query, values, run, tables=tables)
        return result, not missed

    def invalidate(self, table: str) -> None:
        self.cache.invalidate_table(table)


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, dt.datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$D": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$s": value.total_seconds()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$d" in value:
            return Decimal(value["$d"])
        if "$t" in value:
            return dt.datetime.fromisoformat(value["$t"])
        if "$D" in value:
            return dt.date.fromisoformat(value["$D"])
        if "$s" in value:
            return dt.timedelta(seconds=value["$s"])
    return value


def encode_rows(rows: list[tuple]) -> str:
    return json.dumps([[_encode(v) for v in row] for row in rows])


def decode_rows(text: str | bytes) -> list[tuple]:
    return [tuple(_decode(v) for v in row) for row in json.loads(text)]


def cache_key(query: str, values: tuple) -> str:
    digest = hashlib.sha256(json.dumps([query, _encode(list(values))]).encode()).hexdigest()
    return f"{PREFIX}q:{digest}"


class RedisCache:
    """One Redis shared by every instance; a Redis that is away is counted in ``fallbacks`` and
    the read goes to the database (nothing fails)."""

    def __init__(self, client: Any, ttl_s: float, where: str) -> None:
        self.client, self.ttl_s, self.where = client, ttl_s, where
        self.fallbacks = 0

    @classmethod
    def connect(
        cls, url: str | None = None, *, ttl_s: float, socket_timeout_s: float = 1.0
    ) -> RedisCache:
        """A client of ``url`` (else ``REDIS_URL``, else the kit's own Redis), checked with a PING."""
        try:
            import redis
        except ImportError as exc:
            raise ConfigError(
                "the redis Python client is missing: reinstall the kit (scripts/setup)"
            ) from exc
        target = redis_target(url)
        client = redis.Redis.from_url(
            target, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        where = describe_redis_url(target)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise BenchmarkError(
                f"Redis at {where} does not answer ({str(exc).splitlines()[0]}): "
                "`ibcbench db up --redis`, or fix REDIS_URL"
            ) from exc
        return cls(client, ttl_s, where)

    def _errors(self) -> tuple[type[BaseException], ...]:
        import redis

        return (redis.ConnectionError, redis.TimeoutError, OSError)

    def read(self, conn: psycopg.Connection, query: str, values: tuple, tables: Any) -> bool:
        return self._through(conn, query, values, tables)[1]

    def rows(self, conn: psycopg.Connection, query: str, values: tuple, tables: Any) -> list:
        return self._through(conn, query, values, tables)[0]

    def _through(
        self, conn: psycopg.Connection, query: str, values: tuple, tables: Any
    ) -> tuple[list, bool]:
        key = cache_key(query, values)
        try:
            cached = self.client.get(key)
        except self._errors():
            self.fallbacks += 1
            return _rows(conn, query, values), False
        if cached is not None:
            return decode_rows(cached), True
        rows = _rows(conn, query, values)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(key, encode_rows(rows), px=int(self.ttl_s * 1000))
            for table in tables or ():
                pipe.sadd(f"{PREFIX}t:{table}", key)
            pipe.execute()
        except self._errors():
            self.fallbacks += 1
        return rows, False

    def invalidate(self, table: str) -> None:
        tag = f"{PREFIX}t:{table}"
        try:
            keys = list(self.client.smembers(tag))
            if keys:
                self.client.delete(*keys)
            self.client.delete(tag)
        except self._errors():
            self.fallbacks += 1

    def keys(self) -> list[bytes]:
        return list(self.client.scan_iter(match=f"{PREFIX}q:*", count=1000))

    def flush(self) -> None:
        """Delete the benchmark's own keys (nothing else of the Redis)."""
        try:
            doomed = list(self.client.scan_iter(match=f"{PREFIX}*", count=1000))
            for i in range(0, len(doomed), 500):
                self.client.delete(*doomed[i : i + 500])
        except self._errors():
            self.fallbacks += 1

    def memory(self, sample: int = 200) -> dict[str, Any]:
        """Memory per cached key: ``MEMORY USAGE`` over a sample of the keys, and ``used_memory``
        before and after the keys are deleted."""
        keys = self.keys()
        if not keys:
            return {}
        used = int(self.client.info("memory")["used_memory"])
        sizes = [int(self.client.memory_usage(k) or 0) for k in keys[:sample]]
        self.flush()
        after = int(self.client.info("memory")["used_memory"])
        return {
            "keys": len(keys),
            "sampled": len(sizes),
            "bytes_per_key": round(sum(sizes) / len(sizes), 1),
            "used_memory_delta": used - after,
        }
