"""Faults of the group ``dataset``: the shared dataset damaged by a killed run.

A notebook killed during its index strategies leaves the dataset with some of its indexes dropped
and a strategy's own built; a killed ``CREATE``/``DROP INDEX CONCURRENTLY`` leaves an INVALID index;
a population killed mid-load leaves a half-built database. The next use (``bench workload``) must
find it, repair it (or build it again) before it measures, say so in one line on stderr, and record
the dataset's state in its run's manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ibcbench.data.datasets import (
    MARKER_TABLE,
    current_indexes,
    dataset_database_name,
    ensure_dataset_info,
)
from ibcbench.db import connect
from ibcbench.faults.lab import CliResult, FaultLab, digest_rows
from ibcbench.faults.procscan import descendants
from ibcbench.faults.registry import FaultOutcome, fault

GROUP = "dataset"
#: a dataset of this group's own for the half-built fault (the shared one stays whole)
HALF_BUILT_SEED = 14014


# ---- helpers ---------------------------------------------------------------------------------
def shared_dataset(lab: FaultLab) -> str:
    """The lab's dataset at its scale and seed (built once), checked clean; its DSN."""
    return ensure_dataset_info(lab.admin_dsn, scale=lab.scale, seed=lab.seed, report=None).dsn


def clean_state(dsn: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The dataset's clean indexes and rows, as its build recorded them."""
    with connect(dsn) as conn:
        row = conn.execute(f"SELECT indexes, rows FROM {MARKER_TABLE}").fetchone()
    assert row is not None
    return row[0], row[1]


def index_facts(dsn: str) -> dict[str, dict[str, Any]]:
    with connect(dsn) as conn:
        return current_indexes(conn)


def differences(now: dict[str, Any], clean: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "missing": sorted(set(clean) - set(now)),
        "extra": sorted(set(now) - set(clean)),
        "invalid": sorted(n for n, i in now.items() if not i["valid"]),
    }


def describe(diff: dict[str, list[str]]) -> str:
    return ", ".join(f"{len(v)} {k}" for k, v in diff.items() if v) or "no difference"


def kill_tree(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a spawned command's process group and every process below it (a notebook's kernel
    runs in a session of its own)."""
    below = [pid for pid in descendants(proc.pid) if pid != proc.pid]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=30)


def gate(
    lab: FaultLab,
    proc: subprocess.Popen[str],
    predicate: Callable[[], Any],
    *,
    timeout: float,
    every: float = 0.05,
) -> bool:
    """Whether ``predicate`` was observed while ``proc`` still ran (polling stops when it exits)."""
    got = lab.wait_for(
        lambda: "exited" if proc.poll() is not None else predicate(), timeout=timeout, every=every
    )
    return bool(got) and not (isinstance(got, str) and got == "exited")


def wait_no_sessions(lab: FaultLab, dbname: str, timeout: float = 30) -> bool:
    """Until no client backend is connected to ``dbname`` (a killed run's sessions are gone)."""
    return bool(lab.wait_for(lambda: not lab.backend_pids(dbname), timeout=timeout, every=0.1))


def workload(lab: FaultLab, seed: int | None = None) -> tuple[CliResult, dict[str, Any]]:
    """``bench workload`` at the lab's scale, 1 s, 1 Python client; its result and manifest."""
    result = lab.cli(
        "bench",
        "workload",
        "--scale",
        lab.scale,
        "--seed",
        str(lab.seed if seed is None else seed),
        "--engine",
        "python",
        "--clients",
        "1",
        "--duration",
        "1",
    )
    manifest: dict[str, Any] = {}
    for line in result.stdout.splitlines():
        if line.startswith("run folder: "):
            path = Path(line.removeprefix("run folder: ").strip()) / "manifest.json"
            if path.exists():
                manifest = json.loads(path.read_text())
    return result, manifest


def repaired_outcome(
    lab: FaultLab,
    name: str,
    dsn: str,
    injected: str,
    damage: dict[str, list[str]],
    digest_before: dict[str, tuple[int, str]],
) -> FaultOutcome:
    """Run ``bench workload`` on the damaged dataset and judge what it did."""
    clean, _ = clean_state(dsn)
    rows_before = digest_rows(digest_before)
    result, manifest = workload(lab)
    after = index_facts(dsn)
    left = differences(after, clean)
    digest_after = lab.digest(dsn)
    entry = manifest.get("dataset") or {}
    repair_lines = [line for line in result.error_lines if "repaired" in line]
    named = all(n in " ".join(repair_lines) for v in damage.values() for n in v)
    same_defs = all(after.get(n, {}).get("definition") == i["definition"] for n, i in clean.items())
    survived = (
        result.returncode == 0
        and len(repair_lines) == 1
        and named
        and entry.get("state") == "repaired"
        and bool(entry.get("repairs"))
        and not any(left.values())
        and same_defs
        and lab.digest_difference(digest_after, digest_before) == 0
    )
    happened = (
        f"{injected}: {describe(damage)}; workload {result.brief()}; "
        f"manifest dataset.state={entry.get('state')!r}, {len(entry.get('repairs') or [])} "
        f"repair(s); after: {describe(left)}"
    )
    return FaultOutcome(
        GROUP,
        name,
        "the next bench workload repairs the dataset before it measures (one stderr line), "
        "its manifest says repaired, the indexes are the clean ones, no row changed",
        happened,
        survived,
        rows_before=rows_before,
        rows_after=digest_rows(digest_after),
        rows_lost=lab.digest_difference(digest_after, digest_before),
        recovery_s=round(result.elapsed_s, 2),
    )


# ---- the faults ------------------------------------------------------------------------------
@fault(GROUP, fast=True)
def fault_dataset_missing_indexes(lab: FaultLab) -> FaultOutcome:
    """The state of a notebook killed during its index strategies (covering applied: two of the
    service's indexes dropped, two covering ones built, and the key's time index gone too), made
    with the kit's own ``apply_strategy``; then ``bench workload``."""
    from ibcbench.bench.indexes import apply_strategy

    dsn = shared_dataset(lab)
    clean, _ = clean_state(dsn)
    digest = lab.digest(dsn)
    apply_strategy(dsn, "covering")
    with connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_packet_flow_status_created")
    damage = differences(index_facts(dsn), clean)
    if not damage["missing"] or not damage["extra"]:
        return FaultOutcome(
            GROUP,
            "dataset_missing_indexes",
            "indexes missing and extra",
            f"could not damage the dataset: {describe(damage)}",
            False,
        )
    return repaired_outcome(
        lab, "dataset_missing_indexes", dsn, "index strategy left half-way", damage, digest
    )


@fault(GROUP, fast=False)
def fault_dataset_killed_index_strategies(lab: FaultLab) -> FaultOutcome:
    """SIGKILL a real ``ibcbench run notebooks/02_index_strategies.ipynb`` (its process group and
    its kernel) once the dataset's indexes are observed to differ from the clean ones."""
    name = "dataset_killed_index_strategies"
    dsn = shared_dataset(lab)
    clean, _ = clean_state(dsn)
    digest = lab.digest(dsn)
    args = (
        "run",
        "02_index_strategies.ipynb",
        "-p",
        "scale",
        lab.scale,
        "-p",
        "seed",
        str(lab.seed),
    )
    started = time.perf_counter()
    proc = lab.spawn(*args)
    try:
        damaged = gate(
            lab, proc, lambda: any(differences(index_facts(dsn), clean).values()), timeout=300
        )
    finally:
        kill_tree(proc)
    dbname = dataset_database_name(lab.scale, lab.seed)
    gone = wait_no_sessions(lab, dbname)
    damage = differences(index_facts(dsn), clean)
    if not damaged or not any(damage.values()) or not gone:
        return FaultOutcome(
            GROUP,
            name,
            "the notebook killed with the indexes dropped",
            f"not injected: damaged seen={bool(damaged)}, after the kill {describe(damage)}, "
            f"sessions gone={gone}, exit {proc.returncode} after {time.perf_counter() - started:.0f} s",
            False,
        )
    return repaired_outcome(
        lab, name, dsn, f"SIGKILL of notebook 02 (exit {proc.returncode})", damage, digest
    )


@fault(GROUP, fast=True)
def fault_dataset_invalid_index(lab: FaultLab) -> FaultOutcome:
    """A kit process killed inside ``DROP INDEX CONCURRENTLY`` (``plans capture --strategy
    covering``, its drop held up by a writer's open transaction, then SIGKILLed and its backend
    terminated): the index stays behind INVALID. Then ``bench workload``."""
    name = "dataset_invalid_index"
    dsn = shared_dataset(lab)
    clean, _ = clean_state(dsn)
    digest = lab.digest(dsn)
    dbname = dataset_database_name(lab.scale, lab.seed)
    writer = connect(dsn)
    try:
        writer.execute(
            "UPDATE clearing_operations SET status = status"
            " WHERE id = (SELECT min(id) FROM clearing_operations)"
        )
        args = ("plans", "capture", "--config", "dataset_fault", "--strategy", "covering")
        proc = lab.spawn(*args, "--scale", lab.scale, "--seed", str(lab.seed))
        try:
            invalid = gate(
                lab,
                proc,
                lambda: (
                    differences(index_facts(dsn), clean)["invalid"]
                    and lab.backend_pids(dbname, like="%INDEX CONCURRENTLY%")
                ),
                timeout=120,
            )
        finally:
            kill_tree(proc)
            for pid in lab.backend_pids(dbname, like="%INDEX%"):
                with connect(lab.admin_dsn, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        writer.rollback()
        writer.close()
    gone = wait_no_sessions(lab, dbname)
    damage = differences(index_facts(dsn), clean)
    if not invalid or not damage["invalid"] or not gone:
        return FaultOutcome(
            GROUP,
            name,
            "an INVALID index left by a killed DROP INDEX CONCURRENTLY",
            f"not injected: invalid seen={bool(invalid)}, after the kill {describe(damage)}, "
            f"sessions gone={gone}",
            False,
        )
    return repaired_outcome(lab, name, dsn, "killed DROP INDEX CONCURRENTLY", damage, digest)


def _copying(lab: FaultLab, dbname: str) -> bool:
    """Whether a COPY into ``dbname`` is in progress (``pg_stat_progress_copy``)."""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        return bool(
            admin.execute(
                "SELECT 1 FROM pg_stat_progress_copy WHERE datname = %s", (dbname,)
            ).fetchone()
        )


def _kill_mid_copy(lab: FaultLab, dbname: str, seed: int) -> tuple[bool, bool]:
    """Inject: ``bench workload`` populating the dataset of ``seed``, SIGKILLed once its COPY is
    seen; whether the COPY was seen, and whether its sessions are gone."""
    args = ("bench", "workload", "--scale", lab.scale, "--seed", str(seed), "--duration", "1")
    proc = lab.spawn(*args)
    try:
        caught = gate(lab, proc, lambda: _copying(lab, dbname), timeout=120, every=0.02)
    finally:
        kill_tree(proc)
    return caught, wait_no_sessions(lab, dbname)


def _half_built_state(lab: FaultLab, dbname: str, dsn: str) -> tuple[bool, bool, int]:
    """What the kill left: whether the database exists, holds the dataset's marker, its rows."""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        exists = bool(
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        )
    marker = False
    rows_left = 0
    if exists:
        with connect(dsn) as conn:
            marker = conn.execute("SELECT to_regclass(%s)", (MARKER_TABLE,)).fetchone() != (None,)
        rows_left = lab.rows(dsn)
    return exists, marker, rows_left


def _rebuilt_outcome(lab: FaultLab, name: str, dsn: str, seed: int, rows_left: int) -> FaultOutcome:
    """Judge: the next ``bench workload`` finds the half-built dataset and builds it again."""
    result, manifest = workload(lab, seed)
    entry = manifest.get("dataset") or {}
    rebuilt = [line for line in result.error_lines if "half-built" in line]
    with connect(dsn) as conn:
        marker_row = conn.execute(f"SELECT status, rows FROM {MARKER_TABLE}").fetchone()
        loads = conn.execute("SELECT count(*) FROM ibcbench_loads").fetchone()
    digest = lab.digest(dsn)
    recorded: dict[str, int] = marker_row[1] if marker_row else {}
    counted = {t: c for t, (c, _) in digest.items() if t in recorded}
    matches = bool(recorded) and counted == recorded
    survived = (
        result.returncode == 0
        and len(rebuilt) == 1
        and entry.get("created") is True
        and entry.get("state") == "intact"
        and marker_row is not None
        and marker_row[0] == "complete"
        and loads == (1,)
        and matches
        and entry.get("rows") == recorded
    )
    return FaultOutcome(
        GROUP,
        name,
        "the half-built dataset is detected (one stderr line) and built again, one load, the "
        "rows of a clean build",
        f"killed mid-COPY ({rows_left} rows committed, no marker); next workload "
        f"{result.brief()}; rebuilt lines={len(rebuilt)}, created={entry.get('created')}, "
        f"loads={loads[0] if loads else None}, rows match the load: "
        f"{matches}",
        survived,
        rows_before=rows_left,
        rows_after=digest_rows(digest),
        recovery_s=round(result.elapsed_s, 2),
    )


@fault(GROUP, fast=True)
def fault_dataset_half_built(lab: FaultLab) -> FaultOutcome:
    """SIGKILL a ``bench workload`` while it populates a new dataset (its COPY observed in
    pg_stat_progress_copy); the next ``bench workload`` must build it again, not use it."""
    name = "dataset_half_built"
    seed = HALF_BUILT_SEED
    dbname = dataset_database_name(lab.scale, seed)
    dsn = lab.dsn(dbname)
    lab.drop_database(dbname)
    lab.on_close(lambda: lab.drop_database(dbname))
    caught, gone = _kill_mid_copy(lab, dbname, seed)
    exists, marker, rows_left = _half_built_state(lab, dbname, dsn)
    if not caught or not exists or marker or not gone:
        return FaultOutcome(
            GROUP,
            name,
            "a population killed mid-COPY",
            f"not injected: COPY seen={bool(caught)}, database left={exists}, "
            f"marker={marker}, sessions gone={gone}",
            False,
        )
    return _rebuilt_outcome(lab, name, dsn, seed, rows_left)
