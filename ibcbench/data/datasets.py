"""Kit-owned dataset databases for notebooks and benchmarks.

``ensure_dataset(dsn, scale=..., seed=...)`` returns the DSN of a database ``ibcbench_<scale>_s<seed>``
on the same server as ``dsn``: created, migrated and loaded on first use, reused afterwards. Benchmarks
that drop indexes or rebuild tables work there, never in the user's own database, and the pg_cron jobs
of the main database add no noise to their timings.

The database is created with the kit's mark (a comment, :data:`~ibcbench.data.ownership.KIT_MARK`);
the marker table ``ibcbench_dataset`` is written once, in the transaction that ends the build, with
the dataset's clean state: its indexes (name, ``pg_get_indexdef``, the constraint an index backs) and
its rows per table (from ``ibcbench_loads``). A database of that name with neither mark is a user's:
refused, never dropped. One with the kit's comment but no marker was left half-built by a killed run
(or built by other code): dropped and built again.

Every use checks the dataset against its clean state (:func:`check_dataset`): a missing index is
recreated from its definition, an INVALID one or one the clean state does not have (a killed index
strategy's leftover) is dropped, each said in one line on stderr; rows that differ from the load's
are refused (the benchmark would measure other data). :class:`DatasetState` is what a run's
manifest records (``dataset: {name, state, repairs, indexes, rows}``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from ibcbench.data.catalog import (
    count_rows,
    create_index,
    current_indexes,
    drop_index,
    loaded_rows,
)
from ibcbench.data.ownership import KIT_MARK, MARKER_TABLE, create_kit_database
from ibcbench.db import connect, resolve_dsn
from ibcbench.dsn import with_database
from ibcbench.errors import ConfigError
from ibcbench.results.metrics.metric import TIMING, Metric, informational


def dataset_fingerprint() -> str:
    """A hash of the generator's and the schema's source: a dataset built by other code is rebuilt."""
    import data_gen
    from ibcbench.infra.migrate import default_migrations_dir

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


@dataclass(frozen=True)
class DatasetState:
    """A dataset as a run found it: ``intact`` (as built), ``repaired`` (``repairs`` says how)."""

    name: str
    state: str
    repairs: tuple[str, ...] = ()
    indexes: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    created: bool = False

    def manifest(self) -> dict[str, Any]:
        """The manifest's ``dataset`` entry."""
        return {
            "name": self.name,
            "state": self.state,
            "repairs": list(self.repairs),
            "indexes": self.indexes,
            "rows": dict(self.rows),
            "created": self.created,
        }


@dataclass(frozen=True)
class DatasetInfo:
    dsn: str
    database: str
    scale: str
    seed: int
    created: bool
    elapsed_s: float
    load: Any = None
    state: DatasetState | None = None

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational("dataset", "", "the dataset's database name"),
        informational(
            "created", "", "whether this run generated the dataset or reused an existing one"
        ),
        informational(
            "dataset_seconds",
            "s",
            "generation and load when created, a lookup when reused: not comparable",
        ),
        Metric(
            "load_rows_per_s",
            "higher",
            "rows/s",
            TIMING,
            note="binary COPY throughput (only when created)",
        ),
    )

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


