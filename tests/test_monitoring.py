"""Monitoring readers and emergency actions on the real server."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ibcbench.errors import ConfigError
from ibcbench.infra.migrate import migrate_up
from ibcbench.toolkit import monitoring

pytestmark = pytest.mark.db


def test_readers_return_frames(loaded_dsn: str) -> None:
    with psycopg.connect(loaded_dsn) as conn:
        conn.execute("SELECT count(*) FROM packet_flow WHERE status = 'stuck'").fetchone()
        for _ in range(2):  # a statement slower than anything the load or the other tests ran
            conn.execute("SELECT pg_sleep(0.35), 'monitoring-slow'").fetchone()
        slow = monitoring.slow_queries(conn, limit=5, min_mean_ms=300)
        assert {"query", "calls", "mean_ms", "hit_pct"} <= set(slow.columns)
        mine = slow[slow["query"].str.contains("pg_sleep")]
        assert len(mine) == 1 and mine.calls.iloc[0] >= 2 and mine.mean_ms.iloc[0] >= 350
        assert (slow.mean_ms >= 300).all()
        assert len(monitoring.slow_queries(conn, limit=1)) == 1
        bloat = monitoring.table_bloat(conn)
        assert "clearing_operations" in set(bloat.table_name)
        usage = monitoring.index_usage(conn)
        assert "idx_clearing_operations_wallet_created" in set(usage.index_name)
        assert monitoring.locks_not_granted(conn).empty


def test_long_queries_are_found_and_terminated_only_when_asked(make_database) -> None:
    dsn = make_database("emergency")
    migrate_up(dsn)
    started = threading.Event()
    failures: list[BaseException] = []

    def sleeper() -> None:
        try:
            with psycopg.connect(dsn) as conn:
                started.set()
                conn.execute("SELECT pg_sleep(30)")
        except psycopg.OperationalError as exc:
            failures.append(exc)

    t = threading.Thread(target=sleeper)
    t.start()
    started.wait(5)
    time.sleep(1.2)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert len(monitoring.long_running_queries(conn, min_duration_s=1)) >= 1
        dry = monitoring.terminate_long_queries(conn, min_duration_s=1)
        assert len(dry) == 1 and not dry[0].executed
        done = monitoring.terminate_long_queries(conn, min_duration_s=1, dry_run=False)
        assert done[0].executed
    t.join(10)
    assert failures, "the long query should have been terminated"


def test_emergency_actions_refuse_a_foreign_database(make_database) -> None:
    dsn = make_database("foreign")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (a int)")
        conn.execute("CREATE INDEX t_a ON t (a)")
        with pytest.raises(
            ConfigError, match="is not an ibcbench database: pass allow_foreign=True"
        ):
            monitoring.checkpoint(conn)
        with pytest.raises(ConfigError, match="is not an ibcbench database"):
            monitoring.terminate_long_queries(conn, dry_run=False)
        action = monitoring.reindex_concurrently(conn, "t_a", dry_run=False, allow_foreign=True)
        assert action.executed and "bytes after" in action.detail
        assert monitoring.vacuum(conn, "t", allow_foreign=True).detail == 'VACUUM (ANALYZE) "t"'
