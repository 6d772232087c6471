"""Faults of group ``load``: loads interrupted mid-COPY, and damaged folders.

An interrupted load is made to stop at a known point: the lab holds a SHARE lock on a table the load
writes after an earlier one went in (``clearing_operations`` for ``load``, after ``packet_flow``;
``network_stats`` for ``seed``, after both fact tables), so the load's COPY (or its merge) waits
inside its transaction, and the lab sees it waiting in ``pg_stat_activity``. Then the fault: SIGINT
to the command, SIGKILL of its process group, or ``pg_terminate_backend`` of the waiting backend.
The lab releases the lock, waits for the load's backend to end, and checks: no row in any data
table, the command's exit code and stderr, the load journal's row; then the same command again,
whose digest must equal a clean load's (``rows_lost``) and whose time is ``recovery_s``.

``rows_before`` is what the data tables held right after the fault (a partial load shows here) and
``rows_after`` what they hold after the rerun.

Bad inputs each point ``ibcbench load`` at a damaged folder: one line, exit 1, no rows, no run folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from ibcbench.data.load import file_sha256
from ibcbench.db import connect
from ibcbench.faults.lab import (
    DATA_TABLES,
    CliResult,
    FaultLab,
    digest_rows,
    loads_logged,
    nothing_written,
)
from ibcbench.faults.registry import FaultOutcome, fault

GROUP = "load"
#: how long a load may take to reach the held lock, and to end after the fault
WAIT_S = 120.0
#: per command: the table the lab locks, and the statement of the load that then waits for it
_GATES = {
    "load": ("clearing_operations", 'COPY "clearing_operations"%'),
    "seed": ("network_stats", 'INSERT INTO "network_stats"%'),
}


def _args(lab: FaultLab, command: str, dsn: str) -> list[str]:
    if command == "load":
        return ["load", str(lab.folder()), "--quiet", "--dsn", dsn]
    return ["seed", "--scale", lab.scale, "--seed", str(lab.seed), "--quiet", "--dsn", dsn]


def _reference(lab: FaultLab) -> dict[str, tuple[int, str]]:
    """The digest of a clean, uninterrupted load of the lab's folder (once per lab).

    A seed of the same scale and seed generates the same rows as the folder (the generator is
    deterministic, and the digest covers the generated columns; measured equal at tiny and small),
    so the load's reference is the seed's too: an interrupted seed must converge to it."""

    def make() -> dict[str, tuple[int, str]]:
        dsn = lab.new_database("load_reference")
        result = lab.cli(*_args(lab, "load", dsn))
        if result.returncode != 0:
            raise RuntimeError(f"the reference load failed: {result.brief()}")
        return lab.digest(dsn)

    digest: dict[str, tuple[int, str]] = lab.memo("load/reference", make)
    return digest


@contextlib.contextmanager
def _held(dsn: str, table: str) -> Iterator[Callable[[], None]]:
    """A SHARE lock on ``table`` in an open transaction; the yielded function releases it."""
    conn = connect(dsn)
    try:
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(table)))
        yield conn.rollback
    finally:
        conn.close()


def _waiting_backend(lab: FaultLab, dbname: str, like: str) -> int | None:
    """The load's backend once it waits on the held lock, with its statement running."""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT a.pid FROM pg_stat_activity a WHERE a.datname = %s AND a.wait_event_type = 'Lock'"
            " AND a.state = 'active' AND a.query ILIKE %s",
            (dbname, like),
        ).fetchone()
    return int(row[0]) if row else None


def _gone(lab: FaultLab, pid: int) -> bool:
    with connect(lab.admin_dsn, autocommit=True) as admin:
        return (
            admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            is None
        )


def _attempts(dsn: str) -> list[tuple[str, str | None]]:
    with connect(dsn) as conn:
        return [
            (str(r[0]), r[1])
            for r in conn.execute(
                "SELECT status, message FROM ibcbench_load_attempts ORDER BY id"
            ).fetchall()
        ]


def _empty_tables(lab: FaultLab, dsn: str) -> list[str]:
    """The data tables that hold rows (none may, after a load that was cut off)."""
    return [t for t, (count, _) in lab.digest(dsn).items() if t in DATA_TABLES and count]


