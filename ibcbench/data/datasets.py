"""Kit-owned dataset databases for notebooks and benchmarks.

``ensure_dataset(dsn, scale=..., seed=...)`` returns the DSN of a database ``ibcbench_<scale>_s<seed>``
on the same server as ``dsn``: created, migrated and loaded on first use, reused afterwards. Benchmarks
that drop indexes or rebuild tables work there, never in the user's own database, and the pg_cron jobs
of the main database add no noise to their timings.

A marker table ``ibcbench_dataset`` says the database is the kit's and whether its load completed; a
database of that name without the marker is refused, never dropped.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ibcbench.db import connect, redact_dsn, resolve_dsn
from ibcbench.errors import ConfigError

MARKER_TABLE = "ibcbench_dataset"


def dataset_fingerprint() -> str:
    """A hash of the generator's and the schema's source: a dataset built by other code is rebuilt."""
    import data_gen
    from ibcbench.migrate import default_migrations_dir

    digest = hashlib.sha256()
    files = sorted(Path(data_gen.__file__).parent.glob("*.py")) + sorted(
        default_migrations_dir().glob("*.sql")
    )
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def dataset_database_name(scale: str, seed: int) -> str:
    return f"ibcbench_{scale}_s{seed}"


def with_database(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at another database of the same server."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"invalid DSN {redact_dsn(dsn)!r}: {redact_dsn(str(exc).strip())}; fix DATABASE_URL or --dsn"
        ) from exc
    params["dbname"] = dbname
    return make_conninfo("", **params)


@dataclass(frozen=True)
class DatasetInfo:
    dsn: str
    database: str
    scale: str
    seed: int
    created: bool
    elapsed_s: float
    load: Any = None

    def key_numbers(self) -> dict[str, Any]:
        """What notebook 01 records about the dataset: its database, whether it was built, how fast."""
        return {
            "dataset": self.database,
            "created": self.created,
            "dataset_seconds": round(self.elapsed_s, 1),
            "load_rows_per_s": self.load.rows_per_s if self.created else None,
        }


def _validate(scale: str, seed: int) -> None:
    from data_gen import PRESETS

    if scale not in PRESETS:
        raise ConfigError(f"scale {scale!r} is unknown: use one of {', '.join(PRESETS)}")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed {seed!r} must be a non-negative integer")


def validate_dataset(scale: str, seed: int) -> None:
    """Refuse an unknown scale or a negative seed in one line, before any work."""
    _validate(scale, seed)


def _marker(conn: psycopg.Connection) -> tuple[str, int, str, str] | None:
    if conn.execute("SELECT to_regclass(%s)", (MARKER_TABLE,)).fetchone()[0] is None:  # type: ignore[index]
        return None
    row = conn.execute(
        sql.SQL("SELECT scale, seed, status, fingerprint FROM {} LIMIT 1").format(
            sql.Identifier(MARKER_TABLE)
        )
    ).fetchone()
    return (row[0], int(row[1]), row[2], row[3]) if row else ("?", -1, "empty", "")


def ensure_dataset_info(
    dsn: str | None = None, *, scale: str = "tiny", seed: int = 42, quiet: bool = True
) -> DatasetInfo:
    """Create (or reuse) the dataset database for ``scale``/``seed``; see :func:`ensure_dataset`."""
    _validate(scale, seed)
    started = time.perf_counter()
    base = resolve_dsn(dsn)
    name = dataset_database_name(scale, seed)
    target = with_database(base, name)
    lock_id = zlib.crc32(name.encode())
    with connect(base, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
        try:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists:
                with connect(target, autocommit=True) as conn:
                    marker = _marker(conn)
                if marker is None:
                    raise ConfigError(
                        f"database {name!r} exists but was not created by ibcbench: drop or rename it, "
                        "or point --dsn at another server"
                    )
                if marker == (scale, seed, "complete", dataset_fingerprint()):
                    return DatasetInfo(
                        target, name, scale, seed, False, time.perf_counter() - started
                    )
                # the kit's own database, left half-loaded by an interrupted run or built by another
                # version of the generator or schema: build it again
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            try:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.InsufficientPrivilege as exc:
                raise ConfigError(
                    f"cannot create the dataset database {name!r}: the role needs CREATEDB "
                    "(or use the embedded server: unset DATABASE_URL)"
                ) from exc
            load = _populate(target, scale, seed, quiet)
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
    return DatasetInfo(target, name, scale, seed, True, time.perf_counter() - started, load)


def _populate(dsn: str, scale: str, seed: int, quiet: bool) -> Any:
    from data_gen import GenerationParams
    from ibcbench.data.load import load_dataset
    from ibcbench.data.views import refresh_views
    from ibcbench.migrate import migrate_up

    with connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (scale text NOT NULL, seed bigint NOT NULL, status text NOT NULL,"
                " fingerprint text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
                " completed_at timestamptz)"
            ).format(sql.Identifier(MARKER_TABLE))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (scale, seed, status, fingerprint) VALUES (%s, %s, 'loading', %s)"
            ).format(sql.Identifier(MARKER_TABLE)),
            (scale, seed, dataset_fingerprint()),
        )
    migrate_up(dsn)
    load = load_dataset(dsn, GenerationParams(seed=seed, scale=scale), quiet=quiet)
    with connect(dsn, autocommit=True) as conn:
        refresh_views(conn)
        conn.execute("VACUUM ANALYZE")
        conn.execute(
            sql.SQL("UPDATE {} SET status = 'complete', completed_at = now()").format(
                sql.Identifier(MARKER_TABLE)
            )
        )
    return load


def ensure_dataset(
    dsn: str | None = None, *, scale: str = "tiny", seed: int = 42, quiet: bool = True
) -> str:
    """The DSN of the kit's database holding the ``scale`` dataset generated from ``seed``.

    Created, migrated, loaded (binary COPY), its views refreshed and analyzed on first use; reused as
    is afterwards. ``dsn`` (default: ``DATABASE_URL``, else the embedded server) names the server.
    """
    return ensure_dataset_info(dsn, scale=scale, seed=seed, quiet=quiet).dsn
