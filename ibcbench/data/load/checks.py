"""Checks against the server before a load: the schema, where the data ends, the span, the lock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import psycopg

from data_gen import GenerationParams, ResumeState
from data_gen.tables import TABLES
from ibcbench.errors import LoadError
from ibcbench.locks import LOAD_LOCK

_TYPE_ALIASES = {
    "timestamp with time zone": "timestamptz",
    "character varying": "text",
}


def check_schema(conn: psycopg.Connection) -> None:
    """The tables exist with the columns and types data_gen.tables expects, else one-line LoadError."""
    from ibcbench.infra.migrate import read_version

    version, dirty = read_version(conn)
    if dirty:
        raise LoadError(
            f"the schema of database {conn.info.dbname!r} is dirty at version {version} (a migration "
            "failed): nothing was loaded; run `ibcbench schema up` to see which version to force"
        )
    for table, columns in TABLES.items():
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (table,),
        ).fetchall()
        if not rows:
            raise LoadError(f"table {table} does not exist: run `ibcbench schema up` first")
        actual = {name: _TYPE_ALIASES.get(t, t or "").replace(", ", ",") for name, t in rows}
        for name, pg_type in columns:
            if name not in actual:
                raise LoadError(
                    f"{table}.{name} is missing: the schema is older than the generator; run `ibcbench schema up`"
                )
            if actual[name] != pg_type.replace(", ", ","):
                raise LoadError(
                    f"{table}.{name} is {actual[name]} on the server but the generator writes {pg_type}: "
                    "run `ibcbench schema up` or fix data_gen/tables.py"
                )
    for log in ("ibcbench_loads", "ibcbench_load_attempts"):
        if conn.execute("SELECT to_regclass(%s)", (log,)).fetchone()[0] is None:  # type: ignore[index]
            raise LoadError(f"table {log} does not exist: run `ibcbench schema up` first")


def resume_state(conn: psycopg.Connection) -> ResumeState | None:
    """Where the data in the database ends (None when packet_flow is empty)."""
    row = conn.execute("SELECT max(id), max(created_at) FROM packet_flow").fetchone()
    if row is None or row[0] is None:
        return None
    max_op = conn.execute("SELECT coalesce(max(id), 0) FROM clearing_operations").fetchone()[0]  # type: ignore[index]
    seqs = conn.execute(
        "SELECT source_chain, source_port, source_channel, max(sequence) FROM packet_flow GROUP BY 1, 2, 3"
    ).fetchall()
    return ResumeState(
        next_packet_id=int(row[0]) + 1,
        next_operation_id=int(max_op) + 1,
        next_sequence={(c, p, ch): int(s) + 1 for c, p, ch, s in seqs},
        start=row[1],
    )


def lock(conn: psycopg.Connection) -> None:
    """Serialize loads into this database until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK,))


def check_span(conn: psycopg.Connection, span_start: datetime, first_packet_id: int) -> None:
    """Refuse a span that starts inside the data already loaded, or reuses its packet ids."""
    newest, max_id = conn.execute("SELECT max(created_at), max(id) FROM packet_flow").fetchone()  # type: ignore[misc]
    if newest is not None and span_start <= newest:
        raise LoadError(
            f"the data to load starts at {span_start.isoformat()} but the database already holds packets "
            f"up to {newest.isoformat()}: load GenerationParams to continue it (`ibcbench seed` appends), "
            "or use a fresh database"
        )
    if max_id is not None and first_packet_id <= max_id:
        raise LoadError(
            f"the data to load starts at packet id {first_packet_id} but the database already holds ids up "
            f"to {max_id}: generate it as a continuation (`ibcbench generate --dsn ...`) or use a fresh database"
        )
    if conn.execute(
        "SELECT 1 FROM ibcbench_loads WHERE span_start <= %s AND span_end > %s",
        (span_start, span_start),
    ).fetchone():
        raise LoadError(
            f"a loaded span already covers {span_start.isoformat()}: use a fresh database"
        )


def check_incident_table(conn: psycopg.Connection, wanted: bool) -> None:
    """Data with planted incidents needs the table that keeps them (migration 000012)."""
    if wanted and conn.execute("SELECT to_regclass('ibcbench_incidents')").fetchone()[0] is None:  # type: ignore[index]
        raise LoadError(
            "table ibcbench_incidents does not exist (the data has planted incidents): run "
            "`ibcbench schema up` first"
        )


def continue_params(conn: psycopg.Connection, params: GenerationParams) -> GenerationParams:
    """``params`` resumed after the data already loaded (unchanged into an empty database)."""
    if params.resume is not None:
        return params
    state = resume_state(conn)
    if state is None:
        return params
    if params.start is not None and params.start <= state.start:  # type: ignore[operator]
        raise LoadError(
            f"start {params.start.isoformat()} overlaps the data already loaded (up to "
            f"{state.start.isoformat()}): drop --start to append after it, or use a fresh database"  # type: ignore[union-attr]
        )
    return replace(params, resume=state)