#: per injection: the exit code, the stderr line's start (None: no line, the process was killed),
#: and the journal's state of the attempt before the rerun and after it
_EXPECT: dict[str, tuple[int, str | None, str, str]] = {
    "sigint": (
        130,
        "ibcbench: interrupted: the load was interrupted: nothing was committed",
        "interrupted",
        "interrupted",
    ),
    "sigkill": (-signal.SIGKILL, None, "running", "abandoned"),
    "terminate": (
        1,
        "ibcbench: error: the connection to the server was lost during the load",
        "failed",
        "failed",
    ),
    # the journal's own connection goes down with the server: the next load settles the attempt
    "restart": (
        1,
        "ibcbench: error: the connection to the server was lost during the load",
        "running",
        "abandoned",
    ),
}


#: a command still running this long after its fault is stuck
STUCK_S = 30.0


def _stuck(lab: FaultLab, proc: subprocess.Popen[str], dbname: str) -> str:
    """'' when ``proc`` ends within STUCK_S; else one line of what it was doing (its database
    sessions, and the innermost frame faulthandler dumps on SIGABRT), and it is killed."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STUCK_S)
        return ""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        sessions = admin.execute(
            "SELECT pid, state, wait_event_type, wait_event, left(query, 40) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGABRT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    frames = [line.strip() for line in err.splitlines() if line.strip().startswith("File ")]
    return (
        f"still running {STUCK_S:g} s after the fault, at {frames[0] if frames else '?'}; "
        f"sessions of its database: {sessions}"
    )


def _interrupt_expected(command: str, inject: str) -> str:
    code, line_start, journal_now, journal_later = _EXPECT[inject]
    return (
        f"{command} {inject} mid-COPY: "
        + (f"exit {code}, one line" if line_start else "killed")
        + f", 0 rows, journal {journal_now}; rerun converges (journal {journal_later}, committed)"
    )


def _inject(lab: FaultLab, proc: subprocess.Popen[str], pid: int, inject: str) -> None:
    """The fault itself, while the load waits on the held lock in backend ``pid``."""
    if inject == "sigint":
        proc.send_signal(signal.SIGINT)
    elif inject == "sigkill":
        os.killpg(proc.pid, signal.SIGKILL)
    elif inject == "terminate":
        with connect(lab.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    else:
        lab.restart("immediate")  # the held lock goes with its session


@dataclass(frozen=True)
class _Cut:
    """A load cut off by its fault: the command's result, whether it was stuck, its backend."""

    result: CliResult
    stuck: str
    pid: int


def _cut_off(
    lab: FaultLab, dbname: str, dsn: str, command: str, inject: str, args: list[str]
) -> _Cut | CliResult:
    """Hold the gate's lock, start the command, inject once its statement waits there; the cut
    load, or the result of a command that never waited (killed)."""
    table, like = _GATES[command]
    with _held(dsn, table) as release:
        started = time.perf_counter()
        proc = lab.spawn(*args, env=lab.env(PYTHONFAULTHANDLER="1"))  # SIGABRT dumps its stacks
        pid = lab.wait_for(
            lambda: proc.poll() is not None or _waiting_backend(lab, dbname, like),
            timeout=WAIT_S,
        )
        if not isinstance(pid, int) or isinstance(pid, bool):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return lab.finish(proc, args, started, timeout=30)
        _inject(lab, proc, pid, inject)
        stuck = _stuck(lab, proc, dbname)
        result = lab.finish(proc, args, started, timeout=WAIT_S)
        if stuck:
            result = CliResult(result.args, result.returncode, "", stuck, result.elapsed_s)
        with contextlib.suppress(Exception):
            release()
    return _Cut(result, stuck, pid)


@dataclass(frozen=True)
class _Aftermath:
    """What the database held after the fault, and the same command run again."""

    backend_gone: bool
    rows_left: int
    filled: list[str]
    journal_after_fault: list[tuple[str, str | None]]
    rerun: CliResult
    digest: dict[str, tuple[int, str]]
    journal: list[tuple[str, str | None]]


