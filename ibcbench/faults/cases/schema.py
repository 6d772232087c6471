"""Faults of the schema: a migration that fails half-way, the recovery it prints, three ``schema up`` at once.

Each case works in a kit database of its own (``schema_*``), migrated with ``ibcbench schema up --path``
from a copy of ``schema/migrations`` in which one file is broken:

- ``000004_create_indexes`` (twelve statements) fails after its sixth with a division by zero: the file
  runs in one transaction, so none of its indexes stays, and the version is dirty at 4;
- ``000008_create_index_clearing_operations_open`` (``CREATE INDEX CONCURRENTLY``, outside a transaction)
  builds its index on an expression that divides by zero on every row: PostgreSQL leaves the index
  behind INVALID, and the version is dirty at 8.

The kit's data (the lab's generated folder, COPYed straight into the tables before the broken
migration runs) must come through the failure and the recovery unchanged: its digest is compared.
"""

from __future__ import annotations

import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ibcbench.db import connect
from ibcbench.faults.lab import FaultLab, digest_rows
from ibcbench.faults.registry import FaultOutcome, fault
from ibcbench.infra.migrate import (
    MIGRATIONS_TABLE,
    advisory_lock_id,
    default_migrations_dir,
    load_migrations,
    migrate_up,
)

GROUP = "schema"
#: what the broken copies change: version -> (file, the text in it to replace, what replaces it)
_BROKEN = {
    4: (
        "000004_create_indexes.up.sql",
        "-- partial: stuck packets in a recent window",
        "SELECT 1 / 0;  -- the fault: half-way through the file\n"
        "-- partial: stuck packets in a recent window",
    ),
    8: (
        "000008_create_index_clearing_operations_open.up.sql",
        "ON clearing_operations (created_at) WHERE deleted_at IS NULL AND status IN ('pending', 'stuck');",
        "ON clearing_operations ((id / (id - id)));  -- the fault: division by zero on every row",
    ),
}
_FORCE_RE = re.compile(r"`ibcbench schema force (-?\d+)`")


def _latest() -> int:
    return load_migrations()[-1].version


def broken_migrations(lab: FaultLab, version: int) -> Path:
    """A copy of schema/migrations in which migration ``version`` fails half-way."""
    name, old, new = _BROKEN[version]
    folder = lab.workdir / f"migrations-broken-{version}"
    if not folder.exists():
        shutil.copytree(default_migrations_dir(), folder)
        path = folder / name
        text = path.read_text()
        if old not in text:
            raise RuntimeError(f"{name} changed: the fault cannot break it at {old!r}")
        path.write_text(text.replace(old, new))
    return folder


def copy_folder_in(dsn: str, folder: Path) -> None:
    """COPY a generated folder's files straight into the tables (set-up: no kit load, no load log)."""
    from data_gen.tables import TABLES
    from ibcbench.data.load import copy_stream

    def chunks(path: Path):
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                yield block

    with connect(dsn) as conn, conn.cursor() as cur:
        for table in TABLES:
            copy_stream(cur, table, chunks(folder / f"{table}.pgcopy"))
        conn.commit()


def invalid_indexes(dsn: str) -> list[str]:
    with connect(dsn) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid ORDER BY 1"
            ).fetchall()
        ]


def _schema_state(lab: FaultLab, dsn: str) -> str:
    """What ``ibcbench schema version`` prints (its first line), or its error."""
    result = lab.cli("schema", "version", "--dsn", dsn)
    return (result.stdout.strip().splitlines() or [result.brief()])[0]


