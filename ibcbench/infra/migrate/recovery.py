"""Recovering from what stops a migration: a lost connection (its dirty mark settled from a new
session), a dirty version (the one to force), ``force`` itself, and the INVALID indexes a failed
``CONCURRENTLY`` build leaves behind."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from ibcbench.errors import MigrationError
from ibcbench.infra.migrate.files import Migration, is_concurrent
from ibcbench.infra.migrate.state import (
    APPLIED_TABLE,
    NIL_VERSION,
    applied_versions,
    ensure_tables,
    first_line,
    read_version,
    set_version,
)

#: a new autocommit session of the migrator's, and the way it takes the advisory lock
Connect = Callable[[], psycopg.Connection]
Lock = Callable[[psycopg.Connection], int]


def previous(version: int | None, migrations: list[Migration]) -> int:
    """The version to force after a failure at ``version``: the one before it (golang-migrate's advice)."""
    versions = [m.version for m in migrations]
    if version is None or version not in versions:
        return NIL_VERSION
    idx = versions.index(version)
    return versions[idx - 1] if idx > 0 else NIL_VERSION


def last_clean(conn: psycopg.Connection, migrations: list[Migration], dirty_at: int | None) -> int:
    """The last version fully applied when ``dirty_at`` is marked dirty: the one before it after a
    failed up, the one after it after a failed down (the kit still records that one as applied)."""
    versions = [m.version for m in migrations]
    later = [v for v in versions if dirty_at is None or v > dirty_at]
    if later and later[0] in applied_versions(conn):
        return later[0]
    return previous(dirty_at, migrations)


def force_locked(conn: psycopg.Connection, known: dict[int, Any], version: int) -> None:
    """``force`` under the advisory lock: set ``version`` clean, forget the applied versions above it."""
    current, _ = read_version(conn)
    if current is not None and current not in known and current != NIL_VERSION:
        raise MigrationError(
            f"schema_migrations of database {conn.info.dbname!r} holds version {current}, "
            "which is not one of these migrations (another tool's?): nothing was changed; "
            "use the migrations folder that created it (--path)"
        )
    ensure_tables(conn)
    with conn.transaction():
        set_version(conn, None if version == NIL_VERSION else version, False)
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE version > %s").format(sql.Identifier(APPLIED_TABLE)),
            (version,),
        )


def rebuild_invalid(
    conn: psycopg.Connection, migrations: list[Migration], names: list[str], *, recreate: bool
) -> list[str]:
    """Drop the kit's INVALID indexes ``names`` (a failed ``CONCURRENTLY`` build) and, with
    ``recreate``, build them again: the migration's own statement when it is a ``CONCURRENTLY``
    one, else the index's definition (a kit name: a same-named object of a user's is refused
    before the migration that creates it runs)."""
    notes = []
    for name in names:
        row = conn.execute(
            "SELECT pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace AND n.nspname = current_schema() WHERE c.relname = %s",
            (name,),
        ).fetchone()
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
        if not recreate or row is None:
            continue
        owner = [m for m in migrations if name in m.creates and is_concurrent(m.text("up"))]
        if owner:
            conn.execute(owner[0].text("up").encode())
        else:
            definition = re.sub(
                r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX CONCURRENTLY ", row[0]
            )
            try:
                conn.execute(definition.encode())
            except psycopg.errors.FeatureNotSupported:  # a hypertable: no CONCURRENTLY
                conn.execute(row[0].encode())
        notes.append(f"ibcbench: index {name} was INVALID (a failed CONCURRENTLY build): rebuilt")
    return notes


def left_invalid(conn: psycopg.Connection, migration: Migration) -> list[str]:
    """The indexes ``migration`` creates that a failed ``CONCURRENTLY`` build left INVALID."""
    names = [n for n, kind in migration.creates.items() if kind == "index"]
    try:
        rows = conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
            " WHERE NOT i.indisvalid AND c.relname = ANY(%s) ORDER BY 1",
            (names,),
        ).fetchall()
    except psycopg.Error:  # the connection itself failed: nothing more to learn from it
        return []
    return [r[0] for r in rows]


def lost_during(
    connect: Connect,
    lock: Lock,
    migration: Migration,
    direction: str,
    target: int | None,
    still_at: int,
    exc: psycopg.Error,
) -> MigrationError:
    """The one line for a connection lost while ``migration`` ran, after settling its dirty mark.

    A file that ran in a transaction was rolled back by the server, or committed if the loss came
    after COMMIT: a new session reads which (the kit's record of the versions it applied is
    written in the same transaction) and sets the version clean at the one the database is at.
    A ``CONCURRENTLY`` file, or a server that cannot be reached again, keeps the dirty mark."""
    label = f"{migration.label}.{direction}.sql"
    head = (
        f"the connection to the server was lost while migration {label} ran "
        f"({first_line(exc)}): not a problem in the file; "
    )
    if not is_concurrent(migration.text(direction)):
        try:
            at = settle_lost(connect, lock, migration, direction, target, still_at)
        except (psycopg.Error, MigrationError):
            at = None
        if at is not None:
            return MigrationError(
                head + f"the server rolled back what it had done (or committed all of it) and "
                f"the schema is at version {at if at != NIL_VERSION else 'none'}, not dirty: "
                "run the command again once the server is up"
            )
    return MigrationError(
        head + f"the version is left marked dirty at {migration.version}: once the server is "
        f"up, run `ibcbench schema force {still_at}`, then `ibcbench schema up`"
    )


def settle_lost(
    connect: Connect,
    lock: Lock,
    migration: Migration,
    direction: str,
    target: int | None,
    still_at: int,
) -> int | None:
    """In a new session: the version a transactional file cut off left the database at, set
    clean (None: the state is not the one this run left, and is kept)."""
    dirty_at = migration.version if direction == "up" else target
    with connect() as conn:
        lock_id = lock(conn)
        try:
            current, dirty = read_version(conn)
            if not dirty or current != (dirty_at if dirty_at is not None else NIL_VERSION):
                return None
            recorded = migration.version in applied_versions(conn)
            committed = recorded if direction == "up" else not recorded
            at = (target if target is not None else NIL_VERSION) if committed else still_at
            set_version(conn, None if at == NIL_VERSION else at, False)
            return at
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