def _aftermath(lab: FaultLab, dsn: str, pid: int, args: list[str]) -> _Aftermath:
    backend_gone = bool(lab.wait_for(lambda: _gone(lab, pid), timeout=WAIT_S))
    rows_left = lab.rows(dsn)
    filled = _empty_tables(lab, dsn)
    journal_after_fault = _attempts(dsn)
    rerun = lab.cli(*args)
    digest = lab.digest(dsn)
    return _Aftermath(
        backend_gone, rows_left, filled, journal_after_fault, rerun, digest, _attempts(dsn)
    )


def _judge_interrupt(
    name: str,
    inject: str,
    expected: str,
    cut: _Cut,
    after: _Aftermath,
    reference: dict[str, tuple[int, str]],
) -> FaultOutcome:
    code, line_start, journal_now, journal_later = _EXPECT[inject]
    result, rerun, journal = cut.result, after.rerun, after.journal
    lost = FaultLab.digest_difference(after.digest, reference)
    lines = result.error_lines
    line_ok = (
        (not lines) if line_start is None else (len(lines) == 1 and lines[0].startswith(line_start))
    )
    settled_line = [x for x in rerun.stdout.splitlines() if "cut off" in x]
    settled_ok = inject != "sigkill" or (
        len(settled_line) == 1 and "none of its rows were committed" in settled_line[0]
    )
    survived = (
        result.returncode == code
        and line_ok
        and after.backend_gone
        and after.rows_left == 0
        and [s for s, _ in after.journal_after_fault] == [journal_now]
        and rerun.returncode == 0
        and settled_ok
        and lost == 0
        and [s for s, _ in journal] == [journal_later, "committed"]
    )
    said = f"'{lines[0] if cut.stuck else lines[0][:100]}'" if lines else "no stderr"
    happened = (
        f"{after.rows_left} rows left"
        + (f" in {', '.join(after.filled)}" if after.filled else "")
        + f", exit {result.returncode}, journal "
        + f"{'/'.join(s for s, _ in after.journal_after_fault) or '-'}"
        + (", backend still there" if not after.backend_gone else "")
        + "; rerun: digest "
        + ("equal" if lost == 0 else f"off by {lost} rows")
        + f", exit {rerun.returncode}, journal {'/'.join(s for s, _ in journal)}"
        + (", it said it settled the cut-off attempt" if settled_line else "")
        + f"; stderr {said}"
    )
    return FaultOutcome(
        GROUP,
        name,
        expected,
        happened,
        survived,
        rows_before=after.rows_left,
        rows_after=digest_rows(after.digest),
        rows_lost=lost,
        recovery_s=rerun.elapsed_s,
    )


def _interrupt(lab: FaultLab, name: str, command: str, inject: str) -> FaultOutcome:
    """Set up a kit database, cut its load off with ``inject``, rerun it, judge both."""
    expected = _interrupt_expected(command, inject)
    reference = _reference(lab)
    dbname = f"load_{name}"
    dsn = lab.new_database(dbname)
    args = _args(lab, command, dsn)
    cut = _cut_off(lab, dbname, dsn, command, inject, args)
    if isinstance(cut, CliResult):
        table = _GATES[command][0]
        return FaultOutcome(
            GROUP, name, expected, f"the load never waited on {table}: {cut.brief()}", False
        )
    after = _aftermath(lab, dsn, cut.pid, args)
    return _judge_interrupt(name, inject, expected, cut, after, reference)


@fault(GROUP, fast=True)
def fault_load_sigint(lab: FaultLab) -> FaultOutcome:
    return _interrupt(lab, "load_sigint", "load", "sigint")


@fault(GROUP, fast=True)
def fault_load_sigkill(lab: FaultLab) -> FaultOutcome:
    return _interrupt(lab, "load_sigkill", "load", "sigkill")


@fault(GROUP, fast=True)
def fault_load_terminated(lab: FaultLab) -> FaultOutcome:
    return _interrupt(lab, "load_terminated", "load", "terminate")


# a crash recovery: 10-30 s in `bench faults --only load` runs on a loaded 2-core machine
@fault(GROUP, fast=False)
def fault_load_server_restart(lab: FaultLab) -> FaultOutcome:
    """The server restarted (immediate shutdown: a crash and its recovery) under a load's COPY."""
    return _interrupt(lab, "load_server_restart", "load", "restart")


