"""Fixtures for tests that talk to the real PostgreSQL + TimescaleDB server.

The test session starts (or reuses) the kit's embedded cluster named ``test`` — never the user's
``default`` cluster — and works in databases it creates and drops itself. ``IBCBENCH_TEST_ADMIN_DSN``
points the suite at another server instead (a DSN to its ``postgres`` database, as a superuser).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

TEST_CLUSTER = "test"
_counter = itertools.count()


def _dsn_for(admin_dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(admin_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def server_dsn() -> str:
    """DSN of the test server's ``postgres`` database."""
    external = os.environ.get("IBCBENCH_TEST_ADMIN_DSN")
    if external:
        return external
    from ibcbench.server import LocalServer
    from ibcbench.settings import ServerSettings

    state = LocalServer(ServerSettings(name=TEST_CLUSTER)).up().state
    return make_conninfo(host=state.socket_dir, port=state.port, user=state.role, dbname="postgres")


def create_database(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _dsn_for(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def make_database(server_dsn: str) -> Iterator[Callable[[str], str]]:
    """Factory: ``make_database(hint) -> dsn`` of a fresh empty database, dropped after the test."""
    created: list[str] = []

    def make(hint: str = "db") -> str:
        safe = "".join(ch if ch.isalnum() else "_" for ch in hint.lower())[:30]
        name = f"t_{safe}_{os.getpid()}_{next(_counter)}"
        created.append(name)
        return create_database(server_dsn, name)

    yield make
    for name in created:
        drop_database(server_dsn, name)


@pytest.fixture(scope="session")
def schema_dsn(server_dsn: str) -> Iterator[str]:
    """A database with the whole schema migrated up. Shared by the session: leave it as you found it."""
    from ibcbench.migrate import migrate_up

    name = f"t_schema_{os.getpid()}"
    dsn = create_database(server_dsn, name)
    migrate_up(dsn)
    yield dsn
    drop_database(server_dsn, name)


@pytest.fixture(scope="session")
def loaded_dsn(server_dsn: str) -> Iterator[str]:
    """Schema + the ``tiny`` dataset (seed 42). Shared by the session: read-only for tests."""
    from data_gen import GenerationParams
    from ibcbench.data.load import load_dataset
    from ibcbench.migrate import migrate_up

    name = f"t_loaded_{os.getpid()}"
    dsn = create_database(server_dsn, name)
    migrate_up(dsn)
    load_dataset(dsn, GenerationParams(seed=42, scale="tiny"), quiet=True)
    from ibcbench.data.views import refresh_views

    with psycopg.connect(dsn, autocommit=True) as conn:
        refresh_views(conn)
        conn.execute("ANALYZE")
    yield dsn
    drop_database(server_dsn, name)
