"""Migrations cut off by the server: a terminated backend mid-file, and a server that has TimescaleDB
installed but does not preload it. One line, exit 1, no traceback, the schema not left dirty when the
server rolled the file back."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ibcbench.cli import main
from ibcbench.infra.migrate import Migrator

pytestmark = pytest.mark.db

GATED = {
    "000001_create_gate.up.sql": "CREATE TABLE t_gate (id int);\n",
    "000001_create_gate.down.sql": "DROP TABLE t_gate;\n",
    # waits for the test's lock on t_gate: the migration is running when its backend is terminated
    "000002_use_gate.up.sql": (
        "CREATE TABLE t_after (id int);\nLOCK TABLE t_gate IN ACCESS EXCLUSIVE MODE;\n"
    ),
    "000002_use_gate.down.sql": "DROP TABLE t_after;\n",
}


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _waiting(dsn: str, like: str, timeout: float = 60) -> int:
    dbname = conninfo_to_dict(dsn)["dbname"]
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
                " AND query ILIKE %s",
                (dbname, like),
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.02)
    raise AssertionError(f"no backend came to wait on {like!r}")


def test_a_terminated_migration_is_one_line_and_not_left_dirty(
    make_database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database("mig_lost")
    path = _folder(tmp_path, GATED)
    Migrator(dsn, path).up(1)
    codes: list[int] = []
    with psycopg.connect(dsn) as gate:
        gate.execute("LOCK TABLE t_gate IN ACCESS SHARE MODE")  # held until the rollback below
        thread = threading.Thread(
            target=lambda: codes.append(main(["schema", "up", "--path", str(path), "--dsn", dsn]))
        )
        thread.start()
        pid = _waiting(dsn, "%LOCK TABLE t_gate%")
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        thread.join(60)
        gate.rollback()
    assert codes == [1]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(
        "ibcbench: error: the connection to the server was lost while migration "
        "000002_use_gate.up.sql ran ("
    ), err
    assert "not a problem in the file" in err and "fix the file" not in err
    assert "schema is at version 1, not dirty" in err
    assert Migrator(dsn, path).version() == (1, False)
    with psycopg.connect(dsn) as conn:  # the server rolled the file back
        assert conn.execute("SELECT to_regclass('t_after')").fetchone() == (None,)
    # the command again converges
    assert main(["schema", "up", "--path", str(path), "--dsn", dsn]) == 0
    assert Migrator(dsn, path).version() == (2, False)


NOPRELOAD_CLUSTER = "test-nopreload"


@pytest.fixture(scope="module")
def no_preload_server() -> Iterator[str]:
    """A scratch cluster of its own whose shared_preload_libraries leaves timescaledb out (ALTER
    SYSTEM, then a restart); the admin DSN of its postgres database. Removed at the end."""
    from ibcbench.infra.server import LocalServer
    from ibcbench.settings import ServerSettings

    server = LocalServer(ServerSettings(name=NOPRELOAD_CLUSTER, shared_buffers_mb=32))
    state = server.up().state
    dsn = state.conninfo("postgres")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        server.restart()
        yield dsn
    finally:
        server.down()
        shutil.rmtree(server.settings.cluster_dir, ignore_errors=True)


def test_timescaledb_installed_but_not_preloaded_is_refused_up_front(
    no_preload_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(no_preload_server, autocommit=True) as admin:
        preload = admin.execute("SHOW shared_preload_libraries").fetchone()
        assert preload == ("pg_stat_statements",)
        admin.execute("DROP DATABASE IF EXISTS t_nopreload")
        admin.execute("CREATE DATABASE t_nopreload")
    dsn = make_conninfo(no_preload_server, dbname="t_nopreload")
    assert main(["schema", "up", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "has TimescaleDB installed but not in shared_preload_libraries" in err
    assert "nothing was applied" in err and "restart the server" in err
    with psycopg.connect(dsn) as conn:  # nothing applied, nothing created
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
        assert conn.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ).fetchone() == (0,)
