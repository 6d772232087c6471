"""libpq's variables choose the server where no --dsn or DATABASE_URL is given, as psql takes them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from psycopg.conninfo import conninfo_to_dict

from ibcbench.dsn import describe_dsn
from ibcbench.infra.migrate import migrate_up
from ibcbench.settings import LIBPQ_VARIABLES, explicit_dsn

CLEAN = {k: v for k, v in os.environ.items() if k not in (*LIBPQ_VARIABLES, "DATABASE_URL")}


@pytest.mark.parametrize(
    ("dsn", "env", "chosen"),
    [
        (
            "postgresql://a/x",
            {"DATABASE_URL": "postgresql://b/y", "PGHOST": "/c"},
            "postgresql://a/x",
        ),
        (None, {"DATABASE_URL": "postgresql://b/y", "PGHOST": "/c"}, "postgresql://b/y"),
        *((None, {var: "1"}, "") for var in LIBPQ_VARIABLES),
        (None, {"PGHOST": ""}, None),  # an empty variable is an unset one, for libpq too
        (None, {}, None),  # the embedded server
    ],
)
def test_the_order_is_dsn_then_database_url_then_libpq_then_the_embedded_server(
    monkeypatch: pytest.MonkeyPatch, dsn: str | None, env: dict[str, str], chosen: str | None
) -> None:
    for var in (*LIBPQ_VARIABLES, "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert explicit_dsn(dsn) == chosen


def test_an_empty_dsn_is_described_by_libpqs_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "/run/pg")
    monkeypatch.setenv("PGPORT", "6543")
    monkeypatch.setenv("PGUSER", "alice")
    monkeypatch.delenv("PGDATABASE", raising=False)
    assert describe_dsn("") == "alice@/run/pg:6543/alice"
    monkeypatch.setenv("PGDATABASE", "ledger")
    assert describe_dsn("") == "alice@/run/pg:6543/ledger"
    assert describe_dsn("host=db port=1 user=u dbname=d") == "u@db:1/d"  # the DSN's own first


@pytest.mark.db
def test_commands_reach_the_server_libpqs_variables_name(
    make_database: object, server_dsn: str
) -> None:
    dsn = make_database("libpq_env")  # type: ignore[operator]
    migrate_up(dsn, 3)
    params = conninfo_to_dict(dsn)
    env = dict(
        CLEAN,
        PGHOST=str(params["host"]),
        PGPORT=str(params["port"]),
        PGUSER=str(params["user"]),
        PGPASSFILE=str(params["passfile"]),
        PGDATABASE=str(params["dbname"]),
        IBCBENCH_CLUSTER="nosuchcluster",  # the embedded server of this name does not exist
    )
    for argv, want in [
        (["schema", "version"], "3\n"),
        (["db", "status"], f"server:       external ibcbench@{params['host']}:{params['port']}/"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "ibcbench.cli", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert want in proc.stdout
    assert str(params["dbname"]) in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "ibcbench.cli", "schema", "version"],
        env=dict(env, PGPORT="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "check libpq's variables (PGHOST, PGPORT" in proc.stderr
