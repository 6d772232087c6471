"""Read/write routing against a real primary and its streaming standby."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from ibcbench import PoolConfig, RoutingConfig, create_routed_pool
from ibcbench.errors import ConfigError
from ibcbench.infra.scaleout import ScaleOut
from ibcbench.toolkit.routing import RoutedPool, parse_lsn

SMALL = PoolConfig(
    min_size=1, max_size=2, health_check_period_s=None, slow_query_ms=None, timeout_s=5.0
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_lag_bytes": -1}, "max_lag_bytes must be greater or equal than 0"),
        ({"max_lag_s": -0.1}, "max_lag_s must be greater or equal than 0"),
        ({"lag_check_period_s": -1}, "lag_check_period_s must be greater or equal than 0"),
        (
            {"replica_dsns": "postgresql://x"},
            "replica_dsns must be a tuple of URLs, not one string",
        ),
    ],
)
def test_routing_config_is_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RoutingConfig(**kwargs)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("0/3000000", 0x3000000), ("16/B374D848", (0x16 << 32) + 0xB374D848)],
)
def test_parse_lsn(text: str, value: int) -> None:
    assert parse_lsn(text) == value


def test_parse_lsn_names_what_to_pass() -> None:
    with pytest.raises(ConfigError, match="is not an LSN: pass what write_lsn"):
        parse_lsn("nope")


@pytest.fixture
def routed(topology: ScaleOut) -> Iterator[RoutedPool]:
    cfg = RoutingConfig(max_lag_bytes=64 * 1024, max_lag_s=None, lag_check_period_s=0.0, pool=SMALL)
    pool = create_routed_pool(cfg, topology.server.url())
    assert len(pool.replicas) == 1  # found the running standby of the embedded primary
    yield pool
    pool.close()


def _in_recovery(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]


@pytest.mark.db
def test_reads_go_to_the_replica_and_writes_to_the_primary(routed: RoutedPool) -> None:
    with routed.reader() as conn:
        assert _in_recovery(conn) is True
    with routed.writer() as conn:
        assert _in_recovery(conn) is False
    with routed.connection() as conn:  # the default: the primary
        assert _in_recovery(conn) is False
    stats = routed.stats()
    assert (stats.reads_replica, stats.reads_primary, stats.writes) == (1, 0, 2)


@pytest.mark.db
def test_read_your_writes_goes_to_the_primary_until_the_replica_has_replayed(
    topology: ScaleOut,
) -> None:
    # no lag bound: the only reason to skip the replica is that it has not replayed the write
    cfg = RoutingConfig(max_lag_bytes=None, max_lag_s=None, lag_check_period_s=0.0, pool=SMALL)
    with create_routed_pool(cfg, topology.server.url()) as routed:
        _read_your_writes(routed, topology)


def _read_your_writes(routed: RoutedPool, topology: ScaleOut) -> None:
    replica = topology.replica_urls()[0]
    with psycopg.connect(replica, autocommit=True) as r:
        r.execute("SELECT pg_wal_replay_pause()")
        try:
            with routed.writer() as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS ryw (x int)")
                conn.execute("INSERT INTO ryw VALUES (1)")
                lsn = routed.write_lsn(conn)
            with routed.reader(after_write=lsn) as conn:
                assert _in_recovery(conn) is False
                assert conn.execute("SELECT count(*) FROM ryw").fetchone()[0] >= 1
            assert routed.stats().skipped_behind_write == 1
        finally:
            r.execute("SELECT pg_wal_replay_resume()")
    deadline = time.monotonic() + 30
    while True:
        with routed.reader(after_write=lsn) as conn:
            if _in_recovery(conn):
                assert conn.execute("SELECT count(*) FROM ryw").fetchone()[0] >= 1
                break
        assert time.monotonic() < deadline, "the replica never replayed the write"
        time.sleep(0.1)
    with routed.writer() as conn:
        conn.execute("DROP TABLE ryw")


@pytest.mark.db
def test_a_lagging_replica_is_skipped_and_counted(routed: RoutedPool, topology: ScaleOut) -> None:
    replica = topology.replica_urls()[0]
    with psycopg.connect(replica, autocommit=True) as r:
        r.execute("SELECT pg_wal_replay_pause()")
        try:
            with routed.writer() as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS lagging (x int)")
                conn.execute("INSERT INTO lagging SELECT generate_series(1, 20000)")  # ~1 MB of WAL
            with routed.reader() as conn:
                assert _in_recovery(conn) is False
            stats = routed.stats()
            assert (
                stats.skipped_lagging == 1 and stats.reads_primary == 1 and stats.reads_replica == 0
            )
            assert next(iter(stats.last_lag_bytes.values())) > 64 * 1024
        finally:
            r.execute("SELECT pg_wal_replay_resume()")
    with routed.writer() as conn:
        conn.execute("DROP TABLE lagging")


@pytest.mark.db
def test_an_unreachable_replica_is_skipped(topology: ScaleOut) -> None:
    cfg = RoutingConfig(replica_dsns=("postgresql://ibcbench@127.0.0.1:1/ibcbench",), pool=SMALL)
    with create_routed_pool(cfg, topology.server.url()) as pool:
        with pool.reader() as conn:
            assert _in_recovery(conn) is False
        assert pool.stats().skipped_unavailable == 1


@pytest.mark.db
def test_without_replicas_reads_use_the_primary(server_dsn: str) -> None:
    with create_routed_pool(RoutingConfig(pool=SMALL), server_dsn, replica_dsn=None) as pool:
        assert pool.replicas == []  # the suite's test cluster has no standby
        with pool.reader() as conn:
            assert _in_recovery(conn) is False
        assert pool.stats().reads_primary == 1
