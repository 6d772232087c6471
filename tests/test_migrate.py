"""Migrations on the real server: every object, down to zero without leftovers, dirty handling."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from ibcbench.cli import main
from ibcbench.errors import ConfigError, DirtyDatabase, MigrationError
from ibcbench.migrate import Migrator, default_migrations_dir, load_migrations, migrate_up

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
        "relations": rels - {"schema_migrations", "schema_migrations_pkey"},
        "functions": procs,
        "extensions": exts,
    }


@pytest.mark.db
def test_up_from_empty_creates_every_object(schema_dsn: str) -> None:
    objects = _objects(schema_dsn)
    for name in [*TABLES, *SEED_INDEXES, "idx_packet_flow_stuck", "idx_clearing_operations_open",
                 "mv_user_statistics", "hourly_packet_stats"]:  # fmt: skip
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
def test_cron_jobs_are_scheduled_in_the_cron_database(server_dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    # pg_cron lives in the database named by cron.database_name: 'ibcbench' on the kit's servers. The
    # test cluster's own; never dropped here: pg_cron's launcher does not come back when its database goes.
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = "ibcbench"
    dsn = make_conninfo(**params)
    assert migrate_up(dsn).version == LATEST
    with psycopg.connect(dsn) as conn:
        # ibcbench-demo-* jobs are notebook 06's temporary ones (tests/test_maintenance.py), not the schema's
        jobs = {r[0] for r in conn.execute(
            "SELECT jobname FROM cron.job WHERE jobname NOT LIKE 'ibcbench-demo-%'").fetchall()}  # fmt: skip
    assert jobs == {
        "ibcbench-analyze",
        "ibcbench-refresh-user-statistics",
        "ibcbench-refresh-hourly-packet-stats",
        "ibcbench-reindex-bloated",
        "ibcbench-archive-packet-flow",
        "ibcbench-cleanup-cron-history",
    }
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
    with pytest.raises(DirtyDatabase, match=r"is dirty at version 99 .*`ibcbench schema force V`"):
        migrator.up()
    # the CLI turns it into one line and a non-zero exit
    assert main(["schema", "up", "--dsn", dsn, "--path", str(folder)]) == 1
    migrator.force(LATEST)
    assert migrator.version() == (LATEST, False)
    with pytest.raises(ConfigError, match="version 42 is not a known migration"):
        migrator.force(42)


def test_unreachable_dsn_is_one_line_with_next_step(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["schema", "version", "--dsn", "postgresql://nobody@127.0.0.1:1/none"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "\n" not in err
    assert err.startswith("ibcbench: error: cannot connect to nobody@127.0.0.1:1/none")
    assert err.endswith("check DATABASE_URL/--dsn or run `ibcbench db up`")
