"""pgbench (the question is the server): scripts generated from the workload, the password kept off
its command line, its per-transaction logs parsed into the runner's frames.

Warm-up transactions are not measured. While it measures, the pg_cron jobs of the database it
measures are paused, if any, and the manifest says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ibcbench.bench.workload.cron import paused_cron_jobs
from ibcbench.bench.workload.queries import Workload, sample_parameters
from ibcbench.bench.workload.summary import LATE_MS, MAX_TRIES, WorkloadResult, summarize
from ibcbench.db import connect, resolve_dsn
from ibcbench.dsn import redact_dsn
from ibcbench.errors import BenchmarkError, first_line


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
        detail = redact_dsn(first_line(exc), dsn=dsn)
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
    exe = find_pgbench()
    # one pgbench run: the warm-up happens on the connections that are measured (their
    # prepared statements reach their steady plans), and its transactions are left out
    run = _Settings(
        clients=clients,
        threads=clients,  # one client per pgbench thread: each transaction's times are its own
        duration_s=duration_s,
        warmup_s=warmup_s,
        rate_qps=rate_qps,
        seed=seed,
        protocol=protocol,
        max_tries=max_tries,
        warm=round(warmup_s),
        measured=max(1, round(duration_s)),
    )
    with (
        tempfile.TemporaryDirectory(prefix="ibcbench-pgbench-") as tmp,
        paused_cron_jobs(target) as paused,
    ):
        folder = Path(tmp)
        command, names, env = _command(exe, folder, generated, target, run)
        _run(command, env=env, clients=clients)
        frames = [
            _read_pgbench_log(p, names, retries=max_tries > 1) for p in sorted(folder.glob("log.*"))
        ]
    logged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=_LOG_COLUMNS)
    latencies = _latencies(logged, workload, run)
    return _pgbench_result(workload, latencies, run, scripts=len(generated.scripts), paused=paused)


@dataclass(frozen=True)
class _Settings:
    """One pgbench run's settings; ``warm`` and ``measured`` are its whole seconds of warm-up and
    of measurement (one ``-T`` of both)."""

    clients: int
    threads: int
    duration_s: float
    warmup_s: float
    rate_qps: float | None
    seed: int
    protocol: str
    max_tries: int
    warm: int
    measured: int


def _write_scripts(
    folder: Path, scripts: list[tuple[str, str, float]], args: list[str]
) -> list[str]:
    """Write each script into ``folder`` and add its ``-f file@weight`` to ``args``; the query
    name of each script, by its number in pgbench's log."""
    names = []
    for i, (name, body, weight) in enumerate(scripts):
        path = folder / f"s{i:03d}.sql"
        path.write_text(body)
        args += ["-f", f"{path}@{max(1, round(weight * 1000))}"]
        names.append(name)
    return names


def _run(command: list[str], *, env: dict[str, str], clients: int) -> None:
    """Run pgbench; a failure, or clients aborted on a lost connection, as one line."""
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode == 0:
        return
    aborted = pgbench_aborted(proc.stderr)
    if aborted:
        reason = Counter(aborted.values()).most_common(1)[0][0]
        raise BenchmarkError(
            f"pgbench: {len(aborted)} of {clients} clients aborted ({reason}): the run was "
            "cut short and nothing was recorded; run it again once the server is up "
            "(`ibcbench db status`)"
        )
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    raise BenchmarkError(f"pgbench failed: {lines[-1] if lines else f'exit {proc.returncode}'}")


def _latencies(logged: pd.DataFrame, workload: Workload, run: _Settings) -> pd.DataFrame:
    """The measured part of the logs as the ``latencies`` frame (``lag_ms`` under ``--rate`` only)."""
    # one run: the measured part is its last `measured` seconds (the warm-up's are left out)
    logged = measured_part(logged, run.measured if run.warm else None)
    if not run.rate_qps:
        logged = logged.drop(columns="lag_ms")
    latencies = logged.drop(columns="ended_us").reset_index(drop=True)
    latencies["query"] = pd.Categorical(latencies["query"], categories=workload.names)
    latencies["tries"] = latencies["tries"].astype(np.int64)
    return latencies


def _command(
    exe: str, folder: Path, generated: PgbenchScripts, target: str, run: _Settings
) -> tuple[list[str], list[str], dict[str, str]]:
    """pgbench's command line (its scripts written into ``folder``, its logs to go there), the
    query name of each script by its number in the log, and the environment with the password."""
    args = [
        exe,
        "-n",
        "-M",
        run.protocol,
        "-c",
        str(run.clients),
        "-j",
        str(run.threads),
        "--random-seed",
        str(run.seed),
        "--max-tries",
        str(run.max_tries),
        *generated.define_args(),
    ]
    names = _write_scripts(folder, generated.scripts, args)
    if run.rate_qps:
        args += ["--rate", str(run.rate_qps)]
    prefix = folder / "log"
    conninfo, env = pgbench_connection(target, folder)  # no password among the arguments
    command = [
        *args,
        "-T",
        str(run.warm + run.measured),
        "--log",
        f"--log-prefix={prefix}",
        conninfo,
    ]
    return command, names, env


def _pgbench_result(
    workload: Workload, latencies: pd.DataFrame, run: _Settings, *, scripts: int, paused: list[str]
) -> WorkloadResult:
    """The summary, the open loop's figures and the manifest of one pgbench run."""
    summary = summarize(
        latencies, engine="pgbench", clients=run.clients, duration_s=round(run.duration_s)
    )
    total = summary.set_index("query").loc["ALL"]
    open_loop = None
    if run.rate_qps:  # pgbench issues its backlog too, but stops at -T: the lag says how far behind
        open_loop = {
            # pgbench's arrivals are Poisson at the rate
            "expected": round(run.rate_qps * run.measured),
            "issued": len(latencies),
            "late": int((latencies.lag_ms > LATE_MS).sum()),
        }
    return WorkloadResult(
        summary=summary,
        latencies=latencies,
        engine="pgbench",
        clients=run.clients,
        duration_s=run.duration_s,
        errors=int(total["errors"]),
        retries=int(total["retries"]),
        manifest={
            "engine": "pgbench",
            "workload": f"{workload.name}/{workload.version}",
            "queries": workload.names,
            "clients": run.clients,
            "threads": run.threads,
            "duration_s": run.duration_s,
            "warmup_s": run.warmup_s,
            "rate_qps": run.rate_qps,
            "scripts": scripts,
            "protocol": run.protocol,
            "paused_cron_jobs": paused,
            "writes": "in BEGIN ... ROLLBACK",
            "max_tries": run.max_tries,
            "errors": int(total["errors"]),
            "retries": int(total["retries"]),
        },
        open_loop=open_loop,
    )
