"""Faults of concurrency: two ``seed``, two notebook runs and two ``run-all`` at the same time.

Each pair is spawned together and released at the same moment: the lab holds the lock the kit's
commands take (the load's advisory lock in the target database, the run lock of the server) until
both commands are seen waiting on it, then lets go. What they share must come out as if they had run
one after the other: the same rows as two seeds in a row, the dataset's indexes exactly the clean set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ibcbench.data.datasets import ensure_dataset_info
from ibcbench.db import connect
from ibcbench.faults.lab import CliResult, FaultLab, digest_rows, waiting_on_advisory
from ibcbench.faults.registry import FaultOutcome, fault
from ibcbench.locks import LOAD_LOCK, RUN_LOCK_KEY
from ibcbench.suite.runlock import APPLICATION_PREFIX

GROUP = "concurrency"
#: the server's now() when a load writes or merges a derived row: left out of the digest
_MERGED = tuple(
    f"{table}.{column}"
    for table in ("network_stats", "channel_performance", "relayer_performance")
    for column in ("created_at", "updated_at")
)


def _polling_run_lock(lab: FaultLab) -> int:
    """Runs that tried the run lock and found it taken (they poll it from an idle session)."""
    with connect(lab.admin_dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s"
            " AND (query LIKE %s OR query LIKE %s) AND pid <> pg_backend_pid()",
            (f"{APPLICATION_PREFIX} (starting%", "%pg_try_advisory_lock%", "%FROM pg_locks%"),
        ).fetchone()
    return int(row[0]) if row else 0


def _spawn_pair(
    lab: FaultLab,
    args: tuple[str, ...],
    hold: Any,
    waiting: Callable[[], bool],
    timeout: float,
) -> tuple[list[CliResult], bool]:
    """Spawn ``args`` twice while ``hold`` (a context manager) holds the lock; release once
    ``waiting()`` is true. Returns the two results and whether both were seen waiting."""
    with hold:
        started = time.perf_counter()
        procs = [lab.spawn(*args), lab.spawn(*args)]
        seen = bool(lab.wait_for(waiting, timeout=120))
    return [lab.finish(p, args, started, timeout=timeout) for p in procs], seen


class _AdvisoryHold:
    def __init__(self, dsn: str, key: int, name: str | None = None) -> None:
        self.dsn, self.key, self.name = dsn, key, name

    def __enter__(self) -> _AdvisoryHold:
        self.conn = connect(self.dsn, autocommit=True)
        if self.name:
            self.conn.execute("SELECT set_config('application_name', %s, false)", (self.name,))
        self.conn.execute("SELECT pg_advisory_lock(%s)", (self.key,))
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()  # the session lock goes with the session


def _briefs(results: list[CliResult]) -> str:
    """Each command's exit, whether it said it waited, and its error line when it failed."""
    return "; ".join(
        f"exit {r.returncode}"
        + (" (waited)" if "ibcbench: waiting for" in r.stderr else "")
        + (f", {r.error_lines[-1][:160]}" if r.returncode != 0 and r.error_lines else "")
        for r in results
    )


@fault(GROUP, fast=True)
def concurrent_seed(lab: FaultLab) -> FaultOutcome:
    """Two ``seed --scale tiny`` at once into one database: the load lock makes them take turns,
    and the second appends after the first, exactly as two seeds one after the other."""
    reference = lab.new_database("concurrency_seed_ref")
    seed_args = ("seed", "--scale", "tiny", "--seed", str(lab.seed), "--quiet")

    def two_in_a_row() -> list[CliResult]:  # the reference, in a database of its own
        return [lab.cli(*seed_args, "--dsn", reference) for _ in range(2)]

    name = "concurrency_seed"
    dsn = lab.new_database(name)
    args = (*seed_args, "--dsn", dsn)
    with ThreadPoolExecutor(max_workers=1) as pool:  # the reference beside the pair
        refs = pool.submit(two_in_a_row)
        results, seen = _spawn_pair(
            lab,
            args,
            _AdvisoryHold(dsn, LOAD_LOCK),
            lambda: waiting_on_advisory(lab.admin_dsn, name, LOAD_LOCK) >= 2,
            timeout=300,
        )
        failed = [r for r in refs.result() if r.returncode != 0]
    if failed:
        raise RuntimeError(f"the reference seed failed: {failed[0].brief()}")
    want = lab.digest(reference, ignore=_MERGED)
    got = lab.digest(dsn, ignore=_MERGED)
    diff = lab.digest_difference(got, want)
    with connect(dsn) as conn:
        dupes = conn.execute("SELECT count(*) - count(DISTINCT id) FROM packet_flow").fetchone()[0]  # type: ignore[index]
        spans = conn.execute(
            "SELECT span_start, span_end, first_packet_id, last_packet_id FROM ibcbench_loads"
            " ORDER BY span_start"
        ).fetchall()
    apart = len(spans) == 2 and spans[0][1] <= spans[1][0] and spans[0][3] < spans[1][2]
    rows_want = digest_rows(want)
    rows_got = digest_rows(got)
    survived = (
        seen and all(r.returncode == 0 for r in results) and diff == 0 and dupes == 0 and apart
    )
    return FaultOutcome(
        GROUP,
        "concurrent_seed",
        "two seed at once take turns: both exit 0, the rows of two seeds in a row, no duplicate "
        "packet id, spans apart",
        f"{_briefs(results)}"
        + ("" if seen else " (never both waiting on the load lock)")
        + f"; {rows_got:,} rows (two seeds in a row: {rows_want:,}; {diff} differ); "
        f"{dupes} duplicate ids; {len(spans)} loads, spans {'apart' if apart else 'OVERLAP'}",
        survived,
        rows_before=rows_want,
        rows_after=rows_got,
        rows_lost=diff,
    )


