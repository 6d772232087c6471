"""Pool capacity: what max_size the server can use, asked of pgbench and the Python runner alike.

Each engine runs the read mix in closed loops at growing pool sizes (the knee: where throughput
stops growing, read with :func:`ibcbench.bench.poolsweep.throughput_knee`), then open-loop at half
the best rate, where the time a request waits for a connection is measured apart from its
execution. Split from :mod:`ibcbench.bench.poolsweep` (the client-side settings sweep).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from ibcbench.bench.poolsweep import KNEE_SHARE, read_mix, throughput_knee
from ibcbench.bench.workload import Workload, sample_parameters
from ibcbench.bench.workload.pgbench import run_pgbench
from ibcbench.bench.workload.python import run_python
from ibcbench.db import connect, resolve_dsn
from ibcbench.results.metrics.metric import TIMING, Metric, informational
from ibcbench.results.recorded import run_folder, save_figure
from ibcbench.results.runs import Run
from ibcbench.toolkit.pool import PoolConfig


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
    wl = workload or read_mix()
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
