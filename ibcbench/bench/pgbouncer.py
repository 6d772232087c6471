"""PgBouncer in the pool sweep: the same read mix through three connection paths.

(a) the client's pool straight to the server (psycopg_pool, like pgx's pool in the service), (b)
PgBouncer in transaction mode, (c) PgBouncer in session mode; throughput, p50/p99, the server
connections each path used and the clients that had to wait. Points with more clients than the Python
runner can drive (``python_max_clients``) run on pgbench, the C engine, with one connection per client
(hundreds of clients over PgBouncer's pool of ``pool_size``). Straight to the server, pgbench has no
pool: one server connection per client, so points above what ``max_connections`` leaves are not run.

Prepared statements through transaction pooling: PgBouncer 1.18 does not track them, so a statement
psycopg prepared on one server connection (after ``prepare_threshold`` executions) is missing on the
next: ``prepared statement "_pg3_0" does not exist``, or ``... already exists`` where another client
prepared the same name. :func:`prepared_statements_through_pgbouncer` counts those errors with
``prepare_threshold=5`` (the seed's) and with the fix, ``prepare_threshold=None`` (pgx: the simple
protocol / QueryExecModeExec). PgBouncer 1.21+ can track them (``max_prepared_statements``).

The function for notebook 03 is :func:`compare_connection_paths`; :func:`plot_connection_paths`
draws it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import psycopg

from ibcbench.bench.prepared import pgbench_prepared, prepared_statements_through_pgbouncer
from ibcbench.bench.unavailable import not_available
from ibcbench.bench.workload import Workload, default_workload, sample_parameters
from ibcbench.bench.workload.pgbench import run_pgbench
from ibcbench.bench.workload.python import run_python
from ibcbench.db import connect, resolve_dsn
from ibcbench.errors import BenchmarkError
from ibcbench.infra.pgbouncer import admin_console_url, show_pools
from ibcbench.infra.scaleout import embedded_topology, pgbouncer_url
from ibcbench.results.metrics.metric import THROUGHPUT, TIMING, Metric, informational
from ibcbench.results.recorded import run_folder, save_figure, save_frame
from ibcbench.toolkit.pool import PoolConfig

#: the pool sweep's read mix (bench/poolsweep.py)
READ_MIX = (
    "wallet_history",
    "wallet_by_status",
    "packet_by_channel_sequence",
    "network_stats_range",
    "user_statistics",
)
DIRECT = "client pool -> server"
TRANSACTION = "pgbouncer transaction"
SESSION = "pgbouncer session"
_SAMPLER = "ibcbench-path-sampler"


#: the paths and client counts the connection-path metrics are declared for (the notebook's sweep)
_METRIC_PATHS = (
    "direct_python",
    "direct_pgbench",
    "pgb_txn_pgbench",
    "pgb_session_pgbench",
    "pgb_txn_python",
    "pgb_session_python",
)
_METRIC_CLIENTS = (1, 25, 200)


@dataclass(frozen=True)
class ConnectionPathsResult:
    frame: pd.DataFrame
    prepared: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    #: "not available: <reason>" when PgBouncer's paths were not run (else empty)
    pgbouncer: str = ""

    def point(self, path: str, clients: int, engine: str | None = None) -> pd.Series | None:
        f = self.frame[(self.frame.path == path) & (self.frame.clients == clients)]
        if engine is not None:
            f = f[f.engine == engine]
        return f.iloc[0] if len(f) else None

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        # one pair per path, engine and client count swept (the notebook sweeps 1, 25 and 200 clients)
        *(
            Metric(
                f"{path}_{n}c_qps",
                "higher",
                "queries/s",
                THROUGHPUT,
                note=f"{path}, {n} clients",
                optional=True,
            )
            for path in _METRIC_PATHS
            for n in _METRIC_CLIENTS
        ),
        *(
            Metric(
                f"{path}_{n}c_p99_ms",
                "lower",
                "ms",
                TIMING,
                1.0,
                note=f"{path}, {n} clients",
                optional=True,
            )
            for path in _METRIC_PATHS
            for n in _METRIC_CLIENTS
        ),
        Metric(
            "prepared_errors_threshold_5",
            "none",
            "errors",
            note="prepare_threshold=5 through transaction pooling",
        ),
        Metric(
            "prepared_errors_threshold_none",
            "lower",
            "errors",
            note="the fix, prepare_threshold=None: 0 expected",
        ),
        informational(
            "pgbouncer",
            "",
            "why PgBouncer's paths were not run (no PgBouncer for an external server)",
            optional=True,
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        short = {DIRECT: "direct", TRANSACTION: "pgb_txn", SESSION: "pgb_session"}
        for (path, engine, clients), row in self.frame.set_index(
            ["path", "engine", "clients"]
        ).iterrows():
            key = f"{short[path]}_{engine.split()[0]}_{clients}c"
            out[f"{key}_qps"] = row.throughput_qps
            out[f"{key}_p99_ms"] = row.p99_ms
        p = self.prepared.set_index("prepare_threshold") if len(self.prepared) else pd.DataFrame()
        out["prepared_errors_threshold_5"] = int(p.loc["5", "errors"]) if "5" in p.index else None
        out["prepared_errors_threshold_none"] = (
            int(p.loc["None", "errors"]) if "None" in p.index else None
        )
        if self.pgbouncer:
            out["pgbouncer"] = self.pgbouncer
        return out

    def save(self, run_dir: Any) -> None:
        save_frame(self.frame, "connection_paths", run_dir)
        if len(self.prepared):
            prepared = self.prepared.astype({"messages": str})
            save_frame(prepared, "connection_paths_prepared", run_dir)
        run = run_folder(run_dir)
        if run is not None:
            run.update_manifest(connection_paths=self.manifest)
            if self.pgbouncer:
                run.update_manifest(pgbouncer=self.pgbouncer)
            save_figure(plot_connection_paths(self), "03_connection_paths", run, close=True)


class _Sampler:
    """Server connections of the database (on the primary) and PgBouncer's waiting clients, every 100 ms."""

    def __init__(self, primary: str, bouncer: str | None) -> None:
        self.primary, self.bouncer = primary, bouncer
        self.server_max = 0
        self.waiting_max = 0
        self.maxwait_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with contextlib.ExitStack() as stack:
            p = stack.enter_context(
                psycopg.connect(self.primary, autocommit=True, application_name=_SAMPLER)
            )
            while not self._stop.wait(0.1):
                n = p.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND application_name <> %s",
                    (_SAMPLER,),
                ).fetchone()[0]  # type: ignore[index]
                self.server_max = max(self.server_max, int(n))
                if self.bouncer:
                    with contextlib.suppress(psycopg.Error):
                        for pool in show_pools(admin_console_url(self.bouncer)):
                            if pool.get("database") == psycopg.conninfo.conninfo_to_dict(
                                self.primary
                            ).get("dbname"):
                                self.waiting_max = max(
                                    self.waiting_max, int(pool.get("cl_waiting") or 0)
                                )
                                wait = (
                                    float(pool.get("maxwait") or 0)
                                    + float(pool.get("maxwait_us") or 0) / 1e6
                                )
                                self.maxwait_s = max(self.maxwait_s, wait)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _max_direct_clients(dsn: str) -> int:
    with connect(dsn) as conn:
        limit, reserved, used = conn.execute(
            "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        ).fetchone()  # type: ignore[misc]
    return int(limit) - int(reserved) - int(used) - 10


@contextlib.contextmanager
def _pgbouncer_modes(
    dsn: str, pgbouncer_dsn: str | None, session_dsn: str | None, pool_size: int
) -> Iterator[Any]:
    """Yields a function mode -> URL (None: that mode is not available), or a str saying why no
    PgBouncer is (an external server and none given). Embedded: the kit's PgBouncer, started if
    needed, switched between modes, put back as it was at the end."""
    given = pgbouncer_url(pgbouncer_dsn) if (pgbouncer_dsn or _env("PGBOUNCER_URL")) else None
    if given:
        yield lambda mode: given if mode == "transaction" else session_dsn
        return
    topo = embedded_topology(dsn)
    if topo is None:
        yield not_available(
            "PgBouncer's connection paths",
            "the server is not the kit's embedded one: give PgBouncer (transaction mode) with "
            "pgbouncer_dsn or PGBOUNCER_URL, and one in session mode with session_dsn",
        )
        return
    with topo.started(replicas=0, pgbouncer=True, pool_size=pool_size):

        def switch(mode: str) -> str | None:
            topo.up(pgbouncer=True, pool_mode=mode, pool_size=pool_size)
            return pgbouncer_url(dsn=dsn)

        yield switch


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name) or None


