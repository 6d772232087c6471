"""The pgx runner (the question is the service's own client): the workload on pgx v4's pgxpool,
in a small Go program (``runners/pgx``) that this module builds a job for, runs and reads back.

The job (JSON on the runner's stdin) holds the conninfo without its password (a 0600 password file
named by ``PGPASSFILE`` carries it, as for pgbench), the queries with ``$n`` placeholders and their
sampled parameter sets as text, the pool's settings (:func:`pgxpool_settings`), the statement cache
and each client's draws: the same requests, client for client, as the Python runner's threads make
(:func:`~ibcbench.bench.workload.clients.client_draws`), on the same open-loop schedule. The runner
writes one JSON line per measured request (query, client, scheduled start, start, got a connection,
end, ok, tries, error) which become the Python runner's ``latencies`` frame, so
:func:`~ibcbench.bench.workload.summary.summarize` summarises all three engines one way. Latency
counts from the scheduled start in an open loop, as the Python runner's does.

How it differs from pgx v5 (the service's pool): ``docs/runners.md``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ibcbench.bench.workload.clients import Measured, Mix, Settings, client_draws
from ibcbench.bench.workload.cron import paused_cron_jobs
from ibcbench.bench.workload.pgbench import pgbench_connection, pgbench_value
from ibcbench.bench.workload.python import (
    POOL_TIMEOUT_S,
    _checked_settings,
    runner_result,
)
from ibcbench.bench.workload.queries import Workload, sample_parameters
from ibcbench.bench.workload.summary import MAX_TRIES, WorkloadResult
from ibcbench.db import connect, resolve_dsn
from ibcbench.errors import BenchmarkError
from ibcbench.toolkit.pool import PoolConfig

#: where ``scripts/install-system.sh`` builds the runner, beside its source
RUNNER_SOURCE = Path(__file__).resolve().parents[3] / "runners" / "pgx"
RUNNER_NAME = "pgx-runner"
#: pgx v4's statement cache capacity when nothing else is asked (its own default)
STATEMENT_CACHE_CAPACITY = 512
INSTALL_HINT = "run scripts/install-system.sh as root (golang-go, pgx v4, builds runners/pgx)"

#: the service's pool settings (its PoolConfig), pgxpool v4's Config field, the kit's PoolConfig
#: field, and the job's key the runner reads
PGXPOOL_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("MaxConnections", "MaxConns", "max_size", "max_conns"),
    ("MinConnections", "MinConns", "min_size", "min_conns"),
    ("MaxConnLifetime", "MaxConnLifetime", "max_lifetime_s", "max_conn_lifetime_s"),
    ("MaxConnIdleTime", "MaxConnIdleTime", "max_idle_s", "max_conn_idle_time_s"),
    ("HealthCheckPeriod", "HealthCheckPeriod", "health_check_period_s", "health_check_period_s"),
)


def pgxpool_settings(cfg: PoolConfig) -> dict[str, Any]:
    """``cfg`` as the runner's pool settings (the job's keys: counts, and seconds for the
    durations; a health check period of None stands for none, which pgxpool v4 spells as a day)."""
    return {job_key: getattr(cfg, field) for _, _, field, job_key in PGXPOOL_FIELDS}


def pool_config_from_service(**service: Any) -> PoolConfig:
    """The kit's PoolConfig for the service's pool settings, by their Go names (counts, and
    seconds for the durations): ``pool_config_from_service(MaxConnections=25, MinConnections=5,
    MaxConnLifetime=3600, MaxConnIdleTime=1800, HealthCheckPeriod=60)``."""
    names = {name: field for name, _, field, _ in PGXPOOL_FIELDS}
    unknown = sorted(set(service) - set(names))
    if unknown:
        raise BenchmarkError(f"unknown pool settings {', '.join(unknown)}: use {', '.join(names)}")
    return PoolConfig(**{names[k]: v for k, v in service.items()})


def find_pgx_runner() -> str:
    """The built runner: ``$IBCBENCH_PGX_RUNNER``, else ``runners/pgx/pgx-runner``, else on PATH.
    Missing: one line saying what to install."""
    env = os.environ.get("IBCBENCH_PGX_RUNNER")
    if env:
        if Path(env).is_file() and os.access(env, os.X_OK):
            return env
        raise BenchmarkError(f"IBCBENCH_PGX_RUNNER={env} is not an executable: {INSTALL_HINT}")
    candidates = [RUNNER_SOURCE / RUNNER_NAME]
    found = shutil.which(RUNNER_NAME)
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    what = "Go is not installed" if shutil.which("go") is None else "the pgx runner is not built"
    raise BenchmarkError(f"{what}: {INSTALL_HINT}")


def pgx_unavailable() -> str | None:
    """Why the pgx engine cannot run here (None: it can)."""
    try:
        find_pgx_runner()
    except BenchmarkError as exc:
        return str(exc)
    return None


_PLACEHOLDER = re.compile(r"%%|%s")


def dollar_placeholders(text: str) -> str:
    """psycopg's ``%s`` placeholders as ``$1``, ``$2``... (``%%`` as ``%``), for pgx."""
    count = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal count
        if m.group(0) == "%%":
            return "%"
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(sub, text)


