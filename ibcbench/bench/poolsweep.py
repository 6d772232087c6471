"""Pool settings swept: max_size x client threads x prepared statements (x health check).

Each point runs the read mix through the Python runner with a pool of that shape; pool statistics
(time waiting for a connection vs using it, errors, timeouts) come from psycopg_pool, over the
measured window only (not the warm-up, nor the pool's growth before it), and every request's wait
and execution are recorded, so their p50/p95/p99 are reported apart. This is the client's
question, so the runner's CPU share is reported with every point.

The pool's min_size is by default what the service's pgx pool runs (``MinConns`` 5, or max_size if
smaller: a pgx pool opens more connections on demand up to ``MaxConns``); ``fixed_size=(True,)``
sweeps ``min_size = max_size`` instead (every connection open before the first request), and
``(False, True)`` both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from ibcbench.bench.workload import Workload, default_workload, sample_parameters
from ibcbench.bench.workload.pgbench import run_pgbench
from ibcbench.bench.workload.python import run_python
from ibcbench.db import connect, resolve_dsn
from ibcbench.results.metrics.metric import THROUGHPUT, TIMING, Metric, informational
from ibcbench.results.recorded import run_folder, save_figure
from ibcbench.results.runs import Run
from ibcbench.toolkit.pool import PoolConfig

SERVICE_CONFIG = PoolConfig()  # 25 / 5
#: the knee: the smallest size reaching this share of the best throughput
KNEE_SHARE = 0.95


@dataclass(frozen=True)
class Knee:
    """Where throughput stops growing: the smallest ``max_size`` reaching ``share`` of the best
    throughput measured with ``clients`` client threads (or connections, for the closed loop)."""

    max_size: int
    clients: int | None
    share: float = KNEE_SHARE

    @property
    def clients_text(self) -> str:
        return (
            "as many clients as connections" if self.clients is None else f"{self.clients} clients"
        )

    def short(self) -> str:
        """The card's value: ``max_size 16 at 32 clients``."""
        return f"max_size {self.max_size} at {self.clients_text}"

    def text(self) -> str:
        """One phrase the findings and the figure title use (the card shows :meth:`short`)."""
        return f"{self.short()} (smallest reaching {self.share:.0%} of the best throughput)"


def throughput_knee(
    throughput: pd.Series, *, clients: int | None, share: float = KNEE_SHARE
) -> Knee:
    """The knee of ``throughput`` (queries/s indexed by pool size; repeated sizes averaged)."""
    by_size = throughput.groupby(level=0).mean()
    return Knee(int(by_size[by_size >= share * by_size.max()].index.min()), clients, share)


