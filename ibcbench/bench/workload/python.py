"""The Python runner: client threads over a psycopg_pool (the question is the client pool).

Warm-up executions are not measured. While it measures, the runner pauses the pg_cron jobs of the
database it measures, if any, and says so.

The runner says when it, not the server, is the limit (``client_bound``), by two measures: its own
CPU use (a psycopg client in one Python process tops out near one core), and, for closed-loop runs,
its round-trip floor: right after the run, the same pool and threads execute ``SELECT 1`` for a
moment. When the workload reaches half that rate or more, over half of each request's time is what
this client needs for an empty round trip, and the figures describe the client, not the query on the
server. On a 2-core VM the second measure is the one that fires: at 8 and 16 threads the Python
runner's SELECT 1 rate falls (GIL contention) while the process uses only 20-40% of a core.

A request that fails on a lost or refused connection or on a serialization failure or deadlock is
tried again (:mod:`ibcbench.bench.workload.tries`). The summary counts per query ``retries`` (tries
after the first) and ``errors`` (requests that failed after all their tries), and ``unavailable_s``
is the longest stretch of the window without a successful request. A run with errors or retries is
*disturbed*: its throughput and latencies include the outage, and its round-trip floor is not
measured, so ``client_bound`` is None ("not judged"), never a claim.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import psycopg

from ibcbench.bench.workload.clients import Measured, Mix, Record, Settings, measure
from ibcbench.bench.workload.cron import paused_cron_jobs
from ibcbench.bench.workload.queries import Workload, sample_parameters
from ibcbench.bench.workload.summary import (
    LATE_MS,
    MAX_TRIES,
    WorkloadResult,
    longest_gap_s,
    summarize,
)
from ibcbench.bench.workload.tries import quiet_pool_log
from ibcbench.db import connect, resolve_dsn
from ibcbench.errors import BenchmarkError, first_line
from ibcbench.toolkit.pool import PoolConfig, create_pool

#: share of one core above which the Python client is the bottleneck (one process, one GIL)
CLIENT_BOUND_CPU = 0.70
#: workload QPS / SELECT 1 QPS of the same pool and threads above which the run is client-bound
CLIENT_BOUND_FLOOR = 0.5
#: the runner's own pool: seconds a request waits for a connection before that try fails
POOL_TIMEOUT_S = 30.0


def _latency_frame(records: list[Record], names: list[str], open_loop: bool) -> pd.DataFrame:
    """The per-request records as the ``latencies`` frame (``lag_ms`` in an open loop only)."""
    columns = list(zip(*records, strict=True)) if records else [()] * len(Record._fields)
    latencies = pd.DataFrame(
        {
            "query": pd.Categorical([names[i] for i in columns[0]], categories=names),
            "latency_ms": np.array(columns[1], dtype=float),
            "ok": np.array(columns[2], dtype=bool),
            "t_s": np.array(columns[3], dtype=float),
            "wait_ms": np.array(columns[5], dtype=float),
            "exec_ms": np.array(columns[6], dtype=float),
            "tries": np.array(columns[7], dtype=np.int64),
            "client": np.array(columns[8], dtype=np.int64),
        }
    )
    if open_loop:
        latencies["lag_ms"] = np.array(columns[4], dtype=float)
    return latencies


def _open_loop_figures(
    latencies: pd.DataFrame, duration_s: float, not_issued: int
) -> tuple[float, dict[str, Any]]:
    """An open loop's window (seconds the throughput counts over) and its schedule's figures."""
    # throughput achieved: the window's requests over the time from the first one's sending
    # (after any warm-up backlog) to the last one's end
    ends = latencies.t_s + latencies.latency_ms / 1000.0
    sends = latencies.t_s + latencies.lag_ms / 1000.0
    window_s = (
        max(duration_s, float(ends.max() - max(0.0, sends.min()))) if len(latencies) else duration_s
    )
    issued = len(latencies)
    return window_s, {
        "scheduled": issued + not_issued,
        "issued": issued,
        "not_issued": not_issued,
        # sent more than LATE_MS after their scheduled start; still unsent when the window ended
        "late": int((latencies.lag_ms > LATE_MS).sum()),
        "backlog_at_stop": int((latencies.t_s + latencies.lag_ms / 1000.0 >= duration_s).sum()),
        "drain_s": round(float(ends.max()) - duration_s, 3) if issued else 0.0,
    }


def _checked_settings(
    *,
    clients: int,
    duration_s: float,
    warmup_s: float,
    rate_qps: float | None,
    seed: int,
    drain_timeout_s: float | None,
    max_tries: int,
    pool_timeout_s: float,
) -> Settings:
    if clients < 1 or duration_s <= 0 or warmup_s < 0:
        raise BenchmarkError("clients must be >= 1, duration_s > 0 and warmup_s >= 0")
    if rate_qps is not None and rate_qps <= 0:
        raise BenchmarkError("rate_qps must be greater than 0 (or None for a closed loop)")
    if max_tries < 1:
        raise BenchmarkError(f"max_tries must be at least 1 (1: no retries), not {max_tries}")
    if pool_timeout_s <= 0:
        raise BenchmarkError(f"pool_timeout_s must be greater than 0, not {pool_timeout_s:g}")
    drain_s = max(10.0, duration_s) if drain_timeout_s is None else drain_timeout_s
    return Settings(clients, duration_s, warmup_s, rate_qps, seed, max_tries, drain_s)


def _open_pool(cfg: PoolConfig, target: str) -> Any:
    try:
        return create_pool(cfg, target)
    except psycopg.Error as exc:
        raise BenchmarkError(
            f"the runner's pool could not open {cfg.min_size} connections within "
            f"{cfg.timeout_s:g} s ({first_line(exc)}): is the server up? `ibcbench db status`"
        ) from exc


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

    A try that fails :func:`~ibcbench.bench.workload.tries.retryable` is tried again, up to
    ``max_tries`` in all (a lost connection first sends the pool to check its idle ones, so the
    retry gets a live connection or waits for a new one). Each try waits at most the pool's timeout
    for a connection (``pool_timeout_s`` for the runner's own pool, else ``pool_config.timeout_s``),
    and no try starts after the window (closed loop) or the drain (open loop) has ended; so the run
    ends within ``warmup_s + duration_s`` (+ the drain, open loop) + one pool timeout + one
    execution, plus the pool's opening and closing. Per request, ``tries`` says how many it took;
    a closed-loop request that ended after the window is kept when it failed or was retried (its
    trouble is counted), else left out as before.
    """
    run = _checked_settings(
        clients=clients,
        duration_s=duration_s,
        warmup_s=warmup_s,
        rate_qps=rate_qps,
        seed=seed,
        drain_timeout_s=drain_timeout_s,
        max_tries=max_tries,
        pool_timeout_s=pool_timeout_s,
    )
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
    mix = Mix.of(workload, params)
    with paused_cron_jobs(target) as paused, quiet_pool_log():
        pool = _open_pool(cfg, target)
        try:
            measured = measure(pool, mix, run)
        finally:
            pool.close()
    latencies = _latency_frame(measured.records, mix.names, open_loop=bool(rate_qps))
    return runner_result(workload, run, latencies, measured, cfg=cfg, paused=paused)


