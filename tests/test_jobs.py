"""TimescaleDB's scheduler runs jobs on this server: a refresh policy and an ``add_job`` procedure;
and the build's record of the project's patches, as ``db status`` and the manifest show it.

TimescaleDB 2.28.3 as released fails every job it runs on PostgreSQL 15.20 (``cannot drop portal ""
while it is being set up``); the install carries patches/timescaledb/0001-job-portal-status.patch for
it. The scheduler test fails on a build without the patch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from ibcbench.db import ServerInfo, TimescaleBuild, parse_build_record
from tests.conftest import EditionServer

#: how long the jobs get to succeed once. Each is scheduled every second and starts at once; the
#: scheduler of a new database starts within a few seconds of CREATE EXTENSION. 30 s leaves room for a
#: machine busy with other clusters, and the poll ends as soon as both jobs have run (or one failed).
JOB_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.25

#: rows inserted two hours back: inside the refresh window below (3 days back to 1 hour back)
ROWS = [("osmosis-1", 0), ("osmosis-1", 1), ("osmosis-1", 2), ("cosmoshub-4", 3)]


def _insert_packets(conn: psycopg.Connection) -> None:
    for chain, seq in ROWS:
        conn.execute(
            "INSERT INTO packet_flow (id, source_chain, destination_chain, source_channel,"
            " destination_channel, sequence, status, sender, receiver, amount, denom,"
            " timeout_timestamp, created_at)"
            " VALUES (%s, %s, 'juno-1', 'channel-0', 'channel-1', %s, 'acknowledged', 's', 'r', 1,"
            " 'uatom', now(), now() - interval '2 hours')",
            (seq + 1, chain, seq + 1),
        )


def _job_stats(conn: psycopg.Connection, job_ids: list[int]) -> dict[int, tuple[int, int]]:
    """job id -> (total_successes, total_failures), for the jobs that have run."""
    rows = conn.execute(
        "SELECT job_id, coalesce(total_successes, 0), coalesce(total_failures, 0)"
        " FROM timescaledb_information.job_stats"
        " WHERE job_id = ANY(%s)",
        (job_ids,),
    ).fetchall()
    return {job_id: (ok, failed) for job_id, ok, failed in rows}


def _job_errors(conn: psycopg.Connection, job_ids: list[int]) -> list[tuple[int, str, str]]:
    return conn.execute(
        "SELECT job_id, proc_name, err_message FROM timescaledb_information.job_errors"
        " WHERE job_id = ANY(%s) ORDER BY start_time",
        (job_ids,),
    ).fetchall()


def _wait_for_jobs(conn: psycopg.Connection, job_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Polls job_stats until every job has succeeded once or one has failed, at most JOB_WAIT_SECONDS."""
    deadline = time.monotonic() + JOB_WAIT_SECONDS
    while True:
        stats = _job_stats(conn, job_ids)
        done = all(stats.get(j, (0, 0))[0] >= 1 for j in job_ids)
        failed = any(f > 0 for _, f in stats.values())
        if done or failed or time.monotonic() > deadline:
            return stats
        time.sleep(POLL_SECONDS)


