"""Faults of group ``disk``: a filesystem that fills up under a load, a generate and a runs folder.

Each fault mounts a small tmpfs of its own under the lab's workdir (root only: a process that is not
root cannot mount, and then the fault says so and counts as not run), fills it or sizes it below
what the kit will write, and checks that the kit fails in one line, leaves nothing half-written and
works again once there is space:

- ``load_disk_full``: a kit database in a tablespace on the tmpfs, sized below what a load of the
  lab's folder takes (measured on a reference database at the lab's scale). The load fails in one
  line, the transaction rolls back (0 rows in every data table, no load log row, the filesystem's
  space back), and after the tmpfs grows (``mount -o remount,size=``) the same load converges to the
  reference digest.
- ``generate_disk_full``: ``generate --out`` on a tmpfs half the folder's size, into a new folder
  (removed) and into the empty mount itself (left empty).
- ``runs_disk_full``: ``IBCBENCH_RUNS_DIR`` on a full tmpfs for ``bench workload`` and ``run``: one
  line before any work, no run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from ibcbench.data.ownership import KIT_MARK
from ibcbench.db import connect
from ibcbench.faults.lab import DATA_TABLES, CliResult, FaultLab, digest_rows, loads_logged
from ibcbench.faults.registry import FaultOutcome, fault
from ibcbench.faults.tmpfs import NOT_ROOT, SmallFilesystem, can_mount
from ibcbench.infra.migrate import migrate_up
from ibcbench.suite.notebook import notebooks_dir

GROUP = "disk"
_MB = 1_000_000


def _not_run(name: str, expected: str) -> FaultOutcome:
    return FaultOutcome(GROUP, name, expected, NOT_ROOT, False, ran=False)


def _database_bytes(dsn: str) -> int:
    with connect(dsn) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]


def _drop_tablespace(lab: FaultLab, name: str) -> None:
    with connect(lab.admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))


def _tablespace_exists(lab: FaultLab, name: str) -> bool:
    with connect(lab.admin_dsn) as admin:
        return (
            admin.execute("SELECT 1 FROM pg_tablespace WHERE spcname = %s", (name,)).fetchone()
            is not None
        )


def _one_line(result: CliResult, err: str) -> str:
    """What a refused command said: its line (shortened), or its exit code and last line."""
    if result.one_line_error():
        return f"exit 1, one line ({err.removeprefix('ibcbench: error: ')[:90]})"
    return result.brief()


#: the databases and the tablespace of ``load_disk_full``
_REFERENCE, _FULL, _TABLESPACE = "disk_reference", "disk_full", "disk_full_space"


@dataclass(frozen=True)
class _Reference:
    """A clean load of the lab's folder: its digest, and the space an empty database and the load
    take."""

    digest: dict[str, tuple[int, str]]
    empty_bytes: int
    load_bytes: int


@dataclass(frozen=True)
class _DiskFullRun:
    """What ``load_disk_full`` saw: the load that ran out of space, and the one after the tmpfs grew."""

    base_bytes: int
    failed: CliResult
    after_fail: dict[str, tuple[int, str]]
    loads_after_fail: int
    used_after_fail: int
    used_after_checkpoint: int
    again: CliResult
    got: dict[str, tuple[int, str]]
    left: bool


def _reference_load(lab: FaultLab, folder: Path) -> _Reference:
    """Set up: a clean load of the folder in a database of its own (dropped after)."""
    ref = lab.new_database(_REFERENCE)
    empty = _database_bytes(ref)
    clean = lab.cli("load", str(folder), "--dsn", ref, "--quiet")
    if clean.returncode != 0:
        raise RuntimeError(f"the reference load failed: {clean.brief()}")
    want = lab.digest(ref)
    load_bytes = _database_bytes(ref) - empty
    lab.drop_database(_REFERENCE)
    return _Reference(want, empty, load_bytes)


def _database_on_tmpfs(lab: FaultLab, ref: _Reference) -> tuple[SmallFilesystem, str]:
    """Set up: a tablespace on a tmpfs of its own (roomy while the database and its schema go in)
    and a kit database in it, migrated; the filesystem and the database's DSN."""
    fs = SmallFilesystem(
        lab.workdir / "disk-tablespace",
        2 * ref.empty_bytes + 3 * ref.load_bytes + 64 * _MB,
        owner=lab.settings.os_user,
    )
    lab.on_close(fs.unmount)
    with connect(lab.admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                sql.Identifier(_TABLESPACE), sql.Literal(str(fs.path))
            )
        )
    lab.on_close(lambda: _drop_tablespace(lab, _TABLESPACE))
    lab.on_close(lambda: lab.drop_database(_FULL))
    with connect(lab.admin_dsn, autocommit=True) as admin:  # a kit database, in the tablespace
        admin.execute(
            sql.SQL("CREATE DATABASE {} TABLESPACE {}").format(
                sql.Identifier(_FULL), sql.Identifier(_TABLESPACE)
            )
        )
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(_FULL), sql.Literal(KIT_MARK)
            )
        )
    dsn = lab.dsn(_FULL)
    migrate_up(dsn)
    with connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # the schema's files written out: what is used now stays used
    return fs, dsn