class _Case:
    """One half-way failure: the database, its data, the failure and what the kit said about it."""

    def __init__(self, lab: FaultLab, version: int) -> None:
        self.lab = lab
        self.version = version
        self.name = f"schema_halfway_{version}"
        self.dsn = lab.new_database(self.name, schema=False)
        migrate_up(self.dsn, steps=version - 1)  # set-up: the good migrations before the broken one
        copy_folder_in(self.dsn, lab.folder())
        self.digest_before = lab.digest(self.dsn)
        self.rows_before = digest_rows(self.digest_before)
        self.failed = lab.cli(
            "schema", "up", "--path", str(broken_migrations(lab, version)), "--dsn", self.dsn
        )
        self.state = _schema_state(lab, self.dsn)
        self.invalid = invalid_indexes(self.dsn)
        # seed and load at once (both must refuse before any work)
        seed_args = ("seed", "--scale", "tiny", "--quiet", "--dsn", self.dsn)
        load_args = ("load", str(lab.folder()), "--quiet", "--dsn", self.dsn)
        started = time.perf_counter()
        procs = [lab.spawn(*seed_args), lab.spawn(*load_args)]
        self.seed = lab.finish(procs[0], seed_args, started)
        self.load = lab.finish(procs[1], load_args, started)
        self.rows_after = lab.rows(self.dsn)
        match = _FORCE_RE.search(self.failed.stderr)
        self.advice = int(match.group(1)) if match else None


_VERSIONS = (4, 8)


def _case(lab: FaultLab, version: int) -> _Case:
    """The failure at ``version`` (both cases are made at once, in two threads: their databases and
    commands are apart, and each waits mostly on the server)."""
    cases: dict[int, _Case] = lab.__dict__.setdefault("_schema_cases", {})
    if version not in cases:
        lab.folder()  # generated once, before the threads share it
        with ThreadPoolExecutor(max_workers=len(_VERSIONS)) as pool:
            made = dict(zip(_VERSIONS, pool.map(lambda v: _Case(lab, v), _VERSIONS), strict=True))
        cases.update(made)
    return cases[version]


def _label(version: int) -> str:
    return next(m.label for m in load_migrations() if m.version == version)


@fault(GROUP, fast=True)
def migration_fails_halfway(lab: FaultLab) -> list[FaultOutcome]:
    outcomes = []
    for version in _VERSIONS:
        case = _case(lab, version)
        label = _label(version)
        concurrent = version == 8
        err = case.failed.error_lines[0] if case.failed.error_lines else ""
        names_way_out = (
            label in err
            and case.advice == version - 1
            and (not concurrent or ("INVALID" in err and "schema up" in err))
        )
        dirty = case.state.startswith(f"{version} (dirty)")
        invalid_ok = case.invalid == (["idx_clearing_operations_open"] if concurrent else [])
        refused = all(r.one_line_error() and "dirty" in r.stderr for r in (case.seed, case.load))
        survived = (
            case.failed.one_line_error()
            and names_way_out
            and dirty
            and invalid_ok
            and refused
            and case.rows_after == case.rows_before
        )
        outcomes.append(
            FaultOutcome(
                GROUP,
                f"migration_fails_halfway_{version:06d}",
                f"{label} fails half-way"
                + (" (CONCURRENTLY: an INVALID index stays)" if concurrent else "")
                + ": one line naming it and the way out; version dirty; seed and load refuse",
                f"{case.failed.brief()}; version: {case.state}; INVALID: "
                f"{', '.join(case.invalid) or 'none'}; seed {case.seed.brief()}; "
                f"load exit {case.load.returncode}",
                survived,
                rows_before=case.rows_before,
                rows_after=case.rows_after,
                rows_lost=abs(case.rows_before - case.rows_after),
            )
        )
    return outcomes


@fault(GROUP, fast=True)
def schema_force_recovers(lab: FaultLab) -> list[FaultOutcome]:
    latest = _latest()
    cases = [_case(lab, v) for v in _VERSIONS]
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        return list(pool.map(lambda case: _recover(lab, case, latest), cases))


