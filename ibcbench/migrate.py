"""Schema migrations, compatible with golang-migrate.

The files in ``schema/migrations`` follow golang-migrate's layout (``NNNNNN_name.up.sql`` and
``NNNNNN_name.down.sql``), and the state lives in its table ``schema_migrations(version bigint, dirty
boolean)`` under its advisory lock, so ``migrate -path schema/migrations -database $DATABASE_URL up`` and
``ibcbench schema up`` can take turns on one database.

Like golang-migrate, a migration is marked dirty before it runs and clean after; a failure leaves it
dirty and every later command refuses until ``ibcbench schema force V``. Unlike golang-migrate's single
``Exec``, a file runs inside an explicit transaction, so a failed file leaves no half-applied objects;
a file with ``CONCURRENTLY`` must hold a single statement and runs outside a transaction.

The kit never adopts or drops what it did not create. Before a migration runs, none of the tables,
views, indexes and functions its up file creates may exist already (``IF NOT EXISTS`` would adopt a
user's own table, which a later ``down`` would drop); the versions the kit applied itself are recorded
in ``ibcbench_schema_applied``, and ``down`` refuses a version it did not apply (a forced one). A
waiting ``schema up`` polls for the advisory lock from an idle session, so the ``CREATE INDEX
CONCURRENTLY`` of the session holding it does not wait for the waiters (which would deadlock), and
an INVALID index a failed ``CONCURRENTLY`` build left on the kit's tables is rebuilt by ``up``.
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
#: the versions this kit applied itself (not forced, not applied by another tool): ``down`` reverts only those
APPLIED_TABLE = "ibcbench_schema_applied"
NIL_VERSION = -1
_FILE_RE = re.compile(r"(\d+)_([\w-]+)\.(up|down)\.sql")
_ADVISORY_LOCK_SALT = 1486364155
_CREATES_RE = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+)?(TABLE|INDEX|MATERIALIZED\s+VIEW|VIEW|FUNCTION)\s+"
    r"(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_]\w*)",
    re.IGNORECASE,
)


def default_migrations_dir() -> Path:
    """The migrations the package carries: ``schema/migrations`` in a checkout (``--path`` picks another)."""
    from ibcbench import _resources

    return _resources.folder("migrations")


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

    @property
    def creates(self) -> dict[str, str]:
        """The objects the up file creates: name -> kind (``function``, ``index`` or ``relation``)."""
        out: dict[str, str] = {}
        for kind, name in _CREATES_RE.findall(_strip_comments(self.up_path.read_text())):
            kind = kind.upper()
            out[name] = (
                "function" if kind == "FUNCTION" else "index" if kind == "INDEX" else "relation"
            )
        return out


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
        match = _FILE_RE.fullmatch(entry.name)
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
        lock_timeout_s: float = 3600.0,
    ) -> None:
        self.lock_timeout_s = lock_timeout_s
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
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (version bigint NOT NULL PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(APPLIED_TABLE))
        )

    @staticmethod
    def _applied(conn: psycopg.Connection) -> set[int]:
        """The versions the kit applied itself (none when the database has no record of them)."""
        if conn.execute("SELECT to_regclass(%s)", (APPLIED_TABLE,)).fetchone()[0] is None:  # type: ignore[index]
            return set()
        rows = conn.execute(
            sql.SQL("SELECT version FROM {}").format(sql.Identifier(APPLIED_TABLE))
        ).fetchall()
        return {int(r[0]) for r in rows}

    @staticmethod
    def _existing(conn: psycopg.Connection, names: list[str]) -> dict[str, bool]:
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

    def invalid_indexes(self, conn: psycopg.Connection) -> list[str]:
        """The indexes the migrations create, left INVALID by a failed ``CONCURRENTLY`` build, on the
        kit's tables of the current schema."""
        names: set[str] = set()
        tables: set[str] = set()
        for m in self.migrations:
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
            return self._read_version(conn)

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
                self._refuse_never_migrated(conn, "nothing was changed; run `ibcbench schema up`")
                current, _ = self._read_version(conn)
                if (
                    current is not None
                    and current not in self._by_version
                    and current != NIL_VERSION
                ):
                    raise MigrationError(
                        f"schema_migrations of database {conn.info.dbname!r} holds version {current}, "
                        "which is not one of these migrations (another tool's?): nothing was changed; "
                        "use the migrations folder that created it (--path)"
                    )
                self._ensure_table(conn)
                with conn.transaction():
                    self._set_version(conn, None if version == NIL_VERSION else version, False)
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE version > %s").format(
                            sql.Identifier(APPLIED_TABLE)
                        ),
                        (version,),
                    )
            finally:
                if not _lost(conn):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
        return True

    @staticmethod
    def _refuse_never_migrated(conn: psycopg.Connection, advice: str) -> None:
        """One line when the database has no ``schema_migrations`` table (it was never migrated)."""
        if conn.execute("SELECT to_regclass(%s)", (MIGRATIONS_TABLE,)).fetchone()[0] is None:  # type: ignore[index]
            raise MigrationError(
                f"database {conn.info.dbname!r} was never migrated (it has no {MIGRATIONS_TABLE} "
                f"table), so it may not be the kit's: {advice}"
            )

    def require_migrated(self, advice: str) -> None:
        """Refuse (one line ending in ``advice``) a database that was never migrated."""
        with self._connect() as conn:
            self._refuse_never_migrated(conn, advice)

    def _last_clean(self, conn: psycopg.Connection, dirty_at: int | None) -> int:
        """The last version fully applied when ``dirty_at`` is marked dirty: the one before it after a
        failed up, the one after it after a failed down (the kit still records that one as applied)."""
        versions = [m.version for m in self.migrations]
        later = [v for v in versions if dirty_at is None or v > dirty_at]
        if later and later[0] in self._applied(conn):
            return later[0]
        return _previous(dirty_at, self)

    def _refuse_foreign(self, conn: psycopg.Connection, plan: list[Migration]) -> list[str]:
        """Refuse (one line) when an object the planned migrations create exists already: the kit
        would adopt it. The INVALID indexes those migrations create are returned, to be rebuilt."""

        # an object an earlier migration creates is the kit's when a later one replaces it (CREATE OR
        # REPLACE of a function, say): by then it exists because the kit made it
        def earlier(m: Migration) -> set[str]:
            return {n for e in self.migrations if e.version < m.version for n in e.creates}

        kinds = {
            name: kind for m in plan for name, kind in m.creates.items() if name not in earlier(m)
        }
        existing = self._existing(conn, sorted(kinds))
        foreign = sorted(n for n, valid in existing.items() if valid or kinds[n] != "index")
        if foreign:
            shown = ", ".join(foreign[:6]) + (
                f" and {len(foreign) - 6} more" if len(foreign) > 6 else ""
            )
            raise MigrationError(
                f"database {conn.info.dbname!r} already has {shown}, which ibcbench did not create: "
                "nothing was changed; run `ibcbench schema up` on an empty database, or rename those objects"
            )
        return sorted(n for n, valid in existing.items() if not valid)

    def _refuse_unapplied(self, conn: psycopg.Connection, plan: list[Migration]) -> None:
        """``down`` reverts only versions the kit applied itself: a forced version's objects may be a
        user's own (a table of the same name), and its down file would drop them."""
        applied = self._applied(conn)
        foreign = [m.label for m in plan if m.version not in applied]
        if foreign:
            raise MigrationError(
                f"migration {foreign[0]} was not applied by ibcbench on database {conn.info.dbname!r} "
                "(its version was forced, or set by another tool or an older ibcbench), so its objects "
                "may not be the kit's: "
                "nothing was changed; drop them yourself, then `ibcbench schema force` the version below it"
            )

    def _rebuild_invalid(
        self, conn: psycopg.Connection, names: list[str], *, recreate: bool
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
            conn.execute(
                sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name))
            )
            if not recreate or row is None:
                continue
            owner = [
                m for m in self.migrations if name in m.creates and _is_concurrent(m.text("up"))
            ]
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
            notes.append(
                f"ibcbench: index {name} was INVALID (a failed CONCURRENTLY build): rebuilt"
            )
        return notes

    def _left_invalid(self, conn: psycopg.Connection, migration: Migration) -> list[str]:
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

    def _run(self, direction: str, steps: int | None) -> MigrateResult:
        started = time.perf_counter()
        self._notices = []
        with self._connect() as conn:
            lock_id = self._lock(conn)
            try:
                current, dirty = self._read_version(conn)
                if dirty:
                    clean = self._last_clean(conn, current)
                    raise DirtyDatabase(
                        f"database {conn.info.dbname!r} is dirty at version {current} (a migration failed): "
                        f"fix the cause, then run `ibcbench schema force {clean}` ({clean}: the last "
                        "version fully applied)"
                    )
                plan = self._plan(direction, current, steps)
                if plan:
                    _refuse_timescaledb_not_preloaded(conn)
                if direction == "up":
                    # before anything is created: never adopt (and later drop) what the kit did not create
                    pending_invalid = self._refuse_foreign(conn, [m for m, _ in plan])
                    self._ensure_table(conn)
                    stale = [n for n in self.invalid_indexes(conn) if n not in pending_invalid]
                    self._notices += self._rebuild_invalid(conn, stale, recreate=True)
                    self._rebuild_invalid(conn, pending_invalid, recreate=False)
                else:
                    self._refuse_unapplied(conn, [m for m, _ in plan])
                applied: list[str] = []
                for migration, target in plan:
                    self._apply(conn, migration, direction, target)
                    applied.append(migration.label)
                version, _ = self._read_version(conn)
            except psycopg.Error as exc:
                if not _lost(conn):
                    raise
                raise MigrationError(
                    f"the connection to the server was lost ({_first_line(exc)}) before any "
                    "migration ran: nothing was applied; run the command again once the server is "
                    "up (`ibcbench db status`)"
                ) from exc
            finally:
                if not _lost(conn):
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

    def _lost_during(
        self,
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
            f"({_first_line(exc)}): not a problem in the file; "
        )
        if not _is_concurrent(migration.text(direction)):
            try:
                at = self._settle_lost(migration, direction, target, still_at)
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

    def _settle_lost(
        self, migration: Migration, direction: str, target: int | None, still_at: int
    ) -> int | None:
        """In a new session: the version a transactional file cut off left the database at, set
        clean (None: the state is not the one this run left, and is kept)."""
        dirty_at = migration.version if direction == "up" else target
        with self._connect() as conn:
            lock_id = self._lock(conn)
            try:
                current, dirty = self._read_version(conn)
                if not dirty or current != (dirty_at if dirty_at is not None else NIL_VERSION):
                    return None
                recorded = migration.version in self._applied(conn)
                committed = recorded if direction == "up" else not recorded
                at = (target if target is not None else NIL_VERSION) if committed else still_at
                self._set_version(conn, None if at == NIL_VERSION else at, False)
                return at
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))

    def _apply(
        self, conn: psycopg.Connection, migration: Migration, direction: str, target: int | None
    ) -> None:
        text = migration.text(direction)
        # golang-migrate marks the version being moved to as dirty before running the file
        dirty_at = migration.version if direction == "up" else target
        self._set_version(conn, dirty_at if dirty_at is not None else NIL_VERSION, True)
        record = sql.SQL(
            "INSERT INTO {} (version) VALUES (%s) ON CONFLICT DO NOTHING"
            if direction == "up"
            else "DELETE FROM {} WHERE version = %s"
        ).format(sql.Identifier(APPLIED_TABLE))
        try:
            if _is_concurrent(text):
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
                _previous(migration.version, self) if direction == "up" else migration.version
            )
            if _lost(conn):
                raise self._lost_during(migration, direction, target, still_at, exc) from exc
            if _is_concurrent(text):
                # outside a transaction: a failed CREATE INDEX CONCURRENTLY leaves its index INVALID
                left = self._left_invalid(conn, migration)
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
        self._set_version(conn, target, False)


def _lost(conn: psycopg.Connection) -> bool:
    """Whether the connection is gone (a terminated backend, a server restart, a network cut)."""
    return bool(conn.closed or conn.broken)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _refuse_timescaledb_not_preloaded(conn: psycopg.Connection) -> None:
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


def force_version(dsn: str | None, version: int, path: Path | None = None) -> bool:
    return Migrator(dsn, path).force(version)