def _load_into_full_then_grown(
    lab: FaultLab, folder: Path, fs: SmallFilesystem, dsn: str, load_bytes: int
) -> _DiskFullRun:
    """Inject: the load with room for half of it (it cannot fit, whatever order the kit writes
    in), then the same load after the tmpfs grows; then drop the database, tablespace and mount."""
    base = fs.used_bytes()
    fs.resize(base + load_bytes // 2)
    failed = lab.cli("load", str(folder), "--dsn", dsn, "--quiet")
    after_fail = lab.digest(dsn)
    loads_after_fail = loads_logged(dsn)
    used_after_fail = fs.used_bytes()
    with connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # unlinks the files of the relations the rollback dropped
    used_after_checkpoint = fs.used_bytes()

    fs.resize(base + 3 * load_bytes + 64 * _MB)
    again = lab.cli("load", str(folder), "--dsn", dsn, "--quiet")
    got = lab.digest(dsn)

    lab.drop_database(_FULL)
    _drop_tablespace(lab, _TABLESPACE)
    fs.unmount()
    left = _tablespace_exists(lab, _TABLESPACE) or fs.path.exists()
    return _DiskFullRun(
        base,
        failed,
        after_fail,
        loads_after_fail,
        used_after_fail,
        used_after_checkpoint,
        again,
        got,
        left,
    )


def _judge_load_disk_full(
    lab: FaultLab, expected: str, ref: _Reference, run: _DiskFullRun
) -> FaultOutcome:
    """Judge: one line naming the tablespace, 0 rows, the space back, then a clean load."""
    lost = lab.digest_difference(run.got, ref.digest)
    failed, again, base = run.failed, run.again, run.base_bytes
    err = failed.error_lines[-1] if failed.error_lines else ""
    one_line = (
        failed.one_line_error()
        and "ran out of disk space" in err
        and "nothing was committed" in err
        and repr(_TABLESPACE) in err
    )
    rows_zero = all(run.after_fail[t][0] == 0 for t in DATA_TABLES) and run.loads_after_fail == 0
    # with room for half the load it fails in packet_flow, whose chunks the load created: the
    # rollback truncates their files at once (pages added to tables that existed before, as when
    # it fails in clearing_operations, stay until the kit's VACUUM; their indexes' pages stay
    # allocated); what is left is catalog pages, well within 1 MB
    space_back = run.used_after_fail - base <= _MB
    survived = (
        one_line
        and rows_zero
        and space_back
        and again.returncode == 0
        and lost == 0
        and not run.left
    )
    said = "exit 1, one line naming the tablespace" if one_line else failed.brief()
    happened = (
        f"{said}; {digest_rows(run.after_fail)} rows, "
        f"{run.loads_after_fail} load log rows; tmpfs used {base / _MB:.1f} MB before, "
        f"{run.used_after_fail / _MB:.1f} MB after the rollback "
        f"({run.used_after_checkpoint / _MB:.1f} MB after a checkpoint; the load needs "
        f"{ref.load_bytes / _MB:.1f} MB, it had room for half); "
        f"after growing: exit {again.returncode} in {again.elapsed_s:.1f} s, {lost} rows off a "
        "clean load" + ("; the tablespace or its mount is left" if run.left else "")
    )
    return FaultOutcome(
        GROUP,
        "load_disk_full",
        expected,
        happened,
        survived,
        rows_before=0,
        rows_after=digest_rows(run.got),
        rows_lost=lost,
        recovery_s=again.elapsed_s,
    )


@fault(GROUP, fast=True)
def load_disk_full(lab: FaultLab) -> FaultOutcome:
    """A load into a database whose tablespace fills up, then the same load after it grows."""
    expected = (
        "the load fails in one line (nothing committed, the tablespace named), 0 rows, the space "
        "back; after the tmpfs grows the same load converges to a clean load"
    )
    if not can_mount():
        return _not_run("load_disk_full", expected)
    folder = lab.folder()
    ref = _reference_load(lab, folder)
    fs, dsn = _database_on_tmpfs(lab, ref)
    run = _load_into_full_then_grown(lab, folder, fs, dsn, ref.load_bytes)
    return _judge_load_disk_full(lab, expected, ref, run)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


@fault(GROUP, fast=True)
def generate_disk_full(lab: FaultLab) -> list[FaultOutcome]:
    """``generate --out`` on a tmpfs half the size of the folder: into a new folder, into an empty one."""
    cases = (
        ("generate_disk_full", "a new folder", True),
        ("generate_disk_full_empty_out", "the empty mount itself", False),
    )
    if not can_mount():
        return [_not_run(n, f"one line, exit 1, nothing left in {what}") for n, what, _ in cases]
    size = _folder_bytes(lab.folder()) // 2
    outcomes = []
    for n, (name, what, new) in enumerate(cases):
        expected = (
            f"--out {what}: exit 1, one line (no space left on ...), nothing left on the tmpfs"
        )
        fs = SmallFilesystem(lab.workdir / f"disk-generate-{n}", size)
        lab.on_close(fs.unmount)
        out = fs.path / "data" if new else fs.path
        args = ["generate", "--scale", lab.scale, "--seed", str(lab.seed), "--out", str(out)]
        result = lab.cli(*args, "--quiet")
        err = result.error_lines[-1] if result.error_lines else ""
        left = sorted(p.name for p in fs.path.iterdir())
        used = fs.used_bytes()
        fs.unmount()
        survived = (
            result.one_line_error()
            and f"no space left on {out}" in err
            and left == []
            and used == 0
        )
        outcomes.append(
            FaultOutcome(
                GROUP,
                name,
                expected,
                _one_line(result, err)
                + f"; left on the tmpfs: {left or 'nothing'} ({used} bytes used)",
                survived,
            )
        )
    return outcomes


@fault(GROUP, fast=True)
def runs_disk_full(lab: FaultLab) -> list[FaultOutcome]:
    """``IBCBENCH_RUNS_DIR`` on a full filesystem: ``bench workload`` and ``run`` fail in one line."""
    notebook = str(notebooks_dir() / "01_generate_and_load.ipynb")
    commands = (
        ("runs_disk_full_workload", ("bench", "workload", "--scale", lab.scale, "--duration", "1")),
        ("runs_disk_full_run", ("run", notebook, "-p", "scale", lab.scale)),
    )
    expected = "exit 1, one line (no space left on the runs folder) before any work, no run folder"
    if not can_mount():
        return [_not_run(n, expected) for n, _ in commands]
    fs = SmallFilesystem(lab.workdir / "disk-runs", 256 * 1024)
    lab.on_close(fs.unmount)
    runs = fs.path / "runs"
    runs.mkdir()
    ballast = fs.fill()
    outcomes = []
    for name, args in commands:
        result = lab.cli(*args, env=lab.env(IBCBENCH_RUNS_DIR=str(runs)))
        err = result.error_lines[-1] if result.error_lines else ""
        left = sorted(p.name for p in runs.iterdir())
        survived = result.one_line_error() and f"no space left on {runs}" in err and left == []
        outcomes.append(
            FaultOutcome(
                GROUP,
                name,
                expected,
                _one_line(result, err)
                + f" after {result.elapsed_s:.1f} s; in the runs folder: {left or 'nothing'}",
                survived,
            )
        )
    ballast.unlink()
    fs.unmount()
    return outcomes
