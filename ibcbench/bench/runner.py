"""Running a workload: the Python runner (the question is the client pool) and pgbench (the server).

Both produce the same tidy frames: ``summary`` (one row per query: count, errors, throughput, latency
percentiles) and ``latencies`` (one row per measured execution). Warm-up executions are not measured.
While it measures, the runner pauses the pg_cron jobs of the database it measures, if any, and says so.

The Python runner says when it, not the server, is the limit (``client_bound``), by two measures:
its own CPU use (a psycopg client in one Python process tops out near one core), and, for closed-loop
runs, its round-trip floor: right after the run, the same pool and threads execute ``SELECT 1`` for a
moment. When the workload reaches half that rate or more, over half of each request's time is what this
client needs for an empty round trip, and the figures describe the client, not the query on the server.
On a 2-core VM the second measure is the one that fires: at 8 and 16 threads the Python runner's
SELECT 1 rate falls (GIL contention) while the process uses only 20-40% of a core.

A request that fails on a lost or refused connection (a server restart, a terminated backend, the
pool's timeout waiting for a connection) or on a serialization failure or deadlock is tried again, up
to ``max_tries`` in all, as pgbench's ``--max-tries`` does: the runner's reads are safe to repeat and its
writes roll back, so a retry never doubles a write. Its latency counts from its first try. The summary
counts per query ``retries`` (tries after the first) and ``errors`` (requests that failed after all
their tries), and ``unavailable_s`` is the longest stretch of the window without a successful request.
A run with errors or retries is *disturbed*: its throughput and latencies include the outage, and its
round-trip floor is not measured, so ``client_bound`` is None ("not judged"), never a claim.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ibcbench.bench.timing import latency_summary
from ibcbench.bench.workload import Workload, sample_parameters
from ibcbench.db import connect, resolve_dsn
from ibcbench.dsn import redact_dsn
from ibcbench.errors import BenchmarkError, IbcbenchError
from ibcbench.toolkit.pool import PoolConfig, create_pool

#: share of one core above which the Python client is the bottleneck (one process, one GIL)
CLIENT_BOUND_CPU = 0.70
#: workload QPS / SELECT 1 QPS of the same pool and threads above which the run is client-bound
CLIENT_BOUND_FLOOR = 0.5
_DRAWS = 1 << 16  # random draws made up front per client thread
#: open loop: a request sent more than this after its scheduled start is late
LATE_MS = 1.0
#: tries of a request in all (the first and its retries), as pgbench's --max-tries
MAX_TRIES = 3
#: the runner's own pool: seconds a request waits for a connection before that try fails
POOL_TIMEOUT_S = 30.0


def retryable(exc: BaseException) -> bool:
    """Whether a failed try may be tried again: a lost, refused or timed-out connection (psycopg's
    ``OperationalError``, the pool's ``PoolTimeout`` among them), a serialization failure or a
    deadlock (``TransactionRollback``, an ``OperationalError`` too). A cancelled statement
    (``QueryCanceled``: a statement timeout) would only time out again."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, psycopg.errors.QueryCanceled
    )


def longest_gap_s(ends_s: Any, window_s: float) -> float:
    """The longest stretch of ``[0, window_s]`` in which no request ended successfully, given the
    end times (seconds from the window's start) of the successful ones."""
    ends = np.clip(np.sort(np.asarray(ends_s, dtype=float)), 0.0, window_s)
    edges = np.concatenate(([0.0], ends, [window_s]))
    return round(float(np.diff(edges).max()), 3)


@dataclass
class WorkloadResult:
    summary: pd.DataFrame
    latencies: pd.DataFrame
    engine: str
    clients: int
    duration_s: float
    client_cpu_pct: float | None = None
    client_bound: bool | None = None
    #: closed loop only: SELECT 1 queries/s through the same pool and threads, and the workload's share
    client_floor_qps: float | None = None
    client_floor_share: float | None = None
    #: Python runner: psycopg_pool's counters over the measured window (not since the pool opened)
    pool_stats: dict[str, Any] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    #: open loop: scheduled, issued, not_issued, late, backlog_at_stop, drain_s
    open_loop: dict[str, Any] | None = None
    #: requests that failed after all their tries, and the retries made (the summary's ALL row)
    errors: int = 0
    retries: int = 0
    #: the longest stretch of the window without a successful request (Python runner), seconds
    unavailable_s: float | None = None

    @property
    def disturbed(self) -> bool:
        """Requests failed or were retried: the figures include an outage or failures."""
        return bool(self.errors or self.retries)

    def trouble(self) -> str | None:
        """One line on what disturbed the run (None: nothing did)."""
        if not self.disturbed:
            return None
        tries = self.manifest.get("max_tries", 1)
        parts = [f"{self.errors} requests failed ({tries} tries each at most)"]
        parts.append(f"{self.retries} retries")
        if self.unavailable_s is not None:
            parts.append(f"{self.unavailable_s:g} s without a successful request")
        return ", ".join(parts)

    def save(self, run: Any, name: str = "workload") -> None:
        run.write_frame(f"{name}_summary", self.summary)
        run.write_frame(f"{name}_latencies", self.latencies)
        run.update_manifest(**{name: self.manifest})