@fault(GROUP, fast=True)
def fault_seed_sigkill(lab: FaultLab) -> FaultOutcome:
    return _interrupt(lab, "seed_sigkill", "seed", "sigkill")


# ---- bad inputs -------------------------------------------------------------------------------
def _rewrite_manifest(folder: Path, change: Callable[[dict], None]) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _missing_folder(lab: FaultLab) -> Path:
    return lab.workdir / "copies" / "load_no_such_folder"


def _no_manifest(lab: FaultLab) -> Path:
    folder = lab.copy_folder("load_no_manifest")
    (folder / "manifest.json").unlink()
    return folder


def _garbage_manifest(lab: FaultLab) -> Path:
    folder = lab.copy_folder("load_garbage_manifest")
    (folder / "manifest.json").write_bytes(b'{"rows": {"packet_flow": 12,\x00\xff garbage')
    return folder


def _truncated(lab: FaultLab) -> Path:
    folder = lab.copy_folder("load_truncated")
    path = folder / "packet_flow.pgcopy"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    return folder


def _tampered(lab: FaultLab) -> Path:
    folder = lab.copy_folder("load_tampered")
    path = folder / "clearing_operations.pgcopy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit
    path.write_bytes(bytes(data))
    return folder


def _lying_rows(lab: FaultLab) -> Path:
    folder = lab.copy_folder("load_lying_rows")

    def lie(manifest: dict) -> None:
        manifest["rows"]["clearing_operations"] += 1000

    _rewrite_manifest(folder, lie)
    return folder


def _not_pgcopy(lab: FaultLab) -> Path:
    """Every table file replaced by CSV text, with a manifest that agrees on sizes and SHA-256s."""
    folder = lab.copy_folder("load_not_pgcopy")
    for path in folder.glob("*.pgcopy"):
        path.write_text("id,created_at\n" + "".join(f"{i},2026-01-01\n" for i in range(500)))

    def agree(manifest: dict) -> None:
        for table, entry in manifest["files"].items():
            path = folder / f"{table}.pgcopy"
            entry.update(bytes=path.stat().st_size, sha256=file_sha256(path))

    _rewrite_manifest(folder, agree)
    return folder


#: fault name, how to make the folder, what the line must name
_BAD_FOLDERS: list[tuple[str, Callable[[FaultLab], Path], str]] = [
    ("load_missing_folder", _missing_folder, "is not a folder"),
    ("load_no_manifest", _no_manifest, "holds no manifest.json"),
    ("load_garbage_manifest", _garbage_manifest, "is not a JSON manifest"),
    ("load_truncated_file", _truncated, "bytes but the manifest says"),
    ("load_tampered_file", _tampered, "SHA-256 differs"),
    ("load_lying_row_count", _lying_rows, "the manifest says"),
    ("load_not_pgcopy", _not_pgcopy, "is not a binary COPY file"),
]


def _bad_outcome(
    name: str, names: str, result: CliResult, state: dict, logged: int
) -> FaultOutcome:
    line = result.error_lines[0] if result.error_lines else ""
    survived = (
        result.one_line_error()
        and names in line
        and state["rows_after"] == 0
        and state["runs_added"] == 0
        and logged == 0
    )
    return FaultOutcome(
        GROUP,
        name,
        f"one line naming the damage ({names!r}), exit 1, no rows, no run folder",
        f"{result.brief()}; {state['rows_after']} rows, {logged} loads logged, "
        f"{state['runs_added']} run folders",
        survived,
        rows_before=state["rows_before"],
        rows_after=state["rows_after"],
        bad_input=True,
    )


@fault(GROUP, fast=True)
def fault_load_bad_folders(lab: FaultLab) -> list[FaultOutcome]:
    """Each damaged folder through ``ibcbench load``, into one kit database that must stay empty."""
    dsn = lab.new_database("load_bad_folders")
    outcomes = []
    for name, make, names in _BAD_FOLDERS:
        folder = make(lab)
        with nothing_written(lab, dsn) as state:
            result = lab.cli("load", str(folder), "--quiet", "--dsn", dsn)
        outcomes.append(_bad_outcome(name, names, result, state, loads_logged(dsn)))
    return outcomes
