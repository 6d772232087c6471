"""``QueryCache``: a thread-safe TTL cache of query results, keyed by SQL text and parameters.

cachetools' TTLCache does the expiry and the size bound (least recently used goes first); this
class adds the lock, hit/miss counters and invalidation by table name: every entry remembers the
tables its query reads (given, or found after FROM/JOIN), and ``invalidate_table`` drops them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from ibcbench.errors import ConfigError

_TABLE_RE = re.compile(
    r'\b(?:FROM|JOIN)\s+((?:"[^"]+"|[A-Za-z_][\w$]*)(?:\.(?:"[^"]+"|[A-Za-z_][\w$]*))?)', re.I
)


def tables_in(query: str) -> frozenset[str]:
    """Table names after FROM / JOIN (lower-cased, unquoted, without schema)."""
    return frozenset(m.split(".")[-1].strip('"').lower() for m in _TABLE_RE.findall(query))


def _freeze(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set)):
        return tuple(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    size: int
    maxsize: int
    invalidations: int

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class QueryCache:
    """``QueryCache(ttl_s=60)``; ``get_or_run(sql, params, run)`` returns a cached result or runs."""

    def __init__(
        self,
        ttl_s: float = 60.0,
        *,
        maxsize: int = 1024,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0:
            raise ConfigError("ttl_s must be greater than 0")
        if maxsize < 1:
            raise ConfigError("maxsize must be greater or equal than 1")
        self._cache: TTLCache[Hashable, tuple[Any, frozenset[str]]] = TTLCache(
            maxsize=maxsize, ttl=ttl_s, timer=timer
        )
        self._lock = threading.RLock()
        self._hits = self._misses = self._invalidations = 0
        self.ttl_s = ttl_s

    @staticmethod
    def key(query: Any, params: Any = None) -> Hashable:
        text = query.as_string(None) if hasattr(query, "as_string") else str(query)
        return (text, _freeze(params))

    def get(self, query: Any, params: Any = None) -> Any:
        """The cached result, or None (counted as a miss)."""
        k = self.key(query, params)
        with self._lock:
            entry = self._cache.get(k)
            if entry is None:
                self._misses += 1
                return None
            self._hits += 1
            return entry[0]

    def put(
        self, query: Any, params: Any, result: Any, *, tables: Iterable[str] | None = None
    ) -> None:
        k = self.key(query, params)
        names = frozenset(t.lower() for t in tables) if tables is not None else tables_in(k[0])  # type: ignore[index]
        with self._lock:
            self._cache[k] = (result, names)

    def get_or_run(
        self,
        query: Any,
        params: Any,
        run: Callable[[], Any],
        *,
        tables: Iterable[str] | None = None,
    ) -> Any:
        k = self.key(query, params)
        with self._lock:
            entry = self._cache.get(k)
            if entry is not None:
                self._hits += 1
                return entry[0]
            self._misses += 1
        result = run()
        self.put(query, params, result, tables=tables)
        return result

    def fetchall(
        self, conn: Any, query: Any, params: Any = None, *, tables: Iterable[str] | None = None
    ) -> list[Any]:
        """Rows of ``query`` on a connection (or pool), from the cache while fresh."""

        def run() -> list[Any]:
            if hasattr(conn, "connection") and callable(conn.connection):
                with conn.connection() as c:
                    return c.execute(query, params).fetchall()
            return conn.execute(query, params).fetchall()

        return self.get_or_run(query, params, run, tables=tables)

    def invalidate_table(self, table: str) -> int:
        """Drop every entry whose query reads ``table``; returns how many."""
        name = table.split(".")[-1].strip('"').lower()
        with self._lock:
            doomed = [k for k, (_, names) in list(self._cache.items()) if name in names]
            for k in doomed:
                self._cache.pop(k, None)
            self._invalidations += len(doomed)
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            self._cache.expire()
            return CacheStats(
                self._hits,
                self._misses,
                len(self._cache),
                int(self._cache.maxsize),
                self._invalidations,
            )