def runner_result(
    workload: Workload,
    run: Settings,
    latencies: pd.DataFrame,
    measured: Measured,
    *,
    cfg: PoolConfig,
    paused: list[str],
    engine: str = "python",
    extra: dict[str, Any] | None = None,
) -> WorkloadResult:
    """The summary, the open loop's figures, the judgement of the client and the manifest of one
    run of a client runner (``engine``: python, or pgx with its own ``extra`` manifest entries)."""
    window_s, open_loop = (
        _open_loop_figures(latencies, run.duration_s, measured.not_issued)
        if run.rate_qps
        else (run.duration_s, None)
    )
    cpu_share = measured.cpu_used_s / window_s
    summary = summarize(latencies, engine=engine, clients=run.clients, duration_s=window_s)
    total = summary.set_index("query").loc["ALL"]
    errors, retries = int(total["errors"]), int(total["retries"])
    succeeded = latencies.loc[latencies["ok"]]
    unavailable_s = longest_gap_s(
        succeeded.t_s + succeeded.latency_ms / 1000.0,
        window_s if run.rate_qps else run.duration_s,
    )
    floor_qps = measured.floor_qps
    floor_share = round(float(total["throughput_qps"]) / floor_qps, 3) if floor_qps else None
    client_bound = (
        None
        if measured.disturbed
        else cpu_share >= CLIENT_BOUND_CPU
        or (floor_share is not None and floor_share >= CLIENT_BOUND_FLOOR)
    )
    return WorkloadResult(
        summary=summary,
        latencies=latencies,
        engine=engine,
        clients=run.clients,
        duration_s=run.duration_s,
        client_cpu_pct=round(100 * cpu_share, 1),
        client_bound=client_bound,
        client_floor_qps=round(floor_qps, 1) if floor_qps else None,
        client_floor_share=floor_share,
        pool_stats=measured.pool_stats,
        open_loop=open_loop,
        errors=errors,
        retries=retries,
        unavailable_s=unavailable_s,
        manifest={
            "engine": engine,
            "workload": f"{workload.name}/{workload.version}",
            "queries": workload.names,
            "clients": run.clients,
            "duration_s": run.duration_s,
            "warmup_s": run.warmup_s,
            "rate_qps": run.rate_qps,
            "pool": cfg.__dict__,
            "pool_stats": "over the measured window",
            "paused_cron_jobs": paused,
            "writes": "in rolled-back transactions",
            "max_tries": run.max_tries,
            "errors": errors,
            "retries": retries,
            "unavailable_s": unavailable_s,
            "client_bound": "not judged (the run had errors or retries)"
            if client_bound is None
            else client_bound,
            # the measured window's start (seconds since the epoch): t_s counts from it
            "window_started_at": round(measured.window_epoch_s, 3),
            **({"open_loop": open_loop} if open_loop else {}),
            **(extra or {}),
        },
    )
