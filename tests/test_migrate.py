"""Migrations on the real server: every object, down to zero without leftovers, dirty handling."""

from __future__ import annotations

import re
import shutil
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from ibcbench.cli import main
from ibcbench.errors import ConfigError, DirtyDatabase, MigrationError
from ibcbench.infra.migrate import Migrator, default_migrations_dir, load_migrations, migrate_up
from ibcbench.infra.status import (
    database_status,
    format_status,
    hourly_stats_kind,
    job_schedules,
    use_scheduler,
)
from tests.conftest import EditionServer

TABLES = [
    "clearing_operations",
    "network_stats",
    "channel_performance",
    "relayer_performance",
    "packet_flow",
]
SEED_INDEXES = [
    "idx_clearing_operations_wallet_created",
    "idx_clearing_operations_wallet_status",
    "idx_packet_flow_status_created",
    "idx_network_stats_chain_date",
    "idx_packet_flow_channel_sequence",
    "idx_relayer_performance_reputation",
]
LATEST = load_migrations()[-1].version  # the newest version (numbers may skip)
FUNCTIONS = [
    "check_index_effectiveness",
    "analyze_query_performance",
    "calculate_network_health_score",
]


# ---- the folder (no database) -------------------------------------------------------------
def test_repository_migrations_are_well_formed() -> None:
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    # increasing from 1; numbers may skip (golang-migrate allows it) while a branch waits for others
    assert versions[0] == 1 and versions == sorted(set(versions))
    assert all(m.down_path is not None for m in migrations)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_a.up.sql": "SELECT 1;", "2_b.sideways.sql": ""}, "not a migration file name"),
        (
            {"1_a.up.sql": "SELECT 1;", "01_b.up.sql": "SELECT 2;"},
            "two up migrations have version 1",
        ),
        ({"1_a.up.sql": "SELECT 1;", "2_b.down.sql": ""}, "down migration 2 has no up file"),
        (
            {
                "1_a.up.sql": "CREATE INDEX CONCURRENTLY i ON t (a); CREATE INDEX CONCURRENTLY j ON t (b);"
            },
            "uses CONCURRENTLY but holds several statements",
        ),
    ],
)
def test_bad_folders_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_migrations(tmp_path)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist: pass --path"):
        load_migrations(tmp_path / "nope")


# ---- on the server --------------------------------------------------------------------------
def _objects(dsn: str) -> dict[str, set[str]]:
    with psycopg.connect(dsn) as conn:
        rels = {
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            ).fetchall()
        }
        procs = {
            r[0]
            for r in conn.execute(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
            ).fetchall()
        }
        exts = {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}
    return {
        "relations": rels
        - {"schema_migrations", "schema_migrations_pkey"}
        - {"ibcbench_schema_applied", "ibcbench_schema_applied_pkey"},
        "functions": procs,
        "extensions": exts,
    }


@pytest.mark.db
def test_up_from_empty_creates_every_object(schema_dsn: str) -> None:
    objects = _objects(schema_dsn)
    for name in [
        *TABLES,
        *SEED_INDEXES,
        "idx_packet_flow_stuck",
        "idx_clearing_operations_open",
        "mv_user_statistics",
        "hourly_packet_stats",
    ]:
        assert name in objects["relations"], name
    for fn in FUNCTIONS:
        assert fn in objects["functions"]
    assert {"timescaledb", "pg_stat_statements", "hypopg"} <= objects["extensions"]
    with psycopg.connect(schema_dsn) as conn:
        hyper = conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables"
        ).fetchall()
        assert hyper == [("packet_flow",)]
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_clearing_operations_open'::regclass"
        ).fetchone()
        assert valid == (True,)
        assert conn.execute("SELECT version, dirty FROM schema_migrations").fetchall() == [
            (LATEST, False)
        ]


