"""The cache benchmark on the real server and the test cluster's Redis: cached answers equal the
database's, invalidation makes the next read fresh, Redis killed mid-run falls back."""

from __future__ import annotations

import shutil

import psycopg
import pytest

from ibcbench.bench.cache import HOT_READS, hot_traffic, measure_staleness, run_cache_benchmark
from ibcbench.bench.cachelayers import ProcessCache, RedisCache, decode_rows, encode_rows
from ibcbench.bench.workload import default_workload
from ibcbench.infra.redis import LocalRedis
from ibcbench.settings import ServerSettings

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server: run scripts/install-system.sh"
)


@pytest.fixture
def redis(primary_server: object) -> LocalRedis:
    local = LocalRedis(ServerSettings())
    local.up()
    return local


def test_rows_keep_their_types_through_redis() -> None:
    import datetime as dt
    from decimal import Decimal

    rows = [(1, "a", Decimal("1.50"), dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, tzinfo=dt.UTC))]
    assert decode_rows(encode_rows(rows)) == rows


def test_a_cached_answer_equals_the_databases(loaded_dsn: str, redis: LocalRedis) -> None:
    traffic = hot_traffic(loaded_dsn, 60, seed=3)
    shared = RedisCache.connect(ttl_s=30)
    shared.flush()
    local = ProcessCache(30)
    with psycopg.connect(loaded_dsn, autocommit=True) as conn:
        for name, values in traffic.requests:
            query, tables = traffic.sql[name], traffic.tables[name]
            want = [tuple(r) for r in conn.execute(query, values).fetchall()]
            for layer in (shared, local):
                layer.read(conn, query, values, tables)  # cached now
                assert layer.read(conn, query, values, tables) is True
                assert layer.rows(conn, query, values, tables) == want
    assert {n for n, _ in traffic.requests} <= set(HOT_READS)
    shared.flush()


@pytest.mark.parametrize("layer", ["process", "redis"])
def test_a_write_is_stale_until_the_ttl_and_fresh_after_invalidation(
    loaded_dsn: str, redis: LocalRedis, layer: str
) -> None:
    def make() -> ProcessCache | RedisCache:
        return ProcessCache(1.0) if layer == "process" else RedisCache.connect(ttl_s=1.0)

    wallet = hot_traffic(loaded_dsn, 40, seed=5).wallet()
    with psycopg.connect(loaded_dsn, autocommit=True) as conn:
        count = conn.execute("SELECT count(*) FROM clearing_operations").fetchone()
        fresh = measure_staleness(conn, make(), wallet, invalidate=True, timeout_s=5)
        stale = measure_staleness(conn, make(), wallet, invalidate=False, timeout_s=5)
        # the benchmark's own rows are gone again
        assert conn.execute("SELECT count(*) FROM clearing_operations").fetchone() == count
    assert fresh < 0.2  # the read after the invalidation is the database's
    assert 0.5 <= stale <= 2.0  # the cached answer stood until its TTL ran out
    assert default_workload().query("wallet_history").tables == ("clearing_operations",)


def test_redis_killed_mid_run_falls_back_counted_and_nothing_fails(
    loaded_dsn: str, redis: LocalRedis
) -> None:
    try:
        result = run_cache_benchmark(
            loaded_dsn,
            requests=200,
            instances=2,
            ttl_s=30,
            staleness_ttl_s=0.5,
            kill_redis=redis.kill,
        )
    finally:
        redis.up()
    down = result.redis_down
    assert down["ran"] and down["killed"] and down["errors"] == 0
    assert down["fallbacks"] >= down["requests"] - down["killed_after"]
    assert down["hit_ratio_after"] == 0.0 and down["hit_ratio_before"] > 0
    layers = result.frame.set_index("layer")
    assert layers.loc["none", "hit_ratio"] == 0 and layers.loc["redis", "hit_ratio"] > 0
    assert (layers["errors"] == 0).all()
    assert layers.loc["redis", "hit_ratio"] >= layers.loc["process", "hit_ratio"]  # shared
    numbers = result.key_numbers()
    assert numbers["cache_redis_bytes_per_key"] > 0
    assert numbers["cache_redis_down_errors"] == 0
    assert numbers["cache_process_stale_invalidate_s"] < numbers["cache_process_stale_ttl_s"]
    assert len(result.timeline) == 30 and "redis killed after 100" in result.table()
