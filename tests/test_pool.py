"""Pools on the real server: contention, lost connections, prepared statements, slow-query log."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import psycopg
import pytest

from ibcbench.errors import ConfigError
from ibcbench.toolkit.pool import PoolConfig, PoolStats, create_async_pool, create_pool


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_size": 10, "max_size": 5}, "max_size must be greater or equal than min_size"),
        ({"max_size": 0, "min_size": 0}, "max_size must be greater or equal than 1"),
        ({"min_size": -1}, "min_size must be greater or equal than 0"),
        ({"timeout_s": 0}, "must be greater than 0"),
        ({"health_check_period_s": -1}, "health_check_period_s must be greater than 0"),
        ({"prepare_threshold": -2}, "prepare_threshold must be greater or equal than 0"),
        ({"slow_query_ms": -5}, "slow_query_ms must be greater or equal than 0"),
    ],
)
def test_config_is_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PoolConfig(**kwargs)


def test_seed_defaults_and_pgx_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = PoolConfig()
    assert (
        cfg.max_size,
        cfg.min_size,
        cfg.max_lifetime_s,
        cfg.max_idle_s,
        cfg.health_check_period_s,
    ) == (
        25,
        5,
        3600.0,
        1800.0,
        60.0,
    )
    assert cfg.pgx_equivalent()["MaxConns"] == "25"
    monkeypatch.setenv("IBCBENCH_POOL_MAX_SIZE", "8")
    monkeypatch.setenv("IBCBENCH_POOL_PREPARE_THRESHOLD", "none")
    env = PoolConfig.from_env(min_size=2)
    assert (env.max_size, env.min_size, env.prepare_threshold) == (8, 2, None)
    assert env.pgx_equivalent()["DefaultQueryExecMode"] == "simple protocol"


pytestmark_db = pytest.mark.db


@pytest.mark.db
def test_more_users_than_connections_wait_without_errors(schema_dsn: str) -> None:
    pool = create_pool(
        PoolConfig(min_size=2, max_size=3, health_check_period_s=None, slow_query_ms=None),
        schema_dsn,
    )
    errors: list[BaseException] = []

    def user() -> None:
        try:
            for _ in range(5):
                with pool.connection() as conn:
                    conn.execute("SELECT pg_sleep(0.01)")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=user) for _ in range(12)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = pool.stats()
    finally:
        pool.close()
    assert not errors
    assert stats.requests == 60
    assert stats.requests_queued > 0 and stats.wait_ms > 0
    assert stats.request_errors == 0 and stats.size <= 3


@pytest.mark.db
def test_killed_backend_is_replaced_and_counted(schema_dsn: str) -> None:
    pool = create_pool(
        PoolConfig(min_size=2, max_size=2, health_check_period_s=0.2, slow_query_ms=None),
        schema_dsn,
    )
    try:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(schema_dsn, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        # the health thread counts a check when check() has returned, after check() counted the
        # lost connection: wait for both, or the read can fall between the two
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            stats = pool.stats()
            if stats.connections_lost >= 1 and stats.health_checks >= 1:
                break
            time.sleep(0.1)
        stats = pool.stats()
        assert stats.connections_lost >= 1 and stats.health_checks >= 1
        pids = set()
        for _ in range(4):
            with pool.connection() as conn:
                pids.add(conn.info.backend_pid)
                assert conn.execute("SELECT 1").fetchone() == (1,)
        assert pid not in pids
    finally:
        pool.close()


@pytest.mark.db
@pytest.mark.parametrize(("threshold", "prepared"), [(2, True), (None, False)])
def test_prepared_statements_are_really_used(
    schema_dsn: str, threshold: int | None, prepared: bool
) -> None:
    cfg = PoolConfig(
        min_size=1,
        max_size=1,
        prepare_threshold=threshold,
        health_check_period_s=None,
        slow_query_ms=None,
    )
    pool = create_pool(cfg, schema_dsn)
    try:
        with pool.connection() as conn:
            for i in range(5):
                conn.execute("SELECT count(*) FROM network_stats WHERE chain_id = %s", (f"c{i}",))
            count = conn.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%FROM network_stats WHERE chain_id%%'"
            ).fetchone()[0]
    finally:
        pool.close()
    assert (count > 0) is prepared


@pytest.mark.db
def test_slow_queries_are_logged_with_parameters_redacted(
    schema_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = create_pool(
        PoolConfig(min_size=1, max_size=1, slow_query_ms=50, health_check_period_s=None), schema_dsn
    )
    try:
        with (
            caplog.at_level(logging.WARNING, logger="ibcbench.slow_query"),
            pool.connection() as conn,
        ):
            conn.execute("SELECT pg_sleep(%s)", (0.1,))
            conn.execute("SELECT 1")
        records = pool.slow_log.records()
    finally:
        pool.close()
    assert len(records) == 1
    assert records[0].statement == "SELECT pg_sleep(%s)" and records[0].duration_ms >= 100
    assert records[0].parameters == "<redacted>"
    assert (
        "slow query" in caplog.text
        and "0.1" not in caplog.records[0].getMessage().split("parameters:")[1]
    )
    assert PoolStats.from_pool(pool).slow_queries == 1


@pytest.mark.db
def test_async_pool_has_the_same_settings(schema_dsn: str) -> None:
    async def main() -> tuple[int, int]:
        pool = await create_async_pool(
            PoolConfig(min_size=1, max_size=2, slow_query_ms=10, health_check_period_s=None),
            schema_dsn,
        )
        try:
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT pg_sleep(0.02)")
                await cur.fetchall()
            return pool.stats().max_size, pool.slow_log.count
        finally:
            await pool.close()

    assert asyncio.run(main()) == (2, 1)
