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


def read_mix() -> Workload:
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
    wl = read_mix()
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
