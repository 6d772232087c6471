"""Applying migrations: the :class:`Migrator` (golang-migrate's lock, dirty mark and version) and the
one-call commands ``migrate_up``, ``migrate_down``, ``schema_version`` and ``force_version``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from ibcbench.db import connect
from ibcbench.errors import ConfigError, DirtyDatabase, MigrationError
from ibcbench.infra.migrate import checks, recovery
from ibcbench.infra.migrate.files import Migration, is_concurrent, load_migrations
from ibcbench.infra.migrate.state import (
    APPLIED_TABLE,
    NIL_VERSION,
    advisory_lock_id,
    ensure_tables,
    first_line,
    lost,
    read_version,
    set_version,
)


@dataclass(frozen=True)
class MigrateResult:
    """What a command applied, in order, and where the schema stands afterwards."""

    applied: list[str] = field(default_factory=list)
    direction: str = "up"
    version: int | None = None
    elapsed_ms: float = 0.0
    notices: list[str] = field(default_factory=list)


class Migrator:
    """Applies migrations to one database. Holds golang-migrate's advisory lock while it works."""

    def __init__(
        self,
        dsn: str | None = None,
        path: Path | None = None,
        *,
        on_notice: Callable[[str], None] | None = None,
        lock_timeout_s: float = 3600.0,
    ) -> None:
        self.lock_timeout_s = lock_timeout_s
        self.migrations = load_migrations(path)
        self._by_version = {m.version: m for m in self.migrations}
        self._dsn = dsn
        self._on_notice = on_notice
        self._notices: list[str] = []

    # ---- state ---------------------------------------------------------------------------
    def invalid_indexes(self, conn: psycopg.Connection) -> list[str]:
        """The indexes the migrations create, left INVALID by a failed ``CONCURRENTLY`` build, on the
        kit's tables of the current schema."""
        return checks.invalid_indexes(conn, self.migrations)

    def last_clean(self, conn: psycopg.Connection, dirty_at: int | None) -> int:
        """The last version fully applied when ``dirty_at`` is marked dirty (the one to force)."""
        return recovery.last_clean(conn, self.migrations, dirty_at)

    def _connect(self) -> psycopg.Connection:
        conn = connect(self._dsn, autocommit=True)
        conn.add_notice_handler(self._notice)
        return conn

    def _notice(self, diag: psycopg.errors.Diagnostic) -> None:
        message = diag.message_primary or ""
        if message.startswith("ibcbench:"):
            self._notices.append(message)
            if self._on_notice:
                self._on_notice(message)

    def _lock(self, conn: psycopg.Connection) -> int:
        """Take golang-migrate's advisory lock, polling from an idle session.

        A blocking ``pg_advisory_lock`` keeps a statement (and its virtual transaction) open while it
        waits, and the ``CREATE INDEX CONCURRENTLY`` of the session holding the lock waits for every
        such transaction: a deadlock. Between tries this session is idle, in no transaction.
        """
        schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        lock_id = advisory_lock_id(conn.info.dbname, schema)
        deadline = time.monotonic() + self.lock_timeout_s
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise MigrationError(
                    f"another migration has held the lock on database {conn.info.dbname!r} for more "
                    f"than {self.lock_timeout_s:.0f} s: wait for it to finish, then run the command again"
                )
            time.sleep(0.2)
        return lock_id

    def version(self) -> tuple[int | None, bool]:
        """The applied version (None: nothing applied) and whether it is dirty."""
        with self._connect() as conn:
            return read_version(conn)

    def invalid(self) -> list[str]:
        """The kit's indexes left INVALID by a failed ``CONCURRENTLY`` build (``up`` rebuilds them)."""
        with self._connect() as conn:
            return self.invalid_indexes(conn)

    # ---- commands ------------------------------------------------------------------------
    def up(self, steps: int | None = None) -> MigrateResult:
        """Apply pending migrations: all of them, or the next ``steps``."""
        if steps is not None and steps <= 0:
            raise ConfigError("steps must be a positive number of migrations")
        return self._run("up", steps)

    def down(self, steps: int) -> MigrateResult:
        """Revert the last ``steps`` applied migrations."""
        if steps <= 0:
            raise ConfigError("steps must be a positive number of migrations")
        return self._run("down", steps)

    def force(self, version: int) -> bool:
        """Set the version without running anything and clear the dirty flag (golang-migrate's force).

        A database that was never migrated (no ``schema_migrations`` table) is refused: forcing a
        version there would claim a schema of the kit's in a database that may be a user's own, and
        a ``schema_migrations`` table would be created in it. A forced version is not one the kit
        applied: ``down`` will not revert it. Returns True (the version was set)."""
        if version != NIL_VERSION and version not in self._by_version:
            known = ", ".join(str(v) for v in self._by_version) or "none"
            raise ConfigError(
                f"version {version} is not a known migration (known: {known}; -1 for none)"
            )
        with self._connect() as conn:
            lock_id = self._lock(conn)
            try:
                checks.refuse_never_migrated(conn, "nothing was changed; run `ibcbench schema up`")
                recovery.force_locked(conn, self._by_version, version)
            finally:
                if not lost(conn):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
        return True

    def require_migrated(self, advice: str) -> None:
        """Refuse (one line ending in ``advice``) a database that was never migrated."""
        with self._connect() as conn:
            checks.refuse_never_migrated(conn, advice)

    def _run(self, direction: str, steps: int | None) -> MigrateResult:
        started = time.perf_counter()
        self._notices = []
        with self._connect() as conn:
            lock_id = self._lock(conn)
            try:
                current, dirty = read_version(conn)
                if dirty:
                    clean = self.last_clean(conn, current)
                    raise DirtyDatabase(
                        f"database {conn.info.dbname!r} is dirty at version {current} (a migration failed): "
                        f"fix the cause, then run `ibcbench schema force {clean}` ({clean}: the last "
                        "version fully applied)"
                    )
                plan = self._plan(direction, current, steps)
                if plan:
                    checks.refuse_timescaledb_not_preloaded(conn)
                if direction == "up":
                    # before anything is created: never adopt (and later drop) what the kit did not create
                    pending_invalid = checks.refuse_foreign(
                        conn, self.migrations, [m for m, _ in plan]
                    )
                    ensure_tables(conn)
                    stale = [n for n in self.invalid_indexes(conn) if n not in pending_invalid]
                    self._notices += recovery.rebuild_invalid(
                        conn, self.migrations, stale, recreate=True
                    )
                    recovery.rebuild_invalid(conn, self.migrations, pending_invalid, recreate=False)
                else:
                    checks.refuse_unapplied(conn, [m for m, _ in plan])
                applied: list[str] = []
                for migration, target in plan:
                    self._apply(conn, migration, direction, target)
                    applied.append(migration.label)
                version, _ = read_version(conn)
            except psycopg.Error as exc:
                if not lost(conn):
                    raise
                raise MigrationError(
                    f"the connection to the server was lost ({first_line(exc)}) before any "
                    "migration ran: nothing was applied; run the command again once the server is "
                    "up (`ibcbench db status`)"
                ) from exc
            finally:
                if not lost(conn):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
        return MigrateResult(
            applied=applied,
            direction=direction,
            version=version,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            notices=list(self._notices),
        )

    def _plan(
        self, direction: str, current: int | None, steps: int | None
    ) -> list[tuple[Migration, int | None]]:
        versions = [m.version for m in self.migrations]
        if current is not None and current not in self._by_version:
            raise MigrationError(
                f"the database is at version {current}, which is not in the migrations folder: "
                "use the folder that created it"
            )
        if direction == "up":
            pending = [m for m in self.migrations if current is None or m.version > current]
            if steps is not None:
                if steps > len(pending):
                    raise MigrationError(
                        f"cannot apply {steps} migrations: only {len(pending)} pending "
                        f"(at version {current if current is not None else 'none'})"
                    )
                pending = pending[:steps]
            return [(m, m.version) for m in pending]
        applied = [m for m in self.migrations if current is not None and m.version <= current]
        assert steps is not None
        if steps > len(applied):
            raise MigrationError(
                f"cannot revert {steps} migrations: only {len(applied)} applied "
                f"(at version {current if current is not None else 'none'}); nothing was changed"
            )
        chosen = list(reversed(applied))[:steps]
        for m in chosen:
            if m.down_path is None:
                raise MigrationError(f"migration {m.label} has no down file; nothing was changed")
        plan: list[tuple[Migration, int | None]] = []
        for m in chosen:
            idx = versions.index(m.version)
            plan.append((m, versions[idx - 1] if idx > 0 else None))
        return plan

    def _apply(
        self, conn: psycopg.Connection, migration: Migration, direction: str, target: int | None
    ) -> None:
        text = migration.text(direction)
        # golang-migrate marks the version being moved to as dirty before running the file
        dirty_at = migration.version if direction == "up" else target
        set_version(conn, dirty_at if dirty_at is not None else NIL_VERSION, True)
        record = sql.SQL(
            "INSERT INTO {} (version) VALUES (%s) ON CONFLICT DO NOTHING"
            if direction == "up"
            else "DELETE FROM {} WHERE version = %s"
        ).format(sql.Identifier(APPLIED_TABLE))
        try:
            if is_concurrent(text):
                conn.execute(text.encode())
                conn.execute(record, (migration.version,))
            else:
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute(record, (migration.version,))
        except psycopg.Error as exc:
            detail = (exc.diag.message_primary or str(exc)).splitlines()[0]
            # the file ran in a transaction: the database is still at the version before this step
            still_at = (
                recovery.previous(migration.version, self.migrations)
                if direction == "up"
                else migration.version
            )
            if lost(conn):
                raise recovery.lost_during(
                    self._connect, self._lock, migration, direction, target, still_at, exc
                ) from exc
            if is_concurrent(text):
                # outside a transaction: a failed CREATE INDEX CONCURRENTLY leaves its index INVALID
                left = recovery.left_invalid(conn, migration)
                raise MigrationError(
                    f"migration {migration.label}.{direction}.sql failed: {detail}; "
                    + (
                        f"it left index {', '.join(left)} INVALID and "
                        if left
                        else "nothing of it stayed but "
                    )
                    + "the version is marked dirty: fix the file, then run "
                    f"`ibcbench schema force {still_at}` and `ibcbench schema up`"
                    + (" (which rebuilds the INVALID index)" if left else "")
                ) from exc
            raise MigrationError(
                f"migration {migration.label}.{direction}.sql failed: {detail}; nothing of it was applied "
                f"but the version is marked dirty: fix the file, then run `ibcbench schema force {still_at}`"
            ) from exc
        set_version(conn, target, False)


def migrate_up(
    dsn: str | None = None, steps: int | None = None, path: Path | None = None
) -> MigrateResult:
    """Apply pending migrations (all, or the next ``steps``)."""
    return Migrator(dsn, path).up(steps)


def migrate_down(dsn: str | None, steps: int, path: Path | None = None) -> MigrateResult:
    """Revert the last ``steps`` migrations."""
    return Migrator(dsn, path).down(steps)


def schema_version(dsn: str | None = None, path: Path | None = None) -> tuple[int | None, bool]:
    return Migrator(dsn, path).version()


def force_version(dsn: str | None, version: int, path: Path | None = None) -> bool:
    return Migrator(dsn, path).force(version)