def _row(
    path: str,
    engine: str,
    clients: int,
    result: Any,
    sampler: _Sampler,
    note: str = "",
    prepare: str = "",
) -> dict[str, Any]:
    total = result.summary.set_index("query").loc["ALL"]
    stats = result.pool_stats or {}
    requests = max(1, stats.get("requests", 1))
    return {
        "path": path,
        "engine": engine,
        "clients": clients,
        "throughput_qps": float(total.throughput_qps),
        "p50_ms": float(total.p50_ms),
        "p99_ms": float(total.p99_ms),
        "errors": int(total.errors),
        "server_connections": sampler.server_max,
        "pgbouncer_waiting_max": sampler.waiting_max,
        "pgbouncer_maxwait_s": round(sampler.maxwait_s, 3),
        "pool_wait_ms_per_request": round(stats.get("wait_ms", 0.0) / requests, 3)
        if stats
        else np.nan,
        "client_bound": result.client_bound,
        "prepare_threshold": prepare,
        "note": note,
    }


def compare_connection_paths(
    dsn: str | None,
    *,
    pgbouncer_dsn: str | None = None,
    session_dsn: str | None = None,
    clients: tuple[int, ...] = (1, 25, 200),
    pool_size: int = 25,
    duration_s: float = 3.0,
    warmup_s: float = 1.0,
    python_through_pgbouncer: bool = False,
    python_max_clients: int = 32,
    prepared_clients: int = 8,
    prepared_executions: int = 50,
    seed: int = 42,
) -> ConnectionPathsResult:
    """The read mix through the client pool, PgBouncer transaction and PgBouncer session pooling at each
    client count; then prepared statements through transaction pooling (see the module).

    Straight to the server the Python runner drives the client's pool of ``pool_size`` (and pgbench, with
    no pool, where ``max_connections`` has room); through PgBouncer pgbench drives every point, and with
    ``python_through_pgbouncer`` the Python runner too (one connection per thread, up to
    ``python_max_clients``; in session mode only up to ``pool_size``: the others would wait for a server
    connection the whole run)."""
    if not clients or min(clients) < 1:
        raise BenchmarkError("clients must be one or more counts of at least 1")
    target = resolve_dsn(dsn)
    wl = default_workload().subset(READ_MIX)
    with connect(target) as conn:
        params = sample_parameters(conn, wl, seed=seed)
    room = _max_direct_clients(target)
    kw: dict[str, Any] = {
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "params": params,
        "seed": seed,
    }
    rows = _direct_rows(target, wl, clients, pool_size=pool_size, room=room, kw=kw)
    prepared = pd.DataFrame()
    skipped = ""
    with _pgbouncer_modes(target, pgbouncer_dsn, session_dsn, pool_size) as url_for:
        if isinstance(url_for, str):
            skipped, url_for = url_for, lambda mode: None
        for mode, path in (("transaction", TRANSACTION), ("session", SESSION)):
            url = url_for(mode)
            if url is None:
                continue
            url = _on_database(url, target)
            python_max = python_max_clients if python_through_pgbouncer else 0
            rows += _pgbouncer_rows(
                target, url, mode, path, wl, clients, python_max, pool_size=pool_size, kw=kw
            )
            if mode == "transaction":
                prepared = prepared_statements_through_pgbouncer(
                    url, clients=prepared_clients, executions=prepared_executions, seed=seed
                )
                prepared = pd.concat(
                    [prepared, pgbench_prepared(url, wl, params, seed)], ignore_index=True
                )
    return ConnectionPathsResult(
        pd.DataFrame(rows),
        prepared,
        {
            "clients": list(clients),
            "pool_size": pool_size,
            "duration_s": duration_s,
            "workload": wl.names,
            "python_max_clients": python_max_clients,
            "direct_client_room": room,
        },
        skipped,
    )