def _recover(lab: FaultLab, case: _Case, latest: int) -> FaultOutcome:
    """Follow the advice the failure printed: ``schema force V``, then ``schema up``."""
    version = case.version
    started = time.perf_counter()
    rows_after: int | None = None
    lost = 0
    recovery = 0.0
    if case.advice is None:
        happened = f"no advice to follow in: {case.failed.brief()}"
        ok = False
    else:
        force = lab.cli("schema", "force", str(case.advice), "--dsn", case.dsn)
        up = lab.cli("schema", "up", "--dsn", case.dsn)  # the good migrations
        recovery = time.perf_counter() - started
        state = _schema_state(lab, case.dsn)
        invalid = invalid_indexes(case.dsn)
        digest = lab.digest(case.dsn)
        lost = lab.digest_difference(digest, case.digest_before)
        rows_after = digest_rows(digest)
        ok = (
            force.returncode == 0
            and up.returncode == 0
            and state == str(latest)
            and not invalid
            and lost == 0
        )
        happened = (
            f"force {case.advice}: exit {force.returncode}; up: {up.brief()}; version: {state}; "
            f"INVALID: {', '.join(invalid) or 'none'}; the data: "
            + ("unchanged" if lost == 0 else f"{lost} rows differ")
        )
    return FaultOutcome(
        GROUP,
        f"schema_force_recovers_{version:06d}",
        f"the printed advice (force {version - 1}, then up) gives version {latest}, clean, "
        "no INVALID index, the data intact",
        happened,
        ok,
        rows_before=case.rows_before,
        rows_after=rows_after,
        rows_lost=lost,
        recovery_s=round(recovery, 2) if ok else None,
    )


def _waiting_for_lock(lab: FaultLab, dbname: str, lock_id: int) -> int:
    """Sessions of ``dbname`` waiting for the migration lock: polling it (the kit's way: their last
    query a failed ``pg_try_advisory_lock``) or queued on it in pg_locks (a blocking
    ``pg_advisory_lock``, golang-migrate's way and the kit's old one)."""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity a WHERE a.datname = %s"
            " AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()"
            " AND (a.query LIKE %s OR EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid"
            " AND l.locktype = 'advisory' AND NOT l.granted AND l.objid = %s))",
            (dbname, "%pg_try_advisory_lock%", lock_id & 0xFFFFFFFF),
        ).fetchone()
    return int(row[0]) if row else 0


@fault(GROUP, fast=True)
def concurrent_schema_up(lab: FaultLab) -> FaultOutcome:
    """Three ``schema up`` on a fresh database, released at once: the lab holds the migration lock
    until all three have tried it (their last query in pg_stat_activity), then lets go."""
    name = "schema_concurrent"
    dsn = lab.new_database(name, schema=False)
    migrations = load_migrations()
    lock_id = advisory_lock_id(name)
    args = ("schema", "up", "--dsn", dsn)
    with connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
        started = time.perf_counter()
        procs = [lab.spawn(*args) for _ in range(3)]
        waiting = lab.wait_for(lambda: _waiting_for_lock(lab, name, lock_id) >= 3, timeout=60)
        holder.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
    results = [lab.finish(p, args, started, timeout=300) for p in procs]
    applied = [
        line.split()[1]
        for r in results
        for line in r.stdout.splitlines()
        if line.startswith("  up  ")
    ]
    with connect(dsn) as conn:
        state = conn.execute(f"SELECT version, dirty FROM {MIGRATIONS_TABLE}").fetchall()
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()
        recorded = conn.execute("SELECT count(*) FROM ibcbench_schema_applied").fetchone()
    each_once = sorted(applied) == sorted(m.label for m in migrations)
    survived = (
        bool(waiting)
        and all(r.returncode == 0 for r in results)
        and each_once
        and state == [(migrations[-1].version, False)]
        and invalid == (0,)
        and recorded == (len(migrations),)
    )
    return FaultOutcome(
        GROUP,
        "concurrent_schema_up",
        "three schema up at once: all exit 0, every migration applied once, clean, no INVALID index",
        f"exits {[r.returncode for r in results]}"
        + ("" if waiting else " (they never all waited on the lock)")
        + f"; {len(applied)} applications of {len(migrations)} migrations"
        + f"; version {state}; INVALID indexes: {invalid[0] if invalid else '?'}"
        + "".join(f"; {r.brief()}" for r in results if r.returncode != 0),
        survived,
    )
