"""Faults of group ``server``: the server restarts in the middle of a workload run and of a notebook run.

Each fault starts the kit's command as a user types it, waits until the command is inside the part
that needs the server (gated on what the server shows: the runner's pool backends having run their
first queries, pgbench's backends, a notebook's ANALYZE waiting on a lock the fault holds), restarts
the lab's server with ``pg_ctl restart -m fast|immediate`` and then checks what the command did: it
ended within its stated bound, exited 1 with one line that says the run was disturbed, left no run
folder that looks healthy (the run folder it kept is marked ``failed`` with the errors, retries and
outage in its manifest), claimed no ``client_bound``, and the dataset's rows are unchanged (the
runner's writes roll back). ``recovery_s`` is the time from the restart until the runner's first
successful request after the outage (from its latencies file), else the restart's own duration.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from psycopg import sql

from ibcbench.data.datasets import dataset_database_name, ensure_dataset
from ibcbench.db import connect
from ibcbench.faults.lab import CliResult, FaultLab, digest_rows, nothing_written
from ibcbench.faults.registry import FaultOutcome, fault

GROUP = "server"
#: the measured window of the workload faults, and the pool timeout they set (--pool-timeout)
WINDOW_S = 4.0
POOL_TIMEOUT_S = 10.0
#: on top of warm-up + window + pool timeout: the CLI's start, the dataset check, sampling the
#: parameters, opening and closing the pool, the manifest
SLACK_S = 25.0
CLIENTS = 4
#: a notebook run that meets a restart ends within this (at tiny it takes about 30 s clean)
NOTEBOOK_BOUND_S = {"tiny": 120.0, "small": 300.0, "default": 900.0}
#: the notebook of the notebook fault, given two configurations of settings only (its defaults
#: drop and rebuild the dataset's indexes, which a restart would leave half-done)
NOTEBOOK = "04_query_plans.ipynb"
#: a table the notebook's ANALYZE needs; the fault holds a lock on it so the notebook waits there
LOCKED_TABLE = "relayer_performance"


def _dataset(lab: FaultLab) -> str:
    """The lab's dataset at its scale (built by the first fault that needs it, then reused)."""
    return ensure_dataset(lab.admin_dsn, scale=lab.scale, seed=lab.seed)


def _backends(lab: FaultLab, dbname: str, application: str) -> int:
    """Client backends of ``application`` on ``dbname`` that have run a query."""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = "
            "'client backend' AND application_name = %s AND query <> ''",
            (dbname, application),
        ).fetchone()
    return int(row[0]) if row else 0


def _new_runs(lab: FaultLab, before: set[Path]) -> list[Path]:
    return [p for p in lab.run_folders() if p not in before]


