"""The two sides of an A/B: copies of one dataset database, each changed by its own migrations and SQL.

Both sides start as ``CREATE DATABASE ... TEMPLATE ibcbench_<scale>_s<seed>``: the same pages, the
same statistics, the same chunk names, so whatever differs between them is what their changes made.
Each copy is the kit's scratch database (:func:`~ibcbench.data.ownership.create_kit_database`, named
``ibcbench_ab_<6 hex>_base`` / ``_head``) and is dropped when the A/B ends, failed or not.

A side's changes, in order: its migrations folder (golang-migrate files; the copy is already at the
dataset's schema version, so only the folder's newer versions run, as ``ibcbench schema up`` would),
then its SQL files, each run as given in one call (the user's own SQL: indexes, ``ALTER DATABASE
... SET``, anything; a setting made with ``ALTER DATABASE`` holds for the sessions opened after it,
which the timing's are). A side with neither is the dataset as built.

A template copy needs no other session on the template. TimescaleDB keeps one of its own there, the
database's background-job scheduler: it is stopped for that database only while the two copies are
made and started again right after (a run killed in between leaves it stopped until the server's
next start, or ``SELECT _timescaledb_functions.start_background_workers()`` in the dataset
database). A benchmark timing on the dataset at the same moment blocks the copy too: it is retried
for :data:`TEMPLATE_WAIT_S`, then refused in one line. The copies' own schedulers are stopped as
soon as they exist: a job of the dataset (a continuous aggregate's refresh policy) due at start-up
would otherwise run on one side while the other is timed, or leave the sides' data apart.
"""

from __future__ import annotations

import secrets
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from ibcbench.data.ownership import create_kit_database, drop_kit_database
from ibcbench.db import connect
from ibcbench.dsn import with_database
from ibcbench.errors import ConfigError, first_line

#: how long a template copy waits for other sessions to leave the dataset database
TEMPLATE_WAIT_S = 15.0
SIDES = ("base", "head")


@dataclass(frozen=True)
class SideSpec:
    """What one side changes: a migrations folder (or None) and SQL files, applied in that order."""

    name: str
    migrations: Path | None = None
    sql_files: tuple[Path, ...] = field(default_factory=tuple)

    def check(self) -> None:
        """Refuse, in one line and before any work, a folder or file that cannot be used."""
        if self.migrations is not None:
            from ibcbench.infra.migrate import load_migrations

            folder = Path(self.migrations)
            if not folder.is_dir():
                raise ConfigError(
                    f"--{self.name}-migrations {folder} is not a folder: pass the schema's "
                    "migrations folder (e.g. schema/migrations)"
                )
            if not load_migrations(folder):
                raise ConfigError(
                    f"--{self.name}-migrations {folder} holds no migrations (NNNNNN_name.up.sql): "
                    "pass the schema's migrations folder, or leave the option out"
                )
        for path in self.sql_files:
            if not Path(path).is_file():
                raise ConfigError(
                    f"--{self.name}-sql {path} is not a file: pass the SQL file to run on the "
                    f"{self.name} side"
                )
            try:
                text = Path(path).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"--{self.name}-sql {path} cannot be read: {exc}") from exc
            if not text.strip():
                raise ConfigError(f"--{self.name}-sql {path} is empty: give it the SQL to run")

    def describe(self) -> dict[str, object]:
        return {
            "migrations": str(self.migrations) if self.migrations else None,
            "sql_files": [str(p) for p in self.sql_files],
        }


def side_database_names(token: str | None = None) -> dict[str, str]:
    """The scratch databases' names of one A/B (``token``: 6 hex, random by default)."""
    token = token or secrets.token_hex(3)
    return {side: f"ibcbench_ab_{token}_{side}" for side in SIDES}


def _copy(admin: psycopg.Connection, name: str, template: str) -> None:
    """Create ``name`` as a marked copy of ``template``, waiting for other sessions to leave it."""
    deadline = time.monotonic() + TEMPLATE_WAIT_S
    while True:
        try:
            create_kit_database(admin, name, template=template)
            return
        except psycopg.errors.ObjectInUse as exc:
            if time.monotonic() >= deadline:
                others = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (template,),
                ).fetchone()
                raise ConfigError(
                    f"cannot copy the dataset database {template!r}: {others[0] if others else '?'} "
                    f"other session(s) are connected to it ({first_line(exc)}); wait for the "
                    "benchmark using it to end (or close those sessions), then run the command again"
                ) from exc
            time.sleep(0.5)


