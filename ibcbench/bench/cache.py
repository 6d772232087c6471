"""The cache question: the workload's hot reads with no cache, the in-process ``QueryCache`` and a
shared Redis, on the traffic's own key popularity.

The hot reads are the workload's wallet statistics (``user_statistics``), network health
(``network_stats_range``, ``hourly_packet_stats``) and channel lookups
(``packet_by_channel_sequence``). Their keys come from
:func:`~ibcbench.bench.workload.sample_parameters`, which samples rows of the data (a wallet with
ten times the operations is ten times as likely), and requests draw from that sample uniformly, so
a key's popularity is its real frequency in the dataset. ``instances`` application instances take
turns: each has its own in-process cache, Redis is one cache for all of them.

:func:`run_cache_benchmark` reports per layer p50/p99, the database queries saved, the hit ratio
over time, the staleness after a write (a clearing operation inserted for a cached wallet, then
deleted: the row is the benchmark's own) under TTL expiry and under explicit invalidation, Redis's
memory per cached key (``INFO memory`` and ``MEMORY USAGE``), and a run in which the kit's own Redis
is killed halfway: the read path falls back to the database, each fallback counted, no request
fails (an external ``REDIS_URL`` is never killed: that row says it was not run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from data_gen.tables import CLEARING_OPERATIONS
from ibcbench.bench.cachelayers import Layer, NoCache, ProcessCache, RedisCache
from ibcbench.bench.workload import default_workload, sample_parameters
from ibcbench.db import connect, resolve_dsn
from ibcbench.errors import BenchmarkError
from ibcbench.results.metrics.metric import TIMING, Metric, informational

HOT_READS: dict[str, str] = {
    "user_statistics": "wallet statistics",
    "network_stats_range": "network health (daily)",
    "hourly_packet_stats": "network health (hourly)",
    "packet_by_channel_sequence": "channel lookup",
}
#: the query a clearing operation's insert changes, for the staleness measure
STALE_QUERY = "wallet_history"
TIMELINE_BUCKETS = 10


@dataclass(frozen=True)
class CacheResult:
    """Per layer (``frame``), the hit ratio over time (``timeline``), staleness after a write
    (``staleness``), Redis memory per key (``memory``) and the Redis-down run (``redis_down``)."""

    frame: pd.DataFrame
    timeline: pd.DataFrame
    staleness: pd.DataFrame
    memory: dict[str, Any] = field(default_factory=dict)
    redis_down: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    #: the metric of each key :meth:`key_numbers` makes (per layer; staleness and memory with a
    #: Redis; the Redis-down figures when that run ran)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        *(
            Metric(f"cache_{layer}_{column}", "lower", "ms", TIMING, note=f"{column[:3]} of a read")
            for layer in ("none", "process", "redis")
            for column in ("p50_ms", "p99_ms")
        ),
        *(
            informational(f"cache_{layer}_hit_ratio", "share", "reads answered by the cache")
            for layer in ("none", "process", "redis")
        ),
        *(
            informational(f"cache_{layer}_db_saved_pct", "%", "database reads the cache saved")
            for layer in ("none", "process", "redis")
        ),
        *(
            Metric(
                f"cache_{layer}_stale_{mode}_s",
                "lower",
                "s",
                note="seconds until a reader sees a write",
                optional=True,
            )
            for layer in ("process", "redis")
            for mode in ("ttl", "invalidate")
        ),
        informational("cache_redis_bytes_per_key", "bytes", "Redis memory per key", optional=True),
        Metric(
            "cache_redis_down_fallbacks",
            "none",
            "reads",
            note="reads that fell back to the database while Redis was away",
            optional=True,
        ),
        Metric(
            "cache_redis_down_errors",
            "lower",
            "errors",
            note="reads that failed while Redis was away: any counts",
            optional=True,
        ),
    )

    def key_numbers(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for row in self.frame.itertuples():
            for column in ("p50_ms", "p99_ms", "hit_ratio", "db_saved_pct"):
                out[f"cache_{row.layer}_{column}"] = float(getattr(row, column))
        for row in self.staleness.itertuples():
            out[f"cache_{row.layer}_stale_{row.mode}_s"] = float(row.stale_s)
        if "bytes_per_key" in self.memory:
            out["cache_redis_bytes_per_key"] = float(self.memory["bytes_per_key"])
        if self.redis_down.get("ran"):
            out["cache_redis_down_fallbacks"] = float(self.redis_down["fallbacks"])
            out["cache_redis_down_errors"] = float(self.redis_down["errors"])
        return out

    def save(self, run: Any) -> None:
        if run is None:
            return
        run.write_frame("cache_layers", self.frame)
        run.write_frame("cache_timeline", self.timeline)
        run.write_frame("cache_staleness", self.staleness)
        run.update_manifest(cache=self.manifest | {"memory": self.memory, "down": self.redis_down})

    def table(self) -> str:
        """The figures as text, for ``ibcbench bench cache``."""
        lines = [self.frame.to_string(index=False), "", self.staleness.to_string(index=False)]
        if self.memory:
            m = self.memory
            lines.append(
                f"redis memory: {m['bytes_per_key']:.0f} bytes per cached key (MEMORY USAGE, mean "
                f"of {m['sampled']}); used_memory grew {m['used_memory_delta']} bytes for "
                f"{m['keys']} keys"
            )
        down = self.redis_down
        if down.get("ran"):
            lines.append(
                f"redis killed after {down['killed_after']} of {down['requests']} requests: "
                f"{down['fallbacks']} reads fell back to the database, {down['errors']} failed"
            )
        elif down:
            lines.append(f"redis down: not run ({down['reason']})")
        return "\n".join(lines)


@dataclass(frozen=True)
class Traffic:
    """The requests: (query name, parameters) in order, and the queries' SQL."""

    requests: list[tuple[str, tuple]]
    sql: dict[str, str]
    tables: dict[str, tuple[str, ...]]

    def wallet(self) -> str:
        """The wallet of the first wallet-statistics request (the staleness measure's)."""
        for name, values in self.requests:
            if name == "user_statistics":
                return str(values[0])
        raise BenchmarkError("the traffic has no wallet statistics read: give more requests")