def _manifest(run: Path | None) -> dict[str, Any]:
    if run is None:
        return {}
    try:
        return json.loads((run / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def _last_line(result: CliResult) -> str:
    lines = result.error_lines
    return lines[-1] if lines else ""


def _brief(result: CliResult) -> str:
    """Exit code and the stderr line (or how many lines there were, the first and the last)."""
    lines = result.error_lines
    if len(lines) > 1:
        return (
            f"exit {result.returncode}, {len(lines)} lines on stderr: {lines[0][:80]!r} ... "
            f"{lines[-1][:100]!r}"
        )
    return result.brief()


def _recovery_s(run: Path | None, manifest: dict[str, Any], down_at: float, up_at: float) -> float:
    """From ``down_at`` (epoch s, the restart began) to the first successful request after the
    outage: the end of the longest stretch without a success that ends after ``down_at``, read
    from the run's latencies (pg_ctl returns a while after the server accepts connections again);
    without a success after ``down_at``, the restart's duration ``up_at - down_at``."""
    started = manifest.get("workload", {}).get("window_started_at")
    path = run / "results" / "workload_latencies.parquet" if run else None
    if started is None or path is None or not path.exists():
        return up_at - down_at
    lat = pd.read_parquet(path)
    ok = lat.loc[lat["ok"].astype(bool)]
    ends = np.sort((float(started) + ok.t_s + ok.latency_ms / 1000.0).to_numpy())
    after = ends[ends > down_at]
    if not len(after):
        return up_at - down_at
    before = ends[ends <= down_at]
    edges = np.concatenate(([before[-1] if len(before) else down_at], after))
    return float(after[int(np.argmax(np.diff(edges)))]) - down_at


@dataclass(frozen=True)
class _Baseline:
    """Set up: the shared dataset before a restart fault, and the run folders there were."""

    dsn: str
    dbname: str
    digest: dict[str, tuple[int, str]]
    runs: set[Path]


def _baseline(lab: FaultLab) -> _Baseline:
    dsn = _dataset(lab)
    dbname = dataset_database_name(lab.scale, lab.seed)
    return _Baseline(dsn, dbname, lab.digest(dsn), set(lab.run_folders()))


@dataclass(frozen=True)
class _Ended:
    """The command that met the restart, once it ended: its result, the dataset's digest after
    it, the rows lost against the baseline, and the run folders it added."""

    result: CliResult
    digest: dict[str, tuple[int, str]]
    lost: int
    new: list[Path]

    def within(self, bound: float) -> bool:
        """Whether the command ended by itself (not killed) within ``bound`` seconds."""
        return self.result.returncode != -9 and self.result.elapsed_s <= bound


def _ended(
    lab: FaultLab,
    base: _Baseline,
    proc: subprocess.Popen[str],
    args: tuple[str, ...],
    started: float,
    timeout: float,
) -> _Ended:
    result = lab.finish(proc, args, started, timeout=timeout)
    after = lab.digest(base.dsn)
    lost = lab.digest_difference(after, base.digest)
    return _Ended(result, after, lost, _new_runs(lab, base.runs))


def _restart_outcome(
    name: str,
    expected: str,
    happened: str,
    survived: bool,
    base: _Baseline,
    ended: _Ended,
    recovery_s: float,
) -> FaultOutcome:
    return FaultOutcome(
        GROUP,
        name,
        expected,
        happened,
        survived,
        rows_before=digest_rows(base.digest),
        rows_after=digest_rows(ended.digest),
        rows_lost=ended.lost,
        recovery_s=round(recovery_s, 2),
    )


def _workload_args(lab: FaultLab, engine: str) -> tuple[str, ...]:
    """``bench workload`` with ``engine``: CLIENTS clients, a WINDOW_S window, no warm-up."""
    return (
        "bench",
        "workload",
        "--engine",
        engine,
        "--scale",
        lab.scale,
        "--seed",
        str(lab.seed),
        "--clients",
        str(CLIENTS),
        "--duration",
        f"{WINDOW_S:g}",
        "--warmup",
        "0",
    )


def _spawn_until(
    lab: FaultLab, args: tuple[str, ...], ready: Callable[[], Any]
) -> tuple[subprocess.Popen[str], float, CliResult | None]:
    """Start the command and wait (90 s at most) until ``ready()``; the process, when it started,
    and None, or the result of a command that never got ready (given 5 s to end)."""
    started = time.perf_counter()
    proc = lab.spawn(*args)
    if lab.wait_for(ready, timeout=90):
        return proc, started, None
    return proc, started, lab.finish(proc, args, started, timeout=5)


def _judge_workload_restart(
    name: str,
    expected: str,
    base: _Baseline,
    ended: _Ended,
    bound: float,
    took: float,
    down_at: float,
    up_at: float,
) -> FaultOutcome:
    result, new = ended.result, ended.new
    run = new[0] if len(new) == 1 else None
    manifest = _manifest(run)
    wl = manifest.get("workload", {})
    errors, retries = wl.get("errors"), wl.get("retries")
    unavailable = wl.get("unavailable_s")
    line = _last_line(result)
    recorded = (
        isinstance(errors, int)
        and isinstance(retries, int)
        and errors + retries > 0
        and isinstance(unavailable, (int, float))
        and unavailable > 0
        and manifest.get("errors") == errors
    )
    # a disturbed run is not judged client-bound or not: its round-trip floor means nothing
    no_claim = (
        str(wl.get("client_bound")).startswith("not judged")
        and "client_bound: the Python" not in result.stdout
    )
    in_bound = ended.within(bound)
    said = result.one_line_error() and "disturbed" in line
    failed = manifest.get("status") == "failed"
    recovery = _recovery_s(run, manifest, down_at, up_at)
    happened = (
        f"{_brief(result)}; run folders {len(new)}, status {manifest.get('status')}; "
        f"errors {errors}, retries {retries}, unavailable {unavailable} s; client_bound "
        f"{wl.get('client_bound')!r}; ended in {result.elapsed_s:.1f} s (bound {bound:g} s); "
        f"restart {took:.1f} s, first success {recovery:.1f} s after it; rows lost {ended.lost}"
    )
    survived = recorded and no_claim and in_bound and said and failed and ended.lost == 0
    return _restart_outcome(name, expected, happened, survived, base, ended, recovery)


def _workload_restart(lab: FaultLab, mode: str) -> FaultOutcome:
    name = f"workload_restart_{mode}"
    expected = (
        "exit 1, one line: the run was disturbed; run folder failed with errors/retries/"
        "unavailable_s; no client_bound; ends within the bound; rows unchanged"
    )
    base = _baseline(lab)
    bound = WINDOW_S + POOL_TIMEOUT_S + SLACK_S
    args = (*_workload_args(lab, "python"), "--pool-timeout", f"{POOL_TIMEOUT_S:g}")
    # no warm-up: once every pool connection has run a query, the window is measuring
    proc, started, early = _spawn_until(
        lab, args, lambda: _backends(lab, base.dbname, "ibcbench") >= CLIENTS
    )
    if early is not None:
        return FaultOutcome(
            GROUP, name, expected, f"the runner never measured: {early.brief()}", False
        )
    down_at = time.time()
    took = lab.restart(mode)
    up_at = time.time()
    ended = _ended(lab, base, proc, args, started, timeout=bound + 60)
    return _judge_workload_restart(name, expected, base, ended, bound, took, down_at, up_at)


@fault(GROUP, fast=True)
def fault_workload_restart_fast(lab: FaultLab) -> FaultOutcome:
    """``bench workload --engine python`` while the server restarts with a fast shutdown."""
    return _workload_restart(lab, "fast")


@fault(GROUP, fast=True)
def fault_workload_restart_immediate(lab: FaultLab) -> FaultOutcome:
    """... and with an immediate shutdown (a crash: the server recovers from its WAL)."""
    return _workload_restart(lab, "immediate")


@fault(GROUP, fast=True)
def fault_pgbench_restart(lab: FaultLab) -> FaultOutcome:
    """``bench workload --engine pgbench`` while the server restarts: its clients abort."""
    expected = (
        "exit 1, one line naming pgbench's aborted clients; no run folder (or one marked "
        "failed); ends within the bound; rows unchanged"
    )
    base = _baseline(lab)
    bound = WINDOW_S + SLACK_S
    args = _workload_args(lab, "pgbench")
    proc, started, early = _spawn_until(
        lab, args, lambda: _backends(lab, base.dbname, "pgbench") >= CLIENTS
    )
    if early is not None:
        return FaultOutcome(
            GROUP, "pgbench_restart", expected, f"pgbench never ran: {early.brief()}", False
        )
    took = lab.restart("fast")
    ended = _ended(lab, base, proc, args, started, timeout=bound + 60)
    result = ended.result
    statuses = [_manifest(p).get("status") for p in ended.new]
    line = _last_line(result)
    said = result.one_line_error() and "clients aborted" in line
    in_bound = ended.within(bound)
    no_healthy_run = all(s == "failed" for s in statuses)
    happened = (
        f"{_brief(result)}; run folders {len(ended.new)} {statuses}; ended in "
        f"{result.elapsed_s:.1f} s (bound {bound:g} s); restart {took:.1f} s; rows lost "
        f"{ended.lost}"
    )
    survived = said and in_bound and no_healthy_run and ended.lost == 0
    return _restart_outcome("pgbench_restart", expected, happened, survived, base, ended, took)


def _notebook_args(lab: FaultLab) -> tuple[str, ...]:
    """``run NOTEBOOK`` at the lab's scale and seed, comparing two settings (no index strategy)."""
    argv = ["run", NOTEBOOK, "-p", "scale", lab.scale, "-p", "seed", str(lab.seed)]
    for key, cost in (("config_a", "4"), ("config_b", "1.1")):
        config = {
            "name": f"rpc_{cost}",
            "index_strategy": None,
            "settings": {"random_page_cost": cost},
        }
        argv += ["-p", key, json.dumps(config)]
    return tuple(argv)


def _analyze_waits(lab: FaultLab, dbname: str) -> int:
    """Sessions of ``dbname`` whose ANALYZE waits on a lock."""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
            "wait_event_type = 'Lock' AND query ILIKE 'ANALYZE%%'",
            (dbname,),
        ).fetchone()
    return int(row[0]) if row else 0


def _restart_at_analyze(
    lab: FaultLab, base: _Baseline, args: tuple[str, ...], bound: float
) -> tuple[subprocess.Popen[str], float, float, CliResult | None]:
    """Inject: hold LOCKED_TABLE, start the notebook, restart the server once its ANALYZE waits
    on the lock. The process, when it started, the restart's seconds, and None, or the result of
    a notebook that never reached its ANALYZE."""
    lock = connect(base.dsn)
    took = 0.0
    started = time.perf_counter()
    try:
        lock.execute(
            sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(
                sql.Identifier(LOCKED_TABLE)
            )
        )
        proc = lab.spawn(*args)
        if not lab.wait_for(lambda: _analyze_waits(lab, base.dbname), timeout=bound):
            lock.close()
            return proc, started, took, lab.finish(proc, args, started, timeout=bound)
        took = lab.restart("fast")
    finally:
        with contextlib.suppress(Exception):
            lock.close()
    return proc, started, took, None


@fault(GROUP, fast=True)
def fault_notebook_restart(lab: FaultLab) -> FaultOutcome:
    """``ibcbench run 04_query_plans.ipynb`` while the server restarts under one of its cells.

    The notebook compares two settings (no index strategy: the shared dataset's indexes stay as
    they are). The fault holds a lock on a table the notebook ANALYZEs before it captures plans,
    waits until that ANALYZE waits on the lock, and restarts the server there: the cell meets the
    restart for sure."""
    expected = (
        "exit 1, one line: the notebook failed (the server restarted); run folder failed with "
        "the error in its manifest; ends within the bound; rows unchanged"
    )
    base = _baseline(lab)
    bound = NOTEBOOK_BOUND_S[lab.scale]
    args = _notebook_args(lab)
    proc, started, took, early = _restart_at_analyze(lab, base, args, bound)
    if early is not None:
        return FaultOutcome(
            GROUP,
            "notebook_restart",
            expected,
            f"the notebook never reached its ANALYZE: {_brief(early)}",
            False,
        )
    ended = _ended(lab, base, proc, args, started, timeout=bound + 60)
    result = ended.result
    manifest = _manifest(ended.new[0] if len(ended.new) == 1 else None)
    error = str(manifest.get("error") or "")
    line = _last_line(result)
    said = result.one_line_error() and NOTEBOOK in line and "restarted" in line
    recorded = manifest.get("status") == "failed" and "restarted" in error
    in_bound = ended.within(bound)
    happened = (
        f"{_brief(result)}; run folders {len(ended.new)}, status {manifest.get('status')}, "
        f"manifest error {error[:90]!r}; ended in {result.elapsed_s:.1f} s (bound {bound:g} s); "
        f"restart {took:.1f} s; rows lost {ended.lost}"
    )
    survived = said and recorded and in_bound and ended.lost == 0
    return _restart_outcome("notebook_restart", expected, happened, survived, base, ended, took)


@fault(GROUP, fast=True)
def fault_workload_bad_retry_settings(lab: FaultLab) -> list[FaultOutcome]:
    """``bench workload`` with retry settings that cannot work: one line each, nothing written."""
    outcomes = []
    cases = (
        ("workload_max_tries_0", "--max-tries", "0"),
        ("workload_pool_timeout_negative", "--pool-timeout", "-1"),
    )
    for name, flag, value in cases:
        with nothing_written(lab) as state:
            result = lab.cli("bench", "workload", "--scale", lab.scale, flag, value)
        line = _last_line(result)
        survived = result.one_line_error() and flag in line and state["runs_added"] == 0
        outcomes.append(
            FaultOutcome(
                GROUP,
                name,
                "one line naming the option, before any work; no run folder",
                f"{_brief(result)}; run folders added {state['runs_added']}",
                survived,
                bad_input=True,
            )
        )
    return outcomes