#: TimescaleDB's functions that stop and start one database's scheduler (newer schema first)
_SCHEDULER_SCHEMAS = ("_timescaledb_functions", "_timescaledb_internal")


def _scheduler(conn: psycopg.Connection, action: str) -> bool:
    """``action`` (``stop``/``start``) this database's TimescaleDB scheduler; False when it cannot
    (no TimescaleDB, or a role without the right)."""
    for schema in _SCHEDULER_SCHEMAS:
        name = f"{schema}.{action}_background_workers"
        if conn.execute("SELECT to_regproc(%s)", (name,)).fetchone() == (None,):
            continue
        try:
            conn.execute(
                sql.SQL("SELECT {}()").format(
                    sql.Identifier(schema, f"{action}_background_workers")
                )
            )
        except psycopg.Error:
            return False
        return True
    return False


@contextmanager
def _scheduler_paused(dataset_dsn: str) -> Iterator[None]:
    """TimescaleDB's scheduler of the dataset database stopped for the block, started after it."""
    with connect(dataset_dsn, autocommit=True) as conn:
        stopped = _scheduler(conn, "stop")
    try:
        yield
    finally:
        if stopped:
            with connect(dataset_dsn, autocommit=True) as conn:
                _scheduler(conn, "start")


def _apply(dsn: str, spec: SideSpec) -> list[str]:
    """Apply ``spec``'s migrations, then its SQL files: what was applied, in order."""
    applied: list[str] = []
    if spec.migrations is not None:
        from ibcbench.infra.migrate import migrate_up

        result = migrate_up(dsn, path=Path(spec.migrations))
        applied += [f"migration {label}" for label in result.applied]
    for path in spec.sql_files:
        text = Path(path).read_text()
        with connect(dsn, autocommit=True) as conn:
            try:
                conn.execute(text.encode())  # the user's own file, run as given
            except psycopg.Error as exc:
                raise ConfigError(
                    f"--{spec.name}-sql {path} failed on the {spec.name} side: {first_line(exc)}; "
                    "fix the file and run the command again"
                ) from exc
        applied.append(f"sql {path}")
    return applied


@dataclass(frozen=True)
class Sides:
    """The two databases of an A/B: side -> DSN, and what was applied to each."""

    dsns: dict[str, str]
    databases: dict[str, str]
    applied: dict[str, list[str]]


@contextmanager
def built_sides(
    server_dsn: str, dataset: str, specs: dict[str, SideSpec], *, token: str | None = None
) -> Iterator[Sides]:
    """Copy ``dataset`` once per side, apply each side's changes, yield them; drop both copies at
    the end (whatever happened: a database this made is never left behind by an error or Ctrl-C)."""
    names = side_database_names(token)
    made: list[str] = []
    lock_id = zlib.crc32(dataset.encode())  # the dataset's own lock: no repair while copying
    try:
        with connect(server_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
            try:
                with _scheduler_paused(with_database(server_dsn, dataset)):
                    for side in SIDES:
                        _copy(admin, names[side], dataset)
                        made.append(names[side])
            finally:
                admin.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
        dsns = {side: with_database(server_dsn, names[side]) for side in SIDES}
        for side in SIDES:  # no background job (a refresh policy) runs on one side mid-timing
            with connect(dsns[side], autocommit=True) as conn:
                _scheduler(conn, "stop")
        applied = {side: _apply(dsns[side], specs[side]) for side in SIDES}
        yield Sides(dsns, names, applied)
    finally:
        drop_sides(server_dsn, made)


def drop_sides(server_dsn: str, names: list[str]) -> None:
    """Drop the A/B's scratch databases (only ones that carry the kit's mark)."""
    if not names:
        return
    with connect(server_dsn, autocommit=True) as admin:
        for name in names:
            drop_kit_database(admin, name)
