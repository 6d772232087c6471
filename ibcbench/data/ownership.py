"""The kit's mark on the scratch databases and schemas it creates, so that it drops only those.

A scratch database (``ibcbench_bench_load``) or schema (``ibcbench_maint``, ``ibcbench_layouts``) is
created with a comment, :data:`KIT_MARK`, and dropped only when it carries that comment. One of the
same name without it is a user's: the command refuses in one line and nothing is dropped. Inside a
dataset database (which carries its own marker table, see :mod:`ibcbench.data.datasets`) every scratch
schema is the kit's: it may be a leftover of an older version that did not mark its schemas.

``CREATE DATABASE`` cannot run in a transaction with the ``COMMENT`` that marks it, so a kit database
is created under a staging name of the kit's own (``ibcbench_new_<12 hex>``), marked, and only then
renamed to its name: a run killed in between leaves a staging database, never an unmarked database
of the name it was making (which the kit would then refuse forever). The next creation drops such
leftovers (one line on stderr): they are the kit's by their name and owner, and hold nothing. A
schema and its mark go in one transaction.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable

import psycopg
from psycopg import sql

from ibcbench.errors import ConfigError
from ibcbench.locks import CREATE_DATABASE_LOCK

KIT_MARK = "ibcbench scratch: created by ibcbench, dropped by it when done"
#: the marker table of a complete dataset database (see :mod:`ibcbench.data.datasets`)
MARKER_TABLE = "ibcbench_dataset"
#: the name a kit database is created and marked under before it is renamed to its own
STAGING_PREFIX = "ibcbench_new_"
_STAGING_RE = re.compile(rf"^{STAGING_PREFIX}[0-9a-f]{{12}}$")


def _database_comment(admin: psycopg.Connection, name: str) -> tuple[bool, str | None]:
    row = admin.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    return (row is not None, row[0] if row else None)


def check_kit_database(admin: psycopg.Connection, name: str) -> None:
    """Refuse (one line) when a database ``name`` exists without the kit's mark."""
    exists, comment = _database_comment(admin, name)
    if exists and comment != KIT_MARK:
        raise ConfigError(
            f"database {name!r} exists but was not created by ibcbench: nothing was dropped; "
            "rename it (or drop it yourself if it is not needed), then run the command again"
        )


def _stderr(line: str) -> None:
    print(f"ibcbench: {line}", file=sys.stderr, flush=True)


def create_kit_database(
    admin: psycopg.Connection,
    name: str,
    *,
    report: Callable[[str], None] | None = _stderr,
    template: str | None = None,
) -> None:
    """Create the scratch database ``name`` and mark it as the kit's (``admin``: autocommit).

    It is created and marked under a staging name, then renamed (see the module's doc); staging
    databases that killed runs left are dropped first, each said to ``report``. With ``template``
    it is a copy of that database (``CREATE DATABASE ... TEMPLATE``, which fails with
    ``ObjectInUse`` while another session is connected to the template: the caller decides)."""
    admin.execute("SELECT pg_advisory_lock(%s)", (CREATE_DATABASE_LOCK,))
    try:
        for leftover in _staging_leftovers(admin):
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(leftover))
            )
            if report:
                report(f"dropped database {leftover!r}, left half-made by an interrupted ibcbench")
        staging = STAGING_PREFIX + secrets.token_hex(6)
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(staging))
        if template is not None:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        admin.execute(create)
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(staging), sql.Literal(KIT_MARK)
            )
        )
        try:
            admin.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(staging), sql.Identifier(name)
                )
            )
        except psycopg.Error:  # the name is taken: the staging database goes, the error stays
            if not (admin.closed or admin.broken):
                admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(staging)))
            raise
    finally:
        if not (admin.closed or admin.broken):
            admin.execute("SELECT pg_advisory_unlock(%s)", (CREATE_DATABASE_LOCK,))


def _staging_leftovers(admin: psycopg.Connection) -> list[str]:
    """Staging databases of this role that no creation is using (it holds the lock): the kit's by
    name and owner, marked or not (a run killed before or after its COMMENT)."""
    rows = admin.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
        " WHERE datname LIKE %s AND pg_get_userbyid(datdba) = current_user",
        (STAGING_PREFIX + "%",),
    ).fetchall()
    return [r[0] for r in rows if _STAGING_RE.match(r[0]) and r[1] in (None, KIT_MARK)]


def drop_kit_database(admin: psycopg.Connection, name: str) -> bool:
    """Drop the scratch database ``name`` if the kit created it; refuse one it did not create.

    Returns whether a database was dropped."""
    check_kit_database(admin, name)
    if not _database_comment(admin, name)[0]:
        return False
    admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    return True


def _in_dataset_database(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s)", (MARKER_TABLE,)).fetchone()[0] is not None  # type: ignore[index]


def check_kit_schema(conn: psycopg.Connection, name: str) -> None:
    """Refuse (one line) when a schema ``name`` exists without the kit's mark (outside a dataset
    database)."""
    row = conn.execute(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (name,)
    ).fetchone()
    if row is not None and row[0] != KIT_MARK and not _in_dataset_database(conn):
        raise ConfigError(
            f"schema {name!r} of database {conn.info.dbname!r} exists but was not created by "
            "ibcbench: nothing was dropped; rename it, or run the benchmark on the kit's dataset "
            "database (the notebooks' default)"
        )


def create_kit_schema(conn: psycopg.Connection, name: str) -> None:
    """Create the scratch schema ``name`` and mark it as the kit's, in one transaction."""
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                sql.Identifier(name), sql.Literal(KIT_MARK)
            )
        )


def drop_kit_schema(conn: psycopg.Connection, name: str) -> None:
    """Drop the scratch schema ``name`` (CASCADE) if the kit created it; refuse one it did not."""
    check_kit_schema(conn, name)
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