def _direct_rows(
    target: str,
    wl: Workload,
    clients: tuple[int, ...],
    *,
    pool_size: int,
    room: int,
    kw: dict[str, Any],
) -> list[dict[str, Any]]:
    """Straight to the server at each client count: the Python runner through the client's pool, and
    pgbench (a server connection per client) where ``max_connections`` has ``room``."""
    rows = []
    for n in clients:
        cfg = PoolConfig(
            min_size=min(5, pool_size),
            max_size=pool_size,
            health_check_period_s=None,
            slow_query_ms=None,
            timeout_s=60.0,
        )
        with _Sampler(target, None) as s:
            r = run_python(target, wl, clients=n, pool_config=cfg, **kw)
        rows.append(_row(DIRECT, "python", n, r, s, f"pool of {pool_size}", "5"))
        if n <= room:
            with _Sampler(target, None) as s:
                r = run_pgbench(target, wl, clients=n, **kw)
            rows.append(
                _row(
                    DIRECT,
                    "pgbench (no pool)",
                    n,
                    r,
                    s,
                    "one server connection per client",
                    "prepared",
                )
            )
    return rows


def _pgbouncer_rows(
    target: str,
    url: str,
    mode: str,
    path: str,
    wl: Workload,
    clients: tuple[int, ...],
    python_max_clients: int,
    *,
    pool_size: int,
    kw: dict[str, Any],
) -> list[dict[str, Any]]:
    """Through PgBouncer in ``mode`` at each client count: pgbench, and the Python runner (one client
    connection per thread) up to ``python_max_clients``, in session mode up to ``pool_size``."""
    rows = []
    for n in clients:
        threshold = None if mode == "transaction" else 5
        if n <= python_max_clients and (mode == "transaction" or n <= pool_size):
            cfg = PoolConfig(
                min_size=n,
                max_size=n,
                prepare_threshold=threshold,
                health_check_period_s=None,
                slow_query_ms=None,
                timeout_s=60.0,
            )
            with _Sampler(target, url) as s:
                r = run_python(url, wl, clients=n, pool_config=cfg, **kw)
            rows.append(
                _row(path, "python", n, r, s, "one client connection per thread", str(threshold))
            )
        protocol = "extended" if mode == "transaction" else "prepared"
        with _Sampler(target, url) as s:
            r = run_pgbench(url, wl, clients=n, protocol=protocol, **kw)
        rows.append(_row(path, "pgbench", n, r, s, f"pool of {pool_size}, -M {protocol}", protocol))
    return rows


