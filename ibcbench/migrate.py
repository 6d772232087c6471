"""Schema migrations, compatible with golang-migrate.

The files in ``schema/migrations`` follow golang-migrate's layout (``NNNNNN_name.up.sql`` and
``NNNNNN_name.down.sql``), and the state lives in its table ``schema_migrations(version bigint, dirty
boolean)`` under its advisory lock, so ``migrate -path schema/migrations -database $DATABASE_URL up`` and
``ibcbench schema up`` can take turns on one database.

Like golang-migrate, a migration is marked dirty before it runs and clean after; a failure leaves it
dirty and every later command refuses until ``ibcbench schema force V``. Unlike golang-migrate's single
``Exec``, a file runs inside an explicit transaction, so a failed file leaves no half-applied objects;
a file with ``CONCURRENTLY`` must hold a single statement and runs outside a transaction.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from ibcbench.db import connect
from ibcbench.errors import ConfigError, DirtyDatabase, MigrationError

MIGRATIONS_TABLE = "schema_migrations"
NIL_VERSION = -1
_FILE_RE = re.compile(r"^(\d+)_([\w-]+)\.(up|down)\.sql$")
_ADVISORY_LOCK_SALT = 1486364155


def default_migrations_dir() -> Path:
    """``schema/migrations`` of the source tree the package is installed from."""
    return Path(__file__).resolve().parent.parent / "schema" / "migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_path: Path
    down_path: Path | None

    @property
    def label(self) -> str:
        return f"{self.version:06d}_{self.name}"

    def text(self, direction: str) -> str:
        path = self.up_path if direction == "up" else self.down_path
        if path is None:
            raise MigrationError(f"migration {self.label} has no down file: it cannot be reverted")
        return path.read_text()


@dataclass(frozen=True)
class MigrateResult:
    """What a command applied, in order, and where the schema stands afterwards."""

    applied: list[str] = field(default_factory=list)
    direction: str = "up"
    version: int | None = None
    elapsed_ms: float = 0.0
    notices: list[str] = field(default_factory=list)


def load_migrations(path: Path | None = None) -> list[Migration]:
    """Read and check the migration folder: pairs, unique versions, names in golang-migrate's form."""
    folder = Path(path) if path else default_migrations_dir()
    if not folder.is_dir():
        raise ConfigError(
            f"migrations folder {folder} does not exist: pass --path to the schema folder"
        )
    ups: dict[int, tuple[str, Path]] = {}
    downs: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.suffix != ".sql":
            continue
        match = _FILE_RE.match(entry.name)
        if not match:
            raise ConfigError(
                f"{entry.name} is not a migration file name: use NNNNNN_name.up.sql / .down.sql"
            )
        version, name, direction = int(match.group(1)), match.group(2), match.group(3)
        target = ups if direction == "up" else downs
        if version in target:
            raise ConfigError(f"two {direction} migrations have version {version} in {folder}")
        if direction == "up":
            ups[version] = (name, entry)
        else:
            downs[version] = entry
    orphans = sorted(set(downs) - set(ups))
    if orphans:
        raise ConfigError(f"down migration {orphans[0]} has no up file in {folder}")
    migrations = [
        Migration(version=v, name=ups[v][0], up_path=ups[v][1], down_path=downs.get(v))
        for v in sorted(ups)
    ]
    for m in migrations:
        for direction in ("up", "down"):
            if direction == "down" and m.down_path is None:
                continue
            if _is_concurrent(m.text(direction)) and len(_statements(m.text(direction))) != 1:
                raise ConfigError(
                    f"{m.label}.{direction}.sql uses CONCURRENTLY but holds several statements: "
                    "put that statement alone in its own migration"
                )
    return migrations


def _strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def _is_concurrent(text: str) -> bool:
    return (
        re.search(r"\bCONCURRENTLY\b", _strip_comments(text), re.IGNORECASE) is not None
        and (
            re.search(
                r"^\s*(CREATE|DROP|REINDEX)\b", _strip_comments(text), re.IGNORECASE | re.MULTILINE
            )
            is not None
        )
        and "$$" not in text
    )


def _statements(text: str) -> list[str]:
    return [s for s in (part.strip() for part in _strip_comments(text).split(";")) if s]


def advisory_lock_id(database: str, schema: str = "public", table: str = MIGRATIONS_TABLE) -> int:
    """golang-migrate's lock id for its postgres driver: crc32 of schema, table and database names."""
    key = "\x00".join([schema, table, database]).encode()
    return (zlib.crc32(key) * _ADVISORY_LOCK_SALT) & 0xFFFFFFFF