def hot_traffic(dsn: str, requests: int, *, seed: int = 42, keys: int = 400) -> Traffic:
    """``requests`` hot reads, weighted as the workload weighs them, each on a key drawn from
    ``keys`` sampled rows (so with the dataset's own key frequencies)."""
    wl = default_workload().subset(list(HOT_READS))
    with connect(dsn) as conn:
        params = sample_parameters(conn, wl, n=keys, seed=seed)
    rng = np.random.default_rng(seed)
    weights = np.array([q.weight for q in wl.queries], dtype=float)
    picks = rng.choice(len(wl.queries), size=requests, p=weights / weights.sum())
    out = []
    for i in picks:
        name = wl.queries[int(i)].name
        values = params[name]
        out.append((name, values[int(rng.integers(len(values)))]))
    return Traffic(out, {q.name: q.sql for q in wl.queries}, {q.name: q.tables for q in wl.queries})


def _run_layer(
    conn: psycopg.Connection,
    traffic: Traffic,
    layers: list[Layer],
    *,
    halfway: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """Every request through ``layers[k % len(layers)]`` (one per application instance): per
    request its latency, whether it was a hit, a fallback, an error."""
    rows = []
    half = len(traffic.requests) // 2
    for k, (name, values) in enumerate(traffic.requests):
        if halfway is not None and k == half:
            halfway()
        layer = layers[k % len(layers)]
        query = traffic.sql[name]
        began = time.perf_counter()
        ok = True
        try:
            hit = layer.read(conn, query, values, traffic.tables[name])
        except psycopg.Error:
            ok, hit = False, False
        rows.append((name, (time.perf_counter() - began) * 1000.0, hit, ok))
    return pd.DataFrame(rows, columns=["query", "latency_ms", "hit", "ok"])


def _layer_row(layer: str, frame: pd.DataFrame, elapsed_s: float) -> dict[str, Any]:
    lat = frame.latency_ms.to_numpy()
    db = int((~frame.hit).sum())
    return {
        "layer": layer,
        "requests": len(frame),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "hit_ratio": round(float(frame.hit.mean()), 3),
        "db_queries": db,
        "db_saved_pct": round(100.0 * (1 - db / len(frame)), 1),
        "db_qps_saved": round((len(frame) - db) / elapsed_s, 1) if elapsed_s else 0.0,
        "errors": int((~frame.ok).sum()),
    }


def _timeline(layer: str, frame: pd.DataFrame) -> pd.DataFrame:
    buckets = np.array_split(np.arange(len(frame)), TIMELINE_BUCKETS)
    return pd.DataFrame(
        {
            "layer": layer,
            "bucket": range(len(buckets)),
            "hit_ratio": [round(float(frame.hit.iloc[b].mean()), 3) for b in buckets],
        }
    )


def _insert_operation(conn: psycopg.Connection, wallet: str) -> tuple[int, Any]:
    """A copy of ``wallet``'s newest clearing operation, newer by 1 ms, under a new id (committed);
    its (id, created_at), for :func:`_delete_operation`."""
    columns = [name for name, _ in CLEARING_OPERATIONS]
    chosen = [
        sql.SQL("(SELECT max(id) + 1 FROM clearing_operations)")
        if c == "id"
        else sql.SQL("created_at + interval '1 millisecond'")
        if c == "created_at"
        else sql.Identifier(c)
        for c in columns
    ]
    row = conn.execute(
        sql.SQL(
            "INSERT INTO clearing_operations ({}) SELECT {} FROM clearing_operations"
            " WHERE wallet_address = %s AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 1"
            " RETURNING id, created_at"
        ).format(sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(", ").join(chosen)),
        (wallet,),
    ).fetchone()
    if row is None:
        raise BenchmarkError(f"wallet {wallet!r} has no operation to copy")
    return int(row[0]), row[1]


def _delete_operation(conn: psycopg.Connection, key: tuple[int, Any]) -> None:
    conn.execute("DELETE FROM clearing_operations WHERE id = %s AND created_at = %s", key)


def measure_staleness(
    conn: psycopg.Connection, layer: Layer, wallet: str, *, invalidate: bool, timeout_s: float
) -> float:
    """Seconds from a committed clearing operation for ``wallet`` until a read of its history
    through ``layer`` shows it (the read cached first; ``invalidate``: the layer is told at
    once). The inserted row is deleted afterwards."""
    query = default_workload().query(STALE_QUERY)
    layer.read(conn, query.sql, (wallet,), query.tables)  # cached
    key = _insert_operation(conn, wallet)
    try:
        written = time.perf_counter()
        if invalidate:
            layer.invalidate("clearing_operations")
        while True:
            rows = layer.rows(conn, query.sql, (wallet,), query.tables)
            if rows and rows[0][0] == key[0]:
                return round(time.perf_counter() - written, 3)
            if time.perf_counter() - written > timeout_s:
                return float("inf")
            time.sleep(0.02)
    finally:
        _delete_operation(conn, key)
        layer.invalidate("clearing_operations")


def run_cache_benchmark(
    dsn: str | None,
    *,
    requests: int = 3000,
    instances: int = 2,
    ttl_s: float = 30.0,
    staleness_ttl_s: float = 1.0,
    redis_url: str | None = None,
    kill_redis: Callable[[], bool] | None = None,
    seed: int = 42,
) -> CacheResult:
    """The hot reads under no cache, ``QueryCache`` per instance and one Redis (``redis_url``,
    else ``REDIS_URL``, else the kit's own), then the staleness, memory and Redis-down figures.
    ``kill_redis`` kills the Redis halfway through a last run (None: that run is not made)."""
    if requests < 20 or instances < 1 or ttl_s <= 0 or staleness_ttl_s <= 0:
        raise BenchmarkError(
            "requests must be >= 20, instances >= 1, ttl_s and staleness_ttl_s > 0"
        )
    target = resolve_dsn(dsn)
    redis = RedisCache.connect(redis_url, ttl_s=ttl_s)  # refused now, before any work
    traffic = hot_traffic(target, requests, seed=seed)
    rows, timelines = [], []
    with connect(target, autocommit=True) as conn:
        redis.flush()
        setups: list[tuple[str, list[Layer]]] = [
            ("none", [NoCache() for _ in range(instances)]),
            ("process", [ProcessCache(ttl_s) for _ in range(instances)]),
            ("redis", [redis] * instances),
        ]
        for name, layers in setups:
            started = time.perf_counter()
            frame = _run_layer(conn, traffic, layers)
            rows.append(_layer_row(name, frame, time.perf_counter() - started))
            timelines.append(_timeline(name, frame))
        memory = redis.memory()
        staleness = _staleness(conn, traffic, redis_url, staleness_ttl_s)
        down = _redis_down(conn, traffic, redis_url, ttl_s, instances, kill_redis)
    redis.flush()
    return CacheResult(
        pd.DataFrame(rows),
        pd.concat(timelines, ignore_index=True),
        staleness,
        memory,
        down,
        manifest={
            "requests": requests,
            "instances": instances,
            "ttl_s": ttl_s,
            "staleness_ttl_s": staleness_ttl_s,
            "hot_reads": HOT_READS,
            "redis": redis.where,
            "seed": seed,
        },
    )


def _staleness(
    conn: psycopg.Connection, traffic: Traffic, redis_url: str | None, ttl_s: float
) -> pd.DataFrame:
    wallet = traffic.wallet()
    rows = []
    for layer_name in ("process", "redis"):
        for mode in ("ttl", "invalidate"):
            layer: Layer = (
                ProcessCache(ttl_s)
                if layer_name == "process"
                else RedisCache.connect(redis_url, ttl_s=ttl_s)
            )
            stale = measure_staleness(
                conn, layer, wallet, invalidate=mode == "invalidate", timeout_s=ttl_s + 5
            )
            rows.append({"layer": layer_name, "mode": mode, "ttl_s": ttl_s, "stale_s": stale})
    return pd.DataFrame(rows)


def _redis_down(
    conn: psycopg.Connection,
    traffic: Traffic,
    redis_url: str | None,
    ttl_s: float,
    instances: int,
    kill_redis: Callable[[], bool] | None,
) -> dict[str, Any]:
    if kill_redis is None:
        return {
            "ran": False,
            "reason": "no Redis of the kit's own to kill (REDIS_URL is not killed)",
        }
    redis = RedisCache.connect(redis_url, ttl_s=ttl_s, socket_timeout_s=0.2)
    redis.flush()
    killed: list[bool] = []
    frame = _run_layer(
        conn, traffic, [redis] * instances, halfway=lambda: killed.append(kill_redis())
    )
    return {
        "ran": True,
        "requests": len(frame),
        "killed_after": len(frame) // 2,
        "killed": bool(killed and killed[0]),
        "fallbacks": redis.fallbacks,
        "errors": int((~frame.ok).sum()),
        "hit_ratio_before": round(float(frame.hit.iloc[: len(frame) // 2].mean()), 3),
        "hit_ratio_after": round(float(frame.hit.iloc[len(frame) // 2 :].mean()), 3),
    }
