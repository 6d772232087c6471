"""QueryCache: hits and misses, expiry on time, size bound, invalidation by table."""

from __future__ import annotations

import threading

import psycopg
import pytest

from ibcbench.errors import ConfigError
from ibcbench.toolkit.cache import QueryCache, tables_in


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_results_expire_on_time() -> None:
    clock = Clock()
    cache = QueryCache(ttl_s=10, timer=clock)
    calls = []
    run = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert cache.get_or_run("SELECT 1 FROM t", None, run) == 1
    clock.now = 9.9
    assert cache.get_or_run("SELECT 1 FROM t", None, run) == 1
    clock.now = 10.1
    assert cache.get_or_run("SELECT 1 FROM t", None, run) == 2
    s = cache.stats()
    assert (s.hits, s.misses) == (1, 2)


def test_parameters_are_part_of_the_key_and_size_is_bounded() -> None:
    cache = QueryCache(ttl_s=60, maxsize=2)
    cache.put("SELECT * FROM a WHERE x = %s", (1,), "one")
    cache.put("SELECT * FROM a WHERE x = %s", (2,), "two")
    assert cache.get("SELECT * FROM a WHERE x = %s", (1,)) == "one"
    cache.put("SELECT * FROM a WHERE x = %s", ([3, 4],), "three")
    assert cache.stats().size == 2
    assert cache.get("SELECT * FROM a WHERE x = %s", (2,)) is None  # least recently used went first


def test_invalidation_by_table() -> None:
    cache = QueryCache()
    cache.put(
        "SELECT * FROM packet_flow p JOIN clearing_operations o ON o.id = p.operation_id", None, 1
    )
    cache.put('SELECT * FROM "public"."network_stats"', None, 2)
    assert tables_in('SELECT * FROM "public"."network_stats"') == {"network_stats"}
    assert cache.invalidate_table("clearing_operations") == 1
    assert cache.invalidate_table("public.network_stats") == 1
    assert cache.stats().size == 0 and cache.stats().invalidations == 2


def test_thread_safety_counts_every_lookup() -> None:
    cache = QueryCache(maxsize=50)

    def worker() -> None:
        for i in range(500):
            cache.get_or_run(f"SELECT {i % 60} FROM t", None, lambda: 1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = cache.stats()
    assert s.hits + s.misses == 4000 and s.size <= 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"ttl_s": 0}, "ttl_s must be greater than 0"), ({"maxsize": 0}, "maxsize")],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        QueryCache(**kwargs)


@pytest.mark.db
def test_fetchall_serves_from_cache_until_invalidated(schema_dsn: str) -> None:
    cache = QueryCache(ttl_s=60)
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        query = "SELECT count(*) FROM relayer_performance WHERE relayer_name = %s"
        assert cache.fetchall(conn, query, ("cache-test",)) == [(0,)]
        conn.execute(
            "INSERT INTO relayer_performance (relayer_address, relayer_name, software, date, reputation_score)"
            " VALUES ('cosmos1x', 'cache-test', 'hermes', '2026-01-01', 50)"
        )
        assert cache.fetchall(conn, query, ("cache-test",)) == [
            (0,)
        ]  # stale: the TTL has not passed
        cache.invalidate_table("relayer_performance")
        assert cache.fetchall(conn, query, ("cache-test",)) == [(1,)]
        conn.execute("DELETE FROM relayer_performance WHERE relayer_name = 'cache-test'")