class Migrator:
    """Applies migrations to one database. Holds golang-migrate's advisory lock while it works."""

    def __init__(
        self,
        dsn: str | None = None,
        path: Path | None = None,
        *,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.migrations = load_migrations(path)
        self._by_version = {m.version: m for m in self.migrations}
        self._dsn = dsn
        self._on_notice = on_notice
        self._notices: list[str] = []

    # ---- state ---------------------------------------------------------------------------
    def _ensure_table(self, conn: psycopg.Connection) -> None:
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
            ).format(sql.Identifier(MIGRATIONS_TABLE))
        )

    @staticmethod
    def _read_version(conn: psycopg.Connection) -> tuple[int | None, bool]:
        if conn.execute("SELECT to_regclass(%s)", (MIGRATIONS_TABLE,)).fetchone()[0] is None:  # type: ignore[index]
            return None, False
        row = conn.execute(
            sql.SQL("SELECT version, dirty FROM {} LIMIT 1").format(
                sql.Identifier(MIGRATIONS_TABLE)
            )
        ).fetchone()
        if row is None:
            return None, False
        return int(row[0]), bool(row[1])

    @staticmethod
    def _set_version(conn: psycopg.Connection, version: int | None, dirty: bool) -> None:
        with conn.transaction():
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(MIGRATIONS_TABLE)))
            if version is not None and (version >= 0 or dirty):
                conn.execute(
                    sql.SQL("INSERT INTO {} (version, dirty) VALUES (%s, %s)").format(
                        sql.Identifier(MIGRATIONS_TABLE)
                    ),
                    (version, dirty),
                )

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
        schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        lock_id = advisory_lock_id(conn.info.dbname, schema)
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
        return lock_id

    def version(self) -> tuple[int | None, bool]:
        """The applied version (None: nothing applied) and whether it is dirty."""
        with self._connect() as conn:
            return self._read_version(conn)

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

    def force(self, version: int) -> None:
        """Set the version without running anything and clear the dirty flag (golang-migrate's force)."""
        if version != NIL_VERSION and version not in self._by_version:
            known = ", ".join(str(v) for v in self._by_version) or "none"
            raise ConfigError(
                f"version {version} is not a known migration (known: {known}; -1 for none)"
            )
        with self._connect() as conn:
            self._ensure_table(conn)
            lock_id = self._lock(conn)
            try:
                self._set_version(conn, None if version == NIL_VERSION else version, False)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))

    def _run(self, direction: str, steps: int | None) -> MigrateResult:
        started = time.perf_counter()
        self._notices = []
        with self._connect() as conn:
            self._ensure_table(conn)
            lock_id = self._lock(conn)
            try:
                current, dirty = self._read_version(conn)
                if dirty:
                    raise DirtyDatabase(
                        f"database {conn.info.dbname!r} is dirty at version {current} (a migration failed): "
                        "fix the cause, then run `ibcbench schema force V` with V the last version fully "
                        f"applied (usually {_previous(current, self)})"
                    )
                plan = self._plan(direction, current, steps)
                applied: list[str] = []
                for migration, target in plan:
                    self._apply(conn, migration, direction, target)
                    applied.append(migration.label)
                version, _ = self._read_version(conn)
            finally:
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
        self._set_version(conn, dirty_at if dirty_at is not None else NIL_VERSION, True)
        try:
            if _is_concurrent(text):
                conn.execute(text.encode())  # type: ignore[arg-type]
            else:
                with conn.transaction():
                    conn.execute(text.encode())  # type: ignore[arg-type]
        except psycopg.Error as exc:
            detail = (exc.diag.message_primary or str(exc)).splitlines()[0]
            # the file ran in a transaction: the database is still at the version before this step
            still_at = (
                _previous(migration.version, self) if direction == "up" else migration.version
            )
            raise MigrationError(
                f"migration {migration.label}.{direction}.sql failed: {detail}; nothing of it was applied "
                f"but the version is marked dirty: fix the file, then run `ibcbench schema force {still_at}`"
            ) from exc
        self._set_version(conn, target, False)


def _previous(version: int | None, migrator: Migrator) -> int:
    """The version to force after a failure at ``version``: the one before it (golang-migrate's advice)."""
    versions = [m.version for m in migrator.migrations]
    if version is None or version not in versions:
        return NIL_VERSION
    idx = versions.index(version)
    return versions[idx - 1] if idx > 0 else NIL_VERSION


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


def force_version(dsn: str | None, version: int, path: Path | None = None) -> None:
    Migrator(dsn, path).force(version)
