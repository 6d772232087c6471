"""TimescaleDB layouts, rollups and retention on the loaded tiny dataset (copies only)."""

from __future__ import annotations

import psycopg
import pytest

from ibcbench.bench import timescale as ts
from ibcbench.bench.timescale.shared import create_layout
from ibcbench.bench.timing import PLAN_CACHE_WARMUP
from ibcbench.data.ownership import create_kit_schema, drop_kit_schema
from ibcbench.errors import ConfigError
from tests.conftest import PRIMARY_EDITION, EditionServer

pytestmark = pytest.mark.db


def _schema_gone(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regnamespace(%s)", (ts.SCHEMA,)).fetchone() == (None,)


def test_chunk_exclusion_and_the_many_chunks_penalty(loaded_dsn: str) -> None:
    result = ts.benchmark_layouts(loaded_dsn, chunk_intervals=("1 hour", "1 day"), repetitions=5)
    layouts = result.layouts.set_index("layout")
    assert (
        layouts.loc["hypertable_1_hour", "partitions"] == 24
        and layouts.loc["plain", "partitions"] == 1
    )
    q = result.queries.set_index(["layout", "query"])
    # a time-bounded lookup scans one chunk of 24; an unbounded one visits all of them
    assert q.loc[("hypertable_1_hour", "point_lookup_time_bounded"), "partitions_scanned"] == 1
    assert q.loc[("hypertable_1_hour", "point_lookup"), "partitions_scanned"] == 24
    assert q.loc[("hypertable_1_hour", "recent_2h_count"), "partitions_scanned"] < 24
    # the daily partitions are counted like chunks: a two-hour window is in one of them
    assert q.loc[("partitioned_1_day", "recent_2h_count"), "partitions_scanned"] == 1
    # warmed up (prepared, plan settled) before the five measured runs, which repetitions caps
    assert (result.queries.warmup_runs == PLAN_CACHE_WARMUP).all()
    assert (result.queries.n == 5).all() and (result.queries.stopped_by == "budget").all()
    assert _schema_gone(loaded_dsn)


def test_incremental_rollup_matches_the_raw_group_by(
    edition_server: EditionServer, edition_loaded_dsn: str
) -> None:
    result = ts.benchmark_rollups(edition_loaded_dsn, new_packets=500, repetitions=2)
    assert result.rollup_matches_raw
    methods = result.frame.set_index("method")
    assert methods.loc["plain materialized view", "stale_rows_after_insert"] == 500
    if edition_server.edition == "community":
        assert result.continuous_aggregates == "measured"
        for mode in ("real-time", "materialized-only"):
            assert methods.loc[f"continuous aggregate ({mode})", "refresh_ms"] > 0
        # packets that arrive after the last refresh: real-time aggregation counts them, a
        # materialized-only answer misses exactly them until its next refresh
        assert methods.loc["continuous aggregate (real-time)", "stale_rows_after_insert"] == 0
        assert (
            methods.loc["continuous aggregate (materialized-only)", "stale_rows_after_insert"]
            == 500
        )
        assert result.cagg_policy["hierarchical_matches_hourly"] is True
        assert "equals the hourly sums" in methods.loc["hierarchical: daily over hourly", "note"]
        # the refresh policy ran as a job; its outcome is reported as the server saw it (2.28.3 on
        # PostgreSQL 15.20 fails policy jobs: the error is carried, not hidden)
        assert result.cagg_policy["total_runs"] >= 1, result.cagg_policy
        assert result.cagg_policy["last_run_status"] in ("Success", "Failed")
        assert (result.cagg_policy["last_run_status"] == "Failed") == bool(
            result.cagg_policy["total_failures"]
        )
        if result.cagg_policy["last_run_status"] == "Failed":
            assert result.cagg_policy["last_error"]
        numbers = result.key_numbers()
        assert numbers["cagg_stale_rows_materialized_only"] == 500
    else:
        assert result.continuous_aggregates.startswith("unavailable on this server (TimescaleDB")
        assert "Apache edition" in result.continuous_aggregates
    assert _schema_gone(edition_loaded_dsn)


def test_retention_removes_the_same_rows_three_ways(loaded_dsn: str) -> None:
    everything = ts.benchmark_retention(loaded_dsn, keep_hours=6).frame.set_index("method")
    job = "add_retention_policy (a job)"
    assert (job in everything.index) == (PRIMARY_EDITION == "community")  # jobs: Community only
    frame = everything.drop(index=job, errors="ignore")
    assert frame.rows_removed.nunique() == 1 and frame.rows_removed.iloc[0] > 0
    assert (
        frame.loc["drop_chunks on a hypertable", "wal_bytes"]
        < frame.loc["DELETE on a plain table", "wal_bytes"]
    )
    with psycopg.connect(loaded_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM packet_flow").fetchone() == (
            20_000,
        )  # the dataset is untouched
    if job in everything.index:
        policy = everything.loc[job]
        # the policy ran as a job: where it succeeds it removes what the others removed. Seen here
        # (2.28.3, PostgreSQL 15.20): the run is reported Failed ('cannot drop portal ...') after it
        # dropped the chunks; the note carries the status, rows_removed what really happened
        assert policy.note.startswith("job ") and (
            "Success" in policy.note or "Failed" in policy.note
        )
        if "Success" in policy.note:
            assert policy.rows_removed == frame.rows_removed.iloc[0]
        else:
            assert policy.rows_removed in (0, frame.rows_removed.iloc[0])


@pytest.mark.parametrize(
    "bench",
    [ts.benchmark_layouts, ts.benchmark_rollups, ts.benchmark_retention],
    ids=["layouts", "rollups", "retention"],
)
def test_a_user_schema_of_the_scratch_name_is_refused_and_kept(make_database, bench) -> None:
    from ibcbench.errors import ConfigError

    dsn = make_database("tsschema")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {ts.SCHEMA}")
        conn.execute(f"CREATE TABLE {ts.SCHEMA}.mine AS SELECT 7 AS a")
    with pytest.raises(
        ConfigError,
        match=f"schema '{ts.SCHEMA}' .* was not created by ibcbench: nothing was dropped",
    ):
        bench(dsn)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(f"SELECT a FROM {ts.SCHEMA}.mine").fetchall() == [(7,)]


#: a chunk interval that closes the statement it is put in and creates a table of its own
PAYLOAD = (
    "x\t(a\tint);\tCREATE\tTABLE\tpublic.injected_by_param\t(x\tint);\tCREATE\tTABLE\t"
    f"{ts.SCHEMA}.z"
)


def _injected(dsn: str) -> list[str]:
    """Tables the payload would have made, in any schema of the database."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = 'injected_by_param' OR (n.nspname = %s AND c.relname = 'z')",
            (ts.SCHEMA,),
        ).fetchall()
    return [r[0] for r in rows]


def test_a_chunk_interval_with_sql_in_it_is_refused_before_any_sql(loaded_dsn: str) -> None:
    with pytest.raises(ConfigError, match=r"chunk interval .* is invalid: give a count and a unit"):
        ts.benchmark_layouts(loaded_dsn, chunk_intervals=("1 hour", PAYLOAD), repetitions=1)
    assert _injected(loaded_dsn) == [] and _schema_gone(loaded_dsn)


@pytest.mark.parametrize(
    ("name", "interval"),
    [(f"hypertable_{PAYLOAD}", "1 hour"), ("hypertable_1_hour", PAYLOAD), (PAYLOAD, None)],
    ids=["name", "interval", "plain-name"],
)
def test_the_layout_function_refuses_sql_in_a_name_or_interval(
    loaded_dsn: str, name: str, interval: str | None
) -> None:
    kind = "plain" if interval is None else "hypertable"
    with psycopg.connect(loaded_dsn, autocommit=True) as conn:
        create_kit_schema(conn, ts.SCHEMA)
        try:
            with pytest.raises(ConfigError, match=r"(layout name|chunk interval) .* is invalid"):
                create_layout(conn, name, kind, interval, None, None)
            made = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace(%s)",
                (ts.SCHEMA,),
            ).fetchone()
        finally:
            drop_kit_schema(conn, ts.SCHEMA)
    assert made == (0,), "a statement ran before the check"
    assert _injected(loaded_dsn) == []