@pytest.mark.db
def test_monitoring_functions_return_rows(schema_dsn: str) -> None:
    with psycopg.connect(schema_dsn) as conn:
        rows = conn.execute(
            "SELECT index_name, verdict FROM check_index_effectiveness()"
        ).fetchall()
        names = {r[0] for r in rows}
        assert set(SEED_INDEXES) <= names
        assert {r[1] for r in rows} <= {
            "constraint",
            "redundant",
            "unused",
            "rarely used",
            "effective",
        }
        conn.execute("SELECT count(*) FROM packet_flow").fetchone()
        perf = conn.execute(
            "SELECT query, calls FROM analyze_query_performance('packet_flow')"
        ).fetchall()
        assert perf and all("packet_flow" in q.lower() for q, _ in perf)
        conn.execute(
            "INSERT INTO network_stats (chain_id, date, total_packets, successful_packets, failed_packets,"
            " success_rate, avg_clear_time_seconds) VALUES ('osmosis-1', '2026-01-02', 100, 98, 2, 98, 60)"
        )
        score = conn.execute(
            "SELECT chain_id, health_score, grade, trouble_hours"
            " FROM calculate_network_health_score('osmosis-1')"
        ).fetchall()
        # no channel hours: network_stats' figures; 0.3*98 + 0.15*(100-20) + 0.1*100 + 0.05*100 + 0.4*100
        assert score == [("osmosis-1", Decimal("96.40"), "healthy", 0)]
        conn.rollback()


@pytest.mark.db
def test_cron_jobs_are_scheduled_in_the_cron_database(edition_server: EditionServer) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    # pg_cron lives in the database named by cron.database_name: 'ibcbench' on the kit's servers. The
    # test cluster's own; never dropped here: pg_cron's launcher does not come back when its database goes.
    params = conninfo_to_dict(edition_server.admin_dsn)
    params["dbname"] = "ibcbench"
    dsn = make_conninfo(**params)
    assert migrate_up(dsn).version == LATEST
    with psycopg.connect(dsn) as conn:
        # ibcbench-demo-* jobs are notebook 06's temporary ones (tests/test_maintenance.py), not the schema's
        jobs = {
            r[0]
            for r in conn.execute(
                "SELECT jobname FROM cron.job WHERE jobname NOT LIKE 'ibcbench-demo-%'"
            ).fetchall()
        }
        policies = conn.execute(
            "SELECT proc_name FROM timescaledb_information.jobs"
            " WHERE hypertable_name = 'hourly_packet_stats'"
        ).fetchall()
    expected = {
        "ibcbench-analyze",
        "ibcbench-refresh-user-statistics",
        "ibcbench-reindex-bloated",
        "ibcbench-archive-packet-flow",
        "ibcbench-cleanup-cron-history",
    }
    if edition_server.edition == "community":
        # the continuous aggregate refreshes through its own policy, a TimescaleDB job
        assert jobs == expected
        assert policies == [("policy_refresh_continuous_aggregate",)]
    else:
        assert jobs == expected | {"ibcbench-refresh-hourly-packet-stats"}
        assert policies == []
    # re-applying is a no-op, and the down migration removes exactly the kit's jobs (tested on a copy)
    assert migrate_up(dsn).applied == []


@pytest.mark.db
def test_up_down_up_leaves_no_leftovers(make_database) -> None:
    dsn = make_database("updown")
    before = _objects(dsn)
    migrator = Migrator(dsn)
    migrator.up()
    assert migrator.down(len(migrator.migrations)).version is None
    assert _objects(dsn) == before
    assert migrator.up().version == LATEST
    assert _objects(dsn)["relations"] >= set(TABLES)


@pytest.mark.db
def test_down_past_zero_is_refused_and_changes_nothing(make_database) -> None:
    dsn = make_database("pastzero")
    migrator = Migrator(dsn)
    migrator.up(2)
    with pytest.raises(
        MigrationError,
        match=r"cannot revert 3 migrations: only 2 applied \(at version 2\); nothing was changed",
    ):
        migrator.down(3)
    assert migrator.version() == (2, False)


