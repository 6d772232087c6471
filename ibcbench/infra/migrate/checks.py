"""Checks before a migration runs: the kit never adopts (and later drops) what it did not create, and a
server with TimescaleDB installed must preload it."""

from __future__ import annotations

import psycopg

from ibcbench.errors import MigrationError
from ibcbench.infra.migrate.files import Migration
from ibcbench.infra.migrate.state import MIGRATIONS_TABLE, applied_versions


def existing(conn: psycopg.Connection, names: list[str]) -> dict[str, bool]:
    """Which of ``names`` exist in the current schema (relations, indexes, functions): name -> valid.

    ``valid`` is False only for an INVALID index (a ``CONCURRENTLY`` build that failed)."""
    rows = conn.execute(
        "SELECT c.relname, coalesce(i.indisvalid, true) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
        " LEFT JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = ANY(%s)"
        " UNION SELECT p.proname, true FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = current_schema()"
        " WHERE p.proname = ANY(%s)",
        (names, names),
    ).fetchall()
    return {r[0]: bool(r[1]) for r in rows}


def invalid_indexes(conn: psycopg.Connection, migrations: list[Migration]) -> list[str]:
    """The indexes ``migrations`` create, left INVALID by a failed ``CONCURRENTLY`` build, on the
    kit's tables of the current schema."""
    names: set[str] = set()
    tables: set[str] = set()
    for m in migrations:
        for name, kind in m.creates.items():
            (names if kind == "index" else tables).add(name)
    rows = conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_class t ON t.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
        " WHERE NOT i.indisvalid AND c.relname = ANY(%s) AND t.relname = ANY(%s) ORDER BY 1",
        (sorted(names), sorted(tables)),
    ).fetchall()
    return [r[0] for r in rows]


def refuse_never_migrated(conn: psycopg.Connection, advice: str) -> None:
    """One line when the database has no ``schema_migrations`` table (it was never migrated)."""
    if conn.execute("SELECT to_regclass(%s)", (MIGRATIONS_TABLE,)).fetchone()[0] is None:  # type: ignore[index]
        raise MigrationError(
            f"database {conn.info.dbname!r} was never migrated (it has no {MIGRATIONS_TABLE} "
            f"table), so it may not be the kit's: {advice}"
        )


def refuse_foreign(
    conn: psycopg.Connection, migrations: list[Migration], plan: list[Migration]
) -> list[str]:
    """Refuse (one line) when an object the planned migrations create exists already: the kit
    would adopt it. The INVALID indexes those migrations create are returned, to be rebuilt."""

    # an object an earlier migration creates is the kit's when a later one replaces it (CREATE OR
    # REPLACE of a function, say): by then it exists because the kit made it
    def earlier(m: Migration) -> set[str]:
        return {n for e in migrations if e.version < m.version for n in e.creates}

    kinds = {name: kind for m in plan for name, kind in m.creates.items() if name not in earlier(m)}
    found = existing(conn, sorted(kinds))
    foreign = sorted(n for n, valid in found.items() if valid or kinds[n] != "index")
    if foreign:
        shown = ", ".join(foreign[:6]) + (
            f" and {len(foreign) - 6} more" if len(foreign) > 6 else ""
        )
        raise MigrationError(
            f"database {conn.info.dbname!r} already has {shown}, which ibcbench did not create: "
            "nothing was changed; run `ibcbench schema up` on an empty database, or rename those objects"
        )
    return sorted(n for n, valid in found.items() if not valid)


def refuse_unapplied(conn: psycopg.Connection, plan: list[Migration]) -> None:
    """``down`` reverts only versions the kit applied itself: a forced version's objects may be a
    user's own (a table of the same name), and its down file would drop them."""
    applied = applied_versions(conn)
    foreign = [m.label for m in plan if m.version not in applied]
    if foreign:
        raise MigrationError(
            f"migration {foreign[0]} was not applied by ibcbench on database {conn.info.dbname!r} "
            "(its version was forced, or set by another tool or an older ibcbench), so its objects "
            "may not be the kit's: "
            "nothing was changed; drop them yourself, then `ibcbench schema force` the version below it"
        )


def refuse_timescaledb_not_preloaded(conn: psycopg.Connection) -> None:
    """One line, before anything is applied, when the server has TimescaleDB installed but does not
    preload it: ``CREATE EXTENSION timescaledb`` (and any use of it) then ends the session with
    FATAL "must be preloaded". A server that hides shared_preload_libraries (not a superuser) is
    not checked."""
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if not available:
        return  # the schema's path without TimescaleDB
    try:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return
    preloaded = [name.strip().strip('"') for name in str(row[0] if row else "").split(",")]
    if "timescaledb" not in preloaded:
        raise MigrationError(
            f"the server of database {conn.info.dbname!r} has TimescaleDB installed but not in "
            "shared_preload_libraries, so the schema cannot create it: nothing was applied; add "
            "timescaledb to shared_preload_libraries (postgresql.conf), restart the server, then "
            "run `ibcbench schema up` again"
        )
