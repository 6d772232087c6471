"""The embedded server: settings validation, refusals before any work, and the running test cluster."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import psycopg.conninfo
import psycopg.sql
import pytest

from ibcbench.errors import ConfigError, MissingExtension, ServerError
from ibcbench.infra.migrate import load_migrations, migrate_up
from ibcbench.infra.server import LocalServer, ServerState
from ibcbench.infra.serverconf import check_extensions_installed, resolve_license
from ibcbench.infra.status import database_status, format_status
from ibcbench.settings import ServerSettings
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
    from ibcbench.infra.serverconf import REQUIRED_PRELOADS, find_pg_bindir

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


# ---- access control: a password on every connection, a socket for the server user only ----------
def _psql() -> str:
    from ibcbench.infra.serverconf import find_pg_bindir

    return shutil.which("psql") or str(find_pg_bindir() / "psql")


def _as_nobody(conninfo: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``psql -w conninfo -c 'SELECT rolsuper ...'`` run as the OS user ``nobody``."""
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", _psql(), "-w", "-Atc", "SELECT 1", conninfo],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], "HOME": "/", **env},
        cwd="/",
    )


def _state(primary_server: EditionServer) -> ServerState:
    state = LocalServer(ServerSettings(name=primary_server.cluster or "test")).read_state()
    if state is None:
        pytest.fail("the test cluster has no state: it is not an embedded cluster")
    return state


@pytest.mark.db
def test_another_os_user_cannot_connect_by_tcp_nor_by_the_socket(
    primary_server: EditionServer,
) -> None:
    state = _state(primary_server)
    tcp = f"postgresql://{state.role}@127.0.0.1:{state.port}/{state.database}"
    refused = {
        "tcp, no password": (_as_nobody(tcp), "no password supplied"),
        "tcp, a guessed password": (
            _as_nobody(tcp, PGPASSWORD="ibcbench"),
            "password authentication failed",
        ),
        "tcp, the kit's URL (its password file is not nobody's)": (
            _as_nobody(state.url),
            "no password supplied",
        ),
        "socket": (
            _as_nobody(f"host={state.socket_dir} port={state.port} user={state.role}"),
            "Permission denied",
        ),
    }
    for case, (proc, message) in refused.items():
        assert proc.returncode != 0, f"{case}: nobody connected ({proc.stdout.strip()})"
        assert message in proc.stderr, f"{case}: {proc.stderr.strip()}"


@pytest.mark.db
def test_the_password_file_is_the_invokers_alone_and_nothing_is_trusted(
    primary_server: EditionServer,
) -> None:
    from ibcbench.infra.serverauth import has_trust_line

    state = _state(primary_server)
    settings = ServerSettings(name=primary_server.cluster or "test")
    assert state.passfile == str(settings.cluster_dir / "pgpass")
    info = os.stat(state.passfile)
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    assert state.password() and state.password() not in state.url + state.socket_url
    hba = (settings.data_dir / "pg_hba.conf").read_text()
    assert not has_trust_line(hba) and "trust" not in hba
    assert "local replication all scram-sha-256" in hba
    assert stat.S_IMODE(os.stat(state.socket_dir).st_mode) == 0o700
    sock = Path(state.socket_dir) / f".s.PGSQL.{state.port}"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o700
    with psycopg.connect(state.url) as conn:
        row = conn.execute(
            "SELECT current_setting('password_encryption'), rolpassword LIKE 'SCRAM-SHA-256$%'"
            " FROM pg_authid WHERE rolname = current_user"
        ).fetchone()
    assert row == ("scram-sha-256", True)