@pytest.mark.db
def test_failing_migration_leaves_dirty_and_blocks_until_forced(
    make_database, tmp_path: Path
) -> None:
    dsn = make_database("dirty")
    folder = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), folder)
    (folder / "000099_broken.up.sql").write_text(
        "CREATE TABLE half_done (a int);\nSELECT no_such_function();\n"
    )
    (folder / "000099_broken.down.sql").write_text("DROP TABLE IF EXISTS half_done;\n")
    migrator = Migrator(dsn, folder)
    with pytest.raises(
        MigrationError,
        match=r"000099_broken.up.sql failed: function no_such_function\(\) does not exist.*"
        rf"`ibcbench schema force {LATEST}`",
    ):
        migrator.up()
    assert migrator.version() == (99, True)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
    with pytest.raises(
        DirtyDatabase, match=rf"is dirty at version 99 .*`ibcbench schema force {LATEST}`"
    ):
        migrator.up()
    # the CLI turns it into one line and a non-zero exit
    assert main(["schema", "up", "--dsn", dsn, "--path", str(folder)]) == 1
    migrator.force(LATEST)
    assert migrator.version() == (LATEST, False)
    with pytest.raises(ConfigError, match="version 42 is not a known migration"):
        migrator.force(42)


#: The seed's hourly_packet_stats columns first, then the kit's extras: the same on every edition.
HOURLY_PACKET_STATS_COLUMNS = [
    ("hour", "timestamp with time zone"),
    ("src_chain_id", "text"),
    ("packet_count", "bigint"),
    ("acknowledged_count", "bigint"),
    ("failed_count", "bigint"),
    ("avg_clear_time", "double precision"),
]
SEED_QUERY = (
    "SELECT hour, src_chain_id, packet_count, avg_clear_time FROM hourly_packet_stats"
    " WHERE hour > now() - interval '24 hours' ORDER BY hour"
)


@pytest.mark.db
def test_the_seeds_hourly_packet_stats_query_runs_on_each_edition(
    edition_server: EditionServer, edition_loaded_dsn: str
) -> None:
    with psycopg.connect(edition_loaded_dsn) as conn:
        kind = hourly_stats_kind(conn)
        expected = "continuous aggregate" if edition_server.edition == "community" else "plain"
        assert kind is not None and kind.startswith(expected)
        columns = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " WHERE a.attrelid = 'hourly_packet_stats'::regclass AND a.attnum > 0"
            " AND NOT a.attisdropped ORDER BY a.attnum"
        ).fetchall()
        assert columns == HOURLY_PACKET_STATS_COLUMNS
        # as a user pastes it (the tiny dataset is historical: no rows in the last 24 hours of now)
        cur = conn.execute(SEED_QUERY)
        assert [d.name for d in cur.description] == [
            "hour",
            "src_chain_id",
            "packet_count",
            "avg_clear_time",
        ]
        cur.fetchall()
        # the same query over the dataset's own last day gives the raw GROUP BY's figures
        newest = conn.execute("SELECT max(created_at) FROM packet_flow").fetchone()[0]
        since = newest - timedelta(hours=24)
        view = conn.execute(
            "SELECT hour, src_chain_id, packet_count, avg_clear_time FROM hourly_packet_stats"
            " WHERE hour > %s ORDER BY hour, src_chain_id",
            (since,),
        ).fetchall()
        raw = conn.execute(
            "SELECT date_trunc('hour', created_at), source_chain, count(*), avg(clear_time_seconds)"
            " FROM packet_flow WHERE date_trunc('hour', created_at) > %s GROUP BY 1, 2 ORDER BY 1, 2",
            (since,),
        ).fetchall()
    assert len(view) > 0
    assert [r[:3] for r in view] == [r[:3] for r in raw]
    assert [r[3] for r in view] == pytest.approx([r[3] for r in raw], nan_ok=True)