@pytest.mark.db
def test_scheduler_runs_a_refresh_policy_and_an_add_job_procedure(
    primary_server: EditionServer, make_database: Callable[[str], str]
) -> None:
    if primary_server.edition != "community":
        pytest.skip(
            "the Apache edition (timescaledb.license=apache) has no continuous aggregates, "
            "policies or add_job: jobs run on the Community edition only"
        )
    from ibcbench.infra.migrate import migrate_up

    dsn = make_database("jobs")
    migrate_up(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # only what a refresh materialized counts; rows inserted before any refresh
        conn.execute(
            "ALTER MATERIALIZED VIEW hourly_packet_stats SET (timescaledb.materialized_only = true)"
        )
        _insert_packets(conn)
        assert conn.execute("SELECT count(*) FROM hourly_packet_stats").fetchone() == (0,)
        conn.execute("SELECT remove_continuous_aggregate_policy('hourly_packet_stats')")
        row = conn.execute(
            "SELECT add_continuous_aggregate_policy('hourly_packet_stats',"
            " start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',"
            " schedule_interval => INTERVAL '1 second')"
        ).fetchone()
        assert row is not None
        policy = int(row[0])
        conn.execute("CREATE TABLE job_ticks (job_id int, at timestamptz DEFAULT now())")
        conn.execute(
            "CREATE PROCEDURE job_tick(job_id int, config jsonb) LANGUAGE plpgsql AS $$"
            " BEGIN INSERT INTO job_ticks (job_id) VALUES (job_id); COMMIT; END $$"
        )
        row = conn.execute(
            "SELECT add_job('job_tick', schedule_interval => INTERVAL '1 second')"
        ).fetchone()
        assert row is not None
        procedure = int(row[0])
        jobs = [policy, procedure]

        stats = _wait_for_jobs(conn, jobs)
        errors = _job_errors(conn, jobs)
        assert all(stats.get(j, (0, 0))[1] == 0 for j in jobs), (
            f"jobs failed (job id -> successes, failures): {stats}; job_errors: {errors}"
        )
        assert all(stats.get(j, (0, 0))[0] >= 1 for j in jobs), (
            f"not every job succeeded within {JOB_WAIT_SECONDS:.0f} s "
            f"(job id -> successes, failures): {stats}; job_errors: {errors}"
        )
        # the policy materialized the rows (the test never refreshes the aggregate itself)
        got = conn.execute(
            "SELECT src_chain_id, sum(packet_count)::int FROM hourly_packet_stats"
            " GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert got == [("cosmoshub-4", 1), ("osmosis-1", 3)]
        ticks = conn.execute("SELECT count(*) FROM job_ticks WHERE job_id = %s", (procedure,))
        assert ticks.fetchone()[0] >= 1  # type: ignore[index]


RECORD = """# TimescaleDB builds by ibcbench's scripts/install-system.sh: the project's patches each got
2.19.3 patched: none
2.28.3 patched: 0001-job-portal-status (stands in for upstream #11015)
"""


def test_the_build_record_names_each_version_s_patches() -> None:
    build = parse_build_record(RECORD, "2.28.3")
    assert build == TimescaleBuild("2.28.3", ("0001-job-portal-status (#11015)",))
    assert build.label == "patched: 0001-job-portal-status (#11015)"
    assert build.manifest() == {"version": "2.28.3", "patched": ["0001-job-portal-status (#11015)"]}
    assert parse_build_record(RECORD, "2.19.3") == TimescaleBuild("2.19.3", ())
    assert parse_build_record(RECORD, "2.19.3").label == "patched: none"  # type: ignore[union-attr]
    assert parse_build_record(RECORD, "2.28.5") is None  # no record: not known, not "none"
    rebuilt = RECORD + "2.28.3 patched: none\n"  # the last line of a version wins
    assert parse_build_record(rebuilt, "2.28.3") == TimescaleBuild("2.28.3", ())


def test_db_status_shows_the_build_beside_the_version() -> None:
    from ibcbench.infra.status import timescaledb_line

    info = ServerInfo(
        "15.20",
        150020,
        "ibcbench",
        extensions={"timescaledb": "2.28.3"},
        available_extensions={"timescaledb": "2.28.3"},
        timescaledb_edition="timescale",
        timescaledb_build=parse_build_record(RECORD, "2.28.3"),
    )
    assert timescaledb_line(info) == (
        "TimescaleDB 2.28.3 Community edition (timescaledb.license=timescale); "
        "patched: 0001-job-portal-status (#11015)"
    )


@pytest.mark.db
def test_status_and_manifest_show_the_installed_build(
    primary_server: EditionServer, schema_dsn: str
) -> None:
    from ibcbench.db import server_info
    from ibcbench.infra.status import database_status, format_status
    from ibcbench.results.runs import build_manifest

    with psycopg.connect(schema_dsn) as conn:
        build = server_info(conn).timescaledb_build
    if primary_server.cluster is not None and primary_server.edition == "community":
        # the embedded server runs what scripts/install-system.sh built, and it writes the record
        assert build is not None, (
            "no record of the TimescaleDB build: run scripts/install-system.sh"
        )
    manifest = build_manifest(schema_dsn)
    assert manifest["timescaledb_build"] == (build.manifest() if build else None)
    line = next(
        x
        for x in format_status(database_status(schema_dsn)).splitlines()
        if x.startswith("timescaledb:")
    )
    assert (build is not None and line.endswith(f"; {build.label}")) or (
        build is None and "patched:" not in line
    )