@pytest.mark.db
def test_db_url_holds_no_password_unless_asked(
    primary_server: EditionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibcbench.cli import main

    state = _state(primary_server)
    password = state.password()
    assert password
    name = primary_server.cluster or "test"
    assert main(["db", "url", "--name", name]) == 0
    plain = capsys.readouterr().out.strip()
    assert password not in plain and "passfile=" in plain
    assert main(["db", "url", "--name", name, "--with-password"]) == 0
    with_password = capsys.readouterr().out.strip()
    assert f":{password}@127.0.0.1:{state.port}/" in with_password
    for url in (plain, with_password):
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.db
def test_the_kits_commands_reach_the_server_with_its_password(
    primary_server: EditionServer, make_database, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibcbench.cli import main
    from ibcbench.db import connect, resolve_dsn

    dsn = make_database("auth_schema")
    assert main(["schema", "up", "--dsn", dsn]) == 0
    with connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('packet_flow') IS NOT NULL").fetchone() == (True,)
    settings = ServerSettings(name=primary_server.cluster or "test")
    with connect(resolve_dsn(None, settings)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (settings.role,)
    capsys.readouterr()


# ---- a cluster of its own: migration, stale PID files, a home with a space, a moved port -------
SCRATCH_CLUSTER = "test-scratch"


@pytest.fixture(scope="module")
def scratch_home() -> Iterator[Path]:
    """A home whose path holds a space (the conninfo the kit builds must quote it), with the
    ``test-scratch`` cluster, stopped and removed at the end."""
    from ibcbench.settings import default_home

    home = default_home() / "scratch home"
    yield home
    with contextlib.suppress(ServerError):
        LocalServer(ServerSettings(home=home, name=SCRATCH_CLUSTER)).down()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def scratch(scratch_home: Path, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    """The scratch cluster, running; the CLI's ``db`` commands in this test reach it."""
    monkeypatch.setenv("IBCBENCH_HOME", str(scratch_home))
    monkeypatch.setenv("IBCBENCH_CLUSTER", SCRATCH_CLUSTER)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    server = LocalServer(ServerSettings(home=scratch_home, name=SCRATCH_CLUSTER))
    server.up()
    return server


@pytest.mark.db
def test_db_up_works_in_a_home_whose_path_holds_a_space(
    scratch: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibcbench.cli import main

    assert " " in str(scratch.settings.home)
    scratch.down()
    assert main(["db", "up"]) == 0
    out = capsys.readouterr().out
    assert "embedded server started" in out
    state = scratch.read_state()
    assert state is not None and "%20" in state.url
    for target in (state.url, state.socket_url, state.conninfo()):
        with psycopg.connect(target) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.db
def test_db_up_gives_a_trusting_cluster_a_password_and_says_so(
    scratch: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cluster made before passwords: trusting pg_hba.conf lines and no password file."""
    from ibcbench.cli import main

    trusting = (
        "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
        "local replication all trust\nhost replication all 127.0.0.1/32 trust\n"
    )
    hba = scratch.settings.data_dir / "pg_hba.conf"
    passfile = scratch.settings.cluster_dir / "pgpass"
    for running in (False, True):
        if not running:
            scratch.down()
        hba.write_text(trusting)
        if running:
            state = scratch.read_state()
            assert state is not None
            with psycopg.connect(state.conninfo("postgres"), autocommit=True) as conn:
                conn.execute("SELECT pg_reload_conf()")
        passfile.unlink(missing_ok=True)
        capsys.readouterr()
        assert main(["db", "up"]) == 0
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"ibcbench: embedded server {SCRATCH_CLUSTER!r}: trust authentication replaced by the "
            f"ibcbench role's password (scram-sha-256), kept in {passfile} (mode 0600)"
        ], running
        assert "trust" not in hba.read_text()
        assert stat.S_IMODE(os.stat(passfile).st_mode) == 0o600
        state = scratch.read_state()
        assert state is not None and state.passfile == str(passfile)
        with psycopg.connect(state.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        proc = _as_nobody(f"postgresql://ibcbench@127.0.0.1:{state.port}/ibcbench")
        assert proc.returncode != 0 and "no password supplied" in proc.stderr
        # the next `db up` has nothing more to say
        assert main(["db", "up"]) == 0
        assert capsys.readouterr().err == ""


def _state_port(server: LocalServer) -> int:
    state = server.read_state()
    assert state is not None
    return state.port


def _stale_pidfile(server: LocalServer, pid: int) -> None:
    """A postmaster.pid of the stopped ``server`` naming ``pid`` (as a crashed server leaves it)."""
    state = server.read_state()
    assert state is not None
    path = server.settings.data_dir / "postmaster.pid"
    path.write_text(
        f"{pid}\n{server.settings.data_dir}\n1700000000\n{state.port}\n{state.socket_dir}\n"
        "127.0.0.1\n  1234567     65536\nready   \n"
    )


@pytest.mark.db
def test_a_stale_pid_file_makes_db_down_signal_nothing_and_db_up_start(
    scratch: LocalServer, primary_server: EditionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibcbench.cli import main

    # the suite's own cluster, in the home the scratch one is a folder of
    test_cluster = LocalServer(
        ServerSettings(home=scratch.settings.home.parent, name=primary_server.cluster or "test")
    )
    other_pid = int((test_cluster.settings.data_dir / "postmaster.pid").read_text().split()[0])
    scratch.down()
    data_dir = scratch.settings.data_dir
    # a process of the server user, one of them in the data directory itself (started later than
    # the file says), and another cluster's postmaster
    sleepers = [
        subprocess.Popen(["sleep", "300"], user=scratch.settings.os_user, cwd="/"),
        subprocess.Popen(["sleep", "300"], user=scratch.settings.os_user, cwd=data_dir),
    ]
    try:
        for pid in [p.pid for p in sleepers] + [other_pid]:
            _stale_pidfile(scratch, pid)
            capsys.readouterr()
            main(["db", "down"])
            out = capsys.readouterr().out
            time.sleep(0.3)
            assert all(p.poll() is None for p in sleepers), "db down signalled a process"
            assert test_cluster.is_running(), "db down stopped another cluster"
            assert "embedded server was not running: its PID file" in out
            assert "is stale" in out and "nothing was signalled" in out
            assert not scratch.is_running() and scratch.pid_check().stale
        assert main(["db", "up"]) == 0
        assert "embedded server started" in capsys.readouterr().out
        assert scratch.is_running() and all(p.poll() is None for p in sleepers)
        assert main(["db", "down"]) == 0
        assert capsys.readouterr().out.startswith("embedded server stopped")
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


@pytest.mark.db
def test_db_status_says_the_port_moved_since_the_last_start(
    scratch: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibcbench.cli import main

    old = _state_port(scratch)
    scratch.down()
    with socket.socket() as squatter:
        # the stopped server's connections may leave the port in TIME_WAIT: bind anyway
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old))
        squatter.listen()
        scratch.up()
        new = _state_port(scratch)
        capsys.readouterr()
        assert main(["db", "status"]) == 0
    out = capsys.readouterr().out
    assert new != old
    assert f"port:         {new}, moved from {old} at the last start" in out
    scratch.down()
    scratch.up()  # back to a port it had: no word of a move then
    assert main(["db", "status"]) == 0
    assert "moved from" not in capsys.readouterr().out
