"""The kit's mark on its scratch databases and schemas: made atomically with the object (or under a
staging name), so an interrupted creation never strands a database the kit then refuses."""

from __future__ import annotations

import os

import psycopg
import pytest
from psycopg import sql

from ibcbench.data.ownership import (
    KIT_MARK,
    STAGING_PREFIX,
    check_kit_database,
    create_kit_database,
    create_kit_schema,
    drop_kit_database,
)
from ibcbench.errors import ConfigError

pytestmark = pytest.mark.db


def _databases(admin: psycopg.Connection, like: str) -> dict[str, str | None]:
    rows = admin.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
        " WHERE datname LIKE %s",
        (like,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _drop(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_creation_killed_before_its_mark_leaves_no_database_of_its_name(server_dsn: str) -> None:
    """A killed run's half-made database (created, not yet marked) is under the staging name: the
    next creation of the name works, and drops the leftover saying so."""
    name = f"t_own_{os.getpid()}"
    leftover = STAGING_PREFIX + "0123456789ab"
    lines: list[str] = []
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        _drop(admin, name)
        _drop(admin, leftover)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(leftover)))  # no mark
        try:
            create_kit_database(admin, name, report=lines.append)
            assert _databases(admin, name) == {name: KIT_MARK}
            assert leftover not in _databases(admin, STAGING_PREFIX + "%")
            assert lines == [
                f"dropped database {leftover!r}, left half-made by an interrupted ibcbench"
            ]
            check_kit_database(admin, name)  # the kit's: not refused
            assert drop_kit_database(admin, name)
            # no staging database stays behind a complete creation
            create_kit_database(admin, name, report=lines.append)
            assert _databases(admin, STAGING_PREFIX + "%") == {}
        finally:
            _drop(admin, name)
            _drop(admin, leftover)


def test_a_users_database_of_the_same_name_is_refused_never_dropped(server_dsn: str) -> None:
    name = f"t_own_user_{os.getpid()}"
    other = STAGING_PREFIX + "user-made"  # the staging prefix, not the kit's staging names
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        for db in (name, other):
            _drop(admin, db)
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        try:
            with pytest.raises(ConfigError, match="exists but was not created by ibcbench"):
                check_kit_database(admin, name)
            with pytest.raises(ConfigError, match="nothing was dropped"):
                drop_kit_database(admin, name)
            with pytest.raises(psycopg.errors.DuplicateDatabase):
                create_kit_database(admin, name, report=None)
            assert _databases(admin, name) == {name: None}
            assert other in _databases(admin, STAGING_PREFIX + "%")  # left alone
            assert not [d for d in _databases(admin, STAGING_PREFIX + "%") if d != other]
        finally:
            _drop(admin, name)
            _drop(admin, other)


def test_a_schema_and_its_mark_are_one_transaction(make_database) -> None:
    dsn = make_database("own_schema")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE blocker (id int)")
        # the COMMENT fails (a forced error after CREATE SCHEMA): no unmarked schema stays
        conn.execute(
            "CREATE FUNCTION fail_comment() RETURNS event_trigger LANGUAGE plpgsql AS"
            " $$BEGIN RAISE EXCEPTION 'comment refused'; END$$"
        )
        conn.execute(
            "CREATE EVENT TRIGGER no_comments ON ddl_command_end WHEN TAG IN ('COMMENT')"
            " EXECUTE FUNCTION fail_comment()"
        )
        with pytest.raises(psycopg.errors.RaiseException):
            create_kit_schema(conn, "ibcbench_scratch")
        assert (
            conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'ibcbench_scratch'").fetchone()
            is None
        )
        conn.execute("DROP EVENT TRIGGER no_comments")
        create_kit_schema(conn, "ibcbench_scratch")
        assert conn.execute(
            "SELECT obj_description('ibcbench_scratch'::regnamespace, 'pg_namespace')"
        ).fetchone() == (KIT_MARK,)


class _InterruptedAfterCreate:
    """An admin connection whose ``CREATE DATABASE`` is followed by Ctrl-C (before anything else)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, query: object, params: object = None) -> object:
        cur = self.conn.execute(query, params)  # type: ignore[arg-type]
        text = query.as_string(self.conn) if isinstance(query, sql.Composable) else str(query)
        if text.startswith("CREATE DATABASE"):
            raise KeyboardInterrupt
        return cur

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_ctrl_c_right_after_create_database_does_not_strand_the_name(server_dsn: str) -> None:
    name = f"t_own_int_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        _drop(admin, name)
        try:
            with pytest.raises(KeyboardInterrupt):
                create_kit_database(_InterruptedAfterCreate(admin), name)  # type: ignore[arg-type]
            admin.execute("SELECT pg_advisory_unlock_all()")  # the killed process's session ends
            check_kit_database(admin, name)  # not refused: no unmarked database of the name
            lines: list[str] = []
            create_kit_database(admin, name, report=lines.append)
            assert _databases(admin, name) == {name: KIT_MARK}
            assert len(lines) == 1 and "left half-made by an interrupted ibcbench" in lines[0]
            assert _databases(admin, STAGING_PREFIX + "%") == {}
        finally:
            _drop(admin, name)
