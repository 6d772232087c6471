"""Faults of the group ``security``: secrets on command lines and in error lines, and a dataset file
changed after its checksum was checked.

- ``pgbench_cmdline``: ``bench workload --engine pgbench`` through a DSN with a password (given in
  ``DATABASE_URL``, so the command's own arguments hold none): while it runs, the suite reads the
  command line of the command and of every process below it from ``/proc`` (what ``ps -eo args``
  shows any local user); none may hold the password, and pgbench must have been seen.
- ``changed_after_check``: ``ibcbench load`` of a folder whose files all match the manifest, held
  at the load's advisory lock (the suite holds it from another session, after the checksums were
  checked); one letter inside a text value of ``packet_flow.pgcopy`` is changed (size and frames
  stay valid), then the lock is released. The load must refuse in one line, commit nothing, leave the
  rows as they were and journal the attempt as failed; the folder put back loads.
- ``malformed_dsn``: commands pointed at DSNs whose password holds spaces or quotes (libpq refuses
  them, and its messages quote pieces of them): one line, exit 1, no piece of the password.
"""

from __future__ import annotations

import time
from pathlib import Path

from ibcbench.db import connect
from ibcbench.dsn import redact_dsn
from ibcbench.faults.cases.inputs import PASSWORD, password_role
from ibcbench.faults.lab import FaultLab, nothing_written, waiting_on_advisory
from ibcbench.faults.procscan import CmdlineWatch
from ibcbench.faults.registry import FaultOutcome, fault
from ibcbench.locks import LOAD_LOCK

GROUP = "security"
#: how long the suite waits for a command to reach the lock it holds
WAIT_S = 120.0


def flip_letter(path: Path, marker: bytes = b"channel-") -> tuple[int, int]:
    """Change the case of the first letter of the first ``marker`` in ``path`` (a letter inside a
    text value: the file keeps its size and its COPY frames). Returns (offset, the old byte) for
    :func:`put_back`."""
    data = path.read_bytes()
    at = data.find(marker)
    if at < 0:
        raise RuntimeError(f"{path} holds no {marker.decode()!r} to change")
    old = data[at]
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(bytes([old ^ 0x20]))  # 'c' <-> 'C'
    return at, old


def put_back(path: Path, flipped: tuple[int, int]) -> None:
    at, old = flipped
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(bytes([old]))


@fault(GROUP, fast=True)
def fault_pgbench_cmdline(lab: FaultLab) -> FaultOutcome:
    """A pgbench workload through a password DSN: no command line below the command shows it."""
    dsn = password_role(lab)
    args: tuple[str, ...] = ("bench", "workload", "--scale", lab.scale, "--seed", str(lab.seed))
    args += ("--engine", "pgbench", "--clients", "1", "--duration", "1")
    started = time.perf_counter()
    proc = lab.spawn(*args, env=lab.env(DATABASE_URL=dsn))
    with CmdlineWatch(proc.pid, [PASSWORD]) as watch:
        result = lab.finish(proc, args, started)
    survived = result.returncode == 0 and watch.ran("pgbench") and not watch.hits
    return FaultOutcome(
        GROUP,
        "secrets: pgbench command line",
        "the workload runs through the password DSN; no process below it has the password among "
        "its arguments",
        f"{result.brief()}; {len(watch.seen)} command lines seen"
        + ("" if watch.ran("pgbench") else ", pgbench not among them")
        + f"; the password in {len(watch.hits) or 'none'}",
        survived,
    )


@fault(GROUP, fast=True)
def fault_changed_after_check(lab: FaultLab) -> FaultOutcome:
    """A folder file changed while its load waits on its lock, after the checksum check."""
    folder = lab.copy_folder("changed-after-check")
    target = folder / "packet_flow.pgcopy"
    name = "security_changed"
    dsn = lab.new_database(name)
    before = lab.rows(dsn)
    with connect(dsn, autocommit=True) as hold:
        hold.execute("SELECT pg_advisory_lock(%s)", (LOAD_LOCK,))
        args = ("load", str(folder), "--quiet", "--dsn", dsn)
        started = time.perf_counter()
        proc = lab.spawn(*args)
        waited = lab.wait_for(
            lambda: waiting_on_advisory(lab.admin_dsn, name, LOAD_LOCK), timeout=WAIT_S
        )
        flipped = flip_letter(target)
        hold.execute("SELECT pg_advisory_unlock(%s)", (LOAD_LOCK,))
        result = lab.finish(proc, args, started)
    after = lab.rows(dsn)
    with connect(dsn) as conn:
        attempts = [r[0] for r in conn.execute("SELECT status FROM ibcbench_load_attempts")]
    put_back(target, flipped)
    again = lab.cli("load", str(folder), "--quiet", "--dsn", dsn)
    refused = result.one_line_error() and "changed while it was being loaded" in result.stderr
    survived = bool(waited) and refused and after == before and attempts == ["failed"]
    survived = survived and again.returncode == 0 and lab.rows(dsn) > before
    return FaultOutcome(
        GROUP,
        "integrity: file changed after its check",
        "the load refuses in one line, nothing committed, the attempt journalled as failed; the "
        "folder put back loads",
        f"{result.brief()}; attempts {attempts}; put back: {again.brief()}"
        + ("" if waited else "; the load was never seen waiting on its lock"),
        survived,
        rows_before=before,
        rows_after=after,
    )


#: DSNs whose passwords libpq cannot parse, and pieces of those passwords its messages could echo
MALFORMED = {
    "spaces in key=value": ("host=127.0.0.1 port=1 password=Sec-Spaced Tail-91 user=u", "Tail-91"),
    "spaces in a URL": ("postgresql://u:Sec-Url Tail-92@127.0.0.1:1/x", "Tail-92"),
    "double quotes": ('host=127.0.0.1 password="Sec-Dq Tail-93" port=1', "Tail-93"),
}


@fault(GROUP, fast=True)
def fault_malformed_dsn(lab: FaultLab) -> list[FaultOutcome]:
    """``schema version`` and ``bench workload`` pointed at DSNs with spaced or quoted passwords."""
    out = []
    for case, (dsn, tail) in MALFORMED.items():
        with nothing_written(lab) as state:
            results = [
                lab.cli("schema", "version", "--dsn", dsn),
                lab.cli("bench", "workload", "--scale", lab.scale, "--dsn", dsn),
            ]
        shown = [r for r in results if tail in r.stderr + r.stdout or "Sec-" in r.stderr]
        survived = all(r.one_line_error() for r in results) and not shown
        out.append(
            FaultOutcome(
                GROUP,
                f"secrets: malformed DSN ({case})",
                "one line, exit 1, no piece of the password",
                "; ".join(redact_dsn(r.brief(), dsn=dsn) for r in results)
                + (f"; the password shown by {len(shown)}" if shown else "")
                + (f"; {state['runs_added']} run folders" if state["runs_added"] else ""),
                survived and not state["runs_added"],
                bad_input=True,
            )
        )
    return out