def summarize(
    latencies: pd.DataFrame, *, engine: str, clients: int, duration_s: float
) -> pd.DataFrame:
    """Per query: executions, errors, retries, throughput and latency percentiles (ms), plus an
    ALL row. ``count`` is the successful requests, ``errors`` the ones that failed after all their
    tries, ``retries`` the tries after the first (from a ``tries`` column; 0 without one).

    Where the frame has them (the Python runner), the parts of each latency get their own
    percentiles too: ``lag`` (open loop: scheduled start to sending), ``wait`` (for a pool
    connection) and ``exec`` (on the connection).
    """
    rows = []
    groups = [(name, g) for name, g in latencies.groupby("query", sort=True, observed=False)]
    groups.append(("ALL", latencies))
    parts = [c for c in ("lag_ms", "wait_ms", "exec_ms") if c in latencies.columns]
    for name, g in groups:
        # .loc with a boolean mask: an empty log's 'ok' column has dtype object, and g[...] would
        # take it as a list of column names
        ok = g.loc[g["ok"].astype(bool)]
        retries = int((g["tries"].astype(int) - 1).clip(lower=0).sum()) if "tries" in g else 0
        lat = ok.latency_ms.to_numpy()
        split = {}
        for column in parts:
            values = ok[column].to_numpy()
            for p in (50, 95, 99):
                split[f"{column[:-3]}_p{p}_ms"] = (
                    round(float(np.percentile(values, p)), 3) if len(values) else np.nan
                )
        rows.append(
            {
                "query": name,
                "engine": engine,
                "clients": clients,
                "count": len(ok),
                "errors": int((~g["ok"].astype(bool)).sum()),
                "retries": retries,
                "throughput_qps": round(len(ok) / duration_s, 1) if duration_s > 0 else 0.0,
                **latency_summary(lat, digits=3),
                **split,
            }
        )
    return pd.DataFrame(rows)


