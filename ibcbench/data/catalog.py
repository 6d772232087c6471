"""What a dataset database holds, read from its catalogs: its indexes (with the constraints they
back) and its rows, and an index dropped or made again from the record of it. The dataset's clean
state (:mod:`ibcbench.data.datasets`) is written and checked with these.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from ibcbench.data.ownership import MARKER_TABLE

#: the schema whose indexes the clean state records (the kit's tables; scratch schemas and
#: TimescaleDB's chunk indexes follow their own rules)
DATASET_SCHEMA = "public"


def current_indexes(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """The indexes of the dataset's schema: name -> table, ``pg_get_indexdef``, validity and the
    constraint it backs (primary key, unique), with that constraint's definition."""
    rows = conn.execute(
        "SELECT ic.relname, tc.relname, pg_get_indexdef(i.indexrelid), i.indisvalid,"
        " con.conname, pg_get_constraintdef(con.oid)"
        " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
        " JOIN pg_class tc ON tc.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = ic.relnamespace"
        " LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid"
        " WHERE n.nspname = %s AND ic.relname <> %s ORDER BY 1",
        (DATASET_SCHEMA, MARKER_TABLE),
    ).fetchall()
    return {
        name: {
            "table": table,
            "definition": definition,
            "valid": bool(valid),
            "constraint": conname,
            "constraint_definition": condef,
        }
        for name, table, definition, valid, conname, condef in rows
    }


def loaded_rows(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per table that the loads recorded in ``ibcbench_loads`` (summed over spans)."""
    rows: dict[str, int] = {}
    for (counts,) in conn.execute("SELECT rows FROM ibcbench_loads ORDER BY id").fetchall():
        for table, n in (counts or {}).items():
            rows[table] = rows.get(table, 0) + int(n)
    return rows


def count_rows(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    """Rows per table now (-1: the table is gone)."""
    out: dict[str, int] = {}
    for table in tables:
        found = conn.execute("SELECT to_regclass(%s)", (f"{DATASET_SCHEMA}.{table}",)).fetchone()
        if found is None or found[0] is None:
            out[table] = -1
            continue
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(DATASET_SCHEMA), sql.Identifier(table)
            )
        ).fetchone()
        out[table] = int(row[0]) if row else -1
    return out


def drop_index(conn: psycopg.Connection, name: str, info: dict[str, Any]) -> None:
    if info.get("constraint"):
        conn.execute(
            sql.SQL("ALTER TABLE {}.{} DROP CONSTRAINT IF EXISTS {}").format(
                sql.Identifier(DATASET_SCHEMA),
                sql.Identifier(info["table"]),
                sql.Identifier(info["constraint"]),
            )
        )
    conn.execute(
        sql.SQL("DROP INDEX IF EXISTS {}.{}").format(
            sql.Identifier(DATASET_SCHEMA), sql.Identifier(name)
        )
    )


def create_index(conn: psycopg.Connection, info: dict[str, Any]) -> None:
    if info.get("constraint"):  # a key or unique constraint: its index comes back with it
        conn.execute(
            sql.SQL("ALTER TABLE {}.{} ADD CONSTRAINT {} ").format(
                sql.Identifier(DATASET_SCHEMA),
                sql.Identifier(info["table"]),
                sql.Identifier(info["constraint"]),
            )
            + sql.SQL(info["constraint_definition"])  # the catalog's own text, recorded at build
        )
        return
    conn.execute(sql.SQL(info["definition"]))  # pg_get_indexdef's text, recorded at build