@dataclass(frozen=True)
class PoolSweepResult:
    frame: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    def knee(
        self, *, clients: int | None = None, prepared: bool = True, share: float = KNEE_SHARE
    ) -> int:
        """Smallest max_size reaching ``share`` of the best throughput at ``clients`` (default: the most)."""
        return self.knee_point(clients=clients, prepared=prepared, share=share).max_size

    def knee_point(
        self, *, clients: int | None = None, prepared: bool = True, share: float = KNEE_SHARE
    ) -> Knee:
        """:meth:`knee` with the client count it was read at (the sweep's most, by default)."""
        f = self.frame[self.frame.prepared == prepared]
        c = clients or int(f.clients.max())
        return throughput_knee(
            f[f.clients == c].set_index("max_size").throughput_qps, clients=c, share=share
        )

    def prepared_gain(self) -> float | None:
        """Mean throughput with prepared statements / without (None unless both were swept)."""
        f = self.frame
        if set(f.prepared) != {True, False}:
            return None
        return float(f[f.prepared].throughput_qps.mean() / f[~f.prepared].throughput_qps.mean())

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational(
            "knee_max_size",
            "connections",
            "where throughput stops growing: neither direction is better",
        ),
        informational("knee_clients", "clients", "the client threads the knee is read at"),
        Metric("best_qps", "higher", "queries/s", THROUGHPUT, note="the sweep's best throughput"),
        Metric(
            "errors", "lower", "errors", note="failed queries in the sweep: any increase counts"
        ),
        Metric(
            "client_bound_points",
            "lower",
            "points",
            0.0,
            1.0,
            note="sweep points limited by the Python client, whose figures are the client's; one point flips with noise",
        ),
        Metric(
            "prepared_gain", "higher", "x", THROUGHPUT, note="throughput prepared / not prepared"
        ),
        Metric(
            "max_wait_ms_per_request",
            "lower",
            "ms",
            TIMING,
            1.0,
            note="longest mean pool wait of a sweep point",
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        """What notebook 03 records: the knee, the best rate, errors, client-bound points, waits."""
        f = self.frame
        return {
            "knee_max_size": self.knee(),
            "knee_clients": self.knee_point().clients,
            "best_qps": float(f.throughput_qps.max()),
            "errors": int(f.errors.sum()),
            "client_bound_points": int(f.client_bound.sum()),
            "prepared_gain": self.prepared_gain(),
            "max_wait_ms_per_request": float(f.wait_ms_per_request.max()),
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write ``pool_sweep``, the manifest entry and the sweep figure."""
        run = run_folder(run_dir)
        if run is None:
            return
        run.write_frame("pool_sweep", self.frame)
        run.update_manifest(pool_sweep=self.manifest)
        save_figure(plot_sweep(self), "03_pool_sweep", run, close=True)


def _read_mix() -> Workload:
    return (
        default_workload()
        .subset(kind="read")
        .subset(
            [
                "wallet_history",
                "wallet_by_status",
                "packet_by_channel_sequence",
                "network_stats_range",
                "user_statistics",
            ]
        )
    )


def sweep_pool_settings(
    dsn: str | None,
    *,
    max_sizes: tuple[int, ...] = (1, 2, 4, 8, 25),
    clients: tuple[int, ...] = (1, 4, 16, 32),
    prepared: tuple[bool, ...] = (True, False),
    health_check: tuple[bool, ...] = (False,),
    fixed_size: tuple[bool, ...] = (False,),
    duration_s: float = 3.0,
    warmup_s: float = 0.5,
    seed: int = 42,
) -> PoolSweepResult:
    target = resolve_dsn(dsn)
    wl = _read_mix()
    with connect(target) as conn:
        params = sample_parameters(conn, wl, seed=seed)
    rows = []
    for size, n, prep, health, fixed in product(
        max_sizes, clients, prepared, health_check, fixed_size
    ):
        cfg = _sweep_pool(size, prepared=prep, health=health, fixed=fixed)
        result = run_python(
            target,
            wl,
            clients=n,
            duration_s=duration_s,
            warmup_s=warmup_s,
            pool_config=cfg,
            params=params,
            seed=seed,
        )
        rows.append(
            {
                "max_size": size,
                "min_size": cfg.min_size,
                "fixed_size": fixed,
                "clients": n,
                "prepared": prep,
                "health_check": health,
                **_sweep_figures(result),
                "service_config": size == SERVICE_CONFIG.max_size,
            }
        )
    return PoolSweepResult(
        pd.DataFrame(rows),
        {
            "max_sizes": list(max_sizes),
            "clients": list(clients),
            "prepared": list(prepared),
            "health_check": list(health_check),
            "fixed_size": list(fixed_size),
            "duration_s": duration_s,
            "min_size": f"max_size if fixed, else min(max_size, {SERVICE_CONFIG.min_size}) (the service's pgx MinConns)",
            "pool_stats": "over the measured window",
            "workload": wl.names,
        },
    )


def _sweep_pool(size: int, *, prepared: bool, health: bool, fixed: bool) -> PoolConfig:
    """The pool of one sweep point: min_size the service's (or max_size when ``fixed``)."""
    return PoolConfig(
        min_size=size if fixed else min(size, SERVICE_CONFIG.min_size),
        max_size=size,
        prepare_threshold=5 if prepared else None,
        health_check_period_s=1.0 if health else None,
        check_on_checkout=health,
        slow_query_ms=None,
        timeout_s=10.0,
    )


def _sweep_figures(result: Any) -> dict[str, Any]:
    """One sweep point's figures: the runner's totals, the pool's statistics per request, and
    whether the client bounded it."""
    total = result.summary.set_index("query").loc["ALL"]
    stats = result.pool_stats or {}
    requests = max(1, stats.get("requests", 1))
    return {
        "throughput_qps": float(total.throughput_qps),
        "p50_ms": float(total.p50_ms),
        "p95_ms": float(total.p95_ms),
        "p99_ms": float(total.p99_ms),
        "errors": int(total.errors),
        "wait_ms_per_request": round(stats.get("wait_ms", 0.0) / requests, 4),
        "use_ms_per_request": round(stats.get("usage_ms", 0.0) / requests, 4),
        "queued_pct": round(100.0 * stats.get("requests_queued", 0) / requests, 1),
        **{
            f"{part}_p{p}_ms": float(total[f"{part}_p{p}_ms"])
            for part in ("wait", "exec")
            for p in (50, 95, 99)
        },
        "timeouts": int(stats.get("request_errors", 0)),
        "client_cpu_pct": result.client_cpu_pct,
        "client_floor_share": result.client_floor_share,
        "client_bound": result.client_bound,
    }


def plot_sweep(result: PoolSweepResult) -> Any:
    """Throughput and p95 against client threads, one line per max_size; the service's 25/5 drawn bold."""
    import matplotlib.pyplot as plt

    f = result.frame
    if "fixed_size" in f.columns and f.fixed_size.nunique() > 1:
        f = f[~f.fixed_size]  # the default pools; the fixed ones are in the frame
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    sizes = sorted(f.max_size.unique())
    colour = {size: plt.cm.tab10(i % 10) for i, size in enumerate(sizes)}
    for prep, style in ((True, "-"), (False, ":")):
        for size, g in f[(f.prepared == prep) & (~f.health_check)].groupby("max_size"):
            g = g.sort_values("clients")
            bold = size == SERVICE_CONFIG.max_size
            kw = {"marker": "o", "lw": 3 if bold else 1.2, "color": colour[size]}
            label = f"max {size}{' (service 25/5)' if bold else ''}{'' if prep else ', unprepared'}"
            axes[0].plot(g.clients, g.throughput_qps, style, label=label, **kw)
            axes[1].plot(g.clients, g.p95_ms, style, **kw)
            axes[2].plot(g.clients, g.wait_ms_per_request, style, **kw)
    axes[0].set_title("Throughput (queries/s)")
    axes[1].set_title("p95 latency (ms)")
    axes[2].set_title("Wait for a connection (ms / request)")
    for ax in axes:
        ax.set_xlabel("client threads")
        ax.set_xscale("log", base=2)
    # one legend under the panels: colour = max_size, solid = prepared statements, dotted = not
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(6, max(1, len(labels))),
        fontsize=8,
        frameon=False,
    )
    rows = -(-len(labels) // 6)
    fig.suptitle(f"Pool sweep: throughput stops growing at {result.knee_point().text()}")
    fig.tight_layout(rect=(0, 0.05 * rows + 0.02, 1, 1))
    return fig


@dataclass(frozen=True)
class PoolCapacityResult:
    """The server side of the pool question, per engine and pool size: closed-loop throughput
    with that many connections, and at one arrival rate the time from a request's arrival to
    its getting a connection (pgbench: schedule lag; Python: lag + pool wait)."""

    frame: pd.DataFrame
    rate_qps: float
    manifest: dict[str, Any] = field(default_factory=dict)

    def knee(self, *, engine: str = "pgbench", share: float = KNEE_SHARE) -> int:
        """Smallest pool size reaching ``share`` of the engine's best closed-loop throughput
        (the closed loop runs as many clients as connections)."""
        f = self.frame[self.frame.engine == engine].set_index("max_size").throughput_qps
        return throughput_knee(f, clients=None, share=share).max_size

    #: the metric of each key :meth:`key_numbers` makes (direction, unit, noise)
    METRICS: ClassVar[tuple[Metric, ...]] = (
        informational(
            "capacity_rate_qps",
            "queries/s",
            "the arrival rate the wait was measured at (set from the throughput)",
        ),
        informational(
            "capacity_knee_pgbench",
            "connections",
            "where more connections stop adding throughput: neither way is better",
        ),
        informational("capacity_knee_python", "connections", "the same through psycopg_pool"),
        Metric(
            "capacity_wait_p95_ms",
            "lower",
            "ms",
            TIMING,
            1.0,
            note="arrival to a free connection at the rate, p95, per engine and pool size",
        ),
    )

    def key_numbers(self) -> dict[str, Any]:
        """The capacity side of notebook 03: each engine's knee and the wait at the arrival rate."""
        f = self.frame
        engines = sorted(set(f.engine))
        waits = {
            e: dict(zip(g.max_size.astype(str), g.wait_p95_ms, strict=True))
            for e, g in f.sort_values("max_size").groupby("engine")
        }
        return {
            "capacity_rate_qps": self.rate_qps,
            "capacity_knee_pgbench": self.knee(engine="pgbench") if "pgbench" in engines else None,
            "capacity_knee_python": self.knee(engine="python") if "python" in engines else None,
            "capacity_wait_p95_ms": waits,
        }

    def save(self, run_dir: str | Path | Run | None) -> None:
        """Write ``pool_capacity`` and the figure; the sweep's settings into the manifest."""
        run = run_folder(run_dir)
        if run is None:
            return
        run.write_frame("pool_capacity", self.frame)
        run.update_manifest(pool_capacity=self.manifest)
        save_figure(plot_capacity(self), "03_pool_capacity", run, close=True)


def sweep_pool_capacity(
    dsn: str | None,
    *,
    max_sizes: tuple[int, ...] = (1, 2, 4, 8, 25),
    rate_qps: float | None = None,
    engines: tuple[str, ...] = ("pgbench", "python"),
    threads: int = 32,
    duration_s: float = 3.0,
    warmup_s: float = 1.0,
    workload: Workload | None = None,
    params: dict[str, list[tuple]] | None = None,
    seed: int = 42,
) -> PoolCapacityResult:
    """pgbench at C speed for what the server does with N connections (``-c N`` closed loop:
    throughput; ``-R rate -c N``: schedule lag, the wait for a free connection), and the Python
    runner beside it (a pool of N under ``threads`` threads, closed loop, then open loop at the
    same rate), so both engines land in one figure. ``rate_qps`` defaults to half the best
    closed-loop pgbench throughput of the sweep: the largest pools keep up, the smallest do not.
    """
    from ibcbench.errors import BenchmarkError

    unknown = set(engines) - {"pgbench", "python"}
    if unknown or not engines:
        raise BenchmarkError(
            f"engines must be pgbench and/or python, not {sorted(unknown) or '()'}"
        )
    target = resolve_dsn(dsn)
    wl = workload or _read_mix()
    if params is None:
        with connect(target) as conn:
            params = sample_parameters(conn, wl, seed=seed)
    common: dict[str, Any] = {
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "params": params,
        "seed": seed,
    }
    closed = _closed_loops(target, wl, max_sizes, engines, threads, common)
    if rate_qps is None:
        rate_qps = _half_the_best_rate(closed)
    rows = [
        _at_rate(target, wl, engine, size, result, rate_qps, threads, common)
        for (engine, size), result in closed.items()
    ]
    frame = pd.DataFrame(rows).sort_values(["engine", "max_size"]).reset_index(drop=True)
    return PoolCapacityResult(
        frame,
        rate_qps,
        {
            "max_sizes": list(max_sizes),
            "engines": list(engines),
            "threads": threads,
            "rate_qps": rate_qps,
            "duration_s": duration_s,
            "warmup_s": warmup_s,
            "workload": wl.names,
            "wait": "pgbench: schedule lag (-R); python: open-loop lag + pool wait",
        },
    )


def _fixed_pool(size: int) -> PoolConfig:
    """A pool of exactly ``size`` connections, no health checks, for the capacity sweep."""
    return PoolConfig(
        min_size=size,
        max_size=size,
        health_check_period_s=None,
        slow_query_ms=None,
        timeout_s=30.0,
    )


def _closed_loops(
    target: str,
    wl: Workload,
    max_sizes: tuple[int, ...],
    engines: tuple[str, ...],
    threads: int,
    common: dict[str, Any],
) -> dict[tuple[str, int], Any]:
    """Each engine's closed-loop run per pool size, by (engine, size)."""
    closed: dict[tuple[str, int], Any] = {}
    for size in max_sizes:
        if "pgbench" in engines:
            closed[("pgbench", size)] = run_pgbench(target, wl, clients=size, **common)
        if "python" in engines:
            closed[("python", size)] = run_python(
                target, wl, clients=max(threads, size), pool_config=_fixed_pool(size), **common
            )
    return closed


def _half_the_best_rate(closed: dict[tuple[str, int], Any]) -> float:
    """Half the best closed-loop throughput, pgbench's when it ran."""
    best = [r for (engine, _), r in closed.items() if engine == "pgbench"] or list(closed.values())
    return round(
        0.5 * max(float(r.summary.set_index("query").loc["ALL", "throughput_qps"]) for r in best),
        1,
    )


def _at_rate(
    target: str,
    wl: Workload,
    engine: str,
    size: int,
    result: Any,
    rate_qps: float,
    threads: int,
    common: dict[str, Any],
) -> dict[str, Any]:
    """One engine and size at ``rate_qps`` (open loop), beside its closed-loop ``result``: the
    wait from arrival to a connection, and the closed loop's throughput."""
    if engine == "pgbench":
        opened = run_pgbench(target, wl, clients=size, rate_qps=rate_qps, **common)
        waited = _waited(opened.latencies, ("lag_ms",))
    else:
        opened = run_python(
            target,
            wl,
            clients=max(threads, size),
            pool_config=_fixed_pool(size),
            rate_qps=rate_qps,
            drain_timeout_s=common["duration_s"],
            **common,
        )
        waited = _waited(opened.latencies, ("lag_ms", "wait_ms"))
    total = result.summary.set_index("query").loc["ALL"]
    at_rate = opened.summary.set_index("query").loc["ALL"]
    pct = (
        waited.quantile([0.5, 0.95, 0.99]).round(3).tolist() if len(waited) else [float("nan")] * 3
    )
    return {
        "engine": engine,
        "max_size": size,
        "throughput_qps": float(total.throughput_qps),
        "p50_ms": float(total.p50_ms),
        "p95_ms": float(total.p95_ms),
        "rate_qps": rate_qps,
        "achieved_qps": float(at_rate.throughput_qps),
        "wait_p50_ms": pct[0],
        "wait_p95_ms": pct[1],
        "wait_p99_ms": pct[2],
        "latency_p95_at_rate_ms": float(at_rate.p95_ms),
        "late": (opened.open_loop or {}).get("late"),
        "client_bound": result.client_bound,
    }


def _waited(latencies: pd.DataFrame, parts: tuple[str, ...]) -> pd.Series:
    """Per successful request, the sum of ``parts`` (ms); empty when none succeeded (a run that
    sent nothing in its window has no per-request columns)."""
    if latencies.empty or not set(parts) <= set(latencies.columns):
        return pd.Series(dtype=float)
    ok = latencies[latencies.ok]
    return sum((ok[c] for c in parts[1:]), ok[parts[0]])


def plot_capacity(result: PoolCapacityResult) -> Any:
    """Both engines in one figure: closed-loop throughput and the wait at one arrival rate,
    against the number of connections."""
    import matplotlib.pyplot as plt

    f = result.frame
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for engine, style, colour in (("pgbench", "-o", "C0"), ("python", "--s", "C1")):
        g = f[f.engine == engine].sort_values("max_size")
        if g.empty:
            continue
        axes[0].plot(g.max_size, g.throughput_qps, style, color=colour, label=engine)
        axes[1].plot(g.max_size, g.wait_p95_ms, style, color=colour, label=f"{engine} p95")
        axes[1].plot(
            g.max_size, g.wait_p50_ms, style, color=colour, alpha=0.4, label=f"{engine} p50"
        )
    axes[0].set_title("Closed loop: throughput (queries/s)")
    axes[1].set_title(f"At {result.rate_qps:g} queries/s: wait for a connection (ms)")
    axes[1].set_yscale("symlog", linthresh=1.0)
    for ax in axes:
        ax.set_xlabel("connections (pool max_size / pgbench -c)")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