@contextlib.contextmanager
def paused_cron_jobs(dsn: str) -> Iterator[list[str]]:
    """Deactivate this database's pg_cron jobs for the duration; restores their previous state."""
    paused: list[tuple[int, str]] = []
    try:
        with connect(dsn, autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('cron.job')").fetchone()[0] is not None:  # type: ignore[index]
                paused = [
                    (jobid, name)
                    for jobid, name in conn.execute(
                        "SELECT jobid, jobname FROM cron.job WHERE active AND database = current_database()"
                    ).fetchall()
                ]
                for jobid, _ in paused:
                    conn.execute("SELECT cron.alter_job(%s, active := false)", (jobid,))
        yield [name for _, name in paused]
    finally:
        if paused:
            _resume_cron_jobs(dsn, paused)


def _resume_cron_jobs(dsn: str, paused: list[tuple[int, str]], tries: int = 5) -> None:
    """Reactivate the paused jobs; a server that is restarting gets a few seconds to come back."""
    for attempt in range(tries):
        try:
            with connect(dsn, autocommit=True) as conn:
                for jobid, _ in paused:
                    conn.execute("SELECT cron.alter_job(%s, active := true)", (jobid,))
            return
        except (psycopg.Error, IbcbenchError) as exc:
            if attempt == tries - 1:
                names = ", ".join(name for _, name in paused)
                raise BenchmarkError(
                    f"the pg_cron jobs paused for the run ({names}) are still paused: the server "
                    f"was unreachable ({_first_line(exc)}); "
                    "reactivate them with SELECT cron.alter_job(jobid, active := true)"
                ) from exc
            time.sleep(1.0 + attempt)


class _QuietPool(logging.Filter):
    """Keeps psycopg's warnings about a lost server (the pool's failed reconnections and discarded
    connections, a rollback that could not be sent) off stderr while a run counts its failures
    itself; logging's last resort would print each one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING


@contextlib.contextmanager
def _quiet_pool_log() -> Iterator[None]:
    loggers = [
        logging.getLogger(name) for name in ("psycopg", "psycopg.pool", "psycopg.transaction")
    ]
    quiet = _QuietPool()
    for log in loggers:
        log.addFilter(quiet)
    try:
        yield
    finally:
        for log in loggers:
            log.removeFilter(quiet)


# ---- the Python runner ---------------------------------------------------------------------------
def _execute(conn: psycopg.Connection, query: Any, params: tuple, write: bool) -> None:
    if write:
        with conn.transaction(force_rollback=True):
            conn.execute(query, params)
    else:
        conn.execute(query, params).fetchall()


def run_python(
    dsn: str | None,
    workload: Workload,
    *,
    clients: int = 4,
    duration_s: float = 10.0,
    warmup_s: float = 2.0,
    rate_qps: float | None = None,
    pool_config: PoolConfig | None = None,
    params: dict[str, list[tuple]] | None = None,
    seed: int = 42,
    drain_timeout_s: float | None = None,
    max_tries: int = MAX_TRIES,
    pool_timeout_s: float = POOL_TIMEOUT_S,
) -> WorkloadResult:
    """``clients`` threads over a psycopg_pool; closed loop, or open loop at ``rate_qps`` in total.

    Every request records its wait for a pool connection (``wait_ms``) and its execution
    (``exec_ms``); the pool's own counters are taken over the measured window only (a snapshot
    at its start subtracted from one at its end), so warm-up and the pool's growth from min_size
    are not counted as waiting. In an open loop each thread follows its own schedule
    (``clients / rate_qps`` apart): every request scheduled within the measured window is issued,
    even after the window ends (the backlog is drained), and its latency counts from its
    scheduled start, so queueing behind a slow server is in the percentiles (``lag_ms`` is the
    part before it was sent). A backlog not drained within ``drain_timeout_s`` (default: the
    duration, at least 10 s) is counted as not issued.

    A try that fails :func:`retryable` is tried again, up to ``max_tries`` in all (a lost
    connection first sends the pool to check its idle ones, so the retry gets a live connection or
    waits for a new one). Each try waits at most the pool's timeout for a connection
    (``pool_timeout_s`` for the runner's own pool, else ``pool_config.timeout_s``), and no try
    starts after the window (closed loop) or the drain (open loop) has ended; so the run ends
    within ``warmup_s + duration_s`` (+ the drain, open loop) + one pool timeout + one
    execution, plus the pool's opening and closing. Per request, ``tries`` says how many it took;
    a closed-loop request that ended after the window is kept when it failed or was retried (its
    trouble is counted), else left out as before.
    """
    if clients < 1 or duration_s <= 0 or warmup_s < 0:
        raise BenchmarkError("clients must be >= 1, duration_s > 0 and warmup_s >= 0")
    if rate_qps is not None and rate_qps <= 0:
        raise BenchmarkError("rate_qps must be greater than 0 (or None for a closed loop)")
    if max_tries < 1:
        raise BenchmarkError(f"max_tries must be at least 1 (1: no retries), not {max_tries}")
    if pool_timeout_s <= 0:
        raise BenchmarkError(f"pool_timeout_s must be greater than 0, not {pool_timeout_s:g}")
    target = resolve_dsn(dsn)
    if params is None:
        with connect(target) as conn:
            params = sample_parameters(conn, workload, seed=seed)
    cfg = pool_config or PoolConfig(
        min_size=clients,
        max_size=clients,
        health_check_period_s=None,
        slow_query_ms=None,
        timeout_s=pool_timeout_s,
    )
    drain_s = max(10.0, duration_s) if drain_timeout_s is None else drain_timeout_s
    names = workload.names
    weights = np.array([q.weight for q in workload.queries], dtype=float)
    weights /= weights.sum()
    queries = [sql.SQL(q.sql) for q in workload.queries]
    writes = [q.kind == "write" for q in workload.queries]
    # per request: query, latency, ok, start (from the window start), lag, wait, exec (ms), tries
    records: list[list[tuple[int, float, bool, float, float, float, float, int]]] = [
        [] for _ in range(clients)
    ]
    not_issued = [0] * clients
    with paused_cron_jobs(target) as paused, _quiet_pool_log():
        try:
            pool = create_pool(cfg, target)
        except psycopg.Error as exc:
            raise BenchmarkError(
                f"the runner's pool could not open {cfg.min_size} connections within "
                f"{cfg.timeout_s:g} s ({_first_line(exc)}): is the server up? `ibcbench db status`"
            ) from exc
        try:
            start = time.perf_counter()
            window_epoch_s = time.time() + warmup_s
            measure_from = start + warmup_s
            stop_at = measure_from + duration_s
            drain_until = stop_at + drain_s
            # no try starts after this: the window's end, or the drain's in an open loop
            retry_until = drain_until if rate_qps else stop_at
            cpu_start = [0.0]
            stats_start: list[dict[str, Any]] = [{}]

            def client(idx: int) -> None:
                rng = np.random.default_rng([seed, idx])
                # draws made up front, so the loop spends its time on the database
                picks = rng.choice(len(names), size=_DRAWS, p=weights).tolist()
                slots = rng.integers(0, 1 << 30, size=_DRAWS).tolist()
                param_lists = [params[n] for n in names]
                k = 0
                interval = clients / rate_qps if rate_qps else 0.0
                scheduled = start + rng.random() * interval
                out = records[idx]
                while True:
                    now = time.perf_counter()
                    if interval:
                        if scheduled >= stop_at:
                            return
                        if now >= drain_until:  # the backlog left: scheduled, never sent
                            first = max(scheduled, measure_from)
                            not_issued[idx] = int(-(-(stop_at - first) // interval))
                            return
                        if scheduled > now:
                            time.sleep(scheduled - now)
                        began = scheduled  # open loop: latency counts from the intended start
                        scheduled += interval
                    elif now >= stop_at:
                        return
                    else:
                        began = now
                    i = picks[k % _DRAWS]
                    values = param_lists[i][slots[k % _DRAWS] % len(param_lists[i])]
                    k += 1
                    ok, tries = _request(
                        pool, queries[i], values, writes[i], max_tries, retry_until
                    )
                    sent, got, done = tries.sent, tries.got, tries.done
                    ended = time.perf_counter()
                    troubled = not ok or tries.count > 1
                    if began >= measure_from and (interval or ended <= stop_at or troubled):
                        out.append(
                            (
                                i,
                                (ended - began) * 1000.0,
                                ok,
                                began - measure_from,
                                (sent - began) * 1000.0,
                                (got - sent) * 1000.0,
                                (done - got) * 1000.0,
                                tries.count,
                            )
                        )

            def mark_window() -> None:
                delay = measure_from - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                cpu_start[0] = time.process_time()
                stats_start[0] = pool.stats().as_dict()

            marker = threading.Thread(target=mark_window)
            threads = [
                threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)
            ]
            marker.start()
            for t in threads:
                t.start()
            marker.join()
            for t in threads:
                t.join()
            cpu_used = time.process_time() - cpu_start[0]
            stats = window_pool_stats(stats_start[0], pool.stats().as_dict())
            disturbed = any(not r[2] or r[7] > 1 for rs in records for r in rs)
            # a disturbed run's floor means nothing (and the server may still be away)
            floor_qps = (
                None
                if rate_qps or disturbed
                else _round_trip_qps(pool, clients, min(1.0, max(0.2, duration_s / 10)))
            )
        finally:
            pool.close()
    flat = sorted((r for rs in records for r in rs), key=lambda r: r[3])
    columns = list(zip(*flat, strict=True)) if flat else [()] * 8
    latencies = pd.DataFrame(
        {
            "query": pd.Categorical([names[i] for i in columns[0]], categories=names),
            "latency_ms": np.array(columns[1], dtype=float),
            "ok": np.array(columns[2], dtype=bool),
            "t_s": np.array(columns[3], dtype=float),
            "wait_ms": np.array(columns[5], dtype=float),
            "exec_ms": np.array(columns[6], dtype=float),
            "tries": np.array(columns[7], dtype=np.int64),
        }
    )
    window_s = duration_s
    open_loop = None
    if rate_qps:
        latencies["lag_ms"] = np.array(columns[4], dtype=float)
        # throughput achieved: the window's requests over the time from the first one's sending
        # (after any warm-up backlog) to the last one's end
        ends = latencies.t_s + latencies.latency_ms / 1000.0
        sends = latencies.t_s + latencies.lag_ms / 1000.0
        window_s = (
            max(duration_s, float(ends.max() - max(0.0, sends.min())))
            if len(latencies)
            else duration_s
        )
        issued = len(latencies)
        open_loop = {
            "scheduled": issued + sum(not_issued),
            "issued": issued,
            "not_issued": sum(not_issued),
            # sent more than LATE_MS after their scheduled start; still unsent when the window ended
            "late": int((latencies.lag_ms > LATE_MS).sum()),
            "backlog_at_stop": int((latencies.t_s + latencies.lag_ms / 1000.0 >= duration_s).sum()),
            "drain_s": round(float(ends.max()) - duration_s, 3) if issued else 0.0,
        }
    cpu_share = cpu_used / window_s
    summary = summarize(latencies, engine="python", clients=clients, duration_s=window_s)
    total = summary.set_index("query").loc["ALL"]
    total_qps = float(total["throughput_qps"])
    errors, retries = int(total["errors"]), int(total["retries"])
    succeeded = latencies.loc[latencies["ok"]]
    unavailable_s = longest_gap_s(
        succeeded.t_s + succeeded.latency_ms / 1000.0,
        window_s if rate_qps else duration_s,
    )
    floor_share = round(total_qps / floor_qps, 3) if floor_qps else None
    client_bound = (
        None
        if disturbed
        else cpu_share >= CLIENT_BOUND_CPU
        or (floor_share is not None and floor_share >= CLIENT_BOUND_FLOOR)
    )
    return WorkloadResult(
        summary=summary,
        latencies=latencies,
        engine="python",
        clients=clients,
        duration_s=duration_s,
        client_cpu_pct=round(100 * cpu_share, 1),
        client_bound=client_bound,
        client_floor_qps=round(floor_qps, 1) if floor_qps else None,
        client_floor_share=floor_share,
        pool_stats=stats,
        open_loop=open_loop,
        errors=errors,
        retries=retries,
        unavailable_s=unavailable_s,
        manifest={
            "engine": "python",
            "workload": f"{workload.name}/{workload.version}",
            "queries": names,
            "clients": clients,
            "duration_s": duration_s,
            "warmup_s": warmup_s,
            "rate_qps": rate_qps,
            "pool": cfg.__dict__,
            "pool_stats": "over the measured window",
            "paused_cron_jobs": paused,
            "writes": "in rolled-back transactions",
            "max_tries": max_tries,
            "errors": errors,
            "retries": retries,
            "unavailable_s": unavailable_s,
            "client_bound": "not judged (the run had errors or retries)"
            if client_bound is None
            else client_bound,
            # the measured window's start (seconds since the epoch): t_s counts from it
            "window_started_at": round(window_epoch_s, 3),
            **({"open_loop": open_loop} if open_loop else {}),
        },
    )


@dataclass
class _Tries:
    """One request's tries: how many, when the first was sent, when the last got a connection
    and when it ended."""

    count: int
    sent: float
    got: float
    done: float


def _request(
    pool: Any, query: Any, values: tuple, write: bool, max_tries: int, retry_until: float
) -> tuple[bool, _Tries]:
    """Execute one request, trying again after a :func:`retryable` failure (at most ``max_tries``
    tries; none starts after ``retry_until``)."""
    sent = time.perf_counter()
    tries = _Tries(0, sent, sent, sent)
    while True:
        tries.count += 1
        tries.got = time.perf_counter()
        try:
            with pool.connection() as conn:
                tries.got = time.perf_counter()
                _execute(conn, query, values, write)
                tries.done = time.perf_counter()
            return True, tries
        except psycopg.Error as exc:
            tries.done = time.perf_counter()
            if tries.count >= max_tries or not retryable(exc) or tries.done >= retry_until:
                return False, tries
            if not isinstance(exc, psycopg.errors.TransactionRollback):
                # a lost connection: the idle ones likely went with it; check them, so that the
                # retry gets a live one or waits for the pool to make a new one
                with contextlib.suppress(Exception):
                    pool.check()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: pool counters that accumulate from the pool's opening (the rest are gauges)
_POOL_COUNTERS = (
    "requests",
    "requests_queued",
    "wait_ms",
    "usage_ms",
    "request_errors",
    "returns_bad",
    "connections_opened",
    "connection_errors",
    "connections_lost",
    "slow_queries",
    "health_checks",
)


def window_pool_stats(at_start: dict[str, Any], at_end: dict[str, Any]) -> dict[str, Any]:
    """Pool statistics over a window: counters as end minus start, gauges as at the end."""
    out = dict(at_end)
    for key in _POOL_COUNTERS:
        if key in at_end:
            out[key] = at_end[key] - at_start.get(key, 0)
    queued = out.get("requests_queued", 0)
    out["mean_wait_ms"] = round(out.get("wait_ms", 0.0) / queued, 3) if queued else 0.0
    return out


def _round_trip_qps(pool: Any, clients: int, seconds: float) -> float:
    """``SELECT 1`` per second through ``pool`` with ``clients`` threads: this client's floor."""
    counts = [0] * clients
    stop_at = time.perf_counter() + seconds

    def loop(idx: int) -> None:
        n = 0
        while time.perf_counter() < stop_at:
            with pool.connection() as conn:
                conn.execute("SELECT 1").fetchone()
            n += 1
        counts[idx] = n

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


# ---- pgbench --------------------------------------------------------------------------------------
def find_pgbench() -> str:
    """pgbench next to the server binaries, else on PATH."""
    from ibcbench.infra.serverconf import find_pg_bindir

    with contextlib.suppress(Exception):
        candidate = find_pg_bindir() / "pgbench"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("pgbench")
    if found is None:
        raise BenchmarkError("pgbench not found: install postgresql-contrib or run `make setup`")
    return found


def pgbench_value(value: Any) -> str | None:
    """A sampled parameter as a pgbench variable's text (None: it must be inlined as NULL)."""
    import datetime as dt

    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    text = str(value)
    if "\x00" in text:
        raise BenchmarkError("a parameter holds a NUL byte, which pgbench cannot carry")
    return text


@dataclass(frozen=True)
class PgbenchScripts:
    """Script files for pgbench and the variables (``-D name=value``) they bind."""

    scripts: list[tuple[str, str, float]]  # (query name, script text, weight)
    variables: dict[str, str]

    def define_args(self) -> list[str]:
        return [arg for name, value in self.variables.items() for arg in ("-D", f"{name}={value}")]


def pgbench_scripts(
    workload: Workload, params: dict[str, list[tuple]], *, per_query: int | None = None
) -> PgbenchScripts:
    """One script per sampled parameter set, its values bound as parameters like an application's.

    pgbench's ``\\set`` takes numbers only, so string parameters cannot be drawn inside one script:
    each sampled set gets its own script, reading variables defined with ``-D`` (``:p3_0`` is set 3's
    first value). Under ``-M prepared`` pgbench sends them as bind parameters of a prepared statement,
    so the server plans as it does for the Python runner (and psycopg or pgx applications): custom
    plans first, then a generic plan. Inlined literals would give every set a plan made for its
    constants, which on a hypertable skips the per-chunk start-up a generic plan pays. pgbench picks
    scripts by weight (at most 128 in all). Writes are wrapped in BEGIN ... ROLLBACK like the Python
    runner's.
    """
    budget = per_query or max(1, 128 // max(1, len(workload.queries)))
    scripts: list[tuple[str, str, float]] = []
    variables: dict[str, str] = {}
    for q in workload.queries:
        sets = params[q.name][:budget]
        for values in sets:
            k = len(scripts)
            text = q.sql
            for j, v in enumerate(values):
                bound = pgbench_value(v)
                if bound is None:
                    text = text.replace("%s", "NULL", 1)
                else:
                    variables[f"p{k}_{j}"] = bound
                    text = text.replace("%s", f":p{k}_{j}", 1)
            body = f"BEGIN;\n{text};\nROLLBACK;\n" if q.kind == "write" else text + ";\n"
            scripts.append((q.name, _CLOCK_TICK + body, q.weight / len(sets)))
    if len(scripts) > 128:
        raise BenchmarkError(
            f"{len(scripts)} pgbench scripts: pgbench takes at most 128; lower per_query"
        )
    return PgbenchScripts(scripts, variables)


def pgbench_connection(dsn: str, folder: Path) -> tuple[str, dict[str, str]]:
    """The conninfo for pgbench's command line, without the password, and the environment that
    carries the password: a password file (``PGPASSFILE``, mode 0600) written in ``folder``.

    Every local user can read a process's arguments (``ps -eo args``), but not its environment or a
    0600 file. ``PGPASSWORD`` of this process is left out: the DSN's password (or none) decides, as
    it does for the kit's own connections."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:  # connect() refused it before: the same line
        detail = redact_dsn(_first_line(exc), dsn=dsn)
        raise BenchmarkError(f"invalid DSN for pgbench: {detail}; fix --dsn") from exc
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is None:
        return make_conninfo("", **params), env
    env.pop("PGPASSWORD", None)
    passfile = folder / "pgpass"
    escaped = str(password).replace("\\", "\\\\").replace(":", "\\:")
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"*:*:*:*:{escaped}\n")
    params.pop("passfile", None)
    env["PGPASSFILE"] = str(passfile)
    return make_conninfo("", **params), env


#: pgbench 15 reads its clock lazily: a transaction whose first command is SQL is logged with the
#: previous one's end as its start, which shows as 0 µs under load (seen here on 15.20 with 4
#: clients: 93% zeros). A meta command first makes pgbench read the clock when the transaction begins.
_CLOCK_TICK = "\\set ibcbench_tick 1\n"

_LOG_COLUMNS = ["query", "latency_ms", "ok", "ended_us", "lag_ms", "tries"]
_LOG_RE = re.compile(r"^(\d+) (\d+) (\d+|failed|skipped) (\d+) (\d+) (\d+)(?: (\d+))?(?: (\d+))?")
_ABORTED_RE = re.compile(r"client (\d+) .*?aborted(.*)")


def _read_pgbench_log(
    path: Path, script_names: list[str], *, retries: bool = False
) -> pd.DataFrame:
    """Per-transaction log lines (client_id transaction_no time_us script_no epoch_s epoch_us
    [schedule_lag_us] [retries]) to a frame of query, latency_ms, ok, ended_us (when the
    transaction ended), lag_ms (under ``--rate`` only, else NaN) and tries (1 + retries; pgbench
    logs its retries when ``--max-tries`` is above 1: ``retries=True``). Under ``--rate``
    pgbench's time counts from the scheduled start, so it includes the lag."""
    rows = []
    for line in path.read_text().splitlines():
        m = _LOG_RE.match(line)
        if not m:
            continue
        latency, script = m.group(3), int(m.group(4))
        ended = int(m.group(5)) * 1_000_000 + int(m.group(6))
        ok = latency.isdigit()
        extra = [int(g) for g in m.groups()[6:] if g is not None]
        tries = 1 + extra.pop() if retries and extra else 1
        lag = extra[0] / 1000.0 if extra else np.nan
        rows.append(
            (script_names[script], int(latency) / 1000.0 if ok else np.nan, ok, ended, lag, tries)
        )
    return pd.DataFrame(rows, columns=_LOG_COLUMNS)


def pgbench_aborted(stderr: str) -> dict[int, str]:
    """pgbench's aborted clients (client id -> the reason it gave) from its stderr."""
    out: dict[int, str] = {}
    for line in stderr.splitlines():
        m = _ABORTED_RE.search(line)
        if m:
            # "... aborted in command 1 query 0: FATAL: ...", "... of script 0; perhaps the
            # backend died while processing", "... aborted while establishing connection"
            rest = m.group(2)
            for sep in (":", ";"):
                if sep in rest:
                    rest = rest.split(sep, 1)[1]
                    break
            out.setdefault(int(m.group(1)), " ".join(rest.split()))
    return out


def measured_part(logged: pd.DataFrame, measured_s: float | None) -> pd.DataFrame:
    """The transactions of a pgbench log that ended in its last ``measured_s`` seconds (pgbench
    starts its clock once every client is connected, so the window is counted back from the last
    logged transaction; None: all of them); ``t_s`` is each one's start from the window's start."""
    if not len(logged):
        return logged.assign(t_s=pd.Series(dtype=float))
    if measured_s is None:
        started = logged.ended_us - logged.latency_ms.fillna(0.0) * 1000.0
        window_start = int(started.min())
    else:
        window_start = int(logged.ended_us.max()) - round(measured_s * 1_000_000)
    kept = logged[logged.ended_us >= window_start]
    started_us = kept.ended_us - kept.latency_ms.fillna(0.0) * 1000.0
    return kept.assign(t_s=(started_us - window_start) / 1e6).sort_values("t_s")


def run_pgbench(
    dsn: str | None,
    workload: Workload,
    *,
    clients: int = 4,
    duration_s: float = 10.0,
    warmup_s: float = 2.0,
    rate_qps: float | None = None,
    params: dict[str, list[tuple]] | None = None,
    seed: int = 42,
    per_query: int | None = None,
    protocol: str = "prepared",
    max_tries: int = MAX_TRIES,
) -> WorkloadResult:
    """pgbench -M prepared (``protocol``: or extended, simple) with scripts generated from the
    workload; its logs parsed into our frames.

    ``--max-tries`` retries a transaction after a serialization failure or a deadlock (pgbench's
    own retries; the log's count goes into ``tries``). A lost connection ends a pgbench client:
    when any aborted (a server restart, a terminated backend), this raises a one-line
    :class:`BenchmarkError` naming how many and why, and records nothing."""
    if max_tries < 1:
        raise BenchmarkError(f"max_tries must be at least 1 (1: no retries), not {max_tries}")
    target = resolve_dsn(dsn)
    if params is None:
        with connect(target) as conn:
            params = sample_parameters(conn, workload, seed=seed)
    generated = pgbench_scripts(workload, params, per_query=per_query)
    scripts = generated.scripts
    exe = find_pgbench()
    threads = clients  # one client per pgbench thread: each transaction's times are its own
    with (
        tempfile.TemporaryDirectory(prefix="ibcbench-pgbench-") as tmp,
        paused_cron_jobs(target) as paused,
    ):
        folder = Path(tmp)
        args = [
            exe,
            "-n",
            "-M",
            protocol,
            "-c",
            str(clients),
            "-j",
            str(threads),
            "--random-seed",
            str(seed),
            "--max-tries",
            str(max_tries),
            *generated.define_args(),
        ]
        names = []
        for i, (name, body, weight) in enumerate(scripts):
            path = folder / f"s{i:03d}.sql"
            path.write_text(body)
            args += ["-f", f"{path}@{max(1, round(weight * 1000))}"]
            names.append(name)
        if rate_qps:
            args += ["--rate", str(rate_qps)]
        # one pgbench run: the warm-up happens on the connections that are measured (their
        # prepared statements reach their steady plans), and its transactions are left out
        warm, measured = round(warmup_s), max(1, round(duration_s))
        prefix = folder / "log"
        conninfo, env = pgbench_connection(target, folder)  # no password among the arguments
        proc = subprocess.run(
            [*args, "-T", str(warm + measured), "--log", f"--log-prefix={prefix}", conninfo],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            aborted = pgbench_aborted(proc.stderr)
            if aborted:
                reason = Counter(aborted.values()).most_common(1)[0][0]
                raise BenchmarkError(
                    f"pgbench: {len(aborted)} of {clients} clients aborted ({reason}): the run was "
                    "cut short and nothing was recorded; run it again once the server is up "
                    "(`ibcbench db status`)"
                )
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            raise BenchmarkError(
                f"pgbench failed: {lines[-1] if lines else f'exit {proc.returncode}'}"
            )
        frames = [
            _read_pgbench_log(p, names, retries=max_tries > 1) for p in sorted(folder.glob("log.*"))
        ]
    logged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=_LOG_COLUMNS)
    # one run: the measured part is its last `measured` seconds (the warm-up's are left out)
    logged = measured_part(logged, measured if warm else None)
    if not rate_qps:
        logged = logged.drop(columns="lag_ms")
    latencies = logged.drop(columns="ended_us").reset_index(drop=True)
    latencies["query"] = pd.Categorical(latencies["query"], categories=workload.names)
    latencies["tries"] = latencies["tries"].astype(np.int64)
    summary = summarize(latencies, engine="pgbench", clients=clients, duration_s=round(duration_s))
    total = summary.set_index("query").loc["ALL"]
    open_loop = None
    if rate_qps:  # pgbench issues its backlog too, but stops at -T: the lag says how far behind
        open_loop = {
            "expected": round(rate_qps * measured),  # pgbench's arrivals are Poisson at the rate
            "issued": len(latencies),
            "late": int((latencies.lag_ms > LATE_MS).sum()),
        }
    return WorkloadResult(
        summary=summary,
        latencies=latencies,
        engine="pgbench",
        clients=clients,
        duration_s=duration_s,
        errors=int(total["errors"]),
        retries=int(total["retries"]),
        manifest={
            "engine": "pgbench",
            "workload": f"{workload.name}/{workload.version}",
            "queries": workload.names,
            "clients": clients,
            "threads": threads,
            "duration_s": duration_s,
            "warmup_s": warmup_s,
            "rate_qps": rate_qps,
            "scripts": len(scripts),
            "protocol": protocol,
            "paused_cron_jobs": paused,
            "writes": "in BEGIN ... ROLLBACK",
            "max_tries": max_tries,
            "errors": int(total["errors"]),
            "retries": int(total["retries"]),
        },
        open_loop=open_loop,
    )


def run_workload(
    dsn: str | None, workload: Workload, *, engine: str = "python", **kwargs: Any
) -> WorkloadResult:
    """Run ``workload`` with the ``python`` runner or ``pgbench``."""
    if engine == "python":
        return run_python(dsn, workload, **kwargs)
    if engine == "pgbench":
        kwargs.pop("pool_config", None)
        kwargs.pop("pool_timeout_s", None)
        return run_pgbench(dsn, workload, **kwargs)
    raise BenchmarkError(f"engine {engine!r} is unknown: use python or pgbench")


@dataclass(frozen=True)
class FidelityResult:
    frame: pd.DataFrame
    query: str


def run_fidelity(
    dsn: str | None,
    *,
    query: str = "packet_by_channel_sequence",
    clients: tuple[int, ...] = (1, 4, 8, 16),
    duration_s: float = 5.0,
    warmup_s: float = 2.0,
    seed: int = 42,
    parameter_sets: int = 16,
) -> FidelityResult:
    """The same query through both engines at each client count: QPS and the python/pgbench ratio.

    Both engines get the same ``parameter_sets`` sampled values, bound as parameters of prepared
    statements. pgbench holds one prepared statement per set and connection, each planned as custom
    five times before a generic plan; few sets let its warm-up reach that steady state.
    """
    from ibcbench.bench.workload import default_workload

    target = resolve_dsn(dsn)
    wl = default_workload().subset([query])
    with connect(target) as conn:
        params = sample_parameters(conn, wl, seed=seed)
    params = {name: values[:parameter_sets] for name, values in params.items()}
    rows = []
    for n in clients:
        py = run_python(
            target,
            wl,
            clients=n,
            duration_s=duration_s,
            warmup_s=warmup_s,
            params=params,
            seed=seed,
        )
        pg = run_pgbench(
            target,
            wl,
            clients=n,
            duration_s=duration_s,
            warmup_s=warmup_s,
            params=params,
            seed=seed,
            per_query=parameter_sets,
        )
        py_qps = float(py.summary.set_index("query").loc[query, "throughput_qps"])
        pg_qps = float(pg.summary.set_index("query").loc[query, "throughput_qps"])
        rows.append(
            {
                "clients": n,
                "python_qps": py_qps,
                "pgbench_qps": pg_qps,
                "ratio": round(py_qps / pg_qps, 3) if pg_qps else np.nan,
                "python_p50_ms": float(py.summary.set_index("query").loc[query, "p50_ms"]),
                "pgbench_p50_ms": float(pg.summary.set_index("query").loc[query, "p50_ms"]),
                "client_cpu_pct": py.client_cpu_pct,
                "python_select1_qps": py.client_floor_qps,
                "client_bound": py.client_bound,
            }
        )
    return FidelityResult(pd.DataFrame(rows), query)
