"""Maintenance: bloat made and repaired, monitoring functions over the data, scheduled jobs."""

from __future__ import annotations

import psycopg
import pytest

from ibcbench.bench import maintenance as m
from ibcbench.bench.timing import PLAN_CACHE_WARMUP
from ibcbench.infra.status import hourly_stats_kind

pytestmark = pytest.mark.db


def test_bloat_is_detected_and_reindex_repairs_it(loaded_dsn: str) -> None:
    result = m.demonstrate_bloat(loaded_dsn, delete_share=0.7, lookups=10, repetitions=40)
    _fresh, bloated, repaired = result.frame.to_dict("records")
    assert bloated["leaf_density_pct"] < 50 < repaired["leaf_density_pct"]
    assert repaired["index_bytes"] < bloated["index_bytes"]
    assert result.detected.action.tolist() == ["would reindex"]
    # each stage's lookups: warmed up, then timed until the p50 is known to ±5% (or 40 runs)
    frame = result.frame
    assert (
        frame.lookups_timed.between(10, 40).all() and (frame.warmup_runs == PLAN_CACHE_WARMUP).all()
    )
    assert ((frame.stopped_by == "precision") | (frame.lookups_timed == 40)).all()
    assert (frame.p50_ci_low_ms <= frame.p50_ms).all() and (
        frame.p50_ms <= frame.p50_ci_high_ms
    ).all()
    assert result.manifest["timing"]["max_runs"] == 40
    with psycopg.connect(loaded_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace(%s)", (m.SCHEMA,)).fetchone() == (None,)


def test_monitoring_tables_cover_every_chain(loaded_dsn: str) -> None:
    tables = m.monitoring_tables(loaded_dsn)
    health = tables["network_health"]
    assert len(health) == 22 and health.health_score.astype(float).between(0, 100).all()
    assert {"verdict", "index_name"} <= set(tables["index_effectiveness"].columns)
    assert len(tables["top_statements"]) > 0


def test_cron_database_and_its_jobs(server_dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from ibcbench.infra.migrate import migrate_up

    params = conninfo_to_dict(server_dsn)
    params["dbname"] = "ibcbench"  # the test cluster's cron database: never dropped
    dsn = make_conninfo(**params)
    migrate_up(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # a demo job left behind by a killed run: not one of the schema's jobs, and cleared
        conn.execute("SELECT cron.schedule('ibcbench-demo-analyze', '0 0 1 1 *', 'SELECT 1')")
        jobs = m.scheduled_jobs(dsn)
        # a continuous aggregate (Community edition) refreshes by its policy, not by a pg_cron job
        cagg = (hourly_stats_kind(conn) or "").startswith("continuous")
        assert len(jobs) == (5 if cagg else 6) and jobs.active.all()
        assert not jobs.jobname.str.startswith(m.DEMO_PREFIX).any()
        assert m.clear_demo_jobs(conn) == 1
        assert m.clear_demo_jobs(conn) == 0
        names = {r[0] for r in conn.execute("SELECT jobname FROM cron.job").fetchall()}
    assert names == set(jobs.jobname)  # the schema's jobs are untouched
    assert "dbname=ibcbench" in m.cron_database_dsn(dsn)


def test_a_user_schema_of_the_scratch_name_is_refused_and_kept(make_database) -> None:
    from ibcbench.errors import ConfigError

    dsn = make_database("maintschema")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {m.SCHEMA}")
        conn.execute(f"CREATE TABLE {m.SCHEMA}.mine AS SELECT 7 AS a")
    with pytest.raises(
        ConfigError,
        match=f"schema '{m.SCHEMA}' .* was not created by ibcbench: nothing was dropped",
    ):
        m.demonstrate_bloat(dsn)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(f"SELECT a FROM {m.SCHEMA}.mine").fetchall() == [(7,)]
