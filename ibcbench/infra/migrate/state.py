"""The migration state in the database: golang-migrate's ``schema_migrations`` table and lock id, and
the kit's record of the versions it applied itself."""

from __future__ import annotations

import zlib

import psycopg
from psycopg import sql

MIGRATIONS_TABLE = "schema_migrations"
#: the versions this kit applied itself (not forced, not applied by another tool): ``down`` reverts only those
APPLIED_TABLE = "ibcbench_schema_applied"
NIL_VERSION = -1
_ADVISORY_LOCK_SALT = 1486364155


def advisory_lock_id(database: str, schema: str = "public", table: str = MIGRATIONS_TABLE) -> int:
    """golang-migrate's lock id for its postgres driver: crc32 of schema, table and database names."""
    key = "\x00".join([schema, table, database]).encode()
    return (zlib.crc32(key) * _ADVISORY_LOCK_SALT) & 0xFFFFFFFF


def ensure_tables(conn: psycopg.Connection) -> None:
    """``schema_migrations`` and the kit's record of what it applied, when they are not there yet."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
        ).format(sql.Identifier(MIGRATIONS_TABLE))
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (version bigint NOT NULL PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        ).format(sql.Identifier(APPLIED_TABLE))
    )


def applied_versions(conn: psycopg.Connection) -> set[int]:
    """The versions the kit applied itself (none when the database has no record of them)."""
    if conn.execute("SELECT to_regclass(%s)", (APPLIED_TABLE,)).fetchone()[0] is None:  # type: ignore[index]
        return set()
    rows = conn.execute(
        sql.SQL("SELECT version FROM {}").format(sql.Identifier(APPLIED_TABLE))
    ).fetchall()
    return {int(r[0]) for r in rows}


def read_version(conn: psycopg.Connection) -> tuple[int | None, bool]:
    """The version in ``schema_migrations`` (None: nothing applied) and whether it is dirty."""
    if conn.execute("SELECT to_regclass(%s)", (MIGRATIONS_TABLE,)).fetchone()[0] is None:  # type: ignore[index]
        return None, False
    row = conn.execute(
        sql.SQL("SELECT version, dirty FROM {} LIMIT 1").format(sql.Identifier(MIGRATIONS_TABLE))
    ).fetchone()
    if row is None:
        return None, False
    return int(row[0]), bool(row[1])


def set_version(conn: psycopg.Connection, version: int | None, dirty: bool) -> None:
    with conn.transaction():
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(MIGRATIONS_TABLE)))
        if version is not None and (version >= 0 or dirty):
            conn.execute(
                sql.SQL("INSERT INTO {} (version, dirty) VALUES (%s, %s)").format(
                    sql.Identifier(MIGRATIONS_TABLE)
                ),
                (version, dirty),
            )


def lost(conn: psycopg.Connection) -> bool:
    """Whether the connection is gone (a terminated backend, a server restart, a network cut)."""
    return bool(conn.closed or conn.broken)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