def _on_database(url: str, dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = conninfo_to_dict(dsn).get("dbname") or params.get("dbname")
    return make_conninfo("", **params)


def plot_connection_paths(result: ConnectionPathsResult) -> Any:
    """Throughput, p99 and server connections against clients, one line per path and engine."""
    import matplotlib.pyplot as plt

    f = result.frame
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    colour = {DIRECT: "tab:blue", TRANSACTION: "tab:orange", SESSION: "tab:green"}
    for (path, engine), g in f.groupby(["path", "engine"], sort=False):
        g = g.sort_values("clients")
        style = "-" if engine == "pgbench" else (":" if engine.startswith("pgbench") else "--")
        kw = {"marker": "o", "color": colour[path], "ls": style}
        axes[0].plot(g.clients, g.throughput_qps, label=f"{path} ({engine})", **kw)
        axes[1].plot(g.clients, g.p99_ms, **kw)
        axes[2].plot(g.clients, g.server_connections, **kw)
    for ax, title in zip(
        axes, ("Throughput (queries/s)", "p99 latency (ms)", "Server connections used"), strict=True
    ):
        ax.set_title(title)
        ax.set_xlabel("clients")
        ax.set_xscale("log")
    axes[1].set_yscale("log")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(
        "Connection paths: the client's pool straight to the server, PgBouncer transaction and session pooling"
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig
