"""The embedded server: settings validation, refusals before any work, and the running test cluster."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import psycopg
import psycopg.conninfo
import psycopg.sql
import pytest

from ibcbench.errors import ConfigError, MissingExtension, ServerError
from ibcbench.migrate import load_migrations, migrate_up
from ibcbench.server import LocalServer, check_extensions_installed, resolve_license
from ibcbench.settings import ServerSettings
from ibcbench.status import database_status, format_status
from tests.conftest import EditionServer, create_database, drop_database


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "cluster name 'Bad Name' is invalid"),
        ({"name": ""}, "cluster name '' is invalid"),
        ({"port": 80}, "port 80 is out of range"),
        ({"port": 70000}, "port 70000 is out of range"),
        ({"shared_buffers_mb": 1}, "shared_buffers_mb must be at least 16"),
        ({"timescaledb_license": "enterprise"}, "timescaledb_license 'enterprise' is invalid"),
    ],
)
def test_settings_are_validated(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerSettings(home=tmp_path, **kwargs)


@pytest.mark.parametrize(
    ("edition", "license_"), [("community", "timescale"), ("Apache", "apache"), ("", None)]
)
def test_the_edition_comes_from_timescaledb_edition(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, edition: str, license_: str | None
) -> None:
    monkeypatch.setenv("TIMESCALEDB_EDITION", edition)
    assert ServerSettings(home=tmp_path).timescaledb_license == license_


def test_an_unknown_edition_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIMESCALEDB_EDITION", "enterprise")
    with pytest.raises(ConfigError, match="TIMESCALEDB_EDITION='enterprise' is not an edition"):
        ServerSettings(home=tmp_path)


def test_port_in_use_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = LocalServer(ServerSettings(home=tmp_path / "home", name="busy", port=port))
        with pytest.raises(
            ServerError, match=rf"port {port} is in use by another process: choose another"
        ):
            server.up()
    assert not (tmp_path / "home").exists()


def _fake_bindir(
    tmp_path: Path, with_extensions: list[str], timescaledb_libs: tuple[str, ...] = ()
) -> Path:
    bindir = tmp_path / "15" / "bin"
    share = tmp_path / "share"
    lib = tmp_path / "lib"
    for d in (bindir, share / "extension", lib):
        d.mkdir(parents=True)
    for ext in with_extensions:
        (share / "extension" / f"{ext}.control").write_text("")
        (lib / f"{ext}.so").write_text("")
    if "timescaledb" in with_extensions:
        (share / "extension" / "timescaledb.control").write_text("default_version = '9.9.9'\n")
    for name in timescaledb_libs:
        (lib / name).write_text("")
    script = bindir / "pg_config"
    script.write_text(
        f'#!/bin/sh\ncase "$1" in --sharedir) echo {share};; --pkglibdir) echo {lib};; esac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bindir


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        (["pg_stat_statements", "pg_cron"], "timescaledb"),
        (["timescaledb", "pg_stat_statements"], "pg_cron"),
        ([], "timescaledb, pg_stat_statements, pg_cron"),
    ],
)
def test_missing_extension_names_the_fix(tmp_path: Path, present: list[str], missing: str) -> None:
    bindir = _fake_bindir(tmp_path, present)
    with pytest.raises(
        MissingExtension,
        match=rf"extension\(s\) {missing} not installed for PostgreSQL 15: run `make setup`",
    ):
        check_extensions_installed(bindir)


@pytest.mark.parametrize(
    ("libs", "requested", "license_"),
    [
        (("timescaledb-9.9.9.so", "timescaledb-tsl-9.9.9.so"), None, "timescale"),
        (("timescaledb-9.9.9.so", "timescaledb-tsl-9.9.9.so"), "apache", "apache"),
        (("timescaledb-9.9.9.so",), None, "apache"),
        (("timescaledb-9.9.9.so",), "apache", "apache"),
        # an older Community library does not make the installed default version Community
        (("timescaledb-9.9.9.so", "timescaledb-tsl-1.0.0.so"), None, "apache"),
    ],
)
def test_the_license_defaults_to_the_community_edition_where_installed(
    tmp_path: Path, libs: tuple[str, ...], requested: str | None, license_: str
) -> None:
    bindir = _fake_bindir(tmp_path, ["timescaledb"], libs)
    assert resolve_license(bindir, requested) == license_


def test_the_community_edition_is_refused_on_an_apache_only_build(tmp_path: Path) -> None:
    bindir = _fake_bindir(tmp_path, ["timescaledb"], ("timescaledb-9.9.9.so",))
    with pytest.raises(
        MissingExtension,
        match=r"Community edition needs timescaledb-tsl-9.9.9.so, not installed for PostgreSQL 15 "
        r"\(an Apache-only build\): run scripts/install-system.sh .*TIMESCALEDB_EDITION=apache",
    ):
        resolve_license(bindir, "timescale")


@pytest.mark.db
def test_installed_extensions_pass_on_this_machine(server_dsn: str) -> None:
    from ibcbench.server import REQUIRED_PRELOADS, find_pg_bindir

    check_extensions_installed(find_pg_bindir())
    # what the check found on disk is what the running server offers and has loaded
    with psycopg.connect(server_dsn) as conn:
        available = conn.execute(
            "SELECT array_agg(name ORDER BY name) FROM pg_available_extensions WHERE name = ANY(%s)",
            (list(REQUIRED_PRELOADS),),
        ).fetchone()[0]  # type: ignore[index]
        preloaded = conn.execute("SHOW shared_preload_libraries").fetchone()[0]  # type: ignore[index]
    assert available == sorted(REQUIRED_PRELOADS)
    assert preloaded.split(",") == list(REQUIRED_PRELOADS)


@pytest.mark.db
def test_up_is_idempotent_and_reports_the_same_url(primary_server: EditionServer) -> None:
    server = LocalServer(ServerSettings(name=primary_server.cluster or "test"))
    first = server.read_state()
    again = server.up()
    assert not again.started and not again.created
    assert first is not None and again.state.url == first.url
    with psycopg.connect(again.state.url) as conn:
        preloads = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        assert preloads == "timescaledb,pg_stat_statements,pg_cron"
        assert conn.execute("SHOW cron.use_background_workers").fetchone()[0] == "on"
        assert conn.execute("SHOW timescaledb.license").fetchone()[0] == primary_server.license
    assert again.state.timescaledb_license == primary_server.license


@pytest.mark.db
def test_up_with_another_edition_than_the_running_one_is_refused(
    primary_server: EditionServer,
) -> None:
    other = "apache" if primary_server.license == "timescale" else "timescale"
    name = primary_server.cluster or "test"
    with pytest.raises(
        ServerError,
        match=rf"the embedded server '{name}' already runs with timescaledb.license="
        rf"{primary_server.license}, not {other}: run `ibcbench db down --name {name}` first",
    ):
        LocalServer(ServerSettings(name=name, timescaledb_license=other)).up()


@pytest.mark.db
def test_status_reports_the_edition_it_started_and_the_schema(
    edition_server: EditionServer, edition_schema_dsn: str
) -> None:
    status = database_status(edition_schema_dsn)
    assert status.info.timescaledb_edition == edition_server.license
    assert status.info.timescaledb_version is not None
    assert status.packet_flow_kind is not None and status.packet_flow_kind.startswith("hypertable")
    text = format_status(status)
    version = status.info.timescaledb_version
    if edition_server.edition == "community":
        assert (
            status.hourly_packet_stats_kind == "continuous aggregate (refresh policy every 5 min)"
        )
        assert status.info.has_continuous_aggregates
        assert (
            f"timescaledb:  TimescaleDB {version} Community edition (timescaledb.license=timescale)"
            in text
        )
    else:
        assert status.hourly_packet_stats_kind is not None
        assert status.hourly_packet_stats_kind.startswith("plain materialized view")
        assert not status.info.has_continuous_aggregates
        assert (
            f"timescaledb:  TimescaleDB {version} Apache edition (no continuous aggregates" in text
        )
        assert "(timescaledb.license=apache)" in text
    assert f"schema:       version {len(load_migrations())}" in text


@pytest.mark.db
def test_status_of_a_named_cluster_talks_to_that_cluster(edition_server: EditionServer) -> None:
    if edition_server.cluster is None:
        pytest.fail("an external server has no cluster name: unset IBCBENCH_TEST_ADMIN_DSN")
    settings = ServerSettings(name=edition_server.cluster)
    state = LocalServer(settings).read_state()
    assert state is not None
    status = database_status(None, settings)
    assert status.target.endswith(f":{state.port}/{state.database}")
    assert status.info.timescaledb_edition == edition_server.license


@pytest.mark.db
def test_a_database_without_timescaledb_gets_it_from_schema_up(
    primary_server: EditionServer, make_database
) -> None:
    dsn = make_database("no_tsdb")
    before = database_status(dsn)
    assert before.info.timescaledb_version is None
    assert before.hourly_packet_stats_kind is None and before.packet_flow_kind is None
    assert "timescaledb:  TimescaleDB available but not created in this database" in format_status(
        before
    )
    migrate_up(dsn)
    after = database_status(dsn)
    assert after.info.timescaledb_version == after.info.available_extensions["timescaledb"]
    assert after.info.timescaledb_edition == primary_server.license
    with psycopg.connect(dsn) as conn:
        created = conn.execute("SELECT extname FROM ibcbench_created_extensions").fetchall()
    assert ("timescaledb",) in created  # so the down migration and `db up` know it is the kit's


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


@pytest.mark.db
def test_up_updates_timescaledb_in_the_kits_databases_only(apache_server: EditionServer) -> None:
    """An older TimescaleDB (2.19.3 on a machine upgraded from it) in a kit database and in another one."""
    with psycopg.connect(apache_server.admin_dsn) as conn:
        default = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()[0]
        installable = [
            r[0]
            for r in conn.execute(
                "SELECT version FROM pg_available_extension_versions WHERE name = 'timescaledb'"
            ).fetchall()
        ]
    older = sorted(
        (v for v in installable if _version_key(v) < _version_key(default)), key=_version_key
    )
    # the newest older version this machine can still create (none on a machine that never had one)
    old = older[-1] if older else default
    names = {"kit": f"t_kit_old_{os.getpid()}", "user": f"t_user_old_{os.getpid()}"}
    try:
        for role, name in names.items():
            dsn = create_database(apache_server.admin_dsn, name)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    psycopg.sql.SQL("CREATE EXTENSION timescaledb VERSION {}").format(
                        psycopg.sql.Literal(old)
                    )
                )
                conn.execute("CREATE TABLE h (t timestamptz NOT NULL, v int)")
                conn.execute("SELECT create_hypertable('h', 't')")
                conn.execute("INSERT INTO h VALUES (now(), 1)")
                if role == "kit":  # what migration 000001 records when it creates the extension
                    conn.execute(
                        "CREATE TABLE ibcbench_created_extensions (extname text PRIMARY KEY)"
                    )
                    conn.execute("INSERT INTO ibcbench_created_extensions VALUES ('timescaledb')")
        server = LocalServer(ServerSettings(name=apache_server.cluster or "test-apache"))
        state = server.read_state()
        assert state is not None
        report = {u.database: u for u in server.update_timescaledb(state)}
        versions = {}
        for role, name in names.items():
            with psycopg.connect(
                psycopg.conninfo.make_conninfo(apache_server.admin_dsn, dbname=name)
            ) as conn:
                versions[role] = conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
                ).fetchone()[0]
                assert conn.execute("SELECT count(*) FROM h").fetchone() == (1,)
        assert versions == {"kit": default, "user": old}
        if old != default:
            kit, user = report[names["kit"]], report[names["user"]]
            assert kit.updated and kit.message.endswith(f"updated {old} -> {default}")
            assert not user.updated and not user.kit_owned
            assert user.message == (
                f"database {names['user']}: TimescaleDB left at {old} (not a database the kit "
                "created); to update it, run ALTER EXTENSION timescaledb UPDATE as the first "
                "command of a new session"
            )
            # a second `db up` updates nothing more and reports the database it leaves alone
            again = server.update_timescaledb(state)
            assert names["kit"] not in {u.database for u in again}
            assert names["user"] in {u.database for u in again}
        else:
            assert not set(names.values()) & set(report)
    finally:
        for name in names.values():
            drop_database(apache_server.admin_dsn, name)


def test_url_of_a_stopped_cluster_says_how_to_start_it(tmp_path: Path) -> None:
    with pytest.raises(
        ServerError, match=r"the embedded server 'nothere' is not running: run `ibcbench db up`"
    ):
        LocalServer(ServerSettings(home=tmp_path, name="nothere")).url()