def _marker(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The marker row (scale, seed, status, fingerprint, clean state), or None without one."""
    if conn.execute("SELECT to_regclass(%s)", (MARKER_TABLE,)).fetchone()[0] is None:  # type: ignore[index]
        return None
    columns = {
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped",
            (MARKER_TABLE,),
        ).fetchall()
    }
    if not {"indexes", "rows"} <= columns:  # a marker of older code, without the clean state
        return {"scale": "?", "seed": -1, "status": "old", "fingerprint": ""}
    row = conn.execute(
        sql.SQL("SELECT scale, seed, status, fingerprint, indexes, rows FROM {} LIMIT 1").format(
            sql.Identifier(MARKER_TABLE)
        )
    ).fetchone()
    if row is None:
        return {"scale": "?", "seed": -1, "status": "empty", "fingerprint": ""}
    keys = ("scale", "seed", "status", "fingerprint", "indexes", "rows")
    return dict(zip(keys, row, strict=True))


def read_marker(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The dataset's marker row (``conn``: its database), or None without one; only reads."""
    return _marker(conn)


def _stderr(line: str) -> None:
    print(f"ibcbench: {line}", file=sys.stderr, flush=True)


def ensure_dataset_info(
    dsn: str | None = None,
    *,
    scale: str = "tiny",
    seed: int = 42,
    quiet: bool = True,
    report: Callable[[str], None] | None = _stderr,
) -> DatasetInfo:
    """Create (or reuse, checked and repaired) the dataset database for ``scale``/``seed``; see
    :func:`ensure_dataset`. ``report`` gets one line per repair or rebuild (default: stderr);
    ``info.state`` is what the run's manifest records."""
    info = _ensure(dsn, scale, seed, quiet=quiet, create=True, report=report)
    assert info is not None  # create=True always gives a dataset
    return info


def find_dataset(
    dsn: str | None = None,
    *,
    scale: str = "tiny",
    seed: int = 42,
    report: Callable[[str], None] | None = _stderr,
) -> DatasetInfo | None:
    """The complete dataset for ``scale``/``seed``, checked and repaired like
    :func:`ensure_dataset_info`; None (and nothing built) when there is none yet."""
    return _ensure(dsn, scale, seed, quiet=True, create=False, report=report)


def _ensure(
    dsn: str | None,
    scale: str,
    seed: int,
    *,
    quiet: bool,
    create: bool,
    report: Callable[[str], None] | None,
) -> DatasetInfo | None:
    """Under the dataset's advisory lock: reuse the complete dataset (checked and repaired), or,
    with ``create``, drop a half-built or outdated one of the kit's and build it again."""
    _validate(scale, seed)
    started = time.perf_counter()
    base = resolve_dsn(dsn)
    name = dataset_database_name(scale, seed)
    target = with_database(base, name)
    lock_id = zlib.crc32(name.encode())
    with connect(base, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
        try:
            found = admin.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (name,),
            ).fetchone()
            if found:
                reused, why = _reuse(target, name, found[0], scale, seed, report)
                if reused is not None:
                    elapsed = time.perf_counter() - started
                    return DatasetInfo(target, name, scale, seed, False, elapsed, state=reused)
                if not create:
                    return None
                if report:
                    report(f"dataset {name} {why}: dropping it and building it again")
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            elif not create:
                return None
            load, state = _build(admin, target, name, scale, seed, quiet)
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
    state = DatasetState(name, "intact", (), state.indexes, state.rows, created=True)
    return DatasetInfo(
        target, name, scale, seed, True, time.perf_counter() - started, load, state=state
    )


def _reuse(
    target: str,
    name: str,
    comment: str | None,
    scale: str,
    seed: int,
    report: Callable[[str], None] | None,
) -> tuple[DatasetState | None, str]:
    """The state of the existing database ``name`` when it holds the complete dataset (checked and
    repaired), else None and why it must be built again. ``comment`` is its pg_database comment: a
    database without the kit's marker or mark is a user's, refused."""
    with connect(target, autocommit=True) as conn:
        marker = _marker(conn)
        if marker is None and comment != KIT_MARK:
            raise ConfigError(
                f"database {name!r} exists but was not created by ibcbench: drop or "
                "rename it, or point --dsn at another server"
            )
        wanted = (scale, seed, "complete", dataset_fingerprint())
        if (
            marker is not None
            and (marker["scale"], int(marker["seed"]), marker["status"], marker["fingerprint"])
            == wanted
        ):
            return check_dataset(conn, marker, repair=True, report=report), ""
    # the kit's own database, left half-built by a killed run or built by other code
    why = (
        "was left half-built (no complete marker)"
        if marker is None or marker["status"] != "complete"
        else "was built by other code (generator or schema changed)"
    )
    return None, why


def _build(
    admin: psycopg.Connection, target: str, name: str, scale: str, seed: int, quiet: bool
) -> tuple[Any, DatasetState]:
    """Create the kit's database ``name`` and populate it: the load and the state it ends in."""
    try:
        create_kit_database(admin, name)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigError(
            f"cannot create the dataset database {name!r}: the role needs CREATEDB "
            "(or use the embedded server: unset DATABASE_URL)"
        ) from exc
    load = _populate(target, scale, seed, quiet)
    with connect(target, autocommit=True) as conn:
        marker = _marker(conn)
        assert marker is not None  # _populate wrote it
        return load, check_dataset(conn, marker, repair=False, report=None)


def _populate(dsn: str, scale: str, seed: int, quiet: bool) -> Any:
    """Migrate and load, then write the marker with the clean state, in one transaction at the end:
    a build killed before that leaves no marker (and the next use builds again)."""
    from data_gen import GenerationParams
    from ibcbench.data.load import load_dataset
    from ibcbench.data.views import refresh_views
    from ibcbench.infra.migrate import migrate_up

    migrate_up(dsn)
    load = load_dataset(dsn, GenerationParams(seed=seed, scale=scale), quiet=quiet)
    with connect(dsn, autocommit=True) as conn:
        refresh_views(conn)
        conn.execute("VACUUM ANALYZE")
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (scale text NOT NULL, seed bigint NOT NULL, status text NOT NULL,"
                    " fingerprint text NOT NULL, indexes jsonb NOT NULL, rows jsonb NOT NULL,"
                    " created_at timestamptz NOT NULL DEFAULT now(), completed_at timestamptz)"
                ).format(sql.Identifier(MARKER_TABLE))
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (scale, seed, status, fingerprint, indexes, rows, completed_at)"
                    " VALUES (%s, %s, 'complete', %s, %s, %s, now())"
                ).format(sql.Identifier(MARKER_TABLE)),
                (
                    scale,
                    seed,
                    dataset_fingerprint(),
                    json.dumps(current_indexes(conn)),
                    json.dumps(loaded_rows(conn)),
                ),
            )
    return load