def _index_state(dsn: str) -> tuple[dict[str, str], list[str]]:
    """The dataset's indexes (name -> definition) and the INVALID ones."""
    with connect(dsn) as conn:
        defs = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            ).fetchall()
        }
        invalid = [
            r[0]
            for r in conn.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid ORDER BY 1"
            ).fetchall()
        ]
    return defs, invalid


def _two_runs(
    lab: FaultLab, fault_name: str, args: tuple[str, ...], timeout: float
) -> FaultOutcome:
    """Two runs of ``args`` at once on the lab's tiny dataset; the dataset's indexes must end as
    they were (the clean set), none INVALID, and both runs complete (or one refuses in one line)."""
    dataset = ensure_dataset_info(lab.admin_dsn, scale="tiny", seed=lab.seed)
    clean, _ = _index_state(dataset.dsn)
    results, seen = _spawn_pair(
        lab,
        args,
        _AdvisoryHold(
            lab.dsn("postgres"), RUN_LOCK_KEY, f"{APPLICATION_PREFIX} fault-lab (pid lab)"
        ),
        lambda: _polling_run_lock(lab) >= 2,
        timeout=timeout,
    )
    after, invalid = _index_state(dataset.dsn)
    missing = sorted(set(clean) - set(after))
    extra = sorted(set(after) - set(clean))
    changed = sorted(n for n in set(clean) & set(after) if clean[n] != after[n])
    ok_runs = [r for r in results if r.returncode == 0]
    refused = [r for r in results if r.one_line_error()]
    survived = (
        seen
        and len(ok_runs) + len(refused) == 2
        and len(ok_runs) >= 1
        and not (missing or extra or changed or invalid)
    )
    return FaultOutcome(
        GROUP,
        fault_name,
        "two at once take turns (or one refuses in one line): both complete, the dataset's "
        "indexes exactly the clean set, none INVALID",
        f"{_briefs(results)}"
        + ("" if seen else " (never both waiting on the run lock)")
        + f"; indexes: {len(after)} of {len(clean)}"
        + (f", missing {', '.join(missing)}" if missing else "")
        + (f", extra {', '.join(extra)}" if extra else "")
        + (f", changed {', '.join(changed)}" if changed else "")
        + f"; INVALID: {', '.join(invalid) or 'none'}",
        survived,
    )


@fault(GROUP, fast=True)
def concurrent_notebook_runs(lab: FaultLab) -> FaultOutcome:
    """Two runs of notebook 02 (which drops and rebuilds the shared dataset's indexes) at once."""
    from ibcbench.suite.notebook import notebooks_dir

    notebook = str(notebooks_dir() / "02_index_strategies.ipynb")
    # two strategies (no secondary indexes, then the service's: every index dropped and rebuilt), a
    # few repetitions: the race is in the DDL, not in the timings
    args = (
        "run",
        notebook,
        *("-p", "scale", "tiny", "-p", "seed", str(lab.seed)),
        *("-p", "strategies", '["none", "service"]', "-p", "repetitions", "5"),
    )
    return _two_runs(lab, "concurrent_notebook_runs", args, timeout=600)


@fault(GROUP, fast=False)
def concurrent_run_all(lab: FaultLab) -> FaultOutcome:
    """Two ``run-all --scale tiny`` at once (before the run lock: four notebooks broke, an INVALID index stayed).

    The notebooks that build and change the shared dataset (01 loads it, 02 swaps its indexes, 04
    swaps them for its plans); not 08, the fault suite itself."""
    args = ("run-all", "--scale", "tiny", "--seed", str(lab.seed), "--notebooks", "01,02,04")
    return _two_runs(lab, "concurrent_run_all", args, timeout=1800)