def pgx_job(
    conninfo: str,
    workload: Workload,
    params: dict[str, list[tuple]],
    run: Settings,
    *,
    cfg: PoolConfig,
    pool_timeout_s: float,
    statement_cache: int,
    out: Path,
) -> dict[str, Any]:
    """The runner's job: everything but the password."""
    mix = Mix.of(workload, params)
    draws = [client_draws(mix, run.seed, i) for i in range(run.clients)]
    return {
        "conninfo": conninfo,
        "queries": [
            {
                "name": q.name,
                "sql": dollar_placeholders(q.sql),
                "write": q.kind == "write",
                "params": [[pgbench_value(v) for v in values] for values in params[q.name]],
            }
            for q in workload.queries
        ],
        "clients": run.clients,
        "duration_s": run.duration_s,
        "warmup_s": run.warmup_s,
        "rate_qps": run.rate_qps,
        "drain_s": run.drain_s,
        "max_tries": run.max_tries,
        "pool_timeout_s": pool_timeout_s,
        "pool": pgxpool_settings(cfg),
        "statement_cache": statement_cache,
        "draws": [{"picks": d.picks, "slots": d.slots, "offset": d.offset} for d in draws],
        "floor_s": 0.0 if run.rate_qps else min(1.0, max(0.2, run.duration_s / 10)),
        "out": str(out),
    }


def read_pgx_records(path: Path, names: list[str], *, open_loop: bool) -> pd.DataFrame:
    """The runner's JSON lines as the Python runner's ``latencies`` frame (``lag_ms`` in an open
    loop only), in order of their start."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame(
        rows, columns=["q", "c", "sched", "start", "got", "end", "ok", "tries", "err"]
    )
    sched = frame["sched"].to_numpy(dtype=float)
    start = frame["start"].to_numpy(dtype=float)
    got = frame["got"].to_numpy(dtype=float)
    end = frame["end"].to_numpy(dtype=float)
    latencies = pd.DataFrame(
        {
            "query": pd.Categorical.from_codes(frame["q"].to_numpy(dtype=int), categories=names),
            "latency_ms": (end - sched) * 1000.0,
            "ok": frame["ok"].to_numpy(dtype=bool),
            "t_s": sched,
            "wait_ms": (got - start) * 1000.0,
            "exec_ms": (end - got) * 1000.0,
            "tries": frame["tries"].to_numpy(dtype=np.int64),
            "client": frame["c"].to_numpy(dtype=np.int64),
        }
    )
    if open_loop:
        latencies["lag_ms"] = (start - sched) * 1000.0
    return latencies.sort_values("t_s", kind="stable").reset_index(drop=True)


def _run_runner(exe: str, job: dict[str, Any], env: dict[str, str], timeout_s: float) -> Any:
    """Run the runner on ``job``; its figures (its last stdout line), or one line on failure."""
    try:
        proc = subprocess.run(
            [exe],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(
            f"the pgx runner did not finish within {timeout_s:g} s: nothing was recorded"
        ) from exc
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"exit {proc.returncode}"
        raise BenchmarkError(f"{detail}; nothing was recorded (`ibcbench db status`)")
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise BenchmarkError("the pgx runner printed no figures: rebuild it") from exc


def run_pgx(
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
    statement_cache: int = STATEMENT_CACHE_CAPACITY,
) -> WorkloadResult:
    """The workload on pgxpool, as :func:`~ibcbench.bench.workload.python.run_python` runs it on
    psycopg_pool: the same arguments, draws, schedule, tries and result.

    ``statement_cache`` is pgx v4's ``statement_cache_capacity`` (prepared statements, LRU per
    connection); 0 turns it off and sends every query with ``PreferSimpleProtocol`` (values
    quoted into the text, as behind PgBouncer in transaction mode). Without ``pool_config`` the
    pool holds ``clients`` connections from the start, as the Python runner's does.
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
    if statement_cache < 0:
        raise BenchmarkError(f"statement_cache must be 0 (off) or more, not {statement_cache}")
    exe = find_pgx_runner()
    target = resolve_dsn(dsn)
    if params is None:
        with connect(target) as conn:
            params = sample_parameters(conn, workload, seed=seed)
    cfg = pool_config or PoolConfig(
        min_size=clients, max_size=clients, health_check_period_s=None, timeout_s=pool_timeout_s
    )
    timeout_s = warmup_s + duration_s + run.drain_s + 2 * pool_timeout_s + 60.0
    with (
        tempfile.TemporaryDirectory(prefix="ibcbench-pgx-") as tmp,
        paused_cron_jobs(target) as paused,
    ):
        folder = Path(tmp)
        conninfo, env = pgbench_connection(target, folder)  # the password in a 0600 file
        out = folder / "records.jsonl"
        job = pgx_job(
            conninfo,
            workload,
            params,
            run,
            cfg=cfg,
            pool_timeout_s=pool_timeout_s,
            statement_cache=statement_cache,
            out=out,
        )
        figures = _run_runner(exe, job, env, timeout_s)
        latencies = read_pgx_records(out, workload.names, open_loop=bool(rate_qps))
    measured = _measured(figures, latencies)
    extra = {
        "runner": "pgx v4 pgxpool (runners/pgx)",
        "pgxpool": {pgx: getattr(cfg, field) for _, pgx, field, _ in PGXPOOL_FIELDS},
        "statement_cache": figures.get("statement_cache"),
        "pool_stats": "pgxpool Stat() over the measured window (counters), gauges at its end",
    }
    return runner_result(
        workload, run, latencies, measured, cfg=cfg, paused=paused, engine="pgx", extra=extra
    )


def _measured(figures: dict[str, Any], latencies: Any) -> Measured:
    """What the runner's own figures and its records say about the window, in the Python
    runner's terms (a retried or failed request makes the run disturbed)."""
    disturbed = bool((~latencies["ok"]).any() or (latencies["tries"] > 1).any())
    return Measured(
        records=[],
        not_issued=int(figures.get("not_issued", 0)),
        cpu_used_s=float(figures.get("cpu_used_s", 0.0)),
        pool_stats=dict(figures.get("pool_stats") or {}),
        disturbed=disturbed,
        floor_qps=figures.get("floor_qps"),
        window_epoch_s=float(figures.get("window_epoch_s", 0.0)),
    )