# ---- the dataset's clean state, and the check of every use ---------------------------------------
def check_dataset(
    conn: psycopg.Connection,
    marker: dict[str, Any],
    *,
    repair: bool = True,
    report: Callable[[str], None] | None = _stderr,
) -> DatasetState:
    """Compare the dataset (``conn``: its database, autocommit) with its clean state in ``marker``.

    Rows that differ from the load's are refused (:class:`ConfigError`). With ``repair``, INVALID
    indexes and indexes the clean state does not have are dropped and missing ones recreated, in
    one line to ``report``; without it, what a repair would do is only listed."""
    name = conn.info.dbname
    clean: dict[str, dict[str, Any]] = marker["indexes"]
    want_rows: dict[str, int] = marker["rows"]
    got_rows = count_rows(conn, sorted(want_rows))
    changed = {t: (got_rows[t], n) for t, n in want_rows.items() if got_rows[t] != n}
    if changed:
        detail = ", ".join(
            f"{t} {'is missing' if got < 0 else f'holds {got:,} rows'} (loaded: {n:,})"
            for t, (got, n) in sorted(changed.items())
        )
        raise ConfigError(
            f"the dataset {name} was changed: {detail}; drop it (`DROP DATABASE {name}` on the "
            "server of --dsn/DATABASE_URL) and the next run builds it again"
        )
    present = current_indexes(conn)
    invalid = sorted(n for n, i in present.items() if not i["valid"])
    extra = sorted(n for n in present if n not in clean and n not in invalid)
    other = sorted(
        n
        for n, i in present.items()
        if n in clean and i["valid"] and i["definition"] != clean[n]["definition"]
    )
    missing = sorted(n for n in clean if n not in present)
    repairs: list[str] = []
    if invalid:
        repairs.append(f"dropped {len(invalid)} INVALID index(es): {', '.join(invalid)}")
    if extra:
        repairs.append(f"dropped {len(extra)} index(es) not in the dataset: {', '.join(extra)}")
    if other:
        repairs.append(f"rebuilt {len(other)} index(es) of another definition: {', '.join(other)}")
    recreate = sorted(set(missing) | {n for n in invalid if n in clean} | set(other))
    if missing:
        repairs.append(f"recreated {len(missing)} missing index(es): {', '.join(missing)}")
    elif recreate:
        repairs.append(f"recreated {', '.join(recreate)}")
    if repairs and repair:
        others = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY pid"
        ).fetchall()
        if others:  # another run may be in the middle of an index strategy: not a leftover
            raise ConfigError(
                f"the dataset {name} differs from its clean state ({'; '.join(repairs)}) while "
                f"{len(others)} other session(s) use it (pids {', '.join(str(r[0]) for r in others)}):"
                " run again when the other run has finished (or stop it)"
            )
        for n in invalid + extra + other:
            drop_index(conn, n, present[n])
        for n in recreate:
            create_index(conn, clean[n])
        if missing or invalid or other:
            conn.execute("ANALYZE")
        if report:
            report(f"dataset {name} was damaged (a killed run?), repaired: {'; '.join(repairs)}")
    return DatasetState(
        name,
        ("repaired" if repair else "damaged") if repairs else "intact",
        tuple(repairs),
        len(current_indexes(conn)) if repairs and repair else len(present),
        got_rows,
    )


def ensure_dataset(
    dsn: str | None = None, *, scale: str = "tiny", seed: int = 42, quiet: bool = True
) -> str:
    """The DSN of the kit's database holding the ``scale`` dataset generated from ``seed``.

    Created, migrated, loaded (binary COPY), its views refreshed and analyzed on first use; reused as
    is afterwards. ``dsn`` (default: ``DATABASE_URL``, else the embedded server) names the server.
    """
    return ensure_dataset_info(dsn, scale=scale, seed=seed, quiet=quiet).dsn