@pytest.mark.db
def test_the_seeds_names_migration_goes_down_and_up(make_database) -> None:
    dsn = make_database("names")
    migrator = Migrator(dsn)
    migrator.up()

    def names() -> list[str]:
        with psycopg.connect(dsn) as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'hourly_packet_stats'::regclass"
                    " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                ).fetchall()
            ]

    assert names() == [c for c, _ in HOURLY_PACKET_STATS_COLUMNS]
    migrator.down(LATEST - 9)  # back to 000009: the names of 000005
    assert names() == [
        "bucket",
        "source_chain",
        "packet_count",
        "acknowledged_count",
        "failed_count",
        "avg_clear_time_seconds",
    ]
    assert migrator.up().version == LATEST
    assert names() == [c for c, _ in HOURLY_PACKET_STATS_COLUMNS]


MOVABLE_JOBS = {
    "ibcbench-analyze": "every 01:00:00 (cron 17 * * * *)",
    "ibcbench-refresh-user-statistics": "every 00:15:00 (cron */15 * * * *)",
    "ibcbench-reindex-bloated": "every 1 day (cron 30 3 * * *)",
    "ibcbench-archive-packet-flow": "every 7 days (cron 45 3 * * 0)",
}


def _cron_database_dsn(admin_dsn: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(admin_dsn, dbname="ibcbench")


@pytest.mark.db
def test_the_kits_jobs_move_to_timescaledb_jobs_and_back(edition_server: EditionServer) -> None:
    dsn = _cron_database_dsn(edition_server.admin_dsn)
    migrate_up(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = job_schedules(conn)
        assert before and {s for _, s, _ in before} == {"pg_cron"}
        if edition_server.edition != "community":
            with pytest.raises(
                ConfigError,
                match=r"TimescaleDB jobs need the Community edition \(timescaledb.license=timescale\), "
                r"this database has the apache edition: the kit's jobs stay in pg_cron",
            ):
                use_scheduler(conn, "timescaledb")
            assert job_schedules(conn) == before
            return
        try:
            moved = {n: (s, sch) for n, s, sch in use_scheduler(conn, "timescaledb")}
            assert {n: sch for n, (s, sch) in moved.items() if s == "timescaledb"} == MOVABLE_JOBS
            assert moved["ibcbench-cleanup-cron-history"][0] == "pg_cron"
            # moving again changes nothing
            assert {n: (s, sch) for n, s, sch in use_scheduler(conn, "timescaledb")} == moved
            # the job's command runs as a TimescaleDB job
            job_id = conn.execute(
                "SELECT job_id FROM timescaledb_information.jobs WHERE config->>'name' = 'ibcbench-analyze'"
            ).fetchone()[0]
            conn.execute("CALL run_job(%s)", (job_id,))
            text = format_status(database_status(dsn))
            assert "timescaledb jobs: " in text and "ibcbench-analyze every 01:00:00" in text
            assert "Refresh Continuous Aggregate Policy" in text  # hourly_packet_stats' policy
        finally:
            back = use_scheduler(conn, "pg_cron")
        assert back == before
        with psycopg.connect(dsn) as check:
            assert check.execute(
                "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'ibcbench_run_job'"
            ).fetchone() == (0,)


@pytest.mark.db
def test_a_failing_timescaledb_job_shows_in_status(
    primary_server: EditionServer, make_database
) -> None:
    dsn = make_database("jobfail")
    migrate_up(dsn)
    add = (
        "SELECT add_job('ibcbench_run_job', INTERVAL '1 hour', initial_start => now(),"
        ' config => \'{"name": "ibcbench-test-failing", "command": "SELECT 1/0"}\')'
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        if primary_server.edition == "apache":  # a run under TIMESCALEDB_EDITION=apache: no jobs
            with pytest.raises(
                psycopg.Error, match='not supported under the current "apache" license'
            ):
                conn.execute(add)
            return
        job_id = conn.execute(add).fetchone()[0]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            failures = conn.execute(
                "SELECT total_failures FROM timescaledb_information.job_stats WHERE job_id = %s",
                (job_id,),
            ).fetchone()
            if failures and failures[0]:
                break
            time.sleep(1)
    status = database_status(dsn)
    job = next(j for j in status.timescaledb_jobs if j.job_id == job_id)
    assert job.name == "ibcbench-test-failing" and job.total_failures >= 1
    assert job.last_error == "division by zero"
    failures = next(
        line for line in format_status(status).splitlines() if line.startswith("job failures: ")
    )
    assert re.search(r"\bibcbench-test-failing: \d+ \(last: division by zero\)", failures)


@pytest.mark.parametrize(
    ("cron", "every"),
    [
        ("17 * * * *", "01:00:00"),
        ("*/5 * * * *", "00:05:00"),
        ("30 3 * * *", "1 day"),
        ("45 3 * * 0", "7 days"),
        ("0 4 1 * *", None),  # monthly: no fixed interval, the job stays in pg_cron
        ("@daily", None),
    ],
)
@pytest.mark.db
def test_cron_schedules_become_intervals_where_they_can(
    schema_dsn: str, cron: str, every: str | None
) -> None:
    with psycopg.connect(schema_dsn) as conn:
        row = conn.execute(
            "SELECT every::text, first_run > now(), first_run <= now() + every"
            " FROM ibcbench_cron_to_interval(%s)",
            (cron,),
        ).fetchone()
    if every is None:
        assert row == (None, None, None)
    else:
        assert row == (every, True, True)


def test_unreachable_dsn_is_one_line_with_next_step(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["schema", "version", "--dsn", "postgresql://nobody@127.0.0.1:1/none"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "\n" not in err
    assert err.startswith("ibcbench: error: cannot connect to nobody@127.0.0.1:1/none")
    assert err.endswith("check DATABASE_URL/--dsn or run `ibcbench db up`")


# ---- what the kit did not create -------------------------------------------------------------
def _user_database(make_database, hint: str) -> str:
    """A user's own database: a table of the kit's name (network_stats) holding one row."""
    dsn = make_database(hint)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE network_stats (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO network_stats VALUES (1, 'mine')")
        conn.execute("CREATE TABLE my_notes (note text)")
    return dsn


def _has_table(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,)


@pytest.mark.db
@pytest.mark.parametrize(
    ("argv", "code", "out"),
    [
        (["schema", "down", "1"], 1, "nothing was changed"),
        (["schema", "down", "--all"], 1, "was never migrated (it has no schema_migrations table)"),
        (["schema", "force", "-1"], 1, "was never migrated (it has no schema_migrations table)"),
        (["schema", "force", "1"], 1, "was never migrated (it has no schema_migrations table)"),
        (["schema", "version"], 0, "none"),
    ],
)
def test_read_only_and_no_op_commands_create_nothing(
    make_database, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, out: str
) -> None:
    """On a user's database, a destructive schema command refuses in one line (the old ``down --all``
    and ``force -1`` said 'no change' and exited 0; the old ``force 1`` created schema_migrations)."""
    dsn = _user_database(make_database, "noop")
    assert main([*argv, "--dsn", dsn]) == code
    captured = capsys.readouterr()
    if code:
        assert out in captured.err and "nothing" in captured.err
        assert captured.err.count("\n") == 1
    else:
        assert out in captured.out
    assert not _has_table(dsn, "schema_migrations")
    assert not _has_table(dsn, "ibcbench_schema_applied")


@pytest.mark.db
def test_up_refuses_a_user_table_of_a_kit_name_and_the_old_advice_keeps_its_row(
    make_database, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = _user_database(make_database, "adopt")
    assert main(["schema", "up", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "already has network_stats, which ibcbench did not create: nothing was changed" in err
    assert not _has_table(dsn, "schema_migrations")
    assert not _has_table(dsn, "clearing_operations")
    # the advice the old code printed after its failure at 000004: force 3, then down
    assert main(["schema", "force", "3", "--dsn", dsn]) == 1
    assert "was never migrated" in capsys.readouterr().err
    for argv in (["schema", "down", "1"], ["schema", "down", "3"], ["schema", "down", "--all"]):
        assert main([*argv, "--dsn", dsn]) == 1
        assert "nothing" in capsys.readouterr().err
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT id, note FROM network_stats").fetchall() == [(1, "mine")]
        assert conn.execute("SELECT to_regclass('my_notes')").fetchone() != (None,)
    assert not _has_table(dsn, "schema_migrations")


@pytest.mark.db
def test_a_forced_version_is_not_reverted(
    make_database, capsys: pytest.CaptureFixture[str]
) -> None:
    """A version forced on a migrated database (one it did not apply) is never reverted by down."""
    dsn = make_database("forced")
    migrator = Migrator(dsn)
    migrator.up(1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE network_stats (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO network_stats VALUES (1, 'mine')")
    assert main(["schema", "force", "3", "--dsn", dsn]) == 0
    for argv in (["schema", "down", "1"], ["schema", "down", "--all"]):
        capsys.readouterr()
        assert main([*argv, "--dsn", dsn]) == 1
        assert "was not applied by ibcbench" in capsys.readouterr().err
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT id, note FROM network_stats").fetchall() == [(1, "mine")]
    assert Migrator(dsn).version() == (3, False)


@pytest.mark.db
def test_a_table_made_between_migrations_is_not_adopted(make_database) -> None:
    dsn = make_database("between")
    migrator = Migrator(dsn)
    migrator.up(1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION check_index_effectiveness() RETURNS int LANGUAGE sql AS 'SELECT 1'"
        )
    with pytest.raises(
        MigrationError, match="already has check_index_effectiveness, which ibcbench"
    ):
        migrator.up()
    assert migrator.version() == (1, False)
    assert not _has_table(dsn, "clearing_operations")


@pytest.mark.db
def test_dirty_after_a_failed_down_names_the_version_still_applied(
    make_database, tmp_path: Path
) -> None:
    dsn = make_database("dirtydown")
    folder = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), folder)
    (folder / "000099_fragile.up.sql").write_text("CREATE TABLE fragile (a int);\n")
    (folder / "000099_fragile.down.sql").write_text("SELECT no_such_function();\n")
    migrator = Migrator(dsn, folder)
    migrator.up()
    with pytest.raises(
        MigrationError, match=r"000099_fragile.down.sql failed.*`ibcbench schema force 99`"
    ):
        migrator.down(1)
    # golang-migrate marks the target (LATEST) dirty; the last version fully applied is still 99
    assert migrator.version() == (LATEST, True)
    with pytest.raises(
        DirtyDatabase, match=rf"is dirty at version {LATEST} .*`ibcbench schema force 99`"
    ):
        migrator.up()


# ---- concurrency and INVALID indexes -----------------------------------------------------------
@pytest.mark.db
def test_three_concurrent_ups_take_turns(make_database) -> None:
    import threading

    dsn = make_database("concurrent")
    errors: list[BaseException] = []
    results = []

    def up() -> None:
        try:
            results.append(Migrator(dsn).up())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=up) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert sorted(len(r.applied) for r in results) == [0, 0, LATEST]
    assert all(r.version == LATEST for r in results)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT bool_and(indisvalid) FROM pg_index").fetchone() == (True,)


def _fail_concurrent_index(dsn: str) -> BaseException:
    """Run 000008 (CREATE INDEX CONCURRENTLY) while a writer holds clearing_operations, and cancel
    the build while it waits: the index stays behind INVALID, the version dirty at 8."""
    import threading
    import time

    migrator = Migrator(dsn)
    migrator.up(7)
    errors: list[BaseException] = []
    with psycopg.connect(dsn) as writer:
        writer.execute("LOCK TABLE clearing_operations IN ROW EXCLUSIVE MODE")

        def up() -> None:
            try:
                Migrator(dsn).up()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=up)
        thread.start()
        with psycopg.connect(dsn, autocommit=True) as admin:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%%CREATE INDEX CONCURRENTLY%%'"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ).fetchone()
                if row:
                    admin.execute("SELECT pg_cancel_backend(%s)", (row[0],))
                    break
                time.sleep(0.1)
        thread.join(timeout=60)
        writer.rollback()
    assert len(errors) == 1 and "000008" in str(errors[0])
    assert migrator.version() == (8, True)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"
        ).fetchall() == [("idx_clearing_operations_open",)]
    return errors[0]


@pytest.mark.db
def test_a_failed_concurrent_migration_names_the_invalid_index_it_left(make_database) -> None:
    """The old message said 'nothing of it was applied' while an INVALID index stayed behind."""
    error = _fail_concurrent_index(make_database("invalidmsg"))
    message = str(error)
    assert isinstance(error, MigrationError) and "\n" not in message
    assert "it left index idx_clearing_operations_open INVALID" in message
    assert "nothing of it was applied" not in message
    assert "`ibcbench schema force 7` and `ibcbench schema up` (which rebuilds" in message


@pytest.mark.db
@pytest.mark.parametrize("forced", [7, 8])
def test_an_invalid_index_left_by_a_failed_build_is_found_and_rebuilt(
    make_database, capsys: pytest.CaptureFixture[str], forced: int
) -> None:
    from ibcbench.infra.status import database_status, format_status

    dsn = make_database(f"invalid{forced}")
    _fail_concurrent_index(dsn)
    with pytest.raises(
        DirtyDatabase, match=r"`ibcbench schema force 7` \(7: the last version fully applied\)"
    ):
        Migrator(dsn).up()
    assert "version 8 DIRTY (run `ibcbench schema force 7`)" in format_status(database_status(dsn))
    assert main(["schema", "force", str(forced), "--dsn", dsn]) == 0
    if forced == 8:
        # the version reads clean, but the index is not: version and status say so
        capsys.readouterr()
        assert main(["schema", "version", "--dsn", dsn]) == 0
        assert "INVALID indexes: idx_clearing_operations_open" in capsys.readouterr().out
        assert "INVALID:      idx_clearing_operations_open" in format_status(database_status(dsn))
    result = Migrator(dsn).up()
    assert result.version == LATEST
    assert Migrator(dsn).invalid() == []
    with psycopg.connect(dsn) as conn:
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_clearing_operations_open'::regclass"
        ).fetchone()
    assert valid == (True,)


@pytest.mark.db
def test_force_refuses_another_tools_schema_migrations(
    make_database, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database("othertool")
    with psycopg.connect(
        dsn, autocommit=True
    ) as conn:  # the user's own app, migrated by golang-migrate
        conn.execute(
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)"
        )
        conn.execute("INSERT INTO schema_migrations VALUES (20230101, false)")
    assert main(["schema", "force", "3", "--dsn", dsn]) == 1
    assert "holds version 20230101, which is not one of these migrations" in capsys.readouterr().err
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT * FROM schema_migrations").fetchall() == [(20230101, False)]


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://me:pw-s3cr3t-1@127.0.0.1:1/db?nosuchoption=1",
        "host=127.0.0.1 password=pw-s3cr3t-1 nonsense",
        "host=127.0.0.1 port=1 user=me password='pw-s3cr3t-1' dbname=x",
    ],
    ids=["url", "keywords", "unreachable"],
)
def test_no_password_in_dsn_errors(capsys: pytest.CaptureFixture[str], dsn: str) -> None:
    assert main(["schema", "version", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ibcbench: error: ")
    assert "pw-s3cr3t-1" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "load", "--packets", "2000", "--rounds", "1"],
        ["seed", "--scale", "tiny"],
        ["run-all"],
    ],
    ids=["bench-load", "seed", "run-all"],
)
def test_no_password_in_a_malformed_dsn_error_of_any_command(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main([*argv, "--dsn", "host=127.0.0.1 password=pw-s3cr3t-2 bogus"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid DSN" in err and "pw-s3cr3t-2" not in err
