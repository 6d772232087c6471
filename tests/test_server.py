"""The embedded server: settings validation, refusals before any work, and the running test cluster."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import psycopg
import pytest

from ibcbench.errors import ConfigError, MissingExtension, ServerError
from ibcbench.migrate import load_migrations
from ibcbench.server import LocalServer, check_extensions_installed
from ibcbench.settings import ServerSettings
from ibcbench.status import database_status, format_status


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "cluster name 'Bad Name' is invalid"),
        ({"name": ""}, "cluster name '' is invalid"),
        ({"port": 80}, "port 80 is out of range"),
        ({"port": 70000}, "port 70000 is out of range"),
        ({"shared_buffers_mb": 1}, "shared_buffers_mb must be at least 16"),
    ],
)
def test_settings_are_validated(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerSettings(home=tmp_path, **kwargs)


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


def _fake_bindir(tmp_path: Path, with_extensions: list[str]) -> Path:
    bindir = tmp_path / "15" / "bin"
    share = tmp_path / "share"
    lib = tmp_path / "lib"
    for d in (bindir, share / "extension", lib):
        d.mkdir(parents=True)
    for ext in with_extensions:
        (share / "extension" / f"{ext}.control").write_text("")
        (lib / f"{ext}.so").write_text("")
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
def test_up_is_idempotent_and_reports_the_same_url(server_dsn: str) -> None:
    server = LocalServer(ServerSettings(name="test"))
    first = server.read_state()
    again = server.up()
    assert not again.started and not again.created
    assert first is not None and again.state.url == first.url
    with psycopg.connect(again.state.url) as conn:
        preloads = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        assert preloads == "timescaledb,pg_stat_statements,pg_cron"
        assert conn.execute("SHOW cron.use_background_workers").fetchone()[0] == "on"


@pytest.mark.db
def test_status_reports_edition_and_schema(schema_dsn: str) -> None:
    status = database_status(schema_dsn)
    assert status.info.timescaledb_edition == "apache"
    assert status.info.timescaledb_version is not None
    assert status.packet_flow_kind is not None and status.packet_flow_kind.startswith("hypertable")
    assert status.hourly_packet_stats_kind is not None
    assert status.hourly_packet_stats_kind.startswith("plain materialized view")
    text = format_status(status)
    assert "Apache edition (no continuous aggregates" in text
    assert f"schema:       version {len(load_migrations())}" in text


def test_url_of_a_stopped_cluster_says_how_to_start_it(tmp_path: Path) -> None:
    with pytest.raises(
        ServerError, match=r"the embedded server 'nothere' is not running: run `ibcbench db up`"
    ):
        LocalServer(ServerSettings(home=tmp_path, name="nothere")).url()
